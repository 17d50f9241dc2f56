/* tapegrad/io.h: getting graphs out of the library. The Graphviz dot writer is always built
 * (plain text, no dependency); rendering dot to SVG, PNG or PDF in-process needs Graphviz's
 * libraries (libgvc, libcgraph) at build time (CMake option TG_GRAPHVIZ).
 *
 * The dot text shows one node per recorded tensor: leaves (ids l0, l1, ... in order of first
 * use on the tape) and op results (ids n0, n1, ... by tape index), with edges from inputs to
 * outputs. Each node's label gives its name (when set), op, shape, dtype, value and, after a
 * backward pass, its gradient: every element for up to 4 elements, else min/mean/max. Leaves
 * that require grad, constants and op results have distinct shapes and colours (a legend
 * says which); a value or gradient holding NaN or Inf gets a bold red border. The same
 * recording always gives byte-identical text: ids come from tape positions, never pointers,
 * and the graph's `comment` attribute carries tg_tape_fingerprint as 16 hex digits.
 *
 * Values are read when the text is written: a leaf changed since the recording (an optimizer
 * step) shows its new value. A tape with an error shows the nodes recorded before it. */
#ifndef TAPEGRAD_IO_H
#define TAPEGRAD_IO_H

#include "common.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the dot text shows, for tg_dot_write, tg_dot_string and tg_dot_render; start from
 * TG_DOT_OPTIONS_INIT (values and gradients, no gradient-flow colours, no title). */
typedef struct tg_dot_options {
    bool values;       /* show each node's value (every element for <= 4, else min/mean/max) */
    bool grads;        /* show each node's gradient, where the latest backward computed one */
    bool grad_flow;    /* fill nodes by log10 of their gradient's L2 norm, blue (vanishing,
                        * < 1e-6) through green to red (exploding, >= 1e3); grey: no gradient */
    const char *title; /* a title above the graph, or NULL; copied into the text, escaped */
} tg_dot_options;

#define TG_DOT_OPTIONS_INIT {true, true, false, NULL}

/* Writes the tape's graph as Graphviz dot text to `out` (opened by the caller and left open;
 * flushed at the end, so a full disk is reported here). opt NULL means TG_DOT_OPTIONS_INIT.
 * Names, the title and every other user string are escaped, so the text is valid dot
 * whatever they hold.
 * Errors: TG_EINVAL (tape or out NULL), TG_EIO (a write failed; part of the text may have
 * been written). */
TG_API tg_status tg_dot_write(const tg_tape *tape, FILE *out, const tg_dot_options *opt);

/* The same text in memory: *out receives a NUL-terminated string the caller frees with
 * tg_dot_string_free, and *len (if len is not NULL) its length. On error *out is NULL.
 * Errors: TG_EINVAL (tape or out NULL), TG_ENOMEM. */
TG_API tg_status tg_dot_string(const tg_tape *tape, const tg_dot_options *opt, char **out,
                               size_t *len);
/* Frees a string from tg_dot_string. NULL is ignored. */
TG_API void tg_dot_string_free(char *dot);

/* True when the library was built with Graphviz, so tg_dot_render can work. (A format can
 * still be missing at run time if Graphviz's plugin for it is not installed.) */
TG_API bool tg_dot_can_render(void);

/* Lays out the tape's graph with Graphviz's dot engine, in-process, and writes it to `path`
 * as `format`: "svg", "png" or "pdf". opt as for tg_dot_write. The file is written only after
 * rendering succeeded, so a failure leaves an existing file untouched (except for a failed
 * write). Graphviz's messages are captured (not printed) and go into the error message.
 * Calls are serialized by a lock: Graphviz keeps global state. Its context is created on the
 * first call and kept until the process exits; Graphviz's allocations bypass tapegrad's
 * allocator hook (and Graphviz 2.42 leaks a little per call in its HTML-label parser).
 * Errors: TG_EINVAL (tape, format or path NULL; a format other than svg, png, pdf),
 * TG_ENOTSUP (built without Graphviz, with a message saying how to enable it; or Graphviz
 * lacks the plugin for the format or the layout engine), TG_EIO (path cannot be written),
 * TG_EFORMAT (Graphviz rejected the graph), TG_ENOMEM. */
TG_API tg_status tg_dot_render(const tg_tape *tape, const char *format, const char *path,
                               const tg_dot_options *opt);

#ifdef __cplusplus
}
#endif

#endif

/* tapegrad/io.h: getting graphs and tensors out of the library, and tensors back in. Named
 * tensor files (at the end) keep parameters that are not an MLP.
 *
 * Graphs: the Graphviz dot writer is always built (plain text, no dependency); rendering dot
 * to SVG, PNG or PDF in-process needs Graphviz's libraries (libgvc, libcgraph) at build time
 * (CMake option TG_GRAPHVIZ).
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
 * whatever they hold (what XML cannot hold becomes U+FFFD; a string is shown up to 1024
 * bytes, then an ellipsis). The labels show the leaves' values, so the leaves the recording
 * used must be alive: when one of them was freed since the recording began, the writers
 * refuse, naming it by its index (tg_tape_leaf).
 * Errors: TG_EINVAL (tape or out NULL), TG_ESTALE (a leaf freed, as above; nothing written),
 * TG_EIO (a write failed; part of the text may have been written). */
TG_API tg_status tg_dot_write(const tg_tape *tape, FILE *out, const tg_dot_options *opt);

/* The same text in memory: *out receives a NUL-terminated string the caller frees with
 * tg_dot_string_free, and *len (if len is not NULL) its length. On error *out is NULL.
 * Errors: TG_EINVAL (tape or out NULL), TG_ESTALE (as tg_dot_write), TG_ENOMEM. */
TG_API tg_status tg_dot_string(const tg_tape *tape, const tg_dot_options *opt, char **out,
                               size_t *len);
/* Frees a string from tg_dot_string. NULL is ignored. */
TG_API void tg_dot_string_free(char *dot);

/* True when the library was built with Graphviz, so tg_dot_render can work. (A format can
 * still be missing at run time if Graphviz's plugin for it is not installed.) */
TG_API bool tg_dot_can_render(void);

/* Lays out the tape's graph with Graphviz's dot engine, in-process, and writes it to `path`
 * as `format`: "svg", "png" or "pdf". opt as for tg_dot_write. The file is written only after
 * rendering succeeded, and as model files are (tapegrad/nn.h): a temporary file renamed over
 * path, a path that exists and is not a regular file refused, a symbolic link followed; so
 * any failure, a failed write included, leaves an existing file untouched. Graphviz's
 * messages are captured (not printed) and go into the error message.
 * Calls are serialized by a lock: Graphviz keeps global state. Its context is created on the
 * first call and kept until the process exits; Graphviz's allocations bypass tapegrad's
 * allocator hook (and Graphviz 2.42 leaks a little per call in its HTML-label parser).
 * A graph of more than 10,000 nodes and leaves is refused (TG_EINVAL): Graphviz's layout time
 * grows faster than the graph (10,000 ops in a chain took 8 s), and far larger graphs crash
 * inside it; write its dot text instead (no limit) and run dot on it.
 * Errors: TG_EINVAL (tape, format or path NULL; a format other than svg, png, pdf; a graph
 * over the limit),
 * TG_ENOTSUP (built without Graphviz, with a message saying how to enable it; or Graphviz
 * lacks the plugin for the format or the layout engine), TG_EIO (path cannot be written: the
 * message names it, the failed step and the OS reason), TG_EFORMAT (Graphviz rejected the
 * graph, or reported an error while rendering it),
 * TG_ESTALE (as tg_dot_write), TG_ENOMEM. */
TG_API tg_status tg_dot_render(const tg_tape *tape, const char *format, const char *path,
                               const tg_dot_options *opt);

/* ---- named tensor files ---------------------------------------------------------------
 * A file of tensors, each with a name: the parameters of a network you built yourself (a few
 * leaves), where model files (tapegrad/nn.h) hold only MLPs. The format
 * (docs/tensor-format.md) is the model file's frame: little-endian, versioned, every tensor's
 * name, dtype, shape and data bit for bit (NaN and infinities included), and an XXH3-64
 * checksum of all bytes before it. Tensors of both dtypes and any rank 0..TG_MAX_RANK, empty
 * ones (an axis of 0) included. Names are 1 to 1024 bytes, no two alike.
 *
 *     tg_tensor *params[3] = {w1, b1, w2};           (leaves named with tg_tensor_set_name)
 *     tg_tensors_save("net.tgt", 3, NULL, (const tg_tensor *const *)params);
 *     tg_tensors_load_into("net.tgt", 3, NULL, params);   (later, or in another program)
 *
 * Saving writes a temporary file and renames it over `path` (never a half-written file).
 * Loading validates every field against the bytes there before using it: TG_EIO (cannot
 * open or read, with the OS reason) or TG_EFORMAT ("tensors_load: PATH: " then: bad magic,
 * unknown version, checksum mismatch, truncated at byte N, an empty or repeated name, a
 * shape larger than the bytes left, ...), never a crash, never a partial result. */

/* Writes n tensors (leaves or recorded values, f32 or f64) under names[i], or, with names
 * NULL, under each tensor's own name (tg_tensor_name). n may be 0 (names and tensors then
 * NULL). Saved as model files are (tapegrad/nn.h): atomically, a path that is not a regular
 * file refused, a symbolic link followed. TG_EINVAL (path NULL, a NULL tensor, a name
 * missing, empty, longer than 1024 bytes or used twice: the message names the tensors),
 * TG_ESTALE (a tape tensor whose tape was reset), TG_EIO (with the path, the failed step and
 * the OS reason; path is untouched), TG_ENOMEM. */
TG_API tg_status tg_tensors_save(const char *path, size_t n, const char *const *names,
                                 const tg_tensor *const *tensors);
/* The same into memory: *out_buf is the caller's, released with tg_tensors_buffer_free(buf,
 * size) (it comes from the allocator hook, tg_set_allocator). */
TG_API tg_status tg_tensors_save_buffer(size_t n, const char *const *names,
                                        const tg_tensor *const *tensors, void **out_buf,
                                        size_t *out_size);
TG_API void tg_tensors_buffer_free(void *buf, size_t size);

/* Reads a file's tensors into the caller's: for each i, the file's tensor named names[i] (or
 * tg_tensor_name(tensors[i]) when names is NULL) is copied into tensors[i], a leaf of the
 * same dtype and shape. Strict, as a model's load is: every tensor asked for must be in the
 * file, and every tensor of the file asked for. Nothing is written unless all of it fits.
 * Errors as tg_tensors_load, and: TG_EINVAL (a NULL or non-leaf tensor, a name missing, a name
 * not in the file, a name asked for twice, one leaf given twice, a tensor of the file not asked
 * for), TG_EDTYPE and TG_ESHAPE naming the tensor and both dtypes or shapes. The leaves keep
 * their requires_grad flag and gradient. */
TG_API tg_status tg_tensors_load_into(const char *path, size_t n, const char *const *names,
                                      tg_tensor *const *tensors);
TG_API tg_status tg_tensors_load_into_buffer(const void *buf, size_t size, size_t n,
                                             const char *const *names,
                                             tg_tensor *const *tensors);

/* The tensors of a file, loaded as they are: a set of named leaves (not requiring grad), in
 * the file's order. Opaque; the caller's, freed with tg_tensors_free, which frees the
 * tensors too (except those taken out with tg_tensors_take). */
typedef struct tg_tensors tg_tensors;

/* Reads a tensor file into a new set (*out is the caller's; NULL on error). TG_EIO, TG_EFORMAT
 * as above, TG_EINVAL (path or out NULL), TG_ENOMEM. A file over 64 GiB is refused unread. */
TG_API tg_status tg_tensors_load(const char *path, tg_tensors **out);
/* The same from memory (buf may be NULL only when size is 0). */
TG_API tg_status tg_tensors_load_buffer(const void *buf, size_t size, tg_tensors **out);
/* Frees the set and the tensors it still owns. NULL is ignored. */
TG_API void tg_tensors_free(tg_tensors *set);
/* The number of tensors (0 for NULL). */
TG_API size_t tg_tensors_count(const tg_tensors *set);
/* The name of tensor i, valid as long as the set (NULL with TG_EINVAL out of range). */
TG_API const char *tg_tensors_name(const tg_tensors *set, size_t i);
/* Tensor i, owned by the set (NULL with TG_EINVAL out of range; NULL once taken). Its name
 * is set to the file's (tg_tensor_name). */
TG_API tg_tensor *tg_tensors_get(const tg_tensors *set, size_t i);
/* The tensor named `name`, owned by the set; NULL with TG_EINVAL when there is none, or when
 * it was taken (tg_tensors_take). */
TG_API tg_tensor *tg_tensors_find(const tg_tensors *set, const char *name);
/* Tensor i, handed over: the caller frees it (tg_tensor_free), the set forgets it (its name
 * stays). NULL with TG_EINVAL out of range or taken already. */
TG_API tg_tensor *tg_tensors_take(tg_tensors *set, size_t i);

#ifdef __cplusplus
}
#endif

#endif

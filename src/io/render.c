/* render.c: tg_dot_render, the dot text laid out and drawn by Graphviz in-process (libgvc,
 * libcgraph). Without Graphviz at build time (TG_HAVE_GRAPHVIZ undefined) it reports
 * TG_ENOTSUP and says how to enable it; the dot writer itself never needs Graphviz.
 *
 * The drawing goes to memory first and to `path` only once Graphviz succeeded, then atomically
 * (io/files.h), so a failed render or write never truncates an existing file, and every I/O
 * error is ours to report. */
#include "core/core.h"
#include "io/files.h"

#include <errno.h>
#include <stdio.h>

#ifdef TG_HAVE_GRAPHVIZ
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <pthread.h>
#include <stdlib.h>
#endif

static const char *const FORMATS[] = {"svg", "png", "pdf"};

/* The most nodes and leaves a graph may have to be laid out in-process. Graphviz's dot layout
 * grows faster than the graph: a chain of 1,000 ops took 0.17 s, 3,000 0.8 s, 10,000 8.3 s
 * (Release build, Intel Xeon VM); past some 50,000 it ran out of stack or asked for an
 * impossible allocation inside Graphviz, which kills the process. The dot text has no limit. */
#define TG_RENDER_MAX_NODES 10000

bool tg_dot_can_render(void)
{
#ifdef TG_HAVE_GRAPHVIZ
    return true;
#else
    return false;
#endif
}

#ifdef TG_HAVE_GRAPHVIZ

/* Graphviz keeps global state (the error level and handler, attribute prototypes), so
 * renders are serialized; the context and the captured messages are shared under the lock.
 *
 * One context serves every render and is never freed. Graphviz 2.42's pango plugin keeps a
 * static pointer to the last font name, which lives in the context: after gvFreeContext the
 * next context's first text layout reads freed memory (AddressSanitizer shows it in
 * textspan_size on the second PNG). A context that lives as long as the process avoids that,
 * and saves reloading the plugins on every call. */
static pthread_mutex_t gv_lock = PTHREAD_MUTEX_INITIALIZER;
static GVC_t *gv_context;
static char gv_msg[400];
static size_t gv_msg_len;

/* Graphviz's error handler (agseterrf): keeps its messages for our error text instead of
 * letting them reach stderr. Messages arrive in pieces ("Error", ": ", text); newlines are
 * folded so the result reads as one line. */
static int capture(char *msg)
{
    for (const char *p = msg; *p && gv_msg_len + 1 < sizeof gv_msg; p++)
        gv_msg[gv_msg_len++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    gv_msg[gv_msg_len] = '\0';
    return 0;
}

/* What Graphviz said, trimmed, or a fallback. */
static const char *gv_said(const char *fallback)
{
    while (gv_msg_len && gv_msg[gv_msg_len - 1] == ' ')
        gv_msg[--gv_msg_len] = '\0';
    return gv_msg_len ? gv_msg : fallback;
}

/* Lays out and renders `dot` into a malloc'd buffer (*data, *size; free() it) via
 * open_memstream: gvRender's FILE* interface is the same in every Graphviz version, unlike
 * gvRenderData, whose length type changed. Called with gv_lock held. */
static tg_status render_to_memory(const char *dot, const char *format, char **data, size_t *size)
{
    tg_status st = TG_OK;
    *data = NULL;
    *size = 0;
    if (!gv_context && !(gv_context = gvContext()))
        return tg__error(TG_ENOMEM, "dot_render: Graphviz could not create a context");
    GVC_t *gvc = gv_context;
    Agraph_t *g = agmemread(dot);
    FILE *mem = NULL;
    if (!g) {
        st = tg__error(TG_EFORMAT, "dot_render: Graphviz could not read the graph: %s",
                       gv_said("unknown error"));
    } else if (gvLayout(gvc, g, "dot") != 0) {
        st = tg__error(TG_ENOTSUP, "dot_render: Graphviz layout with the dot engine failed: %s",
                       gv_said("is its dot_layout plugin installed?"));
    } else {
        if (!(mem = open_memstream(data, size))) {
            st = tg__error(TG_ENOMEM, "dot_render: out of memory");
        } else {
            int rc = gvRender(gvc, g, format, mem);
            if (fclose(mem) != 0 && rc == 0)
                st = tg__error(TG_ENOMEM, "dot_render: out of memory for the %s output", format);
            else if (rc != 0)
                st = tg__error(TG_ENOTSUP, "dot_render: Graphviz cannot render %s: %s", format,
                               gv_said("is its plugin for that format installed?"));
            else if (agerrors() > AGWARN) /* it went on past an error: a label it dropped */
                st = tg__error(TG_EFORMAT, "dot_render: Graphviz rendered with an error: %s",
                               gv_said("unknown error"));
        }
        gvFreeLayout(gvc, g);
    }
    if (g)
        agclose(g);
    if (st != TG_OK) {
        free(*data);
        *data = NULL;
        *size = 0;
    }
    return st;
}

#endif /* TG_HAVE_GRAPHVIZ */

tg_status tg_dot_render(const tg_tape *tape, const char *format, const char *path,
                        const tg_dot_options *opt)
{
    if (!tape || !format || !path)
        return tg__error(TG_EINVAL, "dot_render: %s is NULL",
                         !tape ? "tape" : !format ? "format" : "path");
    bool known = false;
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
        known |= strcmp(format, FORMATS[i]) == 0;
    if (!known)
        return tg__error(TG_EINVAL, "dot_render: unknown format \"%.40s\" (use svg, png or pdf)",
                         format);
#ifndef TG_HAVE_GRAPHVIZ
    TG_UNUSED(opt);
    return tg__error(TG_ENOTSUP,
                     "dot_render: built without Graphviz; install libgraphviz-dev and reconfigure "
                     "with -DTG_GRAPHVIZ=ON (the dot text from tg_dot_write works without it)");
#else
    const size_t nodes = tg_tape_size(tape) + tg_tape_leaf_count(tape);
    if (nodes > TG_RENDER_MAX_NODES)
        return tg__error(TG_EINVAL,
                         "dot_render: the graph has %zu nodes and leaves, more than the %d "
                         "Graphviz lays out in-process (its time grows faster than the graph, "
                         "and far larger ones crash inside it); write the dot text "
                         "(tg_dot_write) and run dot on it",
                         nodes, TG_RENDER_MAX_NODES);
    char *dot;
    tg_status st = tg_dot_string(tape, opt, &dot, NULL);
    if (st != TG_OK)
        return st;
    char *data = NULL;
    size_t size = 0;

    pthread_mutex_lock(&gv_lock);
    gv_msg_len = 0;
    gv_msg[0] = '\0';
    /* Capture everything from warnings up, restoring the caller's settings afterwards. */
    agusererrf old_fn = agseterrf(capture);
    agerrlevel_t old_level = agseterr(AGWARN);
    agreseterrors();
    st = render_to_memory(dot, format, &data, &size);
    agseterr(old_level);
    agseterrf(old_fn);
    pthread_mutex_unlock(&gv_lock);

    tg_dot_string_free(dot);
    /* As model files are saved: a temporary file renamed over path, so a failed write (a full
     * disk) leaves the previous picture, and a path that is no regular file is refused. */
    if (st == TG_OK)
        st = tg_io__save_atomic("dot_render", path, data, size);
    free(data);
    return st;
#endif
}

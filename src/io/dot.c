/* dot.c: the Graphviz dot writer. It walks a tape once (leaves, then nodes in recording
 * order) and writes one node per tensor with an HTML-like label, edges from inputs to
 * outputs, and a legend. No dependency: the text goes to a FILE or to a string in memory.
 *
 * Determinism is the point of most choices here: ids are tape positions (l<slot>, n<index>),
 * numbers are printed with "%.6g" and NaN/Inf spelled out by hand (printf's "-nan" depends on
 * the sign bit), gradient-flow colours come from comparisons against exact decades rather
 * than from log10, and nothing depends on addresses or time. */
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- output sink: a FILE or a growing buffer ------------------------------------------- */

typedef struct sink {
    FILE *file;       /* NULL: write into buf */
    char *buf;
    size_t len, cap;
    tg_status status; /* the first failure; later writes are dropped */
} sink;

static void put(sink *s, const char *p, size_t n)
{
    if (s->status != TG_OK || n == 0)
        return;
    if (s->file) {
        if (fwrite(p, 1, n, s->file) != n)
            s->status = tg__error(TG_EIO, "dot_write: write failed: %s", strerror(errno));
        return;
    }
    /* +1: room for the terminating NUL, kept in place at every step. */
    if (s->len + n + 1 > s->cap &&
        tg__grow((void **)&s->buf, &s->cap, s->len + n + 1, 1, "dot_string") != TG_OK) {
        s->status = TG_ENOMEM;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static void puts_(sink *s, const char *p)
{
    put(s, p, strlen(p));
}

/* Formatted pieces are short (ids, numbers, attribute values); user strings never go
 * through here, they go through put_html. */
static void putf(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sink *s, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    TG_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    if (n > 0)
        put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- escaping ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence starting at p (1..4), or 0 when it is not valid (bad
 * lead byte, missing continuation, overlong form, surrogate, beyond U+10FFFF); *cp receives
 * the code point. */
static size_t utf8_len(const unsigned char *p, unsigned *cp_out)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x3Fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *cp_out = cp;
    return n;
}

/* The most bytes of a name or title a label shows; longer ones end in an ellipsis. Escaped,
 * they stay under the 16384 bytes Graphviz's scanner takes between two pieces of markup (a
 * byte becomes at most the 8 of "&#65533;"), past which the whole file is refused. */
#define LABEL_TEXT_MAX 1024

/* Text inside an HTML-like label (label=<...>). Graphviz parses it as XML, so & < > " must be
 * entities; a newline becomes a line break; other control bytes and invalid UTF-8 (which
 * Graphviz would reject or misread) become U+FFFD. Dot's own specials ({ } | \ and quotes in
 * record or quoted labels) mean nothing here, so they pass through as themselves. At most
 * LABEL_TEXT_MAX bytes of text are shown. */
static void put_html(sink *s, const char *text)
{
    const unsigned char *start = (const unsigned char *)text, *p = start;
    while (*p) {
        if ((size_t)(p - start) >= LABEL_TEXT_MAX) {
            puts_(s, "\xE2\x80\xA6"); /* U+2026, the ellipsis */
            break;
        }
        const unsigned char *run = p;
        while ((size_t)(p - start) < LABEL_TEXT_MAX && *p >= 0x20 && *p < 0x7F && *p != '&' &&
               *p != '<' && *p != '>' && *p != '"')
            p++;
        put(s, (const char *)run, (size_t)(p - run));
        if (!*p || (size_t)(p - start) >= LABEL_TEXT_MAX)
            continue;
        size_t n;
        unsigned cp;
        switch (*p) {
        case '&': puts_(s, "&amp;"); break;
        case '<': puts_(s, "&lt;"); break;
        case '>': puts_(s, "&gt;"); break;
        case '"': puts_(s, "&quot;"); break;
        case '\n': puts_(s, "<BR/>"); break;
        case '\t': puts_(s, " "); break;
        default:
            if (*p >= 0x80 && (n = utf8_len(p, &cp)) > 0) {
                /* XML, which Graphviz reads the label as, has no U+FFFE or U+FFFF */
                if (cp == 0xFFFE || cp == 0xFFFF)
                    puts_(s, "&#65533;");
                else
                    put(s, (const char *)p, n);
                p += n;
                continue;
            }
            puts_(s, "&#65533;");
        }
        p++;
    }
}

/* ---- numbers ------------------------------------------------------------------------------ */

static double load(const void *p, tg_dtype dtype, size_t i)
{
    return dtype == TG_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* "%.6g", except NaN and Inf, spelled the same everywhere, and a decimal comma (from a
 * caller's setlocale) turned back into a point: the text must not depend on the locale. */
static const char *fmt_num(char buf[32], double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "Inf" : "-Inf";
    snprintf(buf, 32, "%.6g", v);
    for (char *c = buf; *c; c++)
        if (*c == ',')
            *c = '.';
    return buf;
}

typedef struct stats {
    size_t nan, inf; /* non-finite elements */
    double norm;     /* L2 norm (NaN when any element is NaN, Inf when any is Inf) */
} stats;

/* One pass over the elements: non-finite counts and the L2 norm. The norm is computed as
 * max|x| * sqrt(sum (x/max|x|)^2) so that large gradients do not overflow to Inf before
 * they are really infinite (that would read as "exploding" for values of 1e200). */
static stats scan(const void *p, tg_dtype dtype, size_t n)
{
    stats st = {0, 0, 0.0};
    double amax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = load(p, dtype, i);
        if (isnan(v))
            st.nan++;
        else if (isinf(v))
            st.inf++;
        else if (fabs(v) > amax)
            amax = fabs(v);
    }
    if (st.nan) {
        st.norm = NAN;
    } else if (st.inf) {
        st.norm = INFINITY;
    } else if (amax > 0.0) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            double r = load(p, dtype, i) / amax;
            sum += r * r;
        }
        st.norm = amax * sqrt(sum);
    }
    return st;
}

/* "[a, b]" for up to 4 elements (a bare number for a 0-d tensor), else min/mean/max over the
 * finite elements followed by the count of NaN and Inf. */
static void put_values(sink *s, const char *what, const void *p, const tg_tensor *t, stats st)
{
    char b[32];
    const tg_dtype dtype = tg_tensor_dtype(t);
    const size_t numel = tg_tensor_numel(t);
    const int rank = tg_tensor_rank(t);
    putf(s, "<BR/>%s ", what);
    if (numel <= 4) {
        if (rank > 0)
            puts_(s, "[");
        for (size_t i = 0; i < numel; i++) {
            if (i)
                puts_(s, ", ");
            puts_(s, fmt_num(b, load(p, dtype, i)));
        }
        if (rank > 0)
            puts_(s, "]");
        return;
    }
    size_t finite = numel - st.nan - st.inf;
    if (finite) {
        double lo = INFINITY, hi = -INFINITY, sum = 0.0;
        for (size_t i = 0; i < numel; i++) {
            double v = load(p, dtype, i);
            if (!isfinite(v))
                continue;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            sum += v;
        }
        double mean = sum / (double)finite;
        if (!isfinite(mean)) { /* the sum overflowed (values near DBL_MAX): add the shares */
            mean = 0.0;
            for (size_t i = 0; i < numel; i++) {
                double v = load(p, dtype, i);
                if (isfinite(v))
                    mean += v / (double)finite;
            }
        }
        puts_(s, "min ");
        puts_(s, fmt_num(b, lo));
        puts_(s, " mean ");
        puts_(s, fmt_num(b, mean));
        puts_(s, " max ");
        puts_(s, fmt_num(b, hi));
    }
    if (st.nan || st.inf) {
        puts_(s, finite ? " (" : "none finite: ");
        if (st.nan)
            putf(s, "%zu NaN%s", st.nan, st.inf ? ", " : "");
        if (st.inf)
            putf(s, "%zu Inf", st.inf);
        puts_(s, finite ? ")" : "");
    }
}

/* ---- styles --------------------------------------------------------------------------------- */

/* Node kinds: distinct shape and fill. */
enum kind { K_PARAM, K_CONST, K_OP, K_OP_NOGRAD, K_COUNT };

static const struct {
    const char *id;    /* legend node: legend_<id> */
    const char *style; /* shape and style attributes */
    const char *fill;
    const char *legend;
} KINDS[K_COUNT] = {
    [K_PARAM] = {"param", "shape=box, style=\"rounded,filled\"", "#cfe2ff", "leaf, requires grad"},
    [K_CONST] = {"const", "shape=note, style=filled", "#e6e6e6", "constant"},
    [K_OP] = {"op", "shape=box, style=filled", "#fff2cc", "op result"},
    [K_OP_NOGRAD] = {"op_nograd", "shape=box, style=\"filled,dashed\"", "#fff2cc",
                     "op result, no grad"},
};

/* Gradient flow: one colour per decade of the L2 norm, hue from blue (240 degrees) down to
 * red (0) in equal steps: < 1e-6, [1e-6, 1e-5), ..., [1e2, 1e3), >= 1e3. */
#define FLOW_BINS 11
static const char *const FLOW_COLOUR[FLOW_BINS] = {
    "#7373ff", "#73abff", "#73e3ff", "#73ffe3", "#73ffab", "#73ff73",
    "#abff73", "#e3ff73", "#ffe373", "#ffab73", "#ff7373",
};
static const char *const FLOW_LEGEND[FLOW_BINS] = {
    "&lt; 1e-6 (vanishing)", "1e-6 .. 1e-5", "1e-5 .. 1e-4", "1e-4 .. 1e-3",
    "1e-3 .. 0.01",          "0.01 .. 0.1",  "0.1 .. 1",     "1 .. 10",
    "10 .. 100",             "100 .. 1e3",   "&gt;= 1e3 (exploding)",
};
#define NO_GRAD_COLOUR "#d9d9d9"
#define BAD_COLOUR "#d00000"

/* The decade bin of a norm, by comparison with exact powers of ten (no libm, so the same
 * bin on every platform). NaN counts as exploding. */
static int flow_bin(double norm)
{
    static const double edge[FLOW_BINS - 1] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2,
                                               1e-1, 1e0,  1e1,  1e2,  1e3};
    if (isnan(norm))
        return FLOW_BINS - 1;
    int b = 0;
    while (b < FLOW_BINS - 1 && norm >= edge[b])
        b++;
    return b;
}

/* ---- the graph ---------------------------------------------------------------------------- */

typedef struct leaf_ref {
    const tg_tensor *leaf;
    size_t slot;
} leaf_ref;

typedef struct writer {
    sink *s;
    const tg_tape *tape;
    tg_dot_options opt;
    tg_tensor **leaves; /* the tape's leaves, taken once: tg_tape_leaf may turn NULL */
    size_t n_leaves;
    leaf_ref *index; /* leaves sorted by address, built only when needed (see leaf_slot) */
    size_t n_index;
    bool index_tried;
} writer;

static int cmp_leaf_ref(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const leaf_ref *)a)->leaf;
    uintptr_t y = (uintptr_t)((const leaf_ref *)b)->leaf;
    return x < y ? -1 : x > y;
}

/* The tape slot of a leaf input: a search of the tape's leaf list, through an index sorted
 * by address (built once per graph) when the list is long, so a large tape does not cost
 * leaves x edges. Should building the index fail, a linear search still answers. */
static size_t leaf_slot(writer *w, const tg_tensor *x)
{
    const size_t n = w->n_leaves;
    if (!w->index_tried && n > 16) {
        w->index_tried = true;
        w->index = tg__malloc(n * sizeof *w->index);
        if (w->index) {
            for (size_t i = 0; i < n; i++)
                w->index[i] = (leaf_ref){w->leaves[i], i};
            qsort(w->index, n, sizeof *w->index, cmp_leaf_ref);
            w->n_index = n;
        }
    }
    if (w->index) {
        leaf_ref key = {x, 0};
        const leaf_ref *r =
            bsearch(&key, w->index, w->n_index, sizeof *w->index, cmp_leaf_ref);
        if (r)
            return r->slot;
    } else {
        for (size_t i = 0; i < n; i++)
            if (w->leaves[i] == x)
                return i;
    }
    TG_ASSERT(!"a recorded input is on the tape's leaf list");
    return 0;
}

/* The op line: "matmul", "sum axis=1 keepdim", "scale c=0.5", "clamp [0, 1]",
 * "slice axis=0 [1:7:2]", "select axis=1 [0]", "permute (2, 0, 1)". */
static void put_op(sink *s, const tg_tensor *t)
{
    char b1[32], b2[32];
    const tg_op_info *info = tg_op_info_of((tg_op)tg_tensor_op(t));
    tg_attrs a;
    (void)tg_tensor_attrs(t, &a); /* a live node of the tape: cannot fail */
    put_html(s, tg_tensor_op_name(t)); /* a custom op's own name: the user's text, escaped */
    switch (info->attrs) {
    case TG_ATTR_NONE:
    case TG_ATTR_SHAPE: /* the new shape is the node's own, shown on the next line */
        break;
    case TG_ATTR_CONSTANT: putf(s, " c=%s", fmt_num(b1, a.c)); break;
    case TG_ATTR_RANGE: putf(s, " [%s, %s]", fmt_num(b1, a.lo), fmt_num(b2, a.hi)); break;
    case TG_ATTR_AXIS:
    case TG_ATTR_REDUCE:
        if (a.axis == TG_ALL_AXES)
            puts_(s, " axis=all");
        else
            putf(s, " axis=%d", a.axis);
        if (a.keepdim && info->attrs == TG_ATTR_REDUCE)
            puts_(s, " keepdim");
        break;
    case TG_ATTR_SLICE: {
        putf(s, " axis=%d [%td:%td", a.axis, a.start, a.stop);
        if (a.step != 1)
            putf(s, ":%td", a.step);
        puts_(s, "]");
        break;
    }
    case TG_ATTR_INDEX: putf(s, " axis=%d [%td]", a.axis, a.index); break;
    case TG_ATTR_AXES:
        puts_(s, " (");
        for (int i = 0; i < tg_tensor_rank(t); i++)
            putf(s, "%s%d", i ? ", " : "", a.axes[i]);
        puts_(s, ")");
        break;
    }
}

/* One node: `id [shape..., fillcolor=..., label=<...>];`. */
static void put_node(writer *w, const char *prefix, size_t id, tg_tensor *t)
{
    sink *s = w->s;
    const bool leaf = tg_tensor_is_leaf(t), requires_grad = tg_tensor_requires_grad(t);
    const tg_dtype dtype = tg_tensor_dtype(t);
    const size_t numel = tg_tensor_numel(t);
    enum kind k = leaf ? (requires_grad ? K_PARAM : K_CONST)
                  : tg_tensor_op(t) == TG_OP_CONST ? K_CONST
                  : requires_grad                  ? K_OP
                                                   : K_OP_NOGRAD;
    const void *data = tg_tensor_data_const(t);
    const void *grad = tg_tensor_grad_data(t);
    stats vs = scan(data, dtype, numel);
    stats gs = {0, 0, 0.0};
    if (grad)
        gs = scan(grad, dtype, numel);
    bool bad = vs.nan || vs.inf || gs.nan || gs.inf;

    const char *fill = KINDS[k].fill;
    if (w->opt.grad_flow)
        fill = grad ? FLOW_COLOUR[flow_bin(gs.norm)] : NO_GRAD_COLOUR;
    putf(s, "  %s%zu [%s, fillcolor=\"%s\"", prefix, id, KINDS[k].style, fill);
    if (bad)
        puts_(s, ", color=\"" BAD_COLOUR "\", penwidth=3");
    puts_(s, ", label=<");

    const char *name = tg_tensor_name(t);
    if (name && name[0]) {
        puts_(s, "<B>");
        put_html(s, name);
        puts_(s, "</B><BR/>");
    }
    putf(s, "%s%zu ", prefix, id);
    if (leaf)
        puts_(s, requires_grad ? "leaf" : "leaf, constant");
    else
        put_op(s, t);
    char shape[96];
    tg_shape_format(shape, sizeof shape, tg_tensor_rank(t), tg_tensor_shape(t));
    putf(s, "<BR/>%s %s", shape, tg_dtype_name(dtype));
    if (w->opt.values)
        put_values(s, "value", data, t, vs);
    if (w->opt.grads && grad)
        put_values(s, "grad", grad, t, gs);
    if (w->opt.grad_flow && grad) {
        char b[32];
        putf(s, "<BR/>|grad| %s", fmt_num(b, gs.norm));
    }
    if (bad) {
        puts_(s, "<BR/><FONT COLOR=\"" BAD_COLOUR "\"><B>");
        const char *sep = "";
        if (vs.nan || vs.inf) {
            putf(s, "%s%s%s in value", vs.nan ? "NaN" : "", vs.nan && vs.inf ? "/" : "",
                 vs.inf ? "Inf" : "");
            sep = ", ";
        }
        if (gs.nan || gs.inf)
            putf(s, "%s%s%s%s in grad", sep, gs.nan ? "NaN" : "", gs.nan && gs.inf ? "/" : "",
                 gs.inf ? "Inf" : "");
        puts_(s, "</B></FONT>");
    }
    puts_(s, ">];\n");
}

/* Edges into op node t. Dashed grey where no gradient flows (the input or the result does
 * not require grad, as after detach); operands of non-commutative ops are labelled, a and b
 * for two, 0, 1, 2, ... for more. */
static void put_edges(writer *w, const tg_tensor *t)
{
    const tg_op_info *info = tg_op_info_of((tg_op)tg_tensor_op(t));
    const int arity = tg_tensor_num_inputs(t);
    const bool ordered = arity >= 2 && !info->commutative;
    const size_t id = tg_tensor_index(t);
    for (int i = 0; i < arity; i++) {
        const tg_tensor *x = tg_tensor_input(t, i);
        if (tg_tensor_is_leaf(x))
            putf(w->s, "  l%zu -> n%zu", leaf_slot(w, x), id);
        else
            putf(w->s, "  n%zu -> n%zu", tg_tensor_index(x), id);
        bool flows = tg_tensor_requires_grad(x) && tg_tensor_requires_grad(t);
        if (!flows || ordered) {
            const char *sep = "";
            puts_(w->s, " [");
            if (!flows) {
                puts_(w->s, "style=dashed, color=\"#999999\"");
                sep = ", ";
            }
            if (ordered && arity == 2)
                putf(w->s, "%sheadlabel=\"%c\"", sep, i ? 'b' : 'a');
            else if (ordered)
                putf(w->s, "%sheadlabel=\"%d\"", sep, i);
            puts_(w->s, "]");
        }
        puts_(w->s, ";\n");
    }
}

static void put_legend(writer *w)
{
    sink *s = w->s;
    puts_(s, "  subgraph cluster_legend {\n"
             "    label=\"legend\"; fontsize=10; style=dashed; color=\"#999999\";\n"
             "    node [fontsize=9, margin=\"0.08,0.03\"];\n");
    for (int k = 0; k < K_COUNT; k++)
        putf(s, "    legend_%s [%s, fillcolor=\"%s\", label=\"%s\"];\n", KINDS[k].id,
             KINDS[k].style, KINDS[k].fill, KINDS[k].legend);
    puts_(s, "    legend_nan [shape=box, color=\"" BAD_COLOUR "\", penwidth=3, "
             "label=\"NaN or Inf\"];\n");
    /* One row, in this order (invisible edges within a rank order it left to right). */
    puts_(s, "    {rank=same; ");
    for (int k = 0; k < K_COUNT; k++)
        putf(s, "legend_%s -> ", KINDS[k].id);
    puts_(s, "legend_nan [style=invis];}\n");
    if (w->opt.grad_flow) {
        puts_(s, "    legend_flow [shape=plain, label=<<TABLE BORDER=\"0\" CELLBORDER=\"1\" "
                 "CELLSPACING=\"0\" CELLPADDING=\"3\">\n"
                 "      <TR><TD COLSPAN=\"2\"><B>|grad| (L2 norm)</B></TD></TR>\n");
        for (int b = 0; b < FLOW_BINS; b++)
            putf(s,
                 "      <TR><TD BGCOLOR=\"%s\" WIDTH=\"16\"> </TD>"
                 "<TD ALIGN=\"LEFT\">%s</TD></TR>\n",
                 FLOW_COLOUR[b], FLOW_LEGEND[b]);
        puts_(s, "      <TR><TD BGCOLOR=\"" NO_GRAD_COLOUR "\"> </TD><TD ALIGN=\"LEFT\">no "
                 "gradient</TD></TR>\n"
                 "      </TABLE>>];\n");
        /* Under the middle of the row of samples. */
        puts_(s, "    legend_op -> legend_flow [style=invis];\n");
    }
    puts_(s, "  }\n");
}

static tg_status write_graph(sink *s, const tg_tape *tape, const tg_dot_options *opt)
{
    /* The labels show every leaf's values: none may have been freed. tg_tape_leaf says, and
     * is asked once: another thread freeing any leaf meanwhile would make it say NULL. */
    const size_t n_leaves = tg_tape_leaf_count(tape);
    const size_t leaves_bytes = (n_leaves ? n_leaves : 1) * sizeof(tg_tensor *);
    tg_tensor **leaves = tg__malloc(leaves_bytes);
    if (!leaves)
        return tg__error(TG_ENOMEM, "dot: out of memory");
    for (size_t i = 0; i < n_leaves; i++)
        if (!(leaves[i] = tg_tape_leaf(tape, i))) {
            tg__free(leaves, leaves_bytes);
            return tg__error(TG_ESTALE,
                             "dot: leaf %zu of the recording was freed since it began: write the "
                             "graph before freeing the leaves its recording used",
                             i);
        }
    static const tg_dot_options defaults = TG_DOT_OPTIONS_INIT;
    writer w = {s, tape, opt ? *opt : defaults, leaves, n_leaves, NULL, 0, false};

    putf(s,
         "digraph tapegrad {\n"
         "  comment=\"tapegrad tape: %zu nodes, %zu leaves, fingerprint %016llx\";\n",
         tg_tape_size(tape), tg_tape_leaf_count(tape),
         (unsigned long long)tg_tape_fingerprint(tape));
    puts_(s, "  graph [rankdir=TB, fontname=\"Helvetica\", nodesep=0.3, ranksep=0.35];\n"
             "  node [fontname=\"Helvetica\", fontsize=10, margin=\"0.1,0.05\"];\n"
             "  edge [arrowsize=0.7, fontname=\"Helvetica\", fontsize=8];\n");
    put_legend(&w);
    for (size_t i = 0; i < n_leaves && s->status == TG_OK; i++)
        put_node(&w, "l", i, leaves[i]);
    for (size_t i = 0; i < tg_tape_size(tape) && s->status == TG_OK; i++) {
        put_node(&w, "n", i, tg_tape_node(tape, i));
        put_edges(&w, tg_tape_node(tape, i));
    }
    /* The title last: a graph label set before the legend cluster would be inherited by it. */
    if (w.opt.title) {
        puts_(s, "  labelloc=t; fontsize=14; label=<");
        put_html(s, w.opt.title);
        puts_(s, ">;\n");
    }
    puts_(s, "}\n");
    tg__free(w.index, w.n_index * sizeof *w.index);
    tg__free(leaves, leaves_bytes);
    return s->status;
}

/* ---- public entry points --------------------------------------------------------------------- */

tg_status tg_dot_write(const tg_tape *tape, FILE *out, const tg_dot_options *opt)
{
    if (!tape || !out)
        return tg__error(TG_EINVAL, "dot_write: %s is NULL", tape ? "out" : "tape");
    sink s = {out, NULL, 0, 0, TG_OK};
    tg_status st = write_graph(&s, tape, opt);
    /* Flush so that a full disk is reported here, not lost in a later fclose. */
    if (st == TG_OK && fflush(out) != 0)
        st = tg__error(TG_EIO, "dot_write: write failed: %s", strerror(errno));
    return st;
}

tg_status tg_dot_string(const tg_tape *tape, const tg_dot_options *opt, char **out, size_t *len)
{
    if (out)
        *out = NULL;
    if (len)
        *len = 0;
    if (!tape || !out)
        return tg__error(TG_EINVAL, "dot_string: %s is NULL", tape ? "out" : "tape");
    sink s = {NULL, NULL, 0, 0, TG_OK};
    tg_status st = write_graph(&s, tape, opt);
    if (st == TG_OK) {
        /* Shrink to the exact size: tg_dot_string_free gives the hook strlen + 1. */
        char *p = tg__realloc(s.buf, s.cap, s.len + 1);
        if (p) {
            s.buf = p;
            s.cap = s.len + 1;
        } else {
            st = tg__error(TG_ENOMEM, "dot_string: out of memory");
        }
    }
    if (st != TG_OK) {
        tg__free(s.buf, s.cap);
        return st;
    }
    *out = s.buf;
    if (len)
        *len = s.len;
    return TG_OK;
}

void tg_dot_string_free(char *dot)
{
    if (dot)
        tg__free(dot, strlen(dot) + 1);
}

/* test_dot.c: the Graphviz dot writer (golden files, determinism, escaping, gradient-flow
 * colours, errors, allocation failures) and tg_dot_render: SVG, PNG and PDF when built with
 * Graphviz (TG_HAVE_GRAPHVIZ), TG_ENOTSUP when built without.
 *
 * Golden files live in tests/data/dot/<name>.dot, found through TG_SOURCE_DIR (set for every
 * test by tests/CMakeLists.txt). After an intended change to the output, rewrite them with
 *     TG_UPDATE_GOLDEN=1 ctest --test-dir build/release -R test_dot
 * then read the diff (git diff tests/data/dot) before committing it. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "support/helpers.h"
#include "support/oom.h"
#include "support/proc.h"

#ifdef TG_HAVE_GRAPHVIZ
#include <graphviz/cgraph.h>
#endif

/* ---- helpers -------------------------------------------------------------------------------- */

static char *dot_of(const tg_tape *tape, const tg_dot_options *opt)
{
    char *dot = NULL;
    size_t len = 0;
    tg_status st = tg_dot_string(tape, opt, &dot, &len);
    cr_assert_eq(st, TG_OK, "tg_dot_string: %s", tg_last_error());
    cr_assert_not_null(dot);
    cr_assert_eq(len, strlen(dot));
    return dot;
}

/* Reads a whole file (NUL-terminated; *size gets its length). NULL when it cannot. */
static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

/* Compares `text` with tests/data/dot/<name>.dot, or rewrites that file when
 * TG_UPDATE_GOLDEN=1. A mismatch names the first differing line. */
static void check_golden(const char *name, const char *text)
{
    const char *src = tp_env("TG_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/dot/%s.dot", src, name);
    const char *update = getenv("TG_UPDATE_GOLDEN");
    if (update && strcmp(update, "1") == 0) {
        write_file(path, text);
        return;
    }
    char *want = read_file(path, NULL);
    cr_assert_not_null(want, "golden file %s is missing (TG_UPDATE_GOLDEN=1 creates it)", path);
    if (strcmp(want, text) != 0) {
        int line = 1;
        const char *a = want, *b = text, *la = want, *lb = text;
        while (*a && *a == *b) {
            if (*a == '\n') {
                line++;
                la = a + 1;
                lb = b + 1;
            }
            a++, b++;
        }
        cr_assert_fail("dot text differs from %s at line %d:\n  golden: %.*s\n  actual: %.*s\n"
                       "(after an intended change: TG_UPDATE_GOLDEN=1 ctest -R test_dot)",
                       path, line, (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
    }
    free(want);
}

/* The directory for rendered files: <build>/tests/test_dot_out (or the working directory). */
static void out_path(char *buf, size_t size, const char *file)
{
    const char *build = getenv("TG_BUILD_DIR");
    char dir[3000];
    snprintf(dir, sizeof dir, "%s/tests/test_dot_out", build ? build : ".");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        snprintf(dir, sizeof dir, ".");
    snprintf(buf, size, "%s/%s", dir, file);
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The attribute list of node `id` ("  id [" ... "];\n"), as a malloc'd string. */
static char *node_line(const char *dot, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "\n  %s [", id);
    const char *p = strstr(dot, key);
    cr_assert_not_null(p, "node %s not in the dot text", id);
    p += 1;
    size_t n = strcspn(p, "\n");
    char *line = malloc(n + 1);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

/* ---- test graphs ---------------------------------------------------------------------------- */

/* The 2-2-2 sigmoid network of examples/backprop_222.c. */
typedef struct net {
    tg_tensor *W1, *W2, *x, *t;
    tg_tensor *E;
} net;

static void net_init(net *n)
{
    const size_t row[2] = {1, 2}, square[2] = {2, 2};
    const double x[2] = {0.1, 0.2}, t[2] = {0.4, 0.6};
    const double W1[4] = {0.3, 0.4, 0.25, 0.35}, W2[4] = {0.45, 0.7, 0.4, 0.6};
    n->W1 = ts_leaf(TG_F64, 2, square, W1, true);
    n->W2 = ts_leaf(TG_F64, 2, square, W2, true);
    n->x = ts_leaf(TG_F64, 2, row, x, false);
    n->t = ts_leaf(TG_F64, 2, row, t, false);
    tg_tensor_set_name(n->W1, "W1");
    tg_tensor_set_name(n->W2, "W2");
    tg_tensor_set_name(n->x, "x");
    tg_tensor_set_name(n->t, "target");
}

static void net_record(net *n, tg_tape *tape)
{
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, n->x, n->W1));
    tg_tensor *o = tg_sigmoid(tape, tg_matmul(tape, h, n->W2));
    tg_tensor *err = tg_sub(tape, n->t, o);
    n->E = tg_scale(tape, tg_sum(tape, tg_square(tape, err), TG_ALL_AXES, false), 0.5);
    cr_assert_not_null(n->E, "%s", tg_tape_error(tape));
    tg_tensor_set_name(h, "h");
    tg_tensor_set_name(o, "o");
    tg_tensor_set_name(n->E, "E");
}

static void net_free(net *n)
{
    tg_tensor_free(n->W1);
    tg_tensor_free(n->W2);
    tg_tensor_free(n->x);
    tg_tensor_free(n->t);
}

/* A graph with a bit of everything, in f32: broadcasting, a recorded constant and a 0-d
 * scalar, a detach, axis reductions with keepdim, a clamp, a NaN (log of a negative
 * constant) and an Inf (division by zero) off the loss path, more than 4 elements (min/mean/
 * max), and an Inf gradient (sqrt at 0). */
typedef struct mixed {
    tg_tensor *x, *b, *z;
    tg_tensor *loss;
} mixed;

static void mixed_init(mixed *m)
{
    m->x = ts_mat(TG_F32, 2, 3, (double[]){0.5, -1.0, 2.0, 3.0, -0.25, 4.0}, true);
    m->b = ts_vec(TG_F32, 3, (double[]){0.1, 0.2, 0.3}, true);
    m->z = ts_vec(TG_F32, 2, (double[]){0.0, 4.0}, true);
    tg_tensor_set_name(m->x, "x");
    tg_tensor_set_name(m->b, "bias");
}

static void mixed_record(mixed *m, tg_tape *tape)
{
    const size_t s3[1] = {3};
    const float cdata[3] = {1.0f, 2.0f, -3.0f};
    tg_tensor *c = tg_constant(tape, TG_F32, 1, s3, cdata);
    tg_tensor_set_name(c, "c");
    tg_tensor *s = tg_add(tape, m->x, m->b);            /* [2,3] + [3] */
    tg_tensor *p = tg_mul(tape, s, c);                  /* [2,3] * [3] */
    tg_tensor *nanv = tg_log(tape, c);                  /* log(-3) = NaN */
    tg_tensor *d = tg_detach(tape, p);
    tg_tensor *inf = tg_div(tape, d, tg_scalar(tape, TG_F32, 0.0)); /* +-Inf */
    tg_tensor *k = tg_clamp(tape, tg_tanh(tape, p), -0.5, 0.5);
    tg_tensor *r = tg_mean(tape, k, 1, true);           /* [2,1] */
    tg_tensor *q = tg_sum(tape, tg_sqrt(tape, m->z), TG_ALL_AXES, false); /* d/dz at 0: Inf */
    m->loss = tg_add(tape, tg_sum(tape, r, TG_ALL_AXES, false), q);
    cr_assert_not_null(m->loss, "%s", tg_tape_error(tape));
    cr_assert(nanv && inf);
    tg_tensor_set_name(m->loss, "loss");
}

static void mixed_free(mixed *m)
{
    tg_tensor_free(m->x);
    tg_tensor_free(m->b);
    tg_tensor_free(m->z);
}

/* ---- golden files ---------------------------------------------------------------------------- */

Test(dot, golden_net222_before_and_after_backward)
{
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);

    char *before = dot_of(tape, NULL);
    check_golden("net222_forward", before);
    cr_assert_eq(count(before, "<BR/>grad"), 0, "no gradients before backward");

    cr_assert_eq(tg_backward(tape, n.E), TG_OK, "%s", tg_last_error());
    char *after = dot_of(tape, NULL);
    check_golden("net222_backward", after);
    /* Every node that requires grad now shows one: W1, W2 and the 8 op results. */
    cr_assert_eq(count(after, "<BR/>grad "), 10);

    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.grad_flow = true;
    opt.title = "2-2-2 network, one backward pass";
    char *flow = dot_of(tape, &opt);
    check_golden("net222_grad_flow", flow);

    tg_dot_string_free(before);
    tg_dot_string_free(after);
    tg_dot_string_free(flow);
    tg_tape_free(tape);
    net_free(&n);
}

Test(dot, golden_mixed_graph)
{
    mixed m;
    mixed_init(&m);
    tg_tape *tape = tg_tape_new();
    mixed_record(&m, tape);
    cr_assert_eq(tg_backward(tape, m.loss), TG_OK, "%s", tg_last_error());
    char *dot = dot_of(tape, NULL);
    check_golden("mixed", dot);

    /* What the golden file must show, checked by name so a careless update cannot drop it. */
    ts_assert_has(dot, "NaN in value"); /* the log of a negative constant is marked */
    ts_assert_has(dot, "Inf in value"); /* the division by zero is marked */
    ts_assert_has(dot, "Inf in grad");  /* sqrt'(0) makes an infinite gradient */
    ts_assert_has(dot, "value min -0.8 mean 1.575 max 4.3"); /* summary of the [2,3] sum */
    ts_assert_has(dot, "detach");
    ts_assert_has(dot, "mean axis=1 keepdim");
    ts_assert_has(dot, "clamp [-0.5, 0.5]");
    ts_assert_has(dot, "[2,3] f32");
    /* The constant is a note, the detached branch is dashed, as are edges without gradient. */
    char *c = node_line(dot, "n0");
    ts_assert_has(c, "shape=note");
    ts_assert_has(c, "<B>c</B>");
    char *d = node_line(dot, "n4");
    ts_assert_has(d, "detach");
    ts_assert_has(d, "dashed");
    ts_assert_has(dot, "  n2 -> n4 [style=dashed"); /* no gradient flows through detach */
    free(c);
    free(d);
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    mixed_free(&m);
}

/* ---- determinism ----------------------------------------------------------------------------- */

Test(dot, same_program_same_bytes)
{
    mixed m1, m2;
    mixed_init(&m1);
    mixed_init(&m2);
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    mixed_record(&m1, t1);
    mixed_record(&m2, t2);
    cr_assert_eq(tg_backward(t1, m1.loss), TG_OK);
    cr_assert_eq(tg_backward(t2, m2.loss), TG_OK);
    char *a = dot_of(t1, NULL), *b = dot_of(t2, NULL);
    cr_assert_str_eq(a, b, "two recordings of one program give the same dot text");

    /* The same again on a reset tape (its arena reused, addresses different). */
    tg_tape_reset(t1);
    tg_tensor_zero_grad(m1.x);
    tg_tensor_zero_grad(m1.b);
    tg_tensor_zero_grad(m1.z);
    mixed_record(&m1, t1);
    cr_assert_eq(tg_backward(t1, m1.loss), TG_OK);
    char *c = dot_of(t1, NULL);
    cr_assert_str_eq(a, c, "a reset and re-recorded tape gives the same dot text");

    /* The comment carries the fingerprint, as 16 hex digits. */
    char fp[64];
    snprintf(fp, sizeof fp, "fingerprint %016llx\"", (unsigned long long)tg_tape_fingerprint(t1));
    ts_assert_has(a, fp);

    tg_dot_string_free(a);
    tg_dot_string_free(b);
    tg_dot_string_free(c);
    tg_tape_free(t1);
    tg_tape_free(t2);
    mixed_free(&m1);
    mixed_free(&m2);
}

/* Leaves used again on a second tape no longer point back at the first; the writer must
 * still find their slots (a sorted index for many leaves) and give the same text. */
Test(dot, leaves_reused_on_another_tape)
{
    enum { N = 40 };
    tg_tensor *leaf[N];
    for (int i = 0; i < N; i++) {
        leaf[i] = ts_scalar(TG_F64, i + 1, i % 3 != 0);
    }
    tg_tape *a = tg_tape_new(), *b = tg_tape_new();
    tg_tensor *acc = leaf[0];
    for (int i = 1; i < N; i++)
        acc = tg_add(a, acc, leaf[i]);
    cr_assert_not_null(acc);
    char *first = dot_of(a, NULL);
    for (int i = N; i-- > 1;)
        cr_assert_not_null(tg_mul(b, leaf[i], leaf[i - 1]));
    char *second = dot_of(a, NULL);
    cr_assert_str_eq(first, second);
    ts_assert_has(first, "  l38 -> n37;\n");            /* the last leaves keep their slots */
    ts_assert_has(first, "  l39 -> n38 [style=dashed"); /* l39 does not require grad */
    tg_dot_string_free(first);
    tg_dot_string_free(second);
    tg_tape_free(a);
    tg_tape_free(b);
    for (int i = 0; i < N; i++)
        tg_tensor_free(leaf[i]);
}

Test(dot, file_and_string_agree)
{
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    cr_assert_eq(tg_backward(tape, n.E), TG_OK);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(tg_dot_write(tape, f, NULL), TG_OK, "%s", tg_last_error());
    long size = ftell(f);
    rewind(f);
    char *text = malloc((size_t)size + 1);
    cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    char *dot = dot_of(tape, NULL);
    cr_assert_str_eq(text, dot);

    /* NULL options are the defaults. */
    tg_dot_options def = TG_DOT_OPTIONS_INIT;
    char *d2 = dot_of(tape, &def);
    cr_assert_str_eq(dot, d2);
    free(text);
    tg_dot_string_free(dot);
    tg_dot_string_free(d2);
    tg_tape_free(tape);
    net_free(&n);
}

Test(dot, options_hide_values_and_grads)
{
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    cr_assert_eq(tg_backward(tape, n.E), TG_OK);
    tg_dot_options opt = {false, false, false, NULL};
    char *dot = dot_of(tape, &opt);
    cr_assert_eq(count(dot, "<BR/>value"), 0);
    cr_assert_eq(count(dot, "<BR/>grad"), 0);
    cr_assert_eq(count(dot, "|grad|"), 0);
    ts_assert_lacks(dot, "labelloc"); /* no title */
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    net_free(&n);
}

/* The summary of more than 4 elements: min, mean and max of the finite ones. Values near
 * DBL_MAX, whose sum overflows, still have their mean: 1e308 for five of 1e308, and
 * (3 - 2) * 1e308 / 5 = 2e307 with signs mixed; the node is not marked as holding Inf. */
Test(dot, the_mean_of_huge_values_is_finite)
{
    const double same[5] = {1e308, 1e308, 1e308, 1e308, 1e308};
    const double signs[6] = {1e308, 1e308, -1e308, -1e308, 1e308, NAN};
    tg_tensor *a = ts_vec(TG_F64, 5, same, false), *b = ts_vec(TG_F64, 6, signs, false);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tg_neg(tape, a));
    cr_assert_not_null(tg_neg(tape, b));
    tg_dot_options opt = {true, false, false, NULL};
    char *dot = dot_of(tape, &opt);
    ts_assert_has(dot, "value min 1e+308 mean 1e+308 max 1e+308>];");
    ts_assert_has(dot, "value min -1e+308 mean -1e+308 max -1e+308>];");
    ts_assert_has(dot, "value min -1e+308 mean 2e+307 max 1e+308 (1 NaN)");
    ts_assert_has(dot, "value min -1e+308 mean -2e+307 max 1e+308 (1 NaN)");
    ts_assert_lacks(dot, "mean Inf");
    ts_assert_lacks(dot, "mean -Inf");
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(dot, empty_tape)
{
    tg_tape *tape = tg_tape_new();
    char *dot = dot_of(tape, NULL);
    ts_assert_has(dot, "digraph tapegrad {");
    ts_assert_has(dot, "0 nodes, 0 leaves, fingerprint 0000000000000000");
    cr_assert_eq(count(dot, "-> n"), 0, "no edges but the legend's");
    tg_dot_string_free(dot);
    tg_tape_free(tape);
}

/* ---- escaping -------------------------------------------------------------------------------- */

/* Every label=<...> of a tensor node is balanced and ends its line with ">];". */
static void assert_labels_balanced(const char *dot)
{
    for (const char *p = dot; (p = strstr(p, "\n  ")) != NULL;) {
        p += 3;
        if ((*p != 'l' && *p != 'n') || p[1] < '0' || p[1] > '9')
            continue; /* tensor nodes only: l<slot>, n<index> */
        const char *lab = strstr(p, "label=<");
        const char *eol = p + strcspn(p, "\n");
        if (!lab || lab > eol)
            continue;
        int depth = 0;
        const char *q = lab + 6;
        for (; q < eol; q++) {
            depth += *q == '<';
            depth -= *q == '>';
            if (depth == 0)
                break;
        }
        cr_assert(q < eol && strncmp(q, ">];", 3) == 0, "unbalanced label: %.*s", (int)(eol - p),
                  p);
    }
}

Test(dot, escapes_user_strings)
{
    /* The specials of every label flavour: quotes, HTML, records, escString; plus newline, tab,
     * a control byte, an invalid UTF-8 byte and a valid UTF-8 letter. */
    const char *evil = "a\"b<c>d&e{f}g|h\\i\nj\tk\x01l\xffm\xc3\xa9n\\N";
    tg_tensor *x = ts_scalar(TG_F64, 2.0, true);
    tg_tensor_set_name(x, evil);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_square(tape, x);
    tg_tensor_set_name(y, evil);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.title = evil;
    char *dot = dot_of(tape, &opt);

    const char *want = "a&quot;b&lt;c&gt;d&amp;e{f}g|h\\i<BR/>j k&#65533;l&#65533;m\xc3\xa9n\\N";
    cr_assert_eq(count(dot, want), 3, "leaf, node and title escaped:\n%s", dot);
    ts_assert_has(dot, "label=<<B>a&quot;");
    ts_assert_has(dot, "labelloc=t; fontsize=14; label=<a&quot;");
    assert_labels_balanced(dot);

#ifdef TG_HAVE_GRAPHVIZ
    /* Graphviz itself reads it back: same nodes, and the escaped text as the HTML label. */
    agseterr(AGMAX); /* keep any complaint out of the test log; agmemread's result decides */
    Agraph_t *g = agmemread(dot);
    cr_assert_not_null(g, "Graphviz rejected the dot text");
    Agnode_t *l0 = agnode(g, "l0", 0), *n0 = agnode(g, "n0", 0);
    cr_assert(l0 && n0);
    char *label = agget(n0, "label");
    cr_assert(label && aghtmlstr(label), "n0 has an HTML-like label");
    ts_assert_has(label, want);
    cr_assert_not_null(agedge(g, l0, n0, NULL, 0), "edge l0 -> n0");
    agclose(g);
#endif
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* What Graphviz cannot take in a label: U+FFFE and U+FFFF, which XML excludes (its parser
 * dropped the whole label, and the dot command refused the file), and a run of 16384 bytes
 * without markup (the dot command refused the file). The first become U+FFFD; a name or title
 * is shown up to 1024 bytes, then an ellipsis. */
Test(dot, noncharacters_and_long_names)
{
    tg_tensor *x = ts_scalar(TG_F64, 2.0, true);
    tg_tensor_set_name(x, "a\xEF\xBF\xBE" "b\xEF\xBF\xBF" "c");
    char *amps = malloc(20001), *letters = malloc(20001);
    memset(amps, '&', 20000), amps[20000] = '\0';
    memset(letters, 'z', 20000), letters[20000] = '\0';
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_square(tape, x);
    tg_tensor_set_name(y, amps);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.title = letters;
    char *dot = dot_of(tape, &opt);
    ts_assert_has(dot, "a&#65533;b&#65533;c");
    cr_assert_null(strstr(dot, "\xEF\xBF\xBE"));
    cr_assert_null(strstr(dot, "\xEF\xBF\xBF"));
    char *want = malloc(5 * 1024 + 16);
    strcpy(want, "<B>");
    for (size_t i = 0; i < 1024; i++)
        memcpy(want + 3 + 5 * i, "&amp;", 5);
    strcpy(want + 3 + 5 * 1024, "\xE2\x80\xA6</B>");
    ts_assert_has(dot, want); /* the name: 1024 of them, then the ellipsis */
    strcpy(want, "label=<");
    memset(want + 7, 'z', 1024);
    strcpy(want + 7 + 1024, "\xE2\x80\xA6>;");
    ts_assert_has(dot, want); /* the title */
    assert_labels_balanced(dot);
#ifdef TG_HAVE_GRAPHVIZ
    agseterr(AGMAX);
    agreseterrors();
    Agraph_t *g = agmemread(dot);
    cr_assert_not_null(g, "Graphviz rejected the dot text");
    cr_assert_eq(agerrors(), 0, "Graphviz complained");
    char *label = agget(agnode(g, "l0", 0), "label");
    cr_assert(label && aghtmlstr(label));
    ts_assert_has(label, "a&#65533;b&#65533;c");
    agclose(g);
#endif
    free(want);
    free(amps);
    free(letters);
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* The text shows every leaf's values, so a recording one of whose leaves was freed is refused
 * (it was read after the free), naming the leaf; a leaf of another tape freed is none of its
 * business; after a reset the tape draws again. */
Test(dot, a_freed_leaf_is_refused_not_read)
{
    tg_tensor *x = ts_scalar(TG_F64, 2.0, true), *c = ts_scalar(TG_F64, 3.0, false);
    tg_tape *tape = tg_tape_new(), *other = tg_tape_new();
    cr_assert_eq(tg_backward(tape, tg_mul(tape, x, c)), TG_OK);
    tg_tensor *z = ts_scalar(TG_F64, 1.0, false);
    cr_assert_not_null(tg_exp(other, z));
    tg_tensor_free(z);
    char *dot = NULL;
    size_t len;
    cr_assert_eq(tg_dot_string(tape, NULL, &dot, &len), TG_OK, "%s", tg_last_error());
    tg_dot_string_free(dot);
    const uint64_t fp = tg_tape_fingerprint(tape);
    tg_tensor_free(c);
    cr_assert_eq(tg_tape_fingerprint(tape), fp, "the fingerprint reads no leaf");
    cr_assert_eq(tg_dot_string(tape, NULL, &dot, &len), TG_ESTALE);
    ts_assert_has(tg_last_error(), "dot: leaf 1 of the recording was freed since it began");
    cr_assert_null(tg_tape_leaf(tape, 1));
    cr_assert_eq(tg_tape_leaf(tape, 0), x);
    cr_assert_null(dot);
    tg_tape_reset(tape);
    cr_assert_not_null(tg_square(tape, x));
    cr_assert_eq(tg_dot_string(tape, NULL, &dot, &len), TG_OK, "%s", tg_last_error());
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    tg_tape_free(other);
    tg_tensor_free(x);
}

/* ---- gradient flow --------------------------------------------------------------------------- */

Test(dot, grad_flow_colours_by_decade)
{
    /* loss = sum_i c_i * w_i, so grad w_i = c_i: one leaf per decade bin of interest. */
    static const struct {
        double c;
        const char *colour;
    } cases[] = {
        {0.0, "#7373ff"},    /* zero: vanished */
        {1e-9, "#7373ff"},   /* < 1e-6 */
        {-5e-5, "#73e3ff"},  /* [1e-5, 1e-4) */
        {1.0, "#e3ff73"},    /* [1, 10): a power of ten starts its bin */
        {999.0, "#ffab73"},  /* [100, 1e3) */
        {1e5, "#ff7373"},    /* >= 1e3: exploding */
    };
    enum { N = sizeof cases / sizeof cases[0] };
    tg_tensor *w[N];
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = NULL;
    for (size_t i = 0; i < N; i++) {
        w[i] = ts_scalar(TG_F64, 1.0, true);
        tg_tensor *term = tg_scale(tape, w[i], cases[i].c);
        loss = loss ? tg_add(tape, loss, term) : term;
    }
    tg_tensor *k = tg_tensor_scalar(TG_F64, 3.0); /* a constant leaf: grey, no gradient */
    loss = tg_add(tape, loss, tg_mul(tape, k, k));
    cr_assert_eq(tg_backward(tape, loss), TG_OK);
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.grad_flow = true;
    char *dot = dot_of(tape, &opt);
    for (size_t i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "l%zu", i);
        char *line = node_line(dot, id);
        char fill[40];
        snprintf(fill, sizeof fill, "fillcolor=\"%s\"", cases[i].colour);
        ts_assert_has(line, fill);
        free(line);
    }
    char *kl = node_line(dot, "l6");
    ts_assert_has(kl, "fillcolor=\"#d9d9d9\"");
    ts_assert_has(kl, "shape=note");
    free(kl);
    ts_assert_has(dot, "legend_flow");         /* the colour scale has a legend */
    ts_assert_has(dot, "<BR/>|grad| 100000>"); /* the norm is printed */
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    for (size_t i = 0; i < N; i++)
        tg_tensor_free(w[i]);
    tg_tensor_free(k);
}

/* ---- errors ---------------------------------------------------------------------------------- */

Test(dot, argument_errors)
{
    tg_tape *tape = tg_tape_new();
    char *s = (char *)"untouched";
    cr_assert_eq(tg_dot_write(NULL, stdout, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tape is NULL");
    cr_assert_eq(tg_dot_write(tape, NULL, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "out is NULL");
    cr_assert_eq(tg_dot_string(NULL, NULL, &s, NULL), TG_EINVAL);
    cr_assert_null(s, "*out is NULL on error");
    cr_assert_eq(tg_dot_string(tape, NULL, NULL, NULL), TG_EINVAL);
    tg_dot_string_free(NULL);
    cr_assert_eq(tg_dot_render(NULL, "svg", "x.svg", NULL), TG_EINVAL);
    cr_assert_eq(tg_dot_render(tape, NULL, "x.svg", NULL), TG_EINVAL);
    cr_assert_eq(tg_dot_render(tape, "svg", NULL, NULL), TG_EINVAL);
    cr_assert_eq(tg_dot_render(tape, "jpeg", "x.jpeg", NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "svg, png or pdf");
    tg_tape_free(tape);
}

Test(dot, write_error_is_eio)
{
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        cr_skip_test("no /dev/full here");
    setvbuf(f, NULL, _IONBF, 0);
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    cr_assert_eq(tg_dot_write(tape, f, NULL), TG_EIO);
    ts_assert_has(tg_last_error(), "write failed");
    fclose(f);
    tg_tape_free(tape);
    net_free(&n);
}

/* tg_dot_string of tape with allocation n failing; recovered counts the runs that succeeded
 * although an allocation was refused. */
typedef struct dot_oom {
    const tg_tape *tape;
    const char *want;
    size_t recovered;
} dot_oom;

static size_t oom_dot(size_t n, void *ud)
{
    dot_oom *d = ud;
    char *dot = (char *)"untouched";
    ts_alloc_fail_at(n);
    tg_status st = tg_dot_string(d->tape, NULL, &dot, NULL);
    bool refused = ts_alloc_attempts() >= n;
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "dot_string", n);
        cr_assert_null(dot);
        return 1;
    }
    /* Either no allocation was refused (every one has been tried: done), or the refused one
     * was the leaf index, and the linear search took over. */
    cr_assert_str_eq(dot, d->want);
    tg_dot_string_free(dot);
    d->recovered += refused;
    return 0;
}

/* Every allocation tg_dot_string makes is made to fail in turn: TG_ENOMEM, nothing leaked,
 * and *out left NULL. (The sorted leaf index degrades to a linear search instead.) */
Test(dot, out_of_memory_everywhere)
{
    enum { N = 24 };
    ts_alloc_install();
    tg_tensor *leaf[N];
    tg_tape *a = tg_tape_new(), *b = tg_tape_new();
    tg_tensor *acc = NULL;
    for (int i = 0; i < N; i++) {
        leaf[i] = tg_tensor_scalar(TG_F32, i);
        acc = acc ? tg_add(a, acc, leaf[i]) : leaf[i];
    }
    for (int i = 0; i < N; i++) /* so the writer needs its leaf index for tape a */
        cr_assert_not_null(tg_neg(b, leaf[i]));
    char *want = dot_of(a, NULL);
    dot_oom d = {.tape = a, .want = want};
    size_t failing = ts_oom_drive("dot_string", oom_dot, &d, (ts_oom_opts){.max_runs = 1000});
    cr_assert_geq(failing + d.recovered, 3, "the buffer grows and the leaf index is allocated");
    cr_assert_eq(d.recovered, 1, "one allocation (the leaf index) is optional");
    tg_dot_string_free(want);
    tg_tape_free(a);
    tg_tape_free(b);
    for (int i = 0; i < N; i++)
        tg_tensor_free(leaf[i]);
    cr_assert_eq(ts_alloc.live, 0);
    ts_alloc_uninstall();
}

/* ---- rendering ------------------------------------------------------------------------------- */

#ifdef TG_HAVE_GRAPHVIZ

/* A small well-formedness check for XML: one root element, tags nested and matched,
 * attributes quoted, entities well formed; prolog, comments, doctype and CDATA skipped.
 * Returns NULL when well formed, else what is wrong. */
static const char *xml_check(const char *p)
{
    static char why[160];
    const char *stack[256];
    size_t lens[256];
    int depth = 0, roots = 0;
    while (*p) {
        if (*p == '&') {
            size_t n = strspn(p + 1, "#abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789");
            if (n == 0 || p[1 + n] != ';')
                return "bad entity";
            p += n + 2;
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && !strchr(" \t\r\n", *p))
                return "text outside the root element";
            p++;
            continue;
        }
        if (strncmp(p, "<?", 2) == 0) {
            if (!(p = strstr(p, "?>")))
                return "unterminated <?";
            p += 2;
        } else if (strncmp(p, "<!--", 4) == 0) {
            if (!(p = strstr(p + 4, "-->")))
                return "unterminated comment";
            p += 3;
        } else if (strncmp(p, "<![CDATA[", 9) == 0) {
            if (!(p = strstr(p, "]]>")))
                return "unterminated CDATA";
            p += 3;
        } else if (strncmp(p, "<!", 2) == 0) { /* DOCTYPE: quoted strings, no internal subset */
            for (p += 2; *p && *p != '>'; p++)
                if (*p == '"' && !(p = strchr(p + 1, '"')))
                    return "unterminated doctype string";
            if (!*p++)
                return "unterminated doctype";
        } else if (p[1] == '/') {
            const char *name = p + 2;
            size_t n = strcspn(name, " \t\r\n>");
            if (depth == 0 || n != lens[depth - 1] || strncmp(name, stack[depth - 1], n) != 0) {
                snprintf(why, sizeof why, "unexpected </%.*s>", (int)n, name);
                return why;
            }
            depth--;
            if (!(p = strchr(name, '>')))
                return "unterminated end tag";
            p++;
        } else {
            const char *name = p + 1;
            size_t n = strcspn(name, " \t\r\n/>");
            if (n == 0)
                return "empty tag name";
            p = name + n;
            for (;;) { /* attributes */
                p += strspn(p, " \t\r\n");
                if (*p == '>' || strncmp(p, "/>", 2) == 0)
                    break;
                size_t an = strcspn(p, " \t\r\n=/>");
                if (an == 0 || p[an] != '=' || (p[an + 1] != '"' && p[an + 1] != '\''))
                    return "bad attribute";
                char q = p[an + 1];
                const char *end = strchr(p + an + 2, q);
                if (!end || memchr(p, '<', (size_t)(end - p)))
                    return "bad attribute value";
                p = end + 1;
            }
            if (*p == '/') {
                p += 2;
                roots += depth == 0;
            } else {
                if (depth == 0)
                    roots++;
                if (depth == 256)
                    return "too deep";
                stack[depth] = name;
                lens[depth++] = n;
                p++;
            }
        }
    }
    if (depth != 0)
        return "unclosed elements";
    return roots == 1 ? NULL : "not exactly one root element";
}

Test(dot, render_svg_names_every_node)
{
    cr_assert(tg_dot_can_render());
    net n;
    net_init(&n);
    tg_tensor_set_name(n.t, "t<&>\"");
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    cr_assert_eq(tg_backward(tape, n.E), TG_OK);
    char path[4096];
    out_path(path, sizeof path, "net222.svg");
    remove(path);
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.grad_flow = true;
    opt.title = "net & <title>";
    cr_assert_eq(tg_dot_render(tape, "svg", path, &opt), TG_OK, "%s", tg_last_error());
    char *svg = read_file(path, NULL);
    cr_assert_not_null(svg);
    const char *bad = xml_check(svg);
    cr_assert_null(bad, "the SVG is not well-formed XML: %s", bad ? bad : "");
    ts_assert_has(svg, "<svg");
    for (size_t i = 0; i < tg_tape_leaf_count(tape); i++) {
        char t[64];
        snprintf(t, sizeof t, "<title>l%zu</title>", i);
        ts_assert_has(svg, t);
    }
    for (size_t i = 0; i < tg_tape_size(tape); i++) {
        char t[64];
        snprintf(t, sizeof t, "<title>n%zu</title>", i);
        ts_assert_has(svg, t);
    }
    static const char *const names[] = {">W1<", ">W2<", ">x<", ">t&lt;&amp;&gt;&quot;<", ">h<",
                                        ">o<", ">E<", "net &amp; &lt;title&gt;"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ts_assert_has(svg, names[i]);
    char fp[64];
    snprintf(fp, sizeof fp, "fingerprint %016llx", (unsigned long long)tg_tape_fingerprint(tape));
    ts_assert_has(svg, fp); /* the fingerprint comment reaches the SVG */
    free(svg);
    tg_tape_free(tape);
    net_free(&n);
}

Test(dot, render_png_and_pdf)
{
    mixed m;
    mixed_init(&m);
    tg_tape *tape = tg_tape_new();
    mixed_record(&m, tape);
    cr_assert_eq(tg_backward(tape, m.loss), TG_OK);
    static const struct {
        const char *format, *magic;
        size_t n;
    } cases[] = {{"png", "\x89PNG\r\n\x1a\n", 8}, {"pdf", "%PDF-", 5}};
    for (size_t i = 0; i < 2; i++) {
        char path[4096], file[32];
        snprintf(file, sizeof file, "mixed.%s", cases[i].format);
        out_path(path, sizeof path, file);
        remove(path);
        tg_status st = tg_dot_render(tape, cases[i].format, path, NULL);
        if (st == TG_ENOTSUP) /* Graphviz without its cairo plugin: a setup, not a bug */
            cr_skip_test("%s", tg_last_error());
        cr_assert_eq(st, TG_OK, "%s", tg_last_error());
        size_t size;
        char *data = read_file(path, &size);
        cr_assert(data && size > cases[i].n, "%s is empty", path);
        cr_assert_eq(memcmp(data, cases[i].magic, cases[i].n), 0, "%s lacks its magic", path);
        free(data);
    }
    tg_tape_free(tape);
    mixed_free(&m);
}

Test(dot, render_errors)
{
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    cr_assert_eq(tg_dot_render(tape, "svg", "/nonexistent-dir/g.svg", NULL), TG_EIO);
    ts_assert_has(tg_last_error(), "/nonexistent-dir/g.svg");

    /* A bad format leaves an existing file alone. */
    char path[4096];
    out_path(path, sizeof path, "keep.txt");
    write_file(path, "keep me");
    cr_assert_eq(tg_dot_render(tape, "gif", path, NULL), TG_EINVAL);
    char *kept = read_file(path, NULL);
    cr_assert_str_eq(kept, "keep me");
    free(kept);
    tg_tape_free(tape);
    net_free(&n);

    /* A graph past 10,000 nodes and leaves is refused before Graphviz sees it (60,000 crashed
     * inside it); its dot text is still written. */
    tape = tg_tape_new();
    tg_tensor *x = ts_scalar(TG_F64, 1, true), *y = x;
    for (int i = 0; i < 10000; i++)
        y = tg_add_scalar(tape, y, 1.0);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_dot_render(tape, "svg", path, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "the graph has 10001 nodes and leaves, more than the 10000");
    kept = read_file(path, NULL);
    cr_assert_str_eq(kept, "keep me");
    free(kept);
    char *dot = NULL;
    cr_assert_eq(tg_dot_string(tape, NULL, &dot, NULL), TG_OK, "%s", tg_last_error());
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* The picture is written as model files are: a write that fails (here the file-size limit,
 * as a full disk would) leaves the previous picture whole, and no temporary file; a FIFO is
 * refused at once (opening it for writing waited for a reader). */
Test(dot, a_failed_render_keeps_the_old_picture, .timeout = 30)
{
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    char path[4096];
    out_path(path, sizeof path, "old.svg");
    write_file(path, "the old picture");
    /* The limit is this test's process's (Criterion runs each test in its own), lowered for the
     * one call and put back: no fork, which sanitizers of threads take badly. */
    struct rlimit was, small;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
    small = was;
    small.rlim_cur = 64;
    void (*on_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0, "setrlimit: %s", strerror(errno));
    tg_status st = tg_dot_render(tape, "svg", path, NULL);
    char why[512];
    snprintf(why, sizeof why, "%s", tg_last_error());
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &was), 0, "setrlimit: %s", strerror(errno));
    signal(SIGXFSZ, on_xfsz);
    cr_assert_eq(st, TG_EIO, "the render gave %d (%s), not TG_EIO", (int)st, why);
    ts_assert_has(why, "File too large");
    char *kept = read_file(path, NULL);
    cr_assert_not_null(kept, "the old picture was removed");
    cr_assert_str_eq(kept, "the old picture");
    free(kept);
    char dir[4096];
    out_path(dir, sizeof dir, "");
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        cr_assert_null(strstr(e->d_name, "old.svg.tmp-"), "left behind: %s", e->d_name);
    closedir(d);
    remove(path);

    out_path(path, sizeof path, "fifo.svg");
    remove(path);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    cr_assert_eq(tg_dot_render(tape, "svg", path, NULL), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file");
    remove(path);
    tg_tape_free(tape);
    net_free(&n);
}

#else /* !TG_HAVE_GRAPHVIZ */

Test(dot, render_without_graphviz_is_enotsup)
{
    cr_assert_not(tg_dot_can_render());
    net n;
    net_init(&n);
    tg_tape *tape = tg_tape_new();
    net_record(&n, tape);
    char path[4096];
    out_path(path, sizeof path, "nogv.svg");
    remove(path);
    cr_assert_eq(tg_dot_render(tape, "svg", path, NULL), TG_ENOTSUP);
    ts_assert_has(tg_last_error(), "built without Graphviz");
    ts_assert_has(tg_last_error(), "-DTG_GRAPHVIZ=ON"); /* says how to enable it */
    ts_assert_has(tg_last_error(), "libgraphviz-dev");  /* says what to install */
    FILE *f = fopen(path, "r");
    cr_assert_null(f, "no file is written");
    /* The dot text works all the same. */
    char *dot = dot_of(tape, NULL);
    ts_assert_has(dot, "digraph tapegrad");
    tg_dot_string_free(dot);
    tg_tape_free(tape);
    net_free(&n);
}

#endif

/* harness.c (test_gradgradcheck): applying an op with its attributes through tg_apply, and
 * running one second-order check (tg_gradgradcheck, f64, tol 1e-6) of a function as it is and
 * squared, with a failure message that names the op, the shapes and the attributes; the
 * shorthands the case files share. */
#include "gradgradcheck.h"

/* The op through tg_apply: its inputs are in[0..n), (x, x) for fan-out, and take's and
 * index_add's indices (after x: x, idx, src). */
static tg_tensor *op_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const spec *s = ud;
    tg_attrs at = s->at;
    at.rank = s->to.rank;
    at.shape = s->to.d;
    tg_tensor *args[8];
    size_t m = 0;
    if (s->op == TG_OP_TAKE || s->op == TG_OP_INDEX_ADD) { /* in: x[, src]; args: x, idx[, src] */
        args[m++] = in[0];
        args[m++] = tg_constant(tape, TG_F64, s->idx.rank, s->idx.d, s->idx_vals);
        for (size_t i = 1; i < n; i++)
            args[m++] = in[i];
        return tg_apply(tape, s->op, args, m, &at);
    }
    for (size_t i = 0; i < n && m < 7; i++)
        args[m++] = in[i];
    if (s->fanout)
        args[m++] = in[0];
    return tg_apply(tape, s->op, args, m, &at);
}

/* ---- running one check ------------------------------------------------------------------ */

/* The attributes that matter for the op, for failure messages. */
static const char *describe(char *buf, size_t size, const spec *s)
{
    const tg_attrs *a = &s->at;
    char to[64];
    switch (tg_op_info_of(s->op)->attrs) {
    case TG_ATTR_NONE: snprintf(buf, size, "%s", s->fanout ? "fan-out (x, x)" : "-"); break;
    case TG_ATTR_CONSTANT: snprintf(buf, size, "c=%g", a->c); break;
    case TG_ATTR_RANGE: snprintf(buf, size, "lo=%g hi=%g", a->lo, a->hi); break;
    case TG_ATTR_AXIS: snprintf(buf, size, "axis=%d", a->axis); break;
    case TG_ATTR_REDUCE: snprintf(buf, size, "axis=%d keepdim=%d", a->axis, a->keepdim); break;
    case TG_ATTR_SHAPE:
        snprintf(buf, size, "to %s", tg_shape_format(to, sizeof to, s->to.rank, s->to.d));
        break;
    case TG_ATTR_SLICE:
        snprintf(buf, size, "axis=%d start=%td stop=%td step=%td", a->axis, a->start, a->stop,
                 a->step);
        break;
    case TG_ATTR_INDEX: snprintf(buf, size, "axis=%d index=%td", a->axis, a->index); break;
    case TG_ATTR_AXES:
        snprintf(buf, size, "axes=%d,%d,%d,%d", a->axes[0], a->axes[1], a->axes[2], a->axes[3]);
        break;
    }
    return buf;
}

int g_cases; /* checks run by the current case function */

/* fn, squared when `square`: f * f puts a gradient that depends on the inputs into f's VJP. */
typedef struct wrapped {
    tg_check_fn fn;
    void *ud;
    bool square;
} wrapped;

static tg_tensor *wrapped_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const wrapped *w = ud;
    tg_tensor *y = w->fn(tape, in, n, w->ud);
    return w->square ? tg_mul(tape, y, y) : y;
}

/* Gradgradchecks `fn` at inputs[0..n), which it frees, plain and squared in turn. On failure
 * the message names `what`, the input shapes, the attributes and the error. */
void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud, tg_tensor **inputs,
              size_t n, uint64_t seed)
{
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = EPS;
    opt.tol = TOL;
    opt.seed = seed;
    double err[8] = {0};
    cr_assert(n <= 8);
    wrapped w = {fn, ud, g_cases % 2 == 1};
    tg_clear_error();
    tg_status st = tg_gradgradcheck(wrapped_fn, &w, inputs, n, &opt, err);
    char shapes[256] = "", s[64];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof shapes; i++)
        len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%s", i ? ", " : "",
                                fmt_shp(s, sizeof s, inputs[i]));
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = err[i] > worst || isnan(err[i]) ? err[i] : worst;
    cr_expect(st == TG_OK, "gradgradcheck %s%s(%s) [%s]: max error %.3g (tol %g), %s: %s", what,
              w.square ? " squared" : "", shapes, attrs, worst, TOL, tg_status_name(st),
              tg_last_error());
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(inputs[i]);
    g_cases++;
}

void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed)
{
    char attrs[160];
    check_fn(tg_op_name(s->op), describe(attrs, sizeof attrs, s), op_fn, (void *)s, inputs, n,
             seed);
}

void check_unary(tg_rng *rng, spec s, shp x, kind k)
{
    tg_tensor *in[1] = {make_input(rng, x, k)};
    check_op(&s, in, 1, tg_rng_next(rng));
}

void check_binary(tg_rng *rng, spec s, shp a, kind ka, shp b, kind kb)
{
    tg_tensor *in[2] = {make_input(rng, a, ka), make_input(rng, b, kb)};
    check_op(&s, in, 2, tg_rng_next(rng));
}

/* The gradients of f in xs by tg_grad_graph, on `tape`: asserted to succeed. */
void grad_graph(tg_tape *tape, tg_tensor *f, tg_tensor **xs, size_t n, tg_tensor **out)
{
    cr_assert_eq(tg_grad_graph(tape, f, xs, n, NULL, out), TG_OK, "tg_grad_graph: %s",
                 tg_last_error());
}

/* Binary elementwise ops at every broadcasting pair, and fan-out f(x, x) on inputs of kfan. */
void check_binary_pairs(tg_op op, tg_rng *rng, kind ka, kind kb, kind kfan)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, ka, BCAST_PAIRS[i].b, kb);
    s.fanout = true;
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++)
        check_unary(rng, s, FAN_SHAPES[i], kfan);
}

/* Elementwise unary ops on inputs of kind k, at every shape of UNARY_SHAPES. */
void check_unary_shapes(tg_op op, tg_rng *rng, kind k)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(UNARY_SHAPES); i++)
        check_unary(rng, s, UNARY_SHAPES[i], k);
}

/* harness.c (test_gradcheck): making inputs of each kind, applying an op with its attributes
 * through tg_apply, and running one finite-difference check (tg_gradcheck, f64, tol 1e-7)
 * with a failure message that names the op, the shapes and the attributes. */
#include "gradcheck.h"

/* Every op through the tests' one entry point, ts_apply (tg_apply), with its attributes. */
static tg_tensor *apply(tg_tape *t, const spec *s, tg_tensor *a, tg_tensor *b)
{
    const tg_attrs attrs = {.c = s->c,
                            .lo = s->c,
                            .hi = s->hi,
                            .axis = s->axis,
                            .keepdim = s->keepdim,
                            .rank = s->to.rank,
                            .shape = s->to.d};
    return ts_apply(t, s->op, a, b, &attrs);
}

static tg_tensor *op_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const spec *s = ud;
    tg_tensor *a = in[0];
    tg_tensor *b = s->fanout ? in[0] : (n > 1 ? in[1] : NULL);
    return apply(tape, s, a, b);
}

/* ---- running one check ------------------------------------------------------------------ */

static const char *fmt_axis(char *buf, size_t size, int axis)
{
    if (axis == TG_ALL_AXES)
        snprintf(buf, size, "TG_ALL_AXES");
    else
        snprintf(buf, size, "%d", axis);
    return buf;
}

/* A description of the attributes that matter for the op, for failure messages. */
static const char *describe(char *buf, size_t size, const spec *s)
{
    char ax[32], to[64];
    switch (tg_op_info_of(s->op)->attrs) {
    case TG_ATTR_NONE: snprintf(buf, size, "%s", s->fanout ? "fan-out (x, x)" : "-"); break;
    case TG_ATTR_CONSTANT: snprintf(buf, size, "c=%g", s->c); break;
    case TG_ATTR_RANGE: snprintf(buf, size, "lo=%g hi=%g", s->c, s->hi); break;
    case TG_ATTR_AXIS: snprintf(buf, size, "axis=%s", fmt_axis(ax, sizeof ax, s->axis)); break;
    case TG_ATTR_REDUCE:
        snprintf(buf, size, "axis=%s keepdim=%d", fmt_axis(ax, sizeof ax, s->axis), s->keepdim);
        break;
    case TG_ATTR_SHAPE:
        snprintf(buf, size, "to %s", tg_shape_format(to, sizeof to, s->to.rank, s->to.d));
        break;
    case TG_ATTR_SLICE: /* checked by their own case functions, which describe them */
    case TG_ATTR_INDEX:
    case TG_ATTR_AXES: snprintf(buf, size, "-"); break;
    }
    return buf;
}

int g_cases;

/* Gradchecks `fn` at inputs[0..n), which it frees. On failure the message names `what` (the
 * op or function), the input shapes, the attributes and the error. */
void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud, tg_tensor **inputs,
              size_t n, uint64_t seed)
{
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = EPS;
    opt.tol = TOL;
    opt.seed = seed;
    double err[8] = {0};
    cr_assert(n <= 8);
    tg_clear_error();
    tg_status st = tg_gradcheck(fn, ud, inputs, n, &opt, err);
    char shapes[256] = "", s[64];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof shapes; i++)
        len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%s", i ? ", " : "",
                                fmt_shp(s, sizeof s, inputs[i]));
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = err[i] > worst || isnan(err[i]) ? err[i] : worst;
    cr_expect(st == TG_OK, "gradcheck %s(%s) [%s]: max error %.3g (tol %g), status %s: %s", what,
              shapes, attrs, worst, TOL, tg_status_name(st), tg_last_error());
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(inputs[i]);
    g_cases++;
}

void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed)
{
    char attrs[128];
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

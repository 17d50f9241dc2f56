/* gradcheck.c: compares backward's gradients with central finite differences, all in f64
 * (tg_gradcheck), and the differentiable gradients' own gradients with central differences of
 * the first-order gradient (tg_gradgradcheck). An output y of more than one element is reduced
 * to sum(r * y) with fixed random weights r, so every entry of the Jacobian takes part without
 * building it; the gradient is reduced to sum_i <g_i, u_i> with random directions u_i, so
 * every entry of the Hessian takes part without building it. */
#include "core/core.h"

#include <math.h>

typedef struct check_ctx {
    tg_check_fn fn;
    void *ud;
    tg_tensor *const *xs;
    size_t n;
    tg_tape *tape;
    double *r; /* weights for an output of more than one element; NULL for one */
    size_t numel;
    const char *who; /* "gradcheck" or "gradgradcheck", for messages */
} check_ctx;

/* Records fn on a fresh recording; returns y (checked to be f64) or NULL with an error. */
static tg_tensor *record(check_ctx *c, tg_status *st)
{
    tg_tape_reset(c->tape);
    /* A NULL result is explained by the tape's error or, failing that, by an error fn set on
     * this thread: forget any older one so it cannot be reported in fn's place. */
    tg_clear_error();
    tg_tensor *y = c->fn(c->tape, c->xs, c->n, c->ud);
    if (!y) {
        *st = tg_tape_status(c->tape) != TG_OK ? tg_tape_status(c->tape) : tg_last_status();
        if (*st == TG_OK)
            *st = tg__error(TG_EINVAL, "%s: the function returned NULL", c->who);
        else if (tg_tape_status(c->tape) != TG_OK)
            tg__error(*st, "%s", tg_tape_error(c->tape));
        return NULL;
    }
    if (tg_tensor_dtype(y) != TG_F64) {
        *st = tg__error(TG_EDTYPE, "%s: the function must build an f64 graph, its output is %s",
                        c->who, tg_dtype_name(tg_tensor_dtype(y)));
        return NULL;
    }
    return y;
}

/* The weights r for y (drawn from rng when y has more than one element; c->r stays NULL for
 * one), and the function's objective sum(r * y) recorded after y: y itself for one element. */
static tg_tensor *weigh(check_ctx *c, tg_tensor *y, tg_rng *rng, tg_status *st)
{
    if (rng) { /* the first recording: fixes the output's size and the weights */
        c->numel = tg_tensor_numel(y);
        if (c->numel != 1) {
            /* at least one slot, the size check() frees it by: an empty output has no elements */
            c->r = tg__calloc(c->numel ? c->numel : 1, sizeof *c->r);
            if (!c->r) {
                *st = tg__error(TG_ENOMEM, "%s: out of memory", c->who);
                return NULL;
            }
            for (size_t i = 0; i < c->numel; i++)
                c->r[i] = 2 * tg_rng_uniform(rng) - 1;
        }
    } else if (tg_tensor_numel(y) != c->numel) {
        *st = tg__error(TG_ESHAPE, "%s: the output's shape depends on the input", c->who);
        return NULL;
    }
    if (!c->r)
        return y;
    tg_tensor *r = tg_constant(c->tape, TG_F64, tg_tensor_rank(y), tg_tensor_shape(y), c->r);
    tg_tensor *obj = tg_sum(c->tape, tg_mul(c->tape, y, r), TG_ALL_AXES, false);
    if (!obj)
        *st = tg__error(tg_tape_status(c->tape), "%s", tg_tape_error(c->tape));
    return obj;
}

static double objective(const check_ctx *c, const tg_tensor *y)
{
    const double *v = tg_tensor_data_const(y);
    if (!c->r)
        return v[0];
    double s = 0;
    for (size_t i = 0, n = tg_tensor_numel(y); i < n; i++)
        s += c->r[i] * v[i];
    return s;
}

/* |a - b| / max(1, |a|, |b|): relative for large values, absolute for small ones; infinite
 * when either is not finite. */
static double rel_err(double a, double b)
{
    double err = fabs(a - b) / fmax(1.0, fmax(fabs(a), fabs(b)));
    return isfinite(err) ? err : INFINITY;
}

/* The first element whose error is above the tolerance, which the message names (input is
 * SIZE_MAX while there is none). */
typedef struct bad_element {
    size_t input, element;
    double analytic, numeric, err;
} bad_element;

/* Compares element j of input i, analytic against numeric: raises *worst to its error, and
 * notes it in *bad when it is the first above tol (or not finite). */
static void compare_element(size_t i, size_t j, double analytic, double numeric, double tol,
                            double *worst, bad_element *bad)
{
    const double err = rel_err(analytic, numeric);
    if (!(err > *worst))
        return;
    *worst = err;
    if (bad->input == SIZE_MAX && !(err <= tol))
        *bad = (bad_element){i, j, analytic, numeric, err};
}

static void free_all(tg_tensor **ts, size_t n)
{
    for (size_t i = 0; ts && i < n; i++) {
        tg_tensor_free(ts[i]);
        ts[i] = NULL;
    }
}

/* The gradients of obj (the weighed output) with respect to the inputs into out[0..n), leaves
 * the caller frees: tg_grad's, or zeros for a function of none of the inputs (whose gradient is
 * 0, where tg_grad refuses an output that depends on no input). */
static tg_status first_order_grads(check_ctx *c, tg_tensor *obj, tg_tensor **out)
{
    if (tg_tensor_requires_grad(obj))
        return tg_grad(c->tape, obj, c->xs, c->n, out);
    for (size_t i = 0; i < c->n; i++)
        if (!(out[i] =
                  tg_tensor_zeros(TG_F64, tg_tensor_rank(c->xs[i]), tg_tensor_shape(c->xs[i]))))
            return tg_last_status();
    return TG_OK;
}

static tg_status run(check_ctx *c, const tg_gradcheck_options *opt, double *max_err)
{
    tg_status st = TG_OK;
    tg_rng rng;
    tg_rng_seed(&rng, opt->seed);
    tg_tensor *y = record(c, &st);
    tg_tensor *obj = y ? weigh(c, y, &rng, &st) : NULL;
    if (!obj)
        return st;
    tg_tensor **grads = tg__calloc(c->n ? c->n : 1, sizeof *grads);
    if (!grads)
        return tg__error(TG_ENOMEM, "gradcheck: out of memory");
    st = first_order_grads(c, obj, grads);
    bad_element bad = {.input = SIZE_MAX};
    for (size_t i = 0; i < c->n && st == TG_OK; i++) {
        double worst = 0;
        double *x = tg_tensor_data(c->xs[i]);
        const double *g = tg_tensor_data_const(grads[i]);
        for (size_t j = 0, n = tg_tensor_numel(c->xs[i]); j < n && st == TG_OK; j++) {
            double v = x[j], h = opt->eps * (fabs(v) > 1 ? fabs(v) : 1);
            /* the size is checked before objective reads y against the c->numel weights */
            x[j] = v + h;
            tg_tensor *yp = record(c, &st);
            bool same = yp && tg_tensor_numel(yp) == c->numel;
            double fp = same ? objective(c, yp) : NAN;
            x[j] = v - h;
            tg_tensor *ym = same ? record(c, &st) : NULL;
            same = same && ym && tg_tensor_numel(ym) == c->numel;
            double fm = same ? objective(c, ym) : NAN;
            x[j] = v;
            if (st != TG_OK)
                break;
            if (!same) {
                st = tg__error(TG_ESHAPE, "gradcheck: the output's shape depends on the input");
                break;
            }
            const double numeric = (fp - fm) / (2 * h);
            compare_element(i, j, g[j], numeric, opt->tol, &worst, &bad);
        }
        if (max_err)
            max_err[i] = worst;
    }
    free_all(grads, c->n);
    tg__free(grads, (c->n ? c->n : 1) * sizeof *grads);
    if (st == TG_OK && bad.input != SIZE_MAX)
        st = tg__error(TG_ENUMERIC,
                       "gradcheck: input %zu, element %zu: the gradient is %.9g, finite "
                       "differences give %.9g (error %.3g, more than %g)",
                       bad.input, bad.element, bad.analytic, bad.numeric, bad.err, opt->tol);
    return st;
}

/* ---- tg_gradgradcheck ------------------------------------------------------------------------ */

typedef struct gg_ctx {
    check_ctx *c;
    double **u;    /* the directions, u[i] of xs[i]'s size */
    tg_tensor **g; /* n gradients of the first-order path (leaves, ours) */
} gg_ctx;

/* G(x) = sum_i <g_i(x), u_i> at the current inputs, g from the first-order path (tg_grad):
 * what the finite differences see, independent of any op's vjp_graph. */
static double first_order_G(gg_ctx *k, tg_status *st)
{
    check_ctx *c = k->c;
    tg_tensor *y = record(c, st);
    tg_tensor *obj = y ? weigh(c, y, NULL, st) : NULL;
    if (!obj)
        return NAN;
    if ((*st = first_order_grads(c, obj, k->g)) != TG_OK)
        return NAN;
    double G = 0;
    for (size_t i = 0; i < c->n; i++) {
        const double *g = tg_tensor_data_const(k->g[i]);
        for (size_t j = 0, m = tg_tensor_numel(c->xs[i]); j < m; j++)
            G += g[j] * k->u[i][j];
    }
    free_all(k->g, c->n);
    return G;
}

/* The analytic side at the current inputs: records the objective, its differentiable
 * gradients gg (tg_grad_graph), compares them with tg_grad's into first[i], then records
 * G = sum_i sum(gg_i * u_i) and leaves dG/dxs[i] = H u in k->g (zeros when G does not depend
 * on the inputs: a function linear in them). */
static tg_status analytic(gg_ctx *k, tg_rng *rng, double *first)
{
    check_ctx *c = k->c;
    tg_tape *tape = c->tape;
    tg_status st = TG_OK;
    tg_tensor *y = record(c, &st);
    tg_tensor *obj = y ? weigh(c, y, rng, &st) : NULL;
    if (!obj)
        return st;
    for (size_t i = 0; i < c->n; i++) { /* drawn after r: r is tg_gradcheck's for one seed */
        size_t m = tg_tensor_numel(c->xs[i]);
        k->u[i] = tg__calloc(m ? m : 1, sizeof *k->u[i]);
        if (!k->u[i])
            return tg__error(TG_ENOMEM, "gradgradcheck: out of memory");
        for (size_t j = 0; j < m; j++)
            k->u[i][j] = 2 * tg_rng_uniform(rng) - 1;
    }
    if (!tg_tensor_requires_grad(obj)) { /* a function of none of the inputs: all zero */
        for (size_t i = 0; i < c->n; i++)
            first[i] = 0;
        return first_order_grads(c, obj, k->g);
    }
    tg_tensor **gg = tg__calloc(c->n ? c->n : 1, sizeof *gg);
    if (!gg)
        return tg__error(TG_ENOMEM, "gradgradcheck: out of memory");
    if ((st = tg_grad_graph(tape, obj, c->xs, c->n, NULL, gg)) == TG_OK)
        st = tg_grad(tape, obj, c->xs, c->n, k->g);
    tg_tensor *G = NULL;
    for (size_t i = 0; i < c->n && st == TG_OK; i++) {
        const double *a = tg_tensor_data_const(gg[i]), *b = tg_tensor_data_const(k->g[i]);
        first[i] = 0;
        for (size_t j = 0, m = tg_tensor_numel(c->xs[i]); j < m; j++)
            first[i] = fmax(first[i], rel_err(a[j], b[j]));
        tg_tensor *u =
            tg_constant(tape, TG_F64, tg_tensor_rank(c->xs[i]), tg_tensor_shape(c->xs[i]), k->u[i]);
        tg_tensor *term = tg_sum(tape, tg_mul(tape, gg[i], u), TG_ALL_AXES, false);
        G = G ? tg_add(tape, G, term) : term;
        if (!G)
            st = tg__error(tg_tape_status(tape), "%s", tg_tape_error(tape));
    }
    free_all(k->g, c->n);
    tg__free(gg, (c->n ? c->n : 1) * sizeof *gg);
    if (st != TG_OK || !G)
        return st;
    if (tg_tensor_requires_grad(G))
        return tg_grad(tape, G, c->xs, c->n, k->g);
    for (size_t i = 0; i < c->n; i++) /* G is a constant: H u = 0 */
        if (!(k->g[i] =
                  tg_tensor_zeros(TG_F64, tg_tensor_rank(c->xs[i]), tg_tensor_shape(c->xs[i]))))
            return tg_last_status();
    return TG_OK;
}

static tg_status run2(check_ctx *c, const tg_gradcheck_options *opt, double *max_err)
{
    const size_t slots = c->n ? c->n : 1;
    gg_ctx k = {c, tg__calloc(slots, sizeof *k.u), tg__calloc(slots, sizeof *k.g)};
    tg_tensor **hu = tg__calloc(slots, sizeof *hu);
    double *first = tg__calloc(slots, sizeof *first);
    tg_status st =
        k.u && k.g && hu && first ? TG_OK : tg__error(TG_ENOMEM, "gradgradcheck: out of memory");
    tg_rng rng;
    tg_rng_seed(&rng, opt->seed);
    if (st == TG_OK && (st = analytic(&k, &rng, first)) == TG_OK)
        for (size_t i = 0; i < c->n; i++) /* H u, kept while k.g serves the first-order G */
            hu[i] = k.g[i], k.g[i] = NULL;
    size_t bad_first = SIZE_MAX; /* the first input whose recorded gradient is off */
    bad_element bad = {.input = SIZE_MAX};
    for (size_t i = 0; i < c->n && st == TG_OK; i++) {
        double worst = 0;
        double *x = tg_tensor_data(c->xs[i]);
        const double *a = tg_tensor_data_const(hu[i]);
        for (size_t j = 0, m = tg_tensor_numel(c->xs[i]); j < m && st == TG_OK; j++) {
            double v = x[j], h = opt->eps * (fabs(v) > 1 ? fabs(v) : 1);
            x[j] = v + h;
            double Gp = first_order_G(&k, &st);
            x[j] = v - h;
            double Gm = st == TG_OK ? first_order_G(&k, &st) : NAN;
            x[j] = v;
            const double numeric = (Gp - Gm) / (2 * h);
            compare_element(i, j, a[j], numeric, opt->tol, &worst, &bad);
        }
        if (bad_first == SIZE_MAX && !(first[i] <= opt->tol))
            bad_first = i;
        if (max_err)
            max_err[i] = fmax(first[i], worst);
    }
    if (st == TG_OK && bad_first != SIZE_MAX)
        st = tg__error(TG_ENUMERIC,
                       "gradgradcheck: input %zu: the gradient of tg_grad_graph differs from "
                       "tg_grad's (error %.3g, more than %g)",
                       bad_first, first[bad_first], opt->tol);
    else if (st == TG_OK && bad.input != SIZE_MAX)
        st = tg__error(TG_ENUMERIC,
                       "gradgradcheck: input %zu, element %zu: the second derivative (H u) is "
                       "%.9g, finite differences of the gradient give %.9g (error %.3g, more "
                       "than %g)",
                       bad.input, bad.element, bad.analytic, bad.numeric, bad.err, opt->tol);
    free_all(hu, c->n);
    free_all(k.g, c->n);
    for (size_t i = 0; k.u && i < c->n; i++)
        if (k.u[i])
            tg__free(k.u[i],
                     (tg_tensor_numel(c->xs[i]) ? tg_tensor_numel(c->xs[i]) : 1) * sizeof *k.u[i]);
    if (k.u)
        tg__free(k.u, slots * sizeof *k.u);
    if (k.g)
        tg__free(k.g, slots * sizeof *k.g);
    if (hu)
        tg__free(hu, slots * sizeof *hu);
    if (first)
        tg__free(first, slots * sizeof *first);
    return st;
}

/* ---- the entry points ------------------------------------------------------------------------ */

typedef tg_status (*runner_fn)(check_ctx *c, const tg_gradcheck_options *opt, double *max_err);

/* What both checks share: the arguments checked, the inputs copied to f64 leaves that require
 * grad, a tape, and everything freed after `runner`. */
static tg_status check(const char *who, runner_fn runner, tg_check_fn fn, void *ud,
                       tg_tensor *const *inputs, size_t n, const tg_gradcheck_options *opt,
                       double *max_err)
{
    static const tg_gradcheck_options defaults = TG_GRADCHECK_OPTIONS_INIT;
    if (!opt)
        opt = &defaults;
    if (!fn || (n && !inputs))
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, fn ? "inputs" : "fn");
    if (!(opt->eps > 0))
        return tg__error(TG_EINVAL, "%s: eps must be positive", who);
    if (!(opt->tol >= 0)) /* NaN would fail every gradient, a negative tol every exact one */
        return tg__error(TG_EINVAL, "%s: tol must be a number >= 0, not %g", who, opt->tol);
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i])
            return tg__error(TG_EINVAL, "%s: inputs[%zu] is NULL", who, i);
        if (!tg_tensor_is_leaf(inputs[i]) && !tg_tensor_data_const(inputs[i])) /* stale */
            return tg__error(tg_last_status(), "%s: inputs[%zu]: %s", who, i, tg_last_error());
    }
    tg_tensor **xs = tg__calloc(n ? n : 1, sizeof *xs);
    check_ctx c = {fn, ud, xs, n, NULL, NULL, 0, who};
    tg_status st = xs ? TG_OK : tg__error(TG_ENOMEM, "%s: out of memory", who);
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        const tg_tensor *in = inputs[i];
        xs[i] = tg_tensor_zeros(TG_F64, tg_tensor_rank(in), tg_tensor_shape(in));
        if (!xs[i] || tg_tensor_to_f64(in, tg_tensor_data(xs[i])) != TG_OK ||
            tg_tensor_set_requires_grad(xs[i], true) != TG_OK)
            st = tg_last_status();
    }
    if (st == TG_OK) {
        c.tape = tg_tape_new();
        st = c.tape ? runner(&c, opt, max_err) : TG_ENOMEM;
    }
    tg_tape_free(c.tape);
    if (c.r)
        tg__free(c.r, (c.numel ? c.numel : 1) * sizeof *c.r);
    for (size_t i = 0; xs && i < n; i++)
        tg_tensor_free(xs[i]);
    if (xs)
        tg__free(xs, (n ? n : 1) * sizeof *xs);
    return st;
}

tg_status tg_gradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                       const tg_gradcheck_options *opt, double *max_err)
{
    return check("gradcheck", run, fn, ud, inputs, n, opt, max_err);
}

tg_status tg_gradgradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                           const tg_gradcheck_options *opt, double *max_err)
{
    return check("gradgradcheck", run2, fn, ud, inputs, n, opt, max_err);
}

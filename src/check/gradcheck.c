/* gradcheck.c: compares backward's gradients with central finite differences, all in f64.
 * An output y of more than one element is reduced to sum(r * y) with fixed random weights r, so
 * every entry of the Jacobian takes part without building it. */
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
            *st = tg__error(TG_EINVAL, "gradcheck: the function returned NULL");
        else if (tg_tape_status(c->tape) != TG_OK)
            tg__error(*st, "%s", tg_tape_error(c->tape));
        return NULL;
    }
    if (tg_tensor_dtype(y) != TG_F64) {
        *st = tg__error(TG_EDTYPE,
                        "gradcheck: the function must build an f64 graph, its output "
                        "is %s",
                        tg_dtype_name(tg_tensor_dtype(y)));
        return NULL;
    }
    return y;
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

static tg_status run(check_ctx *c, const tg_gradcheck_options *opt, double *max_err)
{
    tg_status st = TG_OK;
    tg_tensor *y = record(c, &st);
    if (!y)
        return st;
    c->numel = tg_tensor_numel(y);
    tg_tensor *obj = y;
    if (c->numel != 1) {
        c->r = tg__calloc(c->numel, sizeof *c->r);
        if (!c->r)
            return tg__error(TG_ENOMEM, "gradcheck: out of memory");
        tg_rng rng;
        tg_rng_seed(&rng, opt->seed);
        for (size_t i = 0; i < c->numel; i++)
            c->r[i] = 2 * tg_rng_uniform(&rng) - 1;
        tg_tensor *r = tg_constant(c->tape, TG_F64, tg_tensor_rank(y), tg_tensor_shape(y), c->r);
        obj = tg_sum(c->tape, tg_mul(c->tape, y, r), TG_ALL_AXES, false);
        if (!obj)
            return tg__error(tg_tape_status(c->tape), "%s", tg_tape_error(c->tape));
    }
    tg_tensor **grads = tg__calloc(c->n, sizeof *grads);
    if (!grads)
        return tg__error(TG_ENOMEM, "gradcheck: out of memory");
    st = tg_grad(c->tape, obj, c->xs, c->n, grads);
    bool bad = false;
    for (size_t i = 0; i < c->n && st == TG_OK; i++) {
        double worst = 0;
        double *x = tg_tensor_data(c->xs[i]);
        const double *g = tg_tensor_data(grads[i]);
        for (size_t j = 0, n = tg_tensor_numel(c->xs[i]); j < n && st == TG_OK; j++) {
            double v = x[j], h = opt->eps * (fabs(v) > 1 ? fabs(v) : 1);
            x[j] = v + h;
            tg_tensor *yp = record(c, &st);
            double fp = yp ? objective(c, yp) : NAN;
            x[j] = v - h;
            tg_tensor *ym = yp ? record(c, &st) : NULL;
            double fm = ym ? objective(c, ym) : NAN;
            x[j] = v;
            if (st != TG_OK)
                break;
            if (tg_tensor_numel(yp) != c->numel || tg_tensor_numel(ym) != c->numel) {
                st = tg__error(TG_ESHAPE, "gradcheck: the output's shape depends on the input");
                break;
            }
            double num = (fp - fm) / (2 * h), ana = g[j];
            double scale = fmax(1.0, fmax(fabs(ana), fabs(num)));
            double err = fabs(ana - num) / scale;
            if (!isfinite(err))
                err = INFINITY;
            if (err > worst)
                worst = err;
        }
        if (max_err)
            max_err[i] = worst;
        if (!(worst <= opt->tol))
            bad = true;
    }
    for (size_t i = 0; i < c->n; i++)
        tg_tensor_free(grads[i]);
    tg__free(grads, c->n * sizeof *grads);
    if (st == TG_OK && bad)
        st = tg__error(TG_ENUMERIC,
                       "gradcheck: a gradient differs from finite differences by "
                       "more than %g",
                       opt->tol);
    return st;
}

tg_status tg_gradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                       const tg_gradcheck_options *opt, double *max_err)
{
    static const tg_gradcheck_options defaults = TG_GRADCHECK_OPTIONS_INIT;
    if (!opt)
        opt = &defaults;
    if (!fn || (n && !inputs))
        return tg__error(TG_EINVAL, "gradcheck: %s is NULL", fn ? "inputs" : "fn");
    if (!(opt->eps > 0))
        return tg__error(TG_EINVAL, "gradcheck: eps must be positive");
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i])
            return tg__error(TG_EINVAL, "gradcheck: inputs[%zu] is NULL", i);
        if (!tg_tensor_is_leaf(inputs[i]) && !tg_tensor_data_const(inputs[i])) /* stale */
            return tg__error(tg_last_status(), "gradcheck: inputs[%zu]: %s", i, tg_last_error());
    }
    tg_tensor **xs = tg__calloc(n ? n : 1, sizeof *xs);
    check_ctx c = {fn, ud, xs, n, NULL, NULL, 0};
    tg_status st = xs ? TG_OK : tg__error(TG_ENOMEM, "gradcheck: out of memory");
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        const tg_tensor *in = inputs[i];
        xs[i] = tg_tensor_zeros(TG_F64, tg_tensor_rank(in), tg_tensor_shape(in));
        if (!xs[i] || tg_tensor_to_f64(in, tg_tensor_data(xs[i])) != TG_OK ||
            tg_tensor_set_requires_grad(xs[i], true) != TG_OK)
            st = tg_last_status();
    }
    if (st == TG_OK) {
        c.tape = tg_tape_new();
        st = c.tape ? run(&c, opt, max_err) : TG_ENOMEM;
    }
    tg_tape_free(c.tape);
    if (c.r)
        tg__free(c.r, c.numel * sizeof *c.r);
    for (size_t i = 0; xs && i < n; i++)
        tg_tensor_free(xs[i]);
    if (xs)
        tg__free(xs, (n ? n : 1) * sizeof *xs);
    return st;
}

/* optim.c: optimizers (SGD, momentum/Nesterov, Adam, AdamW) that update leaves in place from
 * their grad buffers, learning-rate schedules, and clipping by global norm. Arithmetic is in
 * double for both dtypes; f32 weights and state are rounded once per step when stored. */
#include "core/core.h"
#include "core/pool.h"

#include <math.h>

/* PI is not ISO C. */
static const double PI = 3.14159265358979323846;

struct tg_optim {
    tg_optim_options opt;
    tg_dtype dtype;
    size_t n;
    tg_tensor **params; /* the caller's leaves, in order */
    size_t numel;       /* over all leaves */
    void *state;        /* momentum: v; Adam: m then v; numel elements of dtype each */
    size_t state_bytes;
    uint64_t steps;
};

static const char *const KIND_NAMES[] = {
    [TG_OPTIM_SGD] = "sgd",
    [TG_OPTIM_MOMENTUM] = "momentum",
    [TG_OPTIM_ADAM] = "adam",
    [TG_OPTIM_ADAMW] = "adamw",
};
#define N_KINDS (sizeof KIND_NAMES / sizeof KIND_NAMES[0])

const char *tg_optim_kind_name(tg_optim_kind kind)
{
    return (unsigned)kind < N_KINDS ? KIND_NAMES[kind] : "?";
}

tg_status tg_optim_kind_parse(const char *name, tg_optim_kind *out)
{
    if (!name || !out)
        return tg__error(TG_EINVAL, "optim_kind_parse: %s is NULL", name ? "out" : "name");
    for (size_t i = 0; i < N_KINDS; i++) {
        if (strcmp(name, KIND_NAMES[i]) == 0) {
            *out = (tg_optim_kind)i;
            return TG_OK;
        }
    }
    return tg__error(TG_EINVAL,
                     "optim_kind_parse: unknown optimizer '%s' (expected sgd, momentum, adam or "
                     "adamw)",
                     name);
}

/* ---- construction ------------------------------------------------------------------------ */

static bool in_unit(double x) /* [0, 1) */
{
    return x >= 0 && x < 1;
}

/* Validates and normalizes the options: MOMENTUM's 0 becomes 0.9, and the fields the kind does
 * not use take TG_OPTIM_OPTIONS_INIT's values, so that two optimizers that step alike have
 * equal options (a checkpoint's restore and a resumed run compare them). */
static tg_status check_options(tg_optim_options *o)
{
    const char *who = "optim_new";
    const tg_optim_options init = TG_OPTIM_OPTIONS_INIT;
    if ((unsigned)o->kind >= N_KINDS)
        return tg__error(TG_EINVAL, "%s: unknown optimizer kind %d", who, (int)o->kind);
    if (!isfinite(o->lr) || o->lr < 0)
        return tg__error(TG_EINVAL, "%s: lr is %g (expected finite and >= 0)", who, o->lr);
    if (!isfinite(o->weight_decay) || o->weight_decay < 0)
        return tg__error(TG_EINVAL, "%s: weight_decay is %g (expected finite and >= 0)", who,
                         o->weight_decay);
    bool sgd = o->kind == TG_OPTIM_SGD || o->kind == TG_OPTIM_MOMENTUM;
    if (sgd) {
        if (o->kind == TG_OPTIM_MOMENTUM && o->momentum == 0)
            o->momentum = 0.9;
        if (!in_unit(o->momentum))
            return tg__error(TG_EINVAL, "%s: momentum is %g (expected 0 <= momentum < 1)", who,
                             o->momentum);
        if (o->nesterov && o->momentum == 0)
            return tg__error(TG_EINVAL, "%s: nesterov needs momentum > 0", who);
        o->beta1 = init.beta1, o->beta2 = init.beta2, o->eps = init.eps;
    } else {
        if (o->nesterov)
            return tg__error(TG_EINVAL, "%s: nesterov applies to sgd and momentum, not %s", who,
                             KIND_NAMES[o->kind]);
        if (!in_unit(o->beta1) || !in_unit(o->beta2))
            return tg__error(TG_EINVAL, "%s: beta1 %g and beta2 %g must be in [0, 1)", who,
                             o->beta1, o->beta2);
        if (!isfinite(o->eps) || !(o->eps > 0))
            return tg__error(TG_EINVAL, "%s: eps is %g (expected finite and > 0)", who, o->eps);
        o->momentum = init.momentum;
    }
    return TG_OK;
}

static size_t state_buffers(const tg_optim_options *o)
{
    if (o->kind == TG_OPTIM_ADAM || o->kind == TG_OPTIM_ADAMW)
        return 2;
    return o->momentum > 0 ? 1 : 0;
}

void tg_optim_free(tg_optim *optim)
{
    if (!optim)
        return;
    tg__free(optim->state, optim->state_bytes);
    tg__free(optim->params, optim->n * sizeof *optim->params);
    tg__free(optim, sizeof *optim);
}

/* TG_EINVAL when params[i] is one of params[0..i): a leaf listed twice would be `what` twice
 * (updated, scaled). */
static tg_status check_distinct(const char *who, tg_tensor *const *params, size_t i,
                                const char *what)
{
    for (size_t j = 0; j < i; j++)
        if (params[j] == params[i])
            return tg__error(TG_EINVAL,
                             "%s: params[%zu] and params[%zu] are the same leaf (it would be %s "
                             "twice)",
                             who, j, i, what);
    return TG_OK;
}

tg_status tg_optim_new(const tg_optim_options *opt, tg_tensor *const *params, size_t n,
                       tg_optim **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "optim_new: out is NULL");
    *out = NULL;
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    if (opt)
        o = *opt;
    tg_status st = check_options(&o);
    if (st != TG_OK)
        return st;
    if (!params || n == 0)
        return tg__error(TG_EINVAL, "optim_new: no parameters (%s)",
                         params ? "n is 0" : "params is NULL");
    size_t numel = 0;
    for (size_t i = 0; i < n; i++) {
        const tg_tensor *p = params[i];
        if (!p)
            return tg__error(TG_EINVAL, "optim_new: params[%zu] is NULL", i);
        const char *name = tg_tensor_name(p);
        if (!tg_tensor_is_leaf(p) || !tg_tensor_requires_grad(p))
            return tg__error(TG_EINVAL, "optim_new: params[%zu]%s%s%s is %s", i,
                             name ? " ('" : "", name ? name : "", name ? "')" : "",
                             tg_tensor_is_leaf(p) ? "a leaf that does not require grad"
                                                  : "not a leaf");
        if (tg_tensor_dtype(p) != tg_tensor_dtype(params[0]))
            return tg__error(TG_EDTYPE, "optim_new: params[%zu] is %s, params[0] is %s", i,
                             tg_dtype_name(tg_tensor_dtype(p)),
                             tg_dtype_name(tg_tensor_dtype(params[0])));
        if ((st = check_distinct("optim_new", params, i, "updated")) != TG_OK)
            return st;
        if (__builtin_add_overflow(numel, tg_tensor_numel(p), &numel))
            return tg__error(TG_EINVAL, "optim_new: too many parameters");
    }
    tg_dtype dtype = tg_tensor_dtype(params[0]);
    size_t bufs = state_buffers(&o), bytes;
    if (__builtin_mul_overflow(numel, bufs * tg_dtype_size(dtype), &bytes))
        return tg__error(TG_ENOMEM, "optim_new: state for %zu parameters is too large", numel);

    tg_optim *g = tg__calloc(1, sizeof *g);
    if (!g)
        return tg__error(TG_ENOMEM, "optim_new: out of memory");
    g->opt = o;
    g->dtype = dtype;
    g->numel = numel;
    g->params = tg__malloc(n * sizeof *g->params);
    if (g->params)
        g->n = n;
    if (bytes && g->params) {
        g->state = tg__calloc(1, bytes); /* moments start at zero */
        if (g->state)
            g->state_bytes = bytes;
    }
    if (!g->params || (bytes && !g->state)) {
        tg_optim_free(g);
        return tg__error(TG_ENOMEM, "optim_new: out of memory for %zu bytes of state", bytes);
    }
    memcpy(g->params, params, n * sizeof *g->params);
    *out = g;
    return TG_OK;
}

static inline double load_at(const void *p, bool f32, size_t i)
{
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static inline void store_at(void *p, bool f32, size_t i, double v)
{
    if (f32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* ---- the update ----------------------------------------------------------------------------
 * Every optimizer is elementwise: element i of a leaf's weights moves by its own gradient and
 * state only. So the step is one loop over all parameters (the leaves back to back, as the
 * state is laid out), split over the pool by ranges: with no element shared between ranges,
 * the result is the same bits whatever the split. Each kind and dtype is a separate loop
 * with every option hoisted out of it, so the compiler vectorizes the loops (the arithmetic
 * stays in double, in the same order, whatever the vector width). Ranges of at least
 * TG_POOL_STREAM_GRAIN parameters (pool.h), as tg_model_zero_grad cuts the gradients. */

typedef struct update_job {
    const tg_optim *o;
    double lr, bc1, bc2;
} update_job;

/* UPDATE_LOOPS(T) updates elements [i0, i1) of one leaf: weights W, gradients G, state S1
 * (momentum's v or Adam's m) and S2 (Adam's v), all of element type T. */
#define UPDATE_LOOPS(T)                                                                            \
    do {                                                                                           \
        T *restrict W = w;                                                                         \
        const T *restrict G = g;                                                                   \
        T *restrict S1 = s1, *restrict S2 = s2;                                                    \
        switch (p->kind) {                                                                         \
        case TG_OPTIM_SGD:                                                                         \
        case TG_OPTIM_MOMENTUM:                                                                    \
            if (!(mu > 0)) {                                                                       \
                for (size_t i = i0; i < i1; i++) {                                                 \
                    double wi = W[i], gi = (double)G[i] + wd * wi;                                 \
                    W[i] = (T)(wi - lr * gi);                                                      \
                }                                                                                  \
            } else if (!nesterov) {                                                                \
                for (size_t i = i0; i < i1; i++) {                                                 \
                    double wi = W[i], gi = (double)G[i] + wd * wi;                                 \
                    double v = mu * (double)S1[i] + gi;                                            \
                    S1[i] = (T)v;                                                                  \
                    W[i] = (T)(wi - lr * v);                                                       \
                }                                                                                  \
            } else {                                                                               \
                for (size_t i = i0; i < i1; i++) {                                                 \
                    double wi = W[i], gi = (double)G[i] + wd * wi;                                 \
                    double v = mu * (double)S1[i] + gi;                                            \
                    S1[i] = (T)v;                                                                  \
                    W[i] = (T)(wi - lr * (gi + mu * v));                                           \
                }                                                                                  \
            }                                                                                      \
            break;                                                                                 \
        case TG_OPTIM_ADAM:                                                                        \
            ADAM_LOOP(T, (void)0, gi += wd * wi);                                                  \
            break;                                                                                 \
        case TG_OPTIM_ADAMW: /* the decay moves the weight, not the gradient */                    \
            ADAM_LOOP(T, wi -= lr * wd * wi, (void)0);                                             \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

/* Adam's loop over [i0, i1), with DECAY_W and DECAY_G the weight decay's effect on the weight
 * wi or on the gradient gi: an expression, (void)0 for none. */
#define ADAM_LOOP(T, DECAY_W, DECAY_G)                                                             \
    for (size_t i = i0; i < i1; i++) {                                                             \
        double wi = W[i], gi = G[i];                                                               \
        DECAY_W;                                                                                   \
        DECAY_G;                                                                                   \
        double m = b1 * (double)S1[i] + (1 - b1) * gi;                                             \
        double v = b2 * (double)S2[i] + (1 - b2) * gi * gi;                                        \
        S1[i] = (T)m;                                                                              \
        S2[i] = (T)v;                                                                              \
        W[i] = (T)(wi - lr * (m / bc1) / (sqrt(v / bc2) + eps));                                   \
    }

/* Elements [i0, i1) of one leaf; w, g, s1, s2 point at the leaf's element 0. */
TG_SIMD_CLONES static void update_leaf(const update_job *jb, bool f32, void *w, const void *g,
                                      void *s1, void *s2, size_t i0, size_t i1)
{
    const tg_optim_options *p = &jb->o->opt;
    /* Options in locals: the loops' stores could alias *p as far as the compiler knows. */
    const double lr = jb->lr, bc1 = jb->bc1, bc2 = jb->bc2, wd = p->weight_decay,
                 mu = p->momentum, b1 = p->beta1, b2 = p->beta2, eps = p->eps;
    const bool nesterov = p->nesterov;
    if (f32)
        UPDATE_LOOPS(float);
    else
        UPDATE_LOOPS(double);
}

/* Parameters [lo, hi) of the whole list, counted over the leaves back to back. */
static void update_range(void *ctx, size_t lo, size_t hi)
{
    const update_job *jb = ctx;
    const tg_optim *o = jb->o;
    const bool f32 = o->dtype == TG_F32;
    const size_t es = tg_dtype_size(o->dtype);
    unsigned char *s1 = o->state, *s2 = s1 ? s1 + o->numel * es : NULL;
    size_t off = 0;
    for (size_t k = 0; k < o->n && off < hi; k++) {
        tg_tensor *w = o->params[k];
        const size_t end = off + tg_tensor_numel(w);
        void *grad = end > lo ? tg_tensor_grad_data(w) : NULL; /* a leaf's: no check to fail */
        if (grad) {
            const size_t i0 = lo > off ? lo - off : 0, i1 = (hi < end ? hi : end) - off;
            update_leaf(jb, f32, tg_tensor_data(w), grad, s1 ? s1 + off * es : NULL,
                        s2 ? s2 + off * es : NULL, i0, i1);
        }
        off = end;
    }
}

tg_status tg_optim_step(tg_optim *optim)
{
    if (!optim)
        return tg__error(TG_EINVAL, "optim_step: optim is NULL");
    if (optim->steps == UINT64_MAX) /* t would wrap to 0: Adam's bias correction 1 - b^0 = 0 */
        return tg__error(TG_EINVAL, "optim_step: the step count is 2^64 - 1, the largest it can "
                                    "hold (a corrupt count, set by optim_set_steps?)");
    const tg_optim_options *p = &optim->opt;
    uint64_t t = optim->steps + 1;
    update_job jb = {optim, p->lr, 1 - pow(p->beta1, (double)t), 1 - pow(p->beta2, (double)t)};
    tg__parallel_for(optim->numel, TG_POOL_STREAM_GRAIN, update_range, &jb);
    optim->steps = t;
    return TG_OK;
}

tg_status tg_optim_set_lr(tg_optim *optim, double lr)
{
    if (!optim)
        return tg__error(TG_EINVAL, "optim_set_lr: optim is NULL");
    if (!isfinite(lr) || lr < 0)
        return tg__error(TG_EINVAL, "optim_set_lr: lr is %g (expected finite and >= 0)", lr);
    optim->opt.lr = lr;
    return TG_OK;
}

double tg_optim_lr(const tg_optim *optim)
{
    return optim ? optim->opt.lr : 0.0;
}

uint64_t tg_optim_steps(const tg_optim *optim)
{
    return optim ? optim->steps : 0;
}

void tg_optim_set_steps(tg_optim *optim, uint64_t steps)
{
    if (optim)
        optim->steps = steps;
}

size_t tg_optim_state_size(const tg_optim *optim)
{
    return optim ? optim->state_bytes : 0;
}

void *tg_optim_state(tg_optim *optim)
{
    return optim ? optim->state : NULL;
}

tg_status tg_optim_set_state(tg_optim *optim, const void *state, size_t bytes, uint64_t steps)
{
    const char *who = "optim_set_state";
    if (!optim)
        return tg__error(TG_EINVAL, "%s: optim is NULL", who);
    if (bytes != optim->state_bytes)
        return tg__error(TG_EINVAL, "%s: %zu bytes of state, this %s optimizer over %zu %s "
                                    "parameters keeps %zu",
                         who, bytes, KIND_NAMES[optim->opt.kind], optim->numel,
                         tg_dtype_name(optim->dtype), optim->state_bytes);
    if (bytes && !state)
        return tg__error(TG_EINVAL, "%s: state is NULL", who);
    if (steps == UINT64_MAX)
        return tg__error(TG_EINVAL, "%s: steps is 2^64 - 1, which no step can follow", who);
    /* Check everything before changing anything. Adam's block is m then v; v is a running
     * mean of squares, so a negative one is corrupt (and would make sqrt(v) NaN). It may be
     * +inf: the step itself stores that when a square overflows the dtype (an f32 gradient
     * above about 6e20 at beta2 0.999), and the weight goes on (its moves are then 0), so a
     * checkpoint of such a run must load. */
    bool f32 = optim->dtype == TG_F32, adam = state_buffers(&optim->opt) == 2;
    size_t n = bytes / tg_dtype_size(optim->dtype);
    for (size_t i = 0; i < n; i++) {
        double v = load_at(state, f32, i);
        bool second = adam && i >= optim->numel;
        if (second ? !(v >= 0) : !isfinite(v))
            return tg__error(TG_EINVAL, "%s: %s[%zu] is %g (expected %s)", who,
                             !adam ? "momentum" : second ? "v" : "m",
                             second ? i - optim->numel : i, v,
                             second ? "0 to +inf" : "a finite value");
    }
    if (bytes)
        memcpy(optim->state, state, bytes);
    optim->steps = steps;
    return TG_OK;
}

tg_status tg_optim_get_options(const tg_optim *optim, tg_optim_options *out)
{
    if (!optim || !out)
        return tg__error(TG_EINVAL, "optim_get_options: %s is NULL", optim ? "out" : "optim");
    *out = optim->opt;
    return TG_OK;
}

size_t tg_optim_param_count(const tg_optim *optim)
{
    return optim ? optim->n : 0;
}

tg_tensor *tg_optim_param(const tg_optim *optim, size_t i)
{
    if (!optim || i >= optim->n) {
        tg__error(TG_EINVAL, "optim_param: %s", optim ? "index out of range" : "optim is NULL");
        return NULL;
    }
    return optim->params[i];
}

tg_dtype tg_optim_dtype(const tg_optim *optim)
{
    return optim ? optim->dtype : TG_F32;
}

/* ---- schedules ----------------------------------------------------------------------------- */

tg_status tg_schedule_check(const tg_schedule *s)
{
    const char *who = "schedule";
    if (!s)
        return tg__error(TG_EINVAL, "%s: schedule is NULL", who);
    if (!isfinite(s->base) || s->base < 0)
        return tg__error(TG_EINVAL, "%s: base is %g (expected finite and >= 0)", who, s->base);
    switch (s->kind) {
    case TG_SCHEDULE_CONSTANT: return TG_OK;
    case TG_SCHEDULE_STEP:
        if (s->step_size == 0)
            return tg__error(TG_EINVAL, "%s: step_size is 0", who);
        if (!isfinite(s->gamma) || s->gamma < 0)
            return tg__error(TG_EINVAL, "%s: gamma is %g (expected finite and >= 0)", who,
                             s->gamma);
        return TG_OK;
    case TG_SCHEDULE_COSINE:
        if (s->total == 0)
            return tg__error(TG_EINVAL, "%s: total is 0", who);
        if (!isfinite(s->min) || s->min < 0)
            return tg__error(TG_EINVAL, "%s: min is %g (expected finite and >= 0)", who, s->min);
        if (s->min > s->base) /* the rate would rise from base to min */
            return tg__error(TG_EINVAL, "%s: min %g is above base %g (cosine decays to min)", who,
                             s->min, s->base);
        return TG_OK;
    }
    return tg__error(TG_EINVAL, "%s: unknown kind %d", who, (int)s->kind);
}

double tg_schedule_lr(const tg_schedule *s, uint64_t step)
{
    if (tg_schedule_check(s) != TG_OK)
        return NAN;
    switch (s->kind) {
    case TG_SCHEDULE_STEP: return s->base * pow(s->gamma, (double)(step / s->step_size));
    case TG_SCHEDULE_COSINE:
        if (step >= s->total)
            return s->min;
        return s->min + (s->base - s->min) *
                            (1 + cos(PI * (double)step / (double)s->total)) / 2;
    case TG_SCHEDULE_CONSTANT: break;
    }
    return s->base;
}

/* ---- clipping ------------------------------------------------------------------------------ */

tg_status tg_clip_grad_norm(tg_tensor *const *params, size_t n, double max_norm, double *norm)
{
    if (norm)
        *norm = 0;
    if (n && !params)
        return tg__error(TG_EINVAL, "clip_grad_norm: params is NULL");
    if (!isfinite(max_norm) || !(max_norm > 0))
        return tg__error(TG_EINVAL, "clip_grad_norm: max_norm is %g (expected finite and > 0)",
                         max_norm);
    /* The norm as amax * sqrt(sum (g / amax)^2): no overflow for grads beyond 1e154, where
     * the plain sum of squares would reach Inf. */
    double amax = 0;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        tg_tensor *p = params[i];
        if (!p || !tg_tensor_is_leaf(p))
            return tg__error(TG_EINVAL, "clip_grad_norm: params[%zu] is %s", i,
                             p ? "not a leaf" : "NULL");
        tg_status st = check_distinct("clip_grad_norm", params, i, "counted and scaled");
        if (st != TG_OK)
            return st;
        const void *grad = tg_tensor_grad_data(p);
        const bool f32 = tg_tensor_dtype(p) == TG_F32;
        for (size_t k = 0, m = tg_tensor_numel(p); grad && k < m; k++) {
            double a = fabs(load_at(grad, f32, k));
            nan |= a != a;
            amax = a > amax ? a : amax;
        }
    }
    double total = amax;
    if (nan) {
        total = NAN;
    } else if (amax > 0 && isfinite(amax)) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            const void *grad = tg_tensor_grad_data(params[i]);
            const bool f32 = tg_tensor_dtype(params[i]) == TG_F32;
            for (size_t k = 0, m = tg_tensor_numel(params[i]); grad && k < m; k++) {
                double g = load_at(grad, f32, k) / amax;
                sum += g * g;
            }
        }
        total = amax * sqrt(sum);
    }
    if (norm)
        *norm = total;
    if (!isfinite(total))
        return tg__error(TG_ENUMERIC, "clip_grad_norm: the gradient norm is %g", total);
    if (total <= max_norm)
        return TG_OK;
    double scale = max_norm / (total + 1e-6);
    for (size_t i = 0; i < n; i++) {
        void *grad = tg_tensor_grad_data(params[i]);
        const bool f32 = tg_tensor_dtype(params[i]) == TG_F32;
        for (size_t k = 0, m = tg_tensor_numel(params[i]); grad && k < m; k++)
            store_at(grad, f32, k, scale * load_at(grad, f32, k));
    }
    return TG_OK;
}

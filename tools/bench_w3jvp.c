/* bench_w3jvp.c: the bench's W3jvp, forward mode on W3's MLP (784 -> 512 relu -> 256 relu ->
 * 10, softmax cross-entropy, batch 128): the time of tg_jvp of the loss in a tangent of every
 * parameter, against the time of the forward that recorded it, and their ratio. tg_jvp is
 * derived from the differentiable VJPs (two recorded reverse passes, tapegrad/diff.h), so the
 * ratio is what forward mode costs here. Once per run, J v is compared with the gradient
 * (first-order backward) dotted with the same tangents. */
#include "bench.h"

#include "common/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct jvp_run {
    tg_model *model;
    tg_tape *tape;
    tg_tensor *x, *y;
    tg_tensor *params[2 * TG_MLP_MAX_LAYERS], *tangents[2 * TG_MLP_MAX_LAYERS];
    size_t n_params;
} jvp_run;

static void jvp_free(jvp_run *r)
{
    for (size_t i = 0; i < r->n_params; i++)
        tg_tensor_free(r->tangents[i]);
    tg_tape_free(r->tape);
    tg_tensor_free(r->x);
    tg_tensor_free(r->y);
    tg_model_free(r->model);
}

/* W3's model and batch (seeded as W3's), and a normal tangent for every parameter. */
static const char *jvp_init(jvp_run *r, const w3_arch *a, tg_dtype dt)
{
    memset(r, 0, sizeof *r);
    const tg_mlp_spec spec = w3_spec(a, dt);
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    const size_t xs[2] = {a->batch, a->sizes[0]}, ys[1] = {a->batch};
    r->tape = tg_tape_new();
    if (!r->tape || tg_model_new(&spec, TG_INIT_HE_UNIFORM, &rng, &r->model) != TG_OK)
        return r->tape ? tg_last_error() : "out of memory";
    r->x = tg_tensor_zeros(dt, 2, xs);
    r->y = tg_tensor_zeros(dt, 1, ys);
    if (!r->x || !r->y)
        return tg_last_error();
    bench_fill(tg_tensor_data(r->x), dt, a->batch * a->sizes[0], &rng, 0);
    bench_fill(tg_tensor_data(r->y), dt, a->batch, &rng, a->sizes[a->n_layers]);
    r->n_params = tg_model_param_count(r->model);
    for (size_t i = 0; i < r->n_params; i++) {
        r->params[i] = tg_model_param(r->model, i);
        const tg_tensor *p = r->params[i];
        r->tangents[i] = tg_tensor_randn(dt, tg_tensor_rank(p), tg_tensor_shape(p), &rng, 0, 1);
        if (!r->tangents[i])
            return tg_last_error();
    }
    return NULL;
}

static tg_tensor *jvp_loss(jvp_run *r)
{
    return tg_cross_entropy(r->tape, tg_model_forward(r->tape, r->model, r->x), r->y);
}

/* |J v - grad . v| / |grad . v|, by a first-order backward (untimed). */
static double jvp_check(jvp_run *r, double jv)
{
    tg_tape_reset(r->tape);
    tg_tensor *g[2 * TG_MLP_MAX_LAYERS];
    tg_tensor *l = jvp_loss(r);
    if (!l || tg_grad(r->tape, l, r->params, r->n_params, g) != TG_OK)
        return NAN;
    double dot = 0;
    for (size_t i = 0; i < r->n_params; i++) {
        for (size_t k = 0; k < tg_tensor_numel(g[i]); k++)
            dot += tg_tensor_get(g[i], k) * tg_tensor_get(r->tangents[i], k);
        tg_tensor_free(g[i]);
    }
    return fabs(jv - dot) / fmax(fabs(dot), 1e-30);
}

void bench_w3jvp(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const int reps = bench_reps(b, 20, 2), warmup = b->o->quick ? 1 : 3;
    double *fwd = calloc(2 * (size_t)reps, sizeof *fwd), *jvp = fwd ? fwd + reps : NULL;
    jvp_run r;
    const char *why = fwd ? jvp_init(&r, a, dt) : "out of memory";
    double jv = NAN;
    for (int s = -warmup; s < reps && !why; s++) {
        tg_tape_reset(r.tape);
        double t0 = monotonic_seconds();
        tg_tensor *l = jvp_loss(&r), *out = NULL;
        double t1 = monotonic_seconds();
        if (!l || tg_jvp(r.tape, l, r.params, r.tangents, r.n_params, &out) != TG_OK) {
            why = tg_last_error();
            break;
        }
        double t2 = monotonic_seconds();
        jv = tg_tensor_item(out);
        if (s >= 0) {
            fwd[s] = (t1 - t0) * 1e3;
            jvp[s] = (t2 - t1) * 1e3;
        }
    }
    if (why) {
        bench_failed(b, "W3jvp", why);
    } else {
        double f_ms = bench_median(fwd, reps), j_ms = bench_median(jvp, reps);
        figure f = bench_figure("W3jvp", "jvp_over_forward", dt, reps);
        f.value = j_ms / f_ms;
        bench_ctx_num(&f, "forward_ms", f_ms);
        bench_ctx_num(&f, "jvp_ms", j_ms);
        bench_ctx_str(&f, "layers", a->name);
        bench_ctx_num(&f, "batch", (double)a->batch);
        bench_ctx_num(&f, "jvp", jv);
        bench_ctx_num(&f, "check_rel_err", jvp_check(&r, jv));
        bench_ctx_kernel(b, &f);
        bench_emit(b, &f);
    }
    if (fwd)
        jvp_free(&r);
    free(fwd);
}

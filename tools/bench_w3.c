/* bench_w3.c: the bench's W3, an MLP 784 -> 512 relu -> 256 relu -> 10 trained by SGD with
 * softmax cross-entropy at batch 128 on seeded synthetic data (ms per step, with its parts and
 * a memory bar for its peak RSS), side by side with the same training in PyTorch
 * (tools/bench_w3_torch.py, a child process, when /usr/bin/python3 has torch); and W3's set-up
 * and timed steps, which W3dist runs too. */
#include "bench.h"

#include "common/clock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR "."
#endif

static const w3_arch W3_FULL = {128, 3, {784, 512, 256, 10}, "784-512-256-10"};
static const w3_arch W3_QUICK = {8, 3, {784, 64, 32, 10}, "784-64-32-10"};

tg_mlp_spec w3_spec(const w3_arch *a, tg_dtype dt)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = a->n_layers;
    for (int l = 0; l <= a->n_layers; l++)
        spec.sizes[l] = a->sizes[l];
    for (int l = 0; l < a->n_layers; l++)
        spec.act[l] = l + 1 < a->n_layers ? TG_ACT_RELU : TG_ACT_IDENTITY;
    spec.dtype = dt;
    return spec;
}

const w3_arch *w3_arch_of(const bench *b)
{
    return b->o->quick ? &W3_QUICK : &W3_FULL;
}

/* Fills n elements of a dtype buffer from the RNG: normal, or uniform class ids below
 * `classes` when classes > 0. */
void bench_fill(void *buf, tg_dtype dt, size_t n, tg_rng *rng, size_t classes)
{
    for (size_t i = 0; i < n; i++) {
        double v = classes ? (double)tg_rng_below(rng, classes) : tg_rng_normal(rng);
        if (dt == TG_F32)
            ((float *)buf)[i] = (float)v;
        else
            ((double *)buf)[i] = v;
    }
}

enum { W3_TIMES = 6 };

static bool w3_times_new(w3_times *t, int reps)
{
    double *all = calloc(W3_TIMES * (size_t)reps, sizeof *all);
    double **parts[W3_TIMES] = {&t->step, &t->fwd, &t->bwd, &t->fb, &t->allreduce, &t->upd};
    for (int i = 0; i < W3_TIMES; i++)
        *parts[i] = all ? all + (size_t)i * (size_t)reps : NULL;
    t->loss = NAN;
    return all != NULL;
}

void w3_times_free(w3_times *t)
{
    free(t->step); /* the block */
    memset(t, 0, sizeof *t);
}

void w3_free(w3_run *r)
{
    tg_tape_free(r->tape);
    tg_tensor_free(r->x);
    tg_tensor_free(r->y);
    tg_optim_free(r->optim);
    tg_model_free(r->model);
    free(r->xbuf);
    free(r->ybuf);
}

/* Sets up a run of arch a in dtype dt; with dist, this rank's part of a distributed one
 * (collective). NULL, or why not (r is then freed). */
static const char *w3_init(w3_run *r, const w3_arch *a, tg_dtype dt, tg_dist *dist)
{
    memset(r, 0, sizeof *r);
    r->a = a;
    r->dt = dt;
    r->dist = dist;
    const size_t es = tg_dtype_size(dt), classes = a->sizes[a->n_layers];
    const size_t world = (size_t)tg_dist_size(dist), rank = (size_t)tg_dist_rank(dist);
    const size_t lo = a->batch * rank / world, hi = a->batch * (rank + 1) / world;
    r->rows = hi - lo;
    /* The allreduce averages the ranks' gradients; weighting each rank's mean loss by its
     * share of the rows makes that the gradient of the whole batch's mean loss even when the
     * rows do not divide evenly. */
    r->weight = (double)r->rows * (double)world / (double)a->batch;
    /* Every process draws the whole batch from the same seed and keeps its rows of it. */
    r->xbuf = malloc(a->batch * a->sizes[0] * es);
    r->ybuf = malloc(a->batch * es);
    r->tape = tg_tape_new();
    if (!r->xbuf || !r->ybuf || !r->tape) {
        w3_free(r);
        return "out of memory";
    }
    const tg_mlp_spec spec = w3_spec(a, dt);
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    bool ok = tg_model_new(&spec, TG_INIT_HE_UNIFORM, &rng, &r->model) == TG_OK &&
              (!dist || tg_dist_broadcast_params(dist, r->model) == TG_OK);
    if (ok) {
        /* The data are wrapped caller memory: they need no gradient and get none. */
        bench_fill(r->xbuf, dt, a->batch * a->sizes[0], &rng, 0);
        bench_fill(r->ybuf, dt, a->batch, &rng, classes);
        const size_t xs[2] = {r->rows, a->sizes[0]}, ys[1] = {r->rows};
        r->x = tg_tensor_wrap(dt, 2, xs, (char *)r->xbuf + lo * a->sizes[0] * es);
        r->y = tg_tensor_wrap(dt, 1, ys, (char *)r->ybuf + lo * es);
        tg_tensor *params[2 * TG_MLP_MAX_LAYERS];
        size_t n_params = tg_model_param_count(r->model);
        for (size_t i = 0; i < n_params; i++)
            params[i] = tg_model_param(r->model, i);
        tg_optim_options opt = TG_OPTIM_OPTIONS_INIT; /* plain SGD */
        ok = r->x && r->y && tg_optim_new(&opt, params, n_params, &r->optim) == TG_OK;
    }
    if (!ok) {
        w3_free(r);
        return tg_last_error();
    }
    return NULL;
}

/* `warmup` untimed steps, then `reps` timed ones into t. False on an error (tg_last_error). */
static bool w3_steps(w3_run *r, int warmup, int reps, w3_times *t)
{
    bool ok = true;
    for (int s = -warmup; s < reps && ok; s++) {
        double t0 = monotonic_seconds();
        tg_tensor *l = tg_cross_entropy(r->tape, tg_model_forward(r->tape, r->model, r->x), r->y);
        if (r->weight != 1.0)
            l = tg_scale(r->tape, l, r->weight);
        ok = tg_tape_status(r->tape) == TG_OK;
        double t1 = monotonic_seconds();
        ok = ok && tg_backward(r->tape, l) == TG_OK;
        double t2 = monotonic_seconds();
        ok = ok && (!r->dist || tg_dist_allreduce_grads(r->dist, r->model) == TG_OK);
        double t3 = monotonic_seconds();
        ok = ok && tg_optim_step(r->optim) == TG_OK;
        if (ok)
            t->loss = tg_tensor_item(l);
        tg_model_zero_grad(r->model);
        tg_tape_reset(r->tape);
        double t4 = monotonic_seconds();
        if (s >= 0) {
            t->step[s] = (t4 - t0) * 1e3;
            t->fwd[s] = (t1 - t0) * 1e3;
            t->bwd[s] = (t2 - t1) * 1e3;
            t->fb[s] = (t2 - t0) * 1e3;
            t->allreduce[s] = (t3 - t2) * 1e3;
            t->upd[s] = (t4 - t3) * 1e3;
        }
    }
    return ok;
}

const char *w3_measure(w3_run *r, w3_times *t, const w3_arch *a, tg_dtype dt, tg_dist *dist,
                       int warmup, int reps)
{
    const char *why = w3_times_new(t, reps) ? w3_init(r, a, dt, dist) : "out of memory";
    if (!why && !w3_steps(r, warmup, reps, t)) {
        why = tg_last_error();
        w3_free(r);
    }
    if (why)
        w3_times_free(t);
    return why;
}

int w3_reps(const bench *b)
{
    return bench_reps(b, 100, 3);
}

int w3_warmup(const bench *b)
{
    return b->o->quick ? 1 : 5;
}

/* ---- W3 in PyTorch, side by side ------------------------------------------------------------
 * tools/bench_w3_torch.py, run by /usr/bin/python3 (Debian's torch lives there, not in a
 * python3 earlier on the PATH). */

static const char TORCH_PYTHON[] = "/usr/bin/python3";

/* The script: tools/bench_w3_torch.py under the current directory, else under the source tree
 * this binary was built from; NULL when neither is readable. */
static const char *find_torch_script(char *buf, size_t size)
{
    const char *rel = "tools/bench_w3_torch.py";
    if (access(rel, R_OK) == 0)
        return rel;
    snprintf(buf, size, "%s/%s", TAPEGRAD_SOURCE_DIR, rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* What the torch runs gave: each run's ms per step (and its parts), and the last run's BLAS
 * and version. */
typedef struct torch_side {
    const char *script;
    const char *unavailable; /* why torch cannot run here, or NULL */
    char why[512];
    double *ms, *fwd, *bwd, *upd; /* one per run */
    double *speedup;              /* each run's ms over the W3 round's just before it */
    int runs;
    char blas[512], version[64];
} torch_side;

/* One torch run of `steps` timed steps at b's thread count; false (t->unavailable says why)
 * when it cannot run. The child inherits this process's CPU affinity (--cpu). */
static bool torch_run(const bench *b, torch_side *t, const w3_arch *a, int steps, int warmup)
{
    char threads[16], nsteps[16], nwarm[16];
    snprintf(threads, sizeof threads, "%d", b->threads);
    snprintf(nsteps, sizeof nsteps, "%d", steps);
    snprintf(nwarm, sizeof nwarm, "%d", warmup);
    /* --quick (batch 8) last: NULL ends the list early at full size */
    const char *argv[] = {TORCH_PYTHON, t->script, "--threads",
                          threads,      "--steps", nsteps,
                          "--warmup",   nwarm,     a->batch < 128 ? "--quick" : NULL,
                          NULL};
    proc_result c;
    const proc_opts how = {.timeout_s = b->o->timeout > 0 ? b->o->timeout : 600};
    if (!proc_run(argv, &how, &c)) {
        snprintf(t->why, sizeof t->why, "cannot run %s: %s", TORCH_PYTHON, strerror(errno));
        t->unavailable = t->why;
        return false;
    }
    json_value v;
    bool ok = c.status == 0 && !c.timed_out && bench_json_line(c.out, "{", &v);
    if (ok) {
        t->ms[t->runs] = json_get_num(&v, "ms_per_step");
        t->fwd[t->runs] = json_get_num(&v, "forward_ms");
        t->bwd[t->runs] = json_get_num(&v, "backward_ms");
        t->upd[t->runs] = json_get_num(&v, "update_ms");
        const char *blas = json_get_str(&v, "blas"), *ver = json_get_str(&v, "torch");
        snprintf(t->blas, sizeof t->blas, "%s", blas ? blas : "unknown");
        snprintf(t->version, sizeof t->version, "%s", ver ? ver : "unknown");
        ok = t->ms[t->runs] > 0;
        t->runs += ok;
        json_free(&v);
    }
    if (!ok) {
        snprintf(t->why, sizeof t->why, "%s %s: %s", TORCH_PYTHON, t->script,
                 c.timed_out     ? "timed out"
                 : c.status != 0 ? bench_child_reason(c.err)
                                 : "no JSON line in its output");
        t->unavailable = t->why;
    }
    proc_result_free(&c);
    return ok;
}

/* Sets t up for `rounds` runs; false when torch cannot run here (t->unavailable says why). */
static bool torch_side_new(torch_side *t, int rounds, char *buf, size_t size)
{
    memset(t, 0, sizeof *t);
    t->ms = calloc(5 * (size_t)rounds, sizeof *t->ms);
    if (!t->ms) {
        t->unavailable = "out of memory";
        return false;
    }
    t->fwd = t->ms + rounds;
    t->bwd = t->ms + 2 * rounds;
    t->upd = t->ms + 3 * rounds;
    t->speedup = t->ms + 4 * rounds;
    if (access(TORCH_PYTHON, X_OK) != 0)
        t->unavailable = "no /usr/bin/python3";
    else if (!(t->script = find_torch_script(buf, size)))
        t->unavailable =
            "tools/bench_w3_torch.py is neither here nor in the source tree " TAPEGRAD_SOURCE_DIR;
    return !t->unavailable;
}

/* The W3 figure's context about torch: its ms per step and parts, and the speedup. */
static void torch_context(figure *f, torch_side *t)
{
    if (t->unavailable || t->runs == 0) {
        bench_ctx_str(f, "torch", t->unavailable ? t->unavailable : "unavailable");
        return;
    }
    double ms = bench_median(t->ms, t->runs);
    bench_ctx_num(f, "torch_ms", ms);
    bench_ctx_num(f, "torch_forward_ms", bench_median(t->fwd, t->runs));
    bench_ctx_num(f, "torch_backward_ms", bench_median(t->bwd, t->runs));
    bench_ctx_num(f, "torch_update_ms", bench_median(t->upd, t->runs));
    /* torch's ms per step over tapegrad's, the median of the rounds' (the bar:
     * >= 1.25) */
    bench_ctx_num(f, "speedup_vs_torch", bench_median(t->speedup, t->runs));
    bench_ctx_str(f, "torch_blas", t->blas);
}

/* W3, and (when torch runs here) alternately with it: `rounds` rounds of W3's timed steps
 * each followed by one torch run of as many, so that both see the same machine. */
void bench_w3(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const size_t es = tg_dtype_size(dt);
    const int reps1 = w3_reps(b);
    char path[4096];
    torch_side torch;
    bool with_torch = torch_side_new(&torch, b->o->quick ? 1 : 3, path, sizeof path);
    if (with_torch && dt != TG_F32) {
        torch.unavailable = "the torch side runs f32 only";
        with_torch = false;
    }
    double own_wall = 0, own_cpu = 0; /* of tapegrad's timed steps, not the children's */
    const int rounds = with_torch ? (b->o->quick ? 1 : 3) : 1, reps = reps1 * rounds;
    w3_times t;
    w3_run r;
    const char *why = w3_times_new(&t, reps) ? w3_init(&r, a, dt, NULL) : "out of memory";
    if (!why && !w3_steps(&r, w3_warmup(b), 0, &t)) {
        why = tg_last_error();
        w3_free(&r);
    }
    for (int k = 0; k < rounds && !why; k++) {
        w3_times part = {t.step + k * reps1,
                         t.fwd + k * reps1,
                         t.bwd + k * reps1,
                         t.fb + k * reps1,
                         t.allreduce + k * reps1,
                         t.upd + k * reps1,
                         NAN};
        double w0 = monotonic_seconds(), c0 = bench_cpu_seconds();
        bool stepped = w3_steps(&r, 0, reps1, &part);
        own_wall += monotonic_seconds() - w0;
        own_cpu += bench_cpu_seconds() - c0;
        if (!stepped) {
            why = tg_last_error();
            w3_free(&r);
            break;
        }
        t.loss = part.loss;
        /* the round's median against torch's run (reordering nothing: each step's parts
         * stay beside it for the figure's split below) */
        double round_ms = bench_median_parts(part.step, NULL, 0, reps1, NULL);
        if (with_torch && (with_torch = torch_run(b, &torch, a, reps1, w3_warmup(b))))
            torch.speedup[torch.runs - 1] = torch.ms[torch.runs - 1] / round_ms;
    }
    if (why) {
        if (t.step)
            w3_times_free(&t);
        free(torch.ms);
        bench_failed(b, "W3", why);
        return;
    }
    /* The memory a step needs at least: parameters, their gradients, the optimizer's state
     * (none for SGD), the data batch, and each layer's pre- and post-activation values with
     * their gradients. The bar is 1.25 times that plus 16 MiB. */
    double need = (double)es * (2.0 * (double)tg_model_numel(r.model) +
                                (double)tg_optim_state_size(r.optim) / (double)es +
                                (double)(a->batch * (a->sizes[0] + 1)));
    for (int l = 1; l <= a->n_layers; l++)
        need += (double)es * 4.0 * (double)(a->batch * a->sizes[l]);
    /* the median step's forward, backward and update (optimizer step, zero grad, reset) */
    const double *const parts[3] = {t.fwd, t.bwd, t.upd};
    double part_ms[3];
    figure f = bench_figure("W3", "ms_per_step", dt, reps);
    f.value = bench_median_parts(t.step, parts, 3, reps, part_ms);
    bench_ctx_num(&f, "forward_ms", part_ms[0]);
    bench_ctx_num(&f, "backward_ms", part_ms[1]);
    bench_ctx_num(&f, "backward_over_forward", part_ms[1] / part_ms[0]);
    bench_ctx_num(&f, "update_ms", part_ms[2]);
    bench_ctx_str(&f, "layers", a->name);
    bench_ctx_num(&f, "batch", (double)a->batch);
    bench_ctx_num(&f, "final_loss", t.loss);
    bench_ctx_num(&f, "memory_bar_mib", 1.25 * need / (1024.0 * 1024.0) + 16.0);
    bench_ctx_cpus(b, &f);
    bench_ctx_kernel(b, &f);
    torch_context(&f, &torch);
    f.cpu_over_wall = own_cpu / own_wall;
    bench_emit(b, &f);
    w3_free(&r);
    w3_times_free(&t);
    free(torch.ms);
}

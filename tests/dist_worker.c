/* dist_worker.c: the program tests/test_dist.c runs under mpirun. Each scenario exercises
 * tapegrad/dist.h on every rank and prints "rank R: ok SCENARIO ..." lines; any failed check
 * prints "rank R: FAIL ..." and exits 1 (mpirun then fails too). It does its checks itself
 * because Criterion's per-test processes cannot host an MPI job.
 *
 *   dist_worker api       every entry point: rank/size, broadcasts, sums, averaging, the
 *                          identical-parameters check and its mismatch message, spec mismatch
 *   dist_worker equiv     N ranks x batch B vs one process x batch N*B, several steps, f32+f64
 *   dist_worker caller    the caller initializes and finalizes MPI itself; a rank out of
 *                          memory in tg_dist_init; a handle freed after MPI_Finalize
 *   dist_worker own       the library initializes MPI and finalizes it on the last free
 *   dist_worker mismatch  ranks passing different sizes, dtypes or calls are refused on every
 *                          rank before data moves (a NULL on one rank too); trainers of
 *                          different settings are refused by tg_dist_check_trainer naming the
 *                          setting and both values; a training step failing on one rank;
 *                          a failure after a step's exchange (the optimizer, the epoch's
 *                          evaluation) on one rank or on both, with a collective on_step,
 *                          and after the run's last exchange: every rank returns, none waits */
#include <tapegrad.h>

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/alloc.h"

static int g_rank = -1;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("rank %d: FAIL ", g_rank);
    vprintf(fmt, ap);
    printf(" (last error: %s)\n", tg_last_error());
    va_end(ap);
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond))                                                                              \
            fail(__VA_ARGS__);                                                                    \
    } while (0)

static tg_model *make_model(tg_dtype dt, uint64_t seed, size_t in, size_t hidden)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2, s.sizes[0] = in, s.sizes[1] = hidden, s.sizes[2] = 1;
    s.act[0] = TG_ACT_TANH, s.act[1] = TG_ACT_IDENTITY, s.dtype = dt;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_model *m = NULL;
    CHECK(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &m) == TG_OK, "model_new");
    return m;
}

static int scenario_api(void)
{
    tg_dist *d = NULL;
    CHECK(tg_dist_available(), "tg_dist_available is false in an MPI build");
    CHECK(tg_dist_init(&d) == TG_OK, "dist_init");
    int rank = tg_dist_rank(d), size = tg_dist_size(d), wr, ws;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    MPI_Comm_size(MPI_COMM_WORLD, &ws);
    g_rank = rank;
    CHECK(rank == wr && size == ws, "rank %d/%d, MPI says %d/%d", rank, size, wr, ws);
    CHECK(size >= 2, "run with at least 2 ranks (got %d)", size);

    /* Broadcast of bytes from rank 0. */
    double stats[3] = {rank + 0.5, -rank * 2.0, 7};
    CHECK(tg_dist_broadcast(d, stats, sizeof stats) == TG_OK, "broadcast");
    CHECK(stats[0] == 0.5 && stats[1] == 0 && stats[2] == 7, "broadcast gave %g %g %g",
          stats[0], stats[1], stats[2]);

    /* Sums. */
    double sums[2] = {1, rank};
    CHECK(tg_dist_allreduce_sum(d, sums, 2) == TG_OK, "allreduce_sum");
    CHECK(sums[0] == size && sums[1] == size * (size - 1) / 2.0, "sums %g %g", sums[0], sums[1]);

    for (int dt = 0; dt < 2; dt++) {
        /* Different seeds per rank: parameters differ until rank 0's are broadcast. */
        tg_model *m = make_model((tg_dtype)dt, 100 + (uint64_t)rank, 5, 7);
        uint64_t h0 = 0;
        tg_status st = tg_dist_check_params(d, m, &h0);
        CHECK(st == TG_ENUMERIC, "differing parameters: status %s", tg_status_name(st));
        CHECK(strstr(tg_last_error(), "rank 1 (0x") != NULL, "mismatch message: %s",
              tg_last_error());
        CHECK(h0 != 0, "hash");
        tg_model *ref = make_model((tg_dtype)dt, 100, 5, 7); /* rank 0's */
        CHECK(tg_dist_broadcast_params(d, m) == TG_OK, "broadcast_params");
        size_t bytes = tg_model_numel(m) * tg_dtype_size((tg_dtype)dt);
        CHECK(memcmp(tg_model_param_data(m), tg_model_param_data(ref), bytes) == 0,
              "broadcast parameters differ from rank 0's");
        uint64_t h1 = 0;
        CHECK(tg_dist_check_params(d, m, &h1) == TG_OK, "check after broadcast");

        /* A change on the last rank only is caught and named, on every rank. */
        if (rank == size - 1)
            tg_tensor_set(tg_model_param(m, 1), 0, 0.125);
        st = tg_dist_check_params(d, m, NULL);
        char want[32];
        snprintf(want, sizeof want, "rank %d (0x", size - 1);
        CHECK(st == TG_ENUMERIC && strstr(tg_last_error(), want) &&
                  strstr(tg_last_error(), "differ from rank 0's"),
              "one rank changed: %s: %s", tg_status_name(st), tg_last_error());
        if (size > 2)
            CHECK(strstr(tg_last_error(), "rank 1 (") == NULL, "names only the changed rank");

        /* Averaging: rank r's gradient is r + i (element i); the mean is (size-1)/2 + i. */
        size_t n = tg_model_numel(m);
        for (size_t i = 0; i < n; i++) {
            if (dt == TG_F64)
                ((double *)tg_model_grad_data(m))[i] = rank + (double)i;
            else
                ((float *)tg_model_grad_data(m))[i] = (float)(rank + (double)i);
        }
        CHECK(tg_dist_allreduce_grads(d, m) == TG_OK, "allreduce_grads");
        for (size_t i = 0; i < n; i++) {
            double g = dt == TG_F64 ? ((double *)tg_model_grad_data(m))[i]
                                    : ((float *)tg_model_grad_data(m))[i];
            double want_g = (size - 1) / 2.0 + (double)i;
            CHECK(fabs(g - want_g) <= 1e-6 * want_g + 1e-12, "grad %zu is %g, expected %g", i,
                  g, want_g);
        }
        tg_model_free(ref);
        tg_model_free(m);
    }

    /* A rank with another architecture: every rank fails, nothing is overwritten. */
    tg_model *m = make_model(TG_F32, 5, rank == 1 ? 4 : 5, 7);
    float before = ((float *)tg_model_param_data(m))[0];
    tg_status st = tg_dist_broadcast_params(d, m);
    CHECK(st == TG_EINVAL, "spec mismatch: %s", tg_status_name(st));
    /* Every rank names both specs (with 3 ranks, rank 2's agrees with rank 0's). */
    CHECK(strstr(tg_last_error(), "rank 1's model (f32 4 -> 7 (tanh) -> 1 (identity)) differs "
                                  "from rank 0's (f32 5 -> 7 (tanh) -> 1 (identity))"),
          "message: %s", tg_last_error());
    CHECK(((float *)tg_model_param_data(m))[0] == before, "parameters untouched");
    tg_model_free(m);

    /* NULL arguments. */
    CHECK(tg_dist_allreduce_grads(d, NULL) == TG_EINVAL, "NULL model");
    CHECK(tg_dist_allreduce_grads(NULL, NULL) == TG_EINVAL, "NULL dist");
    CHECK(tg_dist_rank(NULL) == 0 && tg_dist_size(NULL) == 1, "NULL handle accessors");
    CHECK(!tg_dist_in_step(NULL), "a NULL handle is in step with nothing");
    CHECK(tg_dist_barrier(d) == TG_OK, "barrier");
    tg_dist_free(d);
    tg_dist_free(NULL);
    printf("rank %d: ok api (%d ranks)\n", rank, size);
    return 0;
}

/* Synthetic regression data: y = sin(sum_j w_j x_j) + 0.1 x_0, x ~ U(-1, 1), seeded. */
static void make_data(size_t rows, size_t in, double *x, double *y)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4242);
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        for (size_t j = 0; j < in; j++) {
            x[r * in + j] = 2 * tg_rng_uniform(&rng) - 1;
            s += (0.3 + 0.1 * (double)j) * x[r * in + j];
        }
        y[r] = sin(s) + 0.1 * x[r * in];
    }
}

/* One step on rows [start, start+count) of (x, y): forward, MSE, backward, (allreduce), Adam. */
static void train_step(tg_model *m, tg_optim *o, tg_tape *tape, tg_dist *d, const double *x,
                       const double *y, size_t in, size_t start, size_t count)
{
    tg_dtype dt = tg_model_spec(m)->dtype;
    const size_t xs[2] = {count, in}, ys[2] = {count, 1};
    tg_tensor *xb = tg_tensor_from_f64(dt, 2, xs, x + start * in);
    tg_tensor *yb = tg_tensor_from_f64(dt, 2, ys, y + start);
    tg_model_zero_grad(m);
    tg_tensor *loss = tg_mse(tape, tg_model_forward(tape, m, xb), yb);
    CHECK(loss && tg_backward(tape, loss) == TG_OK, "forward/backward: %s", tg_tape_error(tape));
    if (d)
        CHECK(tg_dist_allreduce_grads(d, m) == TG_OK, "allreduce_grads");
    CHECK(tg_optim_step(o) == TG_OK, "optim_step");
    tg_tape_reset(tape);
    tg_tensor_free(xb);
    tg_tensor_free(yb);
}

static int scenario_equiv(void)
{
    tg_dist *d = NULL;
    CHECK(tg_dist_init(&d) == TG_OK, "dist_init");
    int rank = tg_dist_rank(d), size = tg_dist_size(d);
    g_rank = rank;
    const size_t in = 6, hidden = 16, B = 32, steps = 12;
    const size_t global = B * (size_t)size, rows = global * steps;
    double *x = malloc(rows * in * sizeof *x), *y = malloc(rows * sizeof *y);
    CHECK(x && y, "malloc");
    make_data(rows, in, x, y);
    for (int dt = 0; dt < 2; dt++) {
        /* Distributed: rank r takes rows [r B, (r+1) B) of each global batch. Every rank
         * starts from a different init; the broadcast makes them rank 0's. */
        tg_model *md = make_model((tg_dtype)dt, 7 + (uint64_t)rank, in, hidden);
        tg_model *ms = make_model((tg_dtype)dt, 7, in, hidden);
        CHECK(tg_dist_broadcast_params(d, md) == TG_OK, "broadcast_params");
        tg_optim_options oo = TG_OPTIM_OPTIONS_INIT;
        oo.kind = TG_OPTIM_ADAM;
        oo.lr = 0.01;
        tg_tensor *pd[4], *ps[4];
        for (size_t i = 0; i < 4; i++)
            pd[i] = tg_model_param(md, i), ps[i] = tg_model_param(ms, i);
        tg_optim *od, *os;
        CHECK(tg_optim_new(&oo, pd, 4, &od) == TG_OK && tg_optim_new(&oo, ps, 4, &os) == TG_OK,
              "optim_new");
        tg_tape *tape = tg_tape_new();
        for (size_t s = 0; s < steps; s++) {
            train_step(md, od, tape, d, x, y, in, s * global + (size_t)rank * B, B);
            train_step(ms, os, tape, NULL, x, y, in, s * global, global); /* the reference */
        }
        uint64_t h;
        CHECK(tg_dist_check_params(d, md, &h) == TG_OK, "ranks end identical");
        double maxrel = 0, maxabs = 0, scale = 0;
        for (size_t i = 0; i < 4; i++) {
            tg_tensor *a = pd[i], *b = ps[i];
            for (size_t k = 0; k < tg_tensor_numel(a); k++) {
                double va = tg_tensor_get(a, k), vb = tg_tensor_get(b, k);
                maxabs = fmax(maxabs, fabs(va - vb));
                scale = fmax(scale, fabs(vb));
            }
        }
        /* Relative to the largest parameter: parameters near zero make elementwise relative
         * errors meaningless. */
        maxrel = maxabs / scale;
        /* The steps moved the parameters well beyond the tolerance, so a distributed run that
         * did nothing (or only one rank's half) would fail. */
        double moved = 0;
        tg_model *init = make_model((tg_dtype)dt, 7, in, hidden);
        for (size_t k = 0; k < tg_model_numel(ms); k++) {
            double a = dt ? ((double *)tg_model_param_data(ms))[k]
                          : ((float *)tg_model_param_data(ms))[k];
            double b = dt ? ((double *)tg_model_param_data(init))[k]
                          : ((float *)tg_model_param_data(init))[k];
            moved = fmax(moved, fabs(a - b));
        }
        CHECK(maxrel <= 1e-5, "%s: %d ranks x batch %zu vs 1 x %zu: max relative difference %g",
              tg_dtype_name((tg_dtype)dt), size, B, global, maxrel);
        CHECK(moved / scale > 1e-2, "the parameters barely moved (%g)", moved / scale);
        printf("rank %d: ok equiv %s %d x %zu vs 1 x %zu after %zu steps: max relative "
               "difference %.3g (parameters moved %.3g), hash 0x%016llx\n",
               rank, tg_dtype_name((tg_dtype)dt), size, B, global, steps, maxrel, moved / scale,
               (unsigned long long)h);
        tg_tape_free(tape);
        tg_optim_free(od);
        tg_optim_free(os);
        tg_model_free(md);
        tg_model_free(ms);
        tg_model_free(init);
    }
    free(x);
    free(y);
    tg_dist_free(d);
    return 0;
}

/* Every rank got `want` (TG_EINVAL) with a message containing `msg`. */
static void expect_refused(tg_status st, const char *what, const char *msg)
{
    CHECK(st == TG_EINVAL, "%s: status %s", what, tg_status_name(st));
    CHECK(strstr(tg_last_error(), msg) != NULL, "%s: message '%s', want '%s'", what,
          tg_last_error(), msg);
}

/* Ranks that pass different sizes, dtypes or calls: every rank refuses before any data moves,
 * no buffer is written past (a guard after each), and the job goes on in step afterwards.
 * Then trainers made with different options on some rank are refused by
 * tg_dist_check_trainer, naming the setting and both values. */
/* A trainer's gradient hook on tg_dist: grad NULL when this rank's step failed (train.h). */
static tg_status allreduce_hook(tg_model *m, void *grad, size_t numel, tg_dtype dt, void *ud)
{
    (void)numel, (void)dt;
    return tg_dist_allreduce_grads(ud, grad ? m : NULL);
}

/* A failure on one rank after a step's exchange, where the others go on: when the run has a
 * step after it, the trainer calls the gradient hook once more with no gradient, which pairs
 * with the others' next call (their next step's exchange, or a collective call of their
 * on_step), so they return naming that rank instead of waiting; after the run's last exchange
 * it makes no call, and every rank says in one more (tg_dist_check_params) whether it ended. */
typedef struct fail_after {
    int rank;             /* the failing rank, or -1 for both */
    int epoch;            /* 1-based */
    size_t step;          /* the optimizer refuses the step after this one of that epoch */
    bool nan_eval;        /* a parameter NaN after this step instead: the evaluation fails */
    bool collective_step; /* every rank's on_step makes a collective call of its own */
} fail_after;

/* A run of one case: its hook's and on_step's state. */
typedef struct fail_run {
    fail_after f;
    tg_dist *d;
    bool settled; /* a collective call failed on this rank: every rank has its verdict */
    int told;     /* the hook's calls without a gradient */
} fail_run;

static tg_status settling_hook(tg_model *m, void *grad, size_t numel, tg_dtype dt, void *ud)
{
    (void)numel, (void)dt;
    fail_run *r = ud;
    tg_status st = tg_dist_allreduce_grads(r->d, grad ? m : NULL);
    r->settled |= st != TG_OK;
    r->told += !grad;
    return st;
}

static tg_status fail_on_step(tg_trainer *t, int epoch, size_t batch, void *ud)
{
    fail_run *r = ud;
    const fail_after *f = &r->f;
    if ((f->rank < 0 || f->rank == g_rank) && epoch + 1 == f->epoch && batch == f->step) {
        if (f->nan_eval) /* after this step: this rank alone evaluates a loss that is NaN */
            tg_tensor_set(tg_model_param(tg_trainer_model(t), 0), 0, NAN);
        else /* the next optimizer step, after that step's exchange, is refused */
            tg_optim_set_steps(tg_trainer_optim(t), UINT64_MAX);
    }
    if (f->collective_step) {
        double one = 1;
        tg_status st = tg_dist_allreduce_sum(r->d, &one, 1);
        r->settled |= st != TG_OK;
        return st;
    }
    return TG_OK;
}

static void expect_fail_after(tg_dist *d, const tg_table *table, int epochs, fail_after f,
                              bool told, const char *mine, const char *theirs)
{
    fail_run r = {f, d, false, 0};
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.hidden[0] = 8, o.epochs = epochs, o.batch = 8, o.rank = g_rank, o.world = 2;
    o.grad_hook = settling_hook, o.grad_hook_ud = &r;
    o.on_step = fail_on_step, o.on_step_ud = &r;
    tg_trainer *t = NULL;
    CHECK(tg_trainer_new(table, "c", &o, &t) == TG_OK, "trainer_new: %s", tg_last_error());
    CHECK(tg_dist_check_trainer(d, t) == TG_OK, "check_trainer: %s", tg_last_error());
    tg_status st = tg_trainer_run(t, NULL);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", tg_last_error());
    if (!r.settled) { /* the end of the run: whether every rank got there */
        tg_status cst = tg_dist_check_params(d, st == TG_OK ? tg_trainer_model(t) : NULL, NULL);
        if (st == TG_OK) {
            st = cst;
            snprintf(msg, sizeof msg, "%s", tg_last_error());
        }
    }
    bool failing = f.rank < 0 || f.rank == g_rank;
    const char *want = failing ? mine : theirs;
    CHECK(st != TG_OK && strstr(msg, want), "%s: %s (%s)", want, tg_status_name(st), msg);
    CHECK(r.told == (failing && told), "%s: %d calls without a gradient", want, r.told);
    tg_trainer_free(t);
    CHECK(tg_dist_in_step(d), "%s: a verdict of the exchange", want);
    CHECK(tg_dist_barrier(d) == TG_OK, "%s: in step after it", want);
}

static void fails_alone_after_exchange(tg_dist *d, const tg_table *table)
{
    /* 48 training rows in global batches of 16: 3 steps an epoch */
    const char *refused = "optim_step: the step count is 2^64 - 1";
    const char *at_13 =
        "train: epoch 1, step 3: gradient hook: dist_allreduce_grads: rank 1 failed";
    const char *at_21 =
        "train: epoch 2, step 1: gradient hook: dist_allreduce_grads: rank 1 failed";
    /* mid-epoch, at the epoch's end (the next epoch's first step), in the evaluation */
    expect_fail_after(d, table, 2, (fail_after){1, 1, 1, false, false}, true, refused, at_13);
    expect_fail_after(d, table, 2, (fail_after){1, 1, 2, false, false}, true, refused, at_21);
    expect_fail_after(d, table, 2, (fail_after){1, 1, 3, true, false}, true,
                      "nan after the last step (diverging", at_21);
    /* the call pairs with a collective call of the others' on_step as well */
    expect_fail_after(d, table, 2, (fail_after){1, 1, 1, false, true}, true, refused,
                      "dist_allreduce_sum: rank 1 failed");
    /* after the run's last exchange (the last step; the last evaluation), no call: the others
     * hear of it in the check that follows */
    expect_fail_after(d, table, 1, (fail_after){1, 1, 2, false, false}, false, refused,
                      "dist_check_params: rank 1 failed");
    expect_fail_after(d, table, 1, (fail_after){1, 1, 3, true, false}, false,
                      "nan after the last step (diverging", "dist_check_params: rank 1 failed");
    /* both ranks at once: their two calls pair with each other */
    expect_fail_after(d, table, 2, (fail_after){-1, 1, 1, false, false}, true, refused, refused);
}

static int scenario_mismatch(void)
{
    tg_dist *d = NULL;
    CHECK(tg_dist_init(&d) == TG_OK, "dist_init");
    int rank = tg_dist_rank(d), size = tg_dist_size(d);
    g_rank = rank;
    CHECK(size == 2, "run with 2 ranks (got %d)", size);

    /* Broadcast: rank 1's buffer is shorter than what rank 0 would send. */
    unsigned char buf[32];
    memset(buf, rank ? 0xee : 0x11, sizeof buf);
    expect_refused(tg_dist_broadcast(d, buf, rank ? 16 : 24), "broadcast of 24 vs 16 bytes",
                   "dist_broadcast: ranks disagree on the size: rank 0 has 24 bytes, rank 1 has "
                   "16 bytes (nothing was sent)");
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == (rank ? 0xee : 0x11), "broadcast wrote byte %zu", i);

    /* Sums of different lengths. */
    double sums[4] = {1, 2, 3, 4};
    expect_refused(tg_dist_allreduce_sum(d, sums, rank ? 2 : 3), "allreduce_sum of 3 vs 2",
                   "rank 0 has 3 f64 elements, rank 1 has 2 f64 elements");
    CHECK(sums[0] == 1 && sums[1] == 2 && sums[2] == 3 && sums[3] == 4, "sums changed");

    /* Gradient blocks of another size, and of the same size in another dtype. */
    tg_model *m = make_model(TG_F32, 5, 5, rank ? 3 : 7);
    expect_refused(tg_dist_allreduce_grads(d, m), "allreduce_grads of 50 vs 22",
                   "rank 0 has 50 f32 elements, rank 1 has 22 f32 elements");
    tg_model_free(m);
    m = make_model(rank ? TG_F64 : TG_F32, 5, 5, 7);
    expect_refused(tg_dist_allreduce_grads(d, m), "allreduce_grads f32 vs f64",
                   "rank 0 has 50 f32 elements, rank 1 has 50 f64 elements");
    expect_refused(tg_dist_broadcast_params(d, m), "broadcast_params f32 vs f64",
                   "differs from rank 0's");
    tg_model_free(m);

    /* Ranks out of step: one checks parameters while the other averages gradients. */
    m = make_model(TG_F32, 5, 5, 7);
    tg_status st = rank ? tg_dist_allreduce_grads(d, m) : tg_dist_check_params(d, m, NULL);
    expect_refused(st, "out of step",
                   "the ranks are out of step: rank 0 called dist_check_params, rank 1 called "
                   "dist_allreduce_grads");
    /* A NULL argument on rank 1 alone: it says so, the others name it, and no call pairs with
     * rank 1's next one. */
    for (int call = 0; call < 6; call++) {
        bool null = rank == 1;
        double sum = 1;
        switch (call) {
        case 0: st = tg_dist_allreduce_sum(d, null ? NULL : &sum, 1); break;
        case 1: st = tg_dist_broadcast(d, null ? NULL : &sum, sizeof sum); break;
        case 2: st = tg_dist_allreduce_grads(d, null ? NULL : m); break;
        case 3: st = tg_dist_broadcast_params(d, null ? NULL : m); break;
        case 4: st = tg_dist_check_params(d, null ? NULL : m, NULL); break;
        default: st = tg_dist_check_trainer(d, NULL); break; /* NULL on every rank */
        }
        bool all = call == 5;
        CHECK(st == (null || all ? TG_EINVAL : TG_EIO), "NULL in call %d: %s", call,
              tg_status_name(st));
        CHECK(strstr(tg_last_error(), null || all ? " is NULL" : "rank 1 failed before the "
                                                                   "exchange"),
              "NULL in call %d: message %s", call, tg_last_error());
        CHECK(sum == 1, "call %d changed the data", call);
        CHECK(tg_dist_in_step(d), "call %d: a verdict of the exchange, not an MPI error", call);
    }
    /* And the job is still in step: agreeing calls work. */
    CHECK(tg_dist_allreduce_grads(d, m) == TG_OK, "allreduce_grads after refusals: %s",
          tg_last_error());
    CHECK(tg_dist_barrier(d) == TG_OK, "barrier");
    tg_model_free(m);

    /* Trainers: rank 1 changes one option at a time. */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "a,b,c\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%d,%d,%d\n", i % 7, i % 5, i % 3);
    tg_table *table = NULL;
    CHECK(tg_table_parse_csv(text, n, "t", &table) == TG_OK, "table");
    struct {
        const char *msg;
        void (*change)(tg_train_options *o);
    } cases[] = {
        {"ranks disagree on --layers: rank 0 has 8, rank 1 has 8,4", NULL},
        {"ranks disagree on --dtype: rank 0 has f32, rank 1 has f64", NULL},
        {"ranks disagree on --epochs: rank 0 has 3, rank 1 has 4", NULL},
        {"ranks disagree on --batch: rank 0 has 8, rank 1 has 4", NULL},
        {"ranks disagree on --lr: rank 0 has 0.003, rank 1 has 0.01", NULL},
        {"ranks disagree on --optim: rank 0 has adam, rank 1 has sgd", NULL},
        {"ranks disagree on --seed: rank 0 has 42, rank 1 has 43", NULL},
        {"ranks disagree on the clipping norm: rank 0 has 0, rank 1 has 1", NULL},
        {"ranks disagree on beta1: rank 0 has 0.9, rank 1 has 0.8", NULL},
        {"rank 1's trainer was made as rank 0 of 2", NULL},
    };
    for (size_t c = 0; c <= sizeof cases / sizeof cases[0]; c++) {
        tg_train_options o = TG_TRAIN_OPTIONS_INIT;
        o.hidden[0] = 8, o.epochs = 3, o.batch = 8, o.rank = rank, o.world = size;
        if (rank == 1) {
            switch (c) {
            case 0: o.n_hidden = 2, o.hidden[1] = 4; break;
            case 1: o.dtype = TG_F64; break;
            case 2: o.epochs = 4; break;
            case 3: o.batch = 4; break;
            case 4: o.optim.lr = 0.01; break;
            case 5: o.optim.kind = TG_OPTIM_SGD; break;
            case 6: o.seed = 43; break;
            case 7: o.clip_norm = 1; break;
            case 8: o.optim.beta1 = 0.8; break;
            case 9: o.rank = 0; break;
            default: break; /* the last round agrees */
            }
        }
        tg_trainer *t = NULL;
        CHECK(tg_trainer_new(table, "c", &o, &t) == TG_OK, "trainer_new: %s", tg_last_error());
        st = tg_dist_check_trainer(d, t);
        if (c < sizeof cases / sizeof cases[0])
            expect_refused(st, cases[c].msg, cases[c].msg);
        else
            CHECK(st == TG_OK, "the same options: %s", tg_last_error());
        tg_trainer_free(t);
    }
    /* A step that fails on rank 1 alone (out of memory recording its first batch): its
     * gradient hook is still called, with grad NULL, and joins the exchange with a NULL model,
     * so rank 0 returns naming it instead of waiting for its gradients. */
    {
        tg_train_options o = TG_TRAIN_OPTIONS_INIT;
        o.hidden[0] = 8, o.epochs = 1, o.batch = 8, o.rank = rank, o.world = size;
        o.grad_hook = allreduce_hook, o.grad_hook_ud = d;
        tg_trainer *t = NULL;
        CHECK(tg_trainer_new(table, "c", &o, &t) == TG_OK, "trainer_new: %s", tg_last_error());
        CHECK(tg_dist_check_trainer(d, t) == TG_OK, "check_trainer: %s", tg_last_error());
        if (rank == 1)
            ts_alloc_fail_at(1);
        st = tg_trainer_epoch(t, NULL);
        ts_alloc_fail_at(0);
        CHECK(st == (rank == 1 ? TG_ENOMEM : TG_EIO), "a step failing on rank 1: %s (%s)",
              tg_status_name(st), tg_last_error());
        CHECK(strstr(tg_last_error(), rank == 1 ? "train: epoch 1, step 1: " : "rank 1 failed"),
              "message: %s", tg_last_error());
        tg_trainer_free(t);
        CHECK(tg_dist_in_step(d), "the failed step is every rank's verdict");
        CHECK(tg_dist_barrier(d) == TG_OK, "in step after the failed step");
    }
    fails_alone_after_exchange(d, table);

    /* The same options, another table on rank 1: the statistics name the feature. */
    text[strlen("a,b,c\n")] = '5';
    tg_table *other = NULL;
    CHECK(tg_table_parse_csv(text, n, "t", &other) == TG_OK, "table");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.hidden[0] = 8, o.rank = rank, o.world = size, o.test_split = 0;
    tg_trainer *t = NULL;
    CHECK(tg_trainer_new(rank ? other : table, "c", &o, &t) == TG_OK, "trainer_new");
    expect_refused(tg_dist_check_trainer(d, t), "other data",
                   "ranks disagree on the standardization statistics of feature 1 ('a'): rank 0 "
                   "has mean ");
    tg_trainer_free(t);
    tg_table_free(other);
    tg_table_free(table);
    tg_dist_free(d);
    printf("rank %d: ok mismatch\n", rank);
    return 0;
}

static int scenario_caller(void)
{
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        fail("MPI_Init_thread");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    /* Out of memory on rank 1 alone, at either allocation: no rank waits for it. */
    for (size_t at = 1; at <= 2; at++) {
        tg_dist *d = NULL;
        if (g_rank == 1)
            ts_alloc_fail_at(at);
        tg_status st = tg_dist_init(&d);
        ts_alloc_fail_at(0);
        CHECK(st == (g_rank == 1 ? TG_ENOMEM : TG_EIO) && d == NULL, "init, allocation %zu: %s",
              at, tg_status_name(st));
        CHECK(g_rank == 1 || strstr(tg_last_error(), "rank 1 ran out of memory"), "message: %s",
              tg_last_error());
    }
    tg_dist *a = NULL, *b = NULL;
    CHECK(tg_dist_init(&a) == TG_OK && tg_dist_init(&b) == TG_OK, "two handles");
    CHECK(tg_dist_rank(a) == g_rank, "rank");
    tg_dist_free(a);
    tg_dist_free(b);
    int flag = 1;
    MPI_Finalized(&flag);
    CHECK(!flag, "the library finalized the caller's MPI");
    /* The caller's world communicator still aborts on errors: the library did not touch it. */
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh);
    CHECK(eh == MPI_ERRORS_ARE_FATAL, "the world communicator's error handler changed");
    MPI_Errhandler_free(&eh);
    /* A handle freed after the caller's MPI_Finalize releases its memory and nothing else. */
    CHECK(tg_dist_init(&a) == TG_OK, "a handle to free late");
    MPI_Finalize();
    tg_dist_free(a);
    printf("rank %d: ok caller\n", g_rank);
    return 0;
}

static int scenario_own(void)
{
    tg_dist *a = NULL, *b = NULL;
    CHECK(tg_dist_init(&a) == TG_OK, "dist_init");
    g_rank = tg_dist_rank(a);
    CHECK(tg_dist_init(&b) == TG_OK, "a second handle");
    tg_dist_free(a);
    int flag = 1;
    MPI_Finalized(&flag);
    CHECK(!flag, "finalized while a handle is alive");
    tg_dist_free(b);
    MPI_Finalized(&flag);
    CHECK(flag, "the library started MPI and did not finalize it");
    tg_status st = tg_dist_init(&a);
    CHECK(st == TG_EIO && strstr(tg_last_error(), "already finalized") && a == NULL,
          "init after finalize: %s", tg_status_name(st));
    printf("rank %d: ok own\n", g_rank);
    return 0;
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    int (*run)(void) = strcmp(s, "api") == 0      ? scenario_api
                       : strcmp(s, "equiv") == 0  ? scenario_equiv
                       : strcmp(s, "caller") == 0 ? scenario_caller
                       : strcmp(s, "own") == 0    ? scenario_own
                       : strcmp(s, "mismatch") == 0 ? scenario_mismatch
                                                  : NULL;
    if (!run) {
        fprintf(stderr, "usage: dist_worker api|equiv|caller|own|mismatch\n");
        return 2;
    }
    ts_alloc_install();
    int rc = run();
    CHECK(ts_alloc.live == 0 && ts_alloc.bytes == 0,
          "the library left %lld blocks (%lld bytes) allocated", ts_alloc.live, ts_alloc.bytes);
    ts_alloc_uninstall();
    return rc;
}

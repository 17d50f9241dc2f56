/* cmd_bench.c: `tapegrad bench`, the speed of the library on fixed workloads. Speed is
 * measured here, never by timed unit tests. Every figure is the median of several timed
 * repetitions after an untimed warm-up; with --json each figure is one JSON object per line.
 *
 *   W1    the 2-2-2 sigmoid network of examples/backprop_222.c trained by SGD at batch 1, a
 *         fresh recording every step (record, backward, update, reset): steps per second
 *   W2    y = tanh(y*w + b) for 100,000 iterations on 0-d scalars (300,000 recorded ops),
 *         then backward: nanoseconds per recorded op, forward alone and forward+backward
 *   W3    an MLP 784 -> 512 relu -> 256 relu -> 10 built with the nn API, softmax
 *         cross-entropy at batch 128 on seeded synthetic data, SGD: ms per training step
 *         (record, backward, update, reset), with the forward and backward parts
 *   gemm  GFLOP/s of the internal GEMM at 1024^3 and at every product W3 runs, forward and
 *         both backward forms (dA = dY.B^T, dB = A^T.dY, as the matmul VJP calls them)
 *   W4    `tapegrad train` on the digits data, in a child process of this very binary: test
 *         accuracy and the whole child's wall time
 *   W3dist  W3 at the same global batch on the same cores split into MPI ranks x threads
 *         (2 x 1 against 1 x 2 on two cores, and 1 x 1): ms per step and the share of it the
 *         gradient allreduce takes; ranks run this binary under mpirun */
#include "cli.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/proc.h"
#include "internal.h" /* tg_gemm_f32/f64: the kernel on its own */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif

static const char BENCH_USAGE[] =
    "usage: tapegrad bench [WORKLOAD ...] [options]\n"
    "\n"
    "Times the library on fixed workloads and prints one row per figure, each the median of\n"
    "several timed repetitions after a warm-up.\n"
    "\n"
    "Workloads (default all):\n"
    "  W1     2-2-2 sigmoid network, SGD at batch 1, re-recorded every step: steps/s\n"
    "  W2     y = tanh(y*w + b) on 0-d scalars, 300,000 recorded ops: ns per op\n"
    "  W3     MLP 784-512-256-10 (relu), softmax cross-entropy, batch 128, SGD: ms per step\n"
    "  W3dist W3's global batch of 128 on the same cores split into MPI ranks x threads:\n"
    "         every R x T = --threads (2 x 1 and 1 x 2 for 2), each rank on batch/R rows\n"
    "         with one gradient allreduce per step, and 1 x 1: ms per step and the\n"
    "         allreduce's share of it (more than one rank: runs this program under mpirun)\n"
    "  W4     `tapegrad train DIGITS.csv --target digit`: test accuracy, whole-process time\n"
    "  gemm   GFLOP/s of C = A.B at 1024^3 and at W3's products, forward and backward\n"
    "  all    all of the above\n"
    "\n"
    "Options:\n"
    "  --threads N[,N...]  thread counts to run with (default: TG_NUM_THREADS, else the\n"
    "                      library's default)\n"
    "  --dtype f32|f64     one precision for every workload (default: W1, W2 f64; W3 f32;\n"
    "                      gemm both; W4 whatever train uses)\n"
    "  --reps N            timed repetitions per figure (default 5; W3 times N steps,\n"
    "                      default 100; W4 runs the child N times, default 3)\n"
    "  --quick             tiny sizes and few repetitions: checks that everything runs, the\n"
    "                      figures mean nothing\n"
    "  --data FILE         the digits CSV for W4 (default examples/data/digits.csv here or\n"
    "                      in the source tree)\n"
    "  --mpirun PATH       the MPI launcher for W3dist (default: the one found with MPI when\n"
    "                      tapegrad was built, else mpirun or mpiexec on the PATH)\n"
    "  --timeout SECONDS   stop a child run (W3dist's mpirun, W4's train) that takes longer\n"
    "                      and count it as failed (default: W3dist 120 s + 0.5 s a step, W4\n"
    "                      none)\n"
    "  --mpi               be one rank of W3dist in an MPI job started by the caller, e.g.\n"
    "                      mpirun -np 4 -x TG_NUM_THREADS=8 tapegrad bench W3dist --mpi;\n"
    "                      rank 0 prints the figure\n"
    "  --json              one JSON object per line: workload, metric, value, threads, dtype,\n"
    "                      reps, peak_rss_mib, cpu_over_wall (below 1 per thread: the\n"
    "                      CPU was shared) and the workload's context\n"
    "  -h, --help          show this help\n"
    "\n"
    "A workload that cannot run here (W4 without a train command or without the data, W3dist\n"
    "on more than one rank without MPI or mpirun) says so and the others go on; with --json\n"
    "its line has \"value\": null and \"unavailable\". The threads of a W3dist figure are\n"
    "all its ranks' (ranks x threads_per_rank).\n"
    "\n"
    "Exit status: 0 success; 1 a workload failed; 2 bad usage.\n";

enum { DO_W1 = 1, DO_W2 = 2, DO_W3 = 4, DO_W4 = 8, DO_GEMM = 16, DO_W3DIST = 32, DO_ALL = 63 };
enum { MAX_THREAD_COUNTS = 8 };

typedef struct bench_opts {
    unsigned workloads;
    int threads[MAX_THREAD_COUNTS]; /* each count to run with */
    int n_threads;
    int dtype; /* a tg_dtype, or -1: each workload's own */
    int reps;  /* 0: each workload's default */
    bool quick, json;
    bool mpi;           /* a rank of W3dist under mpirun */
    const char *data;   /* W4's CSV, NULL: look for it */
    const char *mpirun; /* W3dist's launcher, NULL: look for it */
    double timeout;     /* seconds a child run may take, 0: each workload's default */
} bench_opts;

/* What a running benchmark needs to know and collect. */
typedef struct bench {
    const bench_opts *o;
    int threads;        /* the count in effect */
    double wall0, cpu0; /* when the running workload started: wall and process CPU seconds */
    bool header_done;
    bool failed;
} bench;

/* ---- time, medians, memory --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (reorders v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Starts a new peak-RSS window: on Linux, writing 5 to /proc/self/clear_refs resets the
 * high-water mark getrusage reports, so each workload's peak is its own, not the largest so
 * far. Memory the previous workload freed is handed back first (glibc keeps freed heap
 * otherwise). Where the reset is not possible the peak is the process's. */
static void rss_window_start(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* ---- figures: one row of the table or one JSON line --------------------------------------- */

enum { MAX_CONTEXT = 12 };

typedef struct figure {
    const char *workload, *metric, *dtype;
    double value;
    const char *unavailable; /* why the workload cannot run here, or NULL */
    int reps;
    int threads;          /* 0: the count in effect */
    double peak_rss_mib;  /* 0: this process's, read when the figure is emitted */
    double cpu_over_wall; /* 0: this process's since the workload started */
    struct {
        const char *key, *str; /* str NULL: num */
        double num;
    } ctx[MAX_CONTEXT];
    int n_ctx;
} figure;

static figure fig(const char *workload, const char *metric, tg_dtype dtype, int reps)
{
    figure f = {.workload = workload, .metric = metric, .dtype = tg_dtype_name(dtype)};
    f.reps = reps;
    return f;
}

static void ctx_num(figure *f, const char *key, double v)
{
    if (f->n_ctx < MAX_CONTEXT) {
        f->ctx[f->n_ctx].key = key;
        f->ctx[f->n_ctx].str = NULL;
        f->ctx[f->n_ctx++].num = v;
    }
}

static void ctx_str(figure *f, const char *key, const char *s)
{
    if (f->n_ctx < MAX_CONTEXT) {
        f->ctx[f->n_ctx].key = key;
        f->ctx[f->n_ctx++].str = s;
    }
}

/* A number for people: integers above 10^4 in full, others with 4 significant digits. */
static void human_number(char *buf, size_t size, double v)
{
    if (fabs(v) >= 1e4 && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.4g", v);
}

/* The CPU's name from /proc/cpuinfo, for the table's heading ("" when unknown). */
static void cpu_name(char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                snprintf(buf, size, "%s", colon + 1 + (colon[1] == ' '));
                buf[strcspn(buf, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* The line above the table: the version and the machine. */
static void print_heading(const bench_opts *o)
{
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("tapegrad %s bench: %s%s%ld CPUs online%s\n\n", tg_version(), cpu, cpu[0] ? ", " : "",
           sysconf(_SC_NPROCESSORS_ONLN),
           o->quick ? "; --quick: tiny sizes, the figures mean nothing" : "");
}

static void emit(bench *b, figure *f)
{
    double rss = f->peak_rss_mib > 0 ? f->peak_rss_mib : peak_rss_mib();
    /* CPU time over wall time shows how much of the CPU the workload got: about 1 per busy
     * thread on a quiet machine, less when others share it (the figures are then slower). */
    double busy =
        f->cpu_over_wall > 0 ? f->cpu_over_wall : (cpu_seconds() - b->cpu0) / (monotonic_seconds() - b->wall0);
    int threads = f->threads > 0 ? f->threads : b->threads;
    if (b->o->json) {
        printf("{\"workload\": ");
        json_string(stdout, f->workload);
        printf(", \"metric\": ");
        json_string(stdout, f->metric);
        printf(", \"value\": ");
        if (f->unavailable)
            printf("null");
        else
            json_number(stdout, f->value);
        printf(", \"threads\": %d, \"dtype\": ", threads);
        json_string(stdout, f->dtype);
        if (f->unavailable) {
            printf(", \"unavailable\": ");
            json_string(stdout, f->unavailable);
        } else {
            printf(", \"reps\": %d, \"peak_rss_mib\": %.1f, \"cpu_over_wall\": %.2f", f->reps, rss,
                   busy);
        }
        if (b->o->quick)
            printf(", \"quick\": true");
        for (int i = 0; i < f->n_ctx; i++) {
            printf(", ");
            json_string(stdout, f->ctx[i].key);
            printf(": ");
            if (f->ctx[i].str)
                json_string(stdout, f->ctx[i].str);
            else
                json_number(stdout, f->ctx[i].num);
        }
        printf("}\n");
    } else {
        if (!b->header_done)
            printf("%-8s %-26s %12s %7s %5s %6s %9s %8s  %s\n", "workload", "metric", "value",
                   "threads", "dtype", "reps", "peak MiB", "cpu/wall", "context");
        b->header_done = true;
        if (f->unavailable) {
            printf("%-8s %-26s %12s %7d %5s  unavailable: %s\n", f->workload, f->metric, "-",
                   threads, f->dtype, f->unavailable);
        } else {
            char num[32];
            human_number(num, sizeof num, f->value);
            printf("%-8s %-26s %12s %7d %5s %6d %9.1f %8.2f ", f->workload, f->metric, num,
                   threads, f->dtype, f->reps, rss, busy);
            for (int i = 0; i < f->n_ctx; i++) {
                if (f->ctx[i].str)
                    printf(" %s=%s", f->ctx[i].key, f->ctx[i].str);
                else {
                    human_number(num, sizeof num, f->ctx[i].num);
                    printf(" %s=%s", f->ctx[i].key, num);
                }
            }
            printf("\n");
        }
    }
    fflush(stdout);
}

/* A library call failed: says which workload and why; the others still run. */
static void workload_failed(bench *b, const char *workload, const char *why)
{
    complain("bench", "%s: %s", workload, why);
    b->failed = true;
}

static int reps_or(const bench *b, int dflt, int quick)
{
    return b->o->reps > 0 ? b->o->reps : b->o->quick ? quick : dflt;
}

static tg_dtype dtype_or(const bench *b, tg_dtype dflt)
{
    return b->o->dtype >= 0 ? (tg_dtype)b->o->dtype : dflt;
}

/* Plain SGD on a leaf of either dtype, clearing its gradient: W1's update, written out so
 * the step measures the tape, not an optimizer object. */
static void sgd_leaf(tg_tensor *w, double lr)
{
    size_t n = tg_tensor_numel(w);
    if (tg_tensor_dtype(w) == TG_F32) {
        float *v = tg_tensor_data(w), *g = tg_tensor_grad_data(w);
        for (size_t i = 0; i < n; i++) {
            v[i] -= (float)lr * g[i];
            g[i] = 0;
        }
    } else {
        double *v = tg_tensor_data(w), *g = tg_tensor_grad_data(w);
        for (size_t i = 0; i < n; i++) {
            v[i] -= lr * g[i];
            g[i] = 0;
        }
    }
}

/* ---- W1: the 2-2-2 network, batch 1 ------------------------------------------------------- */

typedef struct w1_net {
    tg_tensor *W1, *W2, *x, *t;
} w1_net;

/* One SGD step (record, backward, update, reset); the loss, or NaN on error. */
static double w1_step(tg_tape *tape, w1_net *n, double lr)
{
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, n->x, n->W1));
    tg_tensor *o = tg_sigmoid(tape, tg_matmul(tape, h, n->W2));
    tg_tensor *d = tg_sub(tape, n->t, o);
    tg_tensor *E = tg_scale(tape, tg_sum(tape, tg_square(tape, d), TG_ALL_AXES, false), 0.5);
    if (!E || tg_backward(tape, E) != TG_OK)
        return NAN;
    double loss = tg_tensor_item(E);
    sgd_leaf(n->W1, lr);
    sgd_leaf(n->W2, lr);
    tg_tape_reset(tape);
    return loss;
}

static void w1_free(w1_net *n)
{
    tg_tensor_free(n->W1);
    tg_tensor_free(n->W2);
    tg_tensor_free(n->x);
    tg_tensor_free(n->t);
}

static void bench_w1(bench *b)
{
    /* The worked example's weights, input and targets. */
    const double W1v[4] = {0.3, 0.4, 0.25, 0.35}, W2v[4] = {0.45, 0.7, 0.4, 0.6};
    const double xv[2] = {0.1, 0.2}, tv[2] = {0.4, 0.6};
    const size_t row[2] = {1, 2}, sq[2] = {2, 2};
    const tg_dtype dt = dtype_or(b, TG_F64);
    const int reps = reps_or(b, 5, 2);
    const long steps = b->o->quick ? 2000 : 1000000;
    double *rates = calloc((size_t)reps, sizeof *rates);
    tg_tape *tape = tg_tape_new();
    double loss = 0;
    bool ok = rates && tape;
    for (int r = -1; r < reps && ok; r++) { /* r = -1: the warm-up */
        /* Fresh weights every repetition, so each trains the same path from the start. */
        w1_net n = {tg_tensor_from_f64(dt, 2, sq, W1v), tg_tensor_from_f64(dt, 2, sq, W2v),
                    tg_tensor_from_f64(dt, 2, row, xv), tg_tensor_from_f64(dt, 2, row, tv)};
        ok = n.W1 && n.W2 && n.x && n.t && tg_tensor_set_requires_grad(n.W1, true) == TG_OK &&
             tg_tensor_set_requires_grad(n.W2, true) == TG_OK;
        long count = r < 0 ? steps / 10 : steps;
        double t0 = monotonic_seconds();
        for (long s = 0; s < count && ok; s++)
            ok = !isnan(loss = w1_step(tape, &n, 0.5));
        double dt_s = monotonic_seconds() - t0;
        if (r >= 0)
            rates[r] = (double)count / dt_s;
        w1_free(&n);
    }
    if (ok) {
        figure f = fig("W1", "steps_per_s", dt, reps);
        ctx_num(&f, "steps", (double)steps);
        ctx_num(&f, "final_loss", loss);
        f.value = median(rates, reps);
        emit(b, &f);
    } else {
        workload_failed(b, "W1", tg_last_error());
    }
    tg_tape_free(tape);
    free(rates);
}

/* ---- W2: a long chain of scalar ops -------------------------------------------------------- */

static void bench_w2(bench *b)
{
    const tg_dtype dt = dtype_or(b, TG_F64);
    const int reps = reps_or(b, 5, 2);
    const int iters = b->o->quick ? 1000 : 100000, ops = 3 * iters;
    double *fwd = calloc((size_t)reps, sizeof *fwd), *both = calloc((size_t)reps, sizeof *both);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(dt, 0.5), *w = tg_tensor_scalar(dt, 0.9),
              *bias = tg_tensor_scalar(dt, 0.1);
    bool ok = fwd && both && tape && x && w && bias &&
              tg_tensor_set_requires_grad(x, true) == TG_OK &&
              tg_tensor_set_requires_grad(w, true) == TG_OK &&
              tg_tensor_set_requires_grad(bias, true) == TG_OK;
    double dw = 0;
    for (int r = -1; r < reps && ok; r++) {
        tg_tensor_zero_grad(x);
        tg_tensor_zero_grad(w);
        tg_tensor_zero_grad(bias);
        double t0 = monotonic_seconds();
        tg_tensor *y = x;
        for (int i = 0; i < iters; i++)
            y = tg_tanh(tape, tg_add(tape, tg_mul(tape, y, w), bias));
        double t1 = monotonic_seconds();
        ok = y && tg_backward(tape, y) == TG_OK;
        double t2 = monotonic_seconds();
        dw = tg_tensor_grad_get(w, 0);
        tg_tape_reset(tape);
        if (r >= 0) {
            fwd[r] = (t1 - t0) * 1e9 / ops;
            both[r] = (t2 - t0) * 1e9 / ops;
        }
    }
    if (ok) {
        figure f = fig("W2", "ns_per_op_forward", dt, reps);
        ctx_num(&f, "ops", ops);
        ctx_num(&f, "dy_dw", dw);
        f.value = median(fwd, reps);
        emit(b, &f);
        f.metric = "ns_per_op_forward_backward";
        f.value = median(both, reps);
        emit(b, &f);
    } else {
        workload_failed(b, "W2", tg_last_error());
    }
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(bias);
    tg_tape_free(tape);
    free(fwd);
    free(both);
}

/* ---- W3: an MLP on batches of 128 ---------------------------------------------------------- */

/* W3's architecture; gemm times the products it runs from the same description. */
typedef struct w3_arch {
    size_t batch;
    int n_layers;
    size_t sizes[4]; /* inputs, then each layer's units; every layer but the last is relu */
    const char *name;
} w3_arch;

static const w3_arch W3_FULL = {128, 3, {784, 512, 256, 10}, "784-512-256-10"};
static const w3_arch W3_QUICK = {8, 3, {784, 64, 32, 10}, "784-64-32-10"};

static const w3_arch *w3_arch_of(const bench *b)
{
    return b->o->quick ? &W3_QUICK : &W3_FULL;
}

/* Fills n elements of a dtype buffer from the RNG: normal, or uniform class ids below
 * `classes` when classes > 0. */
static void fill(void *buf, tg_dtype dt, size_t n, tg_rng *rng, size_t classes)
{
    for (size_t i = 0; i < n; i++) {
        double v = classes ? (double)tg_rng_below(rng, classes) : tg_rng_normal(rng);
        if (dt == TG_F32)
            ((float *)buf)[i] = (float)v;
        else
            ((double *)buf)[i] = v;
    }
}

/* A W3 training run, set up: the model (seeded, so every process builds the same one), plain
 * SGD, and this process's rows of the seeded batch: all of them for one process; with dist,
 * rank r's share (rows split as evenly as possible), rank 0's parameters broadcast first. */
typedef struct w3_run {
    const w3_arch *a;
    tg_dtype dt;
    tg_dist *dist; /* NULL: one process */
    size_t rows;   /* this process's rows of the batch */
    double weight; /* of this process's mean loss: rows x ranks / batch (1 for equal shares) */
    tg_model *model;
    tg_optim *optim;
    tg_tape *tape;
    tg_tensor *x, *y;
    void *xbuf, *ybuf;
} w3_run;

/* Milliseconds of each timed step (reps of each; the warm-up steps are not kept) and of its
 * parts: forward, backward, the two together, the gradient allreduce (0 for one process) and
 * the update (optimizer step, zero grad, reset). */
typedef struct w3_times {
    double *step, *fwd, *bwd, *fb, *allreduce, *upd;
    double loss; /* after the last step, on this process's rows (weighted: the ranks' mean is
                  * the whole batch's) */
} w3_times;

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

static void w3_times_free(w3_times *t)
{
    free(t->step); /* the block */
}

static void w3_free(w3_run *r)
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
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = a->n_layers;
    for (int l = 0; l <= a->n_layers; l++)
        spec.sizes[l] = a->sizes[l];
    for (int l = 0; l < a->n_layers; l++)
        spec.act[l] = l + 1 < a->n_layers ? TG_ACT_RELU : TG_ACT_IDENTITY;
    spec.dtype = dt;
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    bool ok = tg_model_new(&spec, TG_INIT_HE_UNIFORM, &rng, &r->model) == TG_OK &&
              (!dist || tg_dist_broadcast_params(dist, r->model) == TG_OK);
    if (ok) {
        /* The data are wrapped caller memory: they need no gradient and get none. */
        fill(r->xbuf, dt, a->batch * a->sizes[0], &rng, 0);
        fill(r->ybuf, dt, a->batch, &rng, classes);
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

static int w3_reps(const bench *b)
{
    return reps_or(b, 100, 3);
}

static int w3_warmup(const bench *b)
{
    return b->o->quick ? 1 : 5;
}

static void bench_w3(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = dtype_or(b, TG_F32);
    const size_t es = tg_dtype_size(dt);
    const int reps = w3_reps(b);
    w3_times t;
    w3_run r;
    const char *why = w3_times_new(&t, reps) ? w3_init(&r, a, dt, NULL) : "out of memory";
    if (!why && !w3_steps(&r, w3_warmup(b), reps, &t)) {
        why = tg_last_error();
        w3_free(&r);
    }
    if (why) {
        workload_failed(b, "W3", why);
        w3_times_free(&t);
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
    double f_ms = median(t.fwd, reps), b_ms = median(t.bwd, reps);
    figure f = fig("W3", "ms_per_step", dt, reps);
    f.value = median(t.step, reps);
    ctx_num(&f, "forward_ms", f_ms);
    ctx_num(&f, "backward_ms", b_ms);
    ctx_num(&f, "backward_over_forward", b_ms / f_ms);
    ctx_num(&f, "update_ms", median(t.upd, reps)); /* optimizer step, zero grad, reset */
    ctx_str(&f, "layers", a->name);
    ctx_num(&f, "batch", (double)a->batch);
    ctx_num(&f, "final_loss", t.loss);
    ctx_num(&f, "memory_bar_mib", 1.25 * need / (1024.0 * 1024.0) + 16.0);
    emit(b, &f);
    w3_free(&r);
    w3_times_free(&t);
}

/* ---- gemm: the kernel alone ---------------------------------------------------------------- */

/* One product as the library calls it: C (M,N) = beta*C + op(A)·op(B), with op(A) (M,K). */
typedef struct gemm_case {
    const char *form; /* "A.B" (forward), "dY.B^T" (dA), "A^T.dY" (dB) */
    bool ta, tb;
    size_t M, N, K;
    int layer; /* W3's layer, or -1 */
} gemm_case;

/* The products W3 runs, in the order a training step runs them. Per layer l (in -> out):
 * forward (batch,in)·(in,out); backward dW = Xᵀ·dY with X stored (batch,in), and dX =
 * dY·Wᵀ with W stored (in,out) — except for layer 0, whose input needs no gradient. */
static int w3_gemm_cases(const w3_arch *a, gemm_case *out)
{
    int n = 0;
    for (int l = 0; l < a->n_layers; l++)
        out[n++] = (gemm_case){"A.B", false, false, a->batch, a->sizes[l + 1], a->sizes[l], l};
    for (int l = a->n_layers - 1; l >= 0; l--) {
        if (l > 0)
            out[n++] =
                (gemm_case){"dY.B^T", false, true, a->batch, a->sizes[l], a->sizes[l + 1], l};
        out[n++] = (gemm_case){"A^T.dY", true, false, a->sizes[l], a->sizes[l + 1], a->batch, l};
    }
    return n;
}

static void gemm_call(tg_dtype dt, const gemm_case *c, const void *A, const void *B, void *C,
                      double beta)
{
    /* Stored shapes: A is (M,K), or (K,M) when transposed; B is (K,N), or (N,K). */
    size_t lda = c->ta ? c->M : c->K, ldb = c->tb ? c->K : c->N;
    if (dt == TG_F32)
        tg_gemm_f32(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, (float)beta, C, c->N);
    else
        tg_gemm_f64(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, beta, C, c->N);
}

/* GFLOP/s of one case: the warm-up call also sizes the batch of calls each timed repetition
 * makes, so that small products are timed over many calls, not one clock tick. */
static bool gemm_case_run(bench *b, tg_dtype dt, const gemm_case *c, int reps, double *rates)
{
    const size_t es = tg_dtype_size(dt);
    void *A = malloc(c->M * c->K * es), *B = malloc(c->K * c->N * es), *C = calloc(c->M * c->N, es);
    if (!A || !B || !C) {
        free(A);
        free(B);
        free(C);
        return false;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    fill(A, dt, c->M * c->K, &rng, 0);
    fill(B, dt, c->K * c->N, &rng, 0);
    /* Backward products accumulate into the gradient (beta = 1), as the VJP does. */
    double beta = strcmp(c->form, "A.B") == 0 ? 0.0 : 1.0;
    double t0 = monotonic_seconds();
    gemm_call(dt, c, A, B, C, beta);
    double once = monotonic_seconds() - t0, target = b->o->quick ? 1e-3 : 0.05;
    long calls = once >= target ? 1 : (long)ceil(target / (once > 1e-9 ? once : 1e-9));
    double flops = 2.0 * (double)c->M * (double)c->N * (double)c->K;
    for (int r = 0; r < reps; r++) {
        t0 = monotonic_seconds();
        for (long i = 0; i < calls; i++)
            gemm_call(dt, c, A, B, C, beta);
        rates[r] = flops * (double)calls / (monotonic_seconds() - t0) / 1e9;
    }
    free(A);
    free(B);
    free(C);
    return true;
}

static void bench_gemm(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const int reps = reps_or(b, 5, 2);
    const size_t big = b->o->quick ? 128 : 1024;
    gemm_case cases[1 + 3 * 4];
    int n = 0;
    cases[n++] = (gemm_case){"A.B", false, false, big, big, big, -1};
    n += w3_gemm_cases(a, cases + n);
    double *rates = calloc((size_t)reps, sizeof *rates);
    if (!rates) {
        workload_failed(b, "gemm", "out of memory");
        return;
    }
    const tg_dtype both[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        if (b->o->dtype >= 0 && both[d] != (tg_dtype)b->o->dtype)
            continue;
        for (int i = 0; i < n; i++) {
            const gemm_case *c = &cases[i];
            if (!gemm_case_run(b, both[d], c, reps, rates)) {
                workload_failed(b, "gemm", "out of memory");
                continue;
            }
            figure f = fig("gemm", "gflops", both[d], reps);
            f.value = median(rates, reps);
            ctx_str(&f, "form", c->form);
            ctx_num(&f, "M", (double)c->M);
            ctx_num(&f, "N", (double)c->N);
            ctx_num(&f, "K", (double)c->K);
            if (c->layer >= 0) {
                ctx_str(&f, "of", "W3");
                ctx_num(&f, "layer", c->layer);
            }
            emit(b, &f);
        }
    }
    free(rates);
}

/* ---- W4: `tapegrad train` on digits, as a child process ------------------------------------ */

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR "."
#endif

static bool readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* The digits CSV: --data, else examples/data/digits.csv under the current directory, else
 * under the source tree this binary was built from. NULL when none is readable. */
static const char *find_digits(const bench *b, char *buf, size_t size)
{
    if (b->o->data)
        return b->o->data;
    const char *rel = "examples/data/digits.csv";
    if (readable(rel))
        return rel;
    snprintf(buf, size, "%s/%s", TAPEGRAD_SOURCE_DIR, rel);
    return readable(buf) ? buf : NULL;
}

/* ---- child processes: W4 and W3dist's runs on more than one rank -------------------------- */

/* The last line of a child's output that starts with `prefix`, parsed as one JSON value (the
 * whole line) into v; false when there is none or it is no JSON. */
static bool last_json_line(const char *out, const char *prefix, json_value *v)
{
    const char *line = NULL;
    for (const char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            line = p;
    char *copy = line ? strndup(line, strcspn(line, "\n")) : NULL;
    bool ok = copy && json_parse_all(copy, v);
    free(copy);
    return ok;
}

/* From train's --json line: the test split's accuracy ("test": {..., "accuracy": A}) and the
 * seconds train reports for itself (NaN when it does not). */
static bool parse_train_json(const char *out, double *accuracy, double *seconds)
{
    json_value v;
    if (!last_json_line(out, "{", &v))
        return false;
    *accuracy = json_get_num(json_get(&v, "test"), "accuracy");
    *seconds = json_get_num(&v, "seconds");
    json_free(&v);
    return !isnan(*accuracy);
}

/* The last line of a child's stderr with something to say, for a one-line message: banner
 * lines of dashes (mpirun frames its messages with them) and empty lines do not count. */
static const char *last_line(char *s)
{
    char *end = s + strlen(s);
    for (;;) {
        while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
            *--end = '\0';
        char *line = end;
        while (line > s && line[-1] != '\n')
            line--;
        if (line == s || strspn(line, "- ") != strlen(line))
            return line;
        end = line;
    }
}

/* Why a child failed, in one line: the last message of a tapegrad command in its stderr
 * ("tapegrad ...", a rank's among mpirun's own lines), else its last line (last_line). */
static const char *child_reason(char *err)
{
    char *found = NULL;
    for (char *p = err; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, "tapegrad ", 9) == 0)
            found = p;
    if (!found)
        return last_line(err);
    found[strcspn(found, "\n")] = '\0';
    return found;
}

static void w4_unavailable(bench *b, tg_dtype dt, const char *why)
{
    figure f = fig("W4", "test_accuracy", dt, 0);
    f.unavailable = why;
    emit(b, &f);
}

static void bench_w4(bench *b)
{
    /* W4 runs whatever precision train uses unless told; the figure says which was asked. */
    const tg_dtype dt = dtype_or(b, TG_F32);
    const int reps = reps_or(b, 3, 1);
    char path_buf[4096];
    const char *data = find_digits(b, path_buf, sizeof path_buf);
    if (b->o->data && !readable(data)) { /* asked for by name: a failure, not a gap */
        char why[4200];
        snprintf(why, sizeof why, "cannot read %s: %s", data, strerror(errno));
        workload_failed(b, "W4", why);
        return;
    }
    if (!data) {
        w4_unavailable(b, dt,
                       "examples/data/digits.csv is neither here nor in the source "
                       "tree " TAPEGRAD_SOURCE_DIR "; give it with --data FILE");
        return;
    }
    char *argv[16];
    int n = 0;
    argv[n++] = "tapegrad";
    argv[n++] = "train";
    argv[n++] = (char *)data;
    argv[n++] = "--target";
    argv[n++] = "digit";
    argv[n++] = "--json";
    if (b->o->dtype >= 0) {
        argv[n++] = "--dtype";
        argv[n++] = (char *)tg_dtype_name(dt);
    }
    if (b->o->quick) {
        argv[n++] = "--epochs";
        argv[n++] = "1";
    }
    argv[n] = NULL;
    /* The child reads its thread count from the environment. */
    char threads[32];
    snprintf(threads, sizeof threads, "TG_NUM_THREADS=%d", b->threads);
    const char *const env[] = {threads, NULL};

    /* wall: each run's; own: the seconds train reports for itself (its epochs) */
    double *wall = calloc(2 * (size_t)reps, sizeof *wall), *own = wall + reps;
    double accuracy = NAN, seconds = NAN, rss = 0;
    double cpu = 0, wall_all = 0; /* over every run, the warm-up included */
    if (!wall) {
        workload_failed(b, "W4", "out of memory");
        return;
    }
    for (int r = -1; r < reps; r++) { /* r = -1: the warm-up (page cache, loader) */
        proc_result c;
        const proc_opts how = {.exe = "/proc/self/exe", .env = env, .timeout_s = b->o->timeout};
        if (!proc_run((const char *const *)argv, &how, &c)) {
            char why[256];
            snprintf(why, sizeof why, "cannot run /proc/self/exe: %s", strerror(errno));
            workload_failed(b, "W4", why);
            free(wall);
            return;
        }
        bool done = true;
        if (c.timed_out) {
            char why[256];
            snprintf(why, sizeof why, "tapegrad train did not finish within %g s and was stopped",
                     b->o->timeout);
            workload_failed(b, "W4", why);
        } else if (c.status == EXIT_USAGE && strstr(c.err, "unknown command 'train'")) {
            w4_unavailable(b, dt, "this tapegrad has no 'train' command");
        } else if (c.status != 0) {
            char why[1024];
            snprintf(why, sizeof why, "tapegrad train exited with status %d: %s", c.status,
                     child_reason(c.err));
            workload_failed(b, "W4", why);
        } else if (!parse_train_json(c.out, &accuracy, &seconds)) {
            workload_failed(b, "W4", "no test accuracy in the output of tapegrad train --json");
        } else {
            done = false;
            if (r >= 0) {
                wall[r] = c.wall_s;
                own[r] = seconds;
            }
            if (c.peak_rss_mib > rss)
                rss = c.peak_rss_mib;
            cpu += c.cpu_s;
            wall_all += c.wall_s;
        }
        proc_result_free(&c);
        if (done) {
            free(wall);
            return;
        }
    }
    figure f = fig("W4", "test_accuracy", dt, reps);
    f.value = accuracy;
    f.peak_rss_mib = rss; /* the children's */
    f.cpu_over_wall = cpu / wall_all;
    ctx_str(&f, "data", data);
    double own_s = median(own, reps);
    if (!isnan(own_s))
        ctx_num(&f, "train_seconds", own_s);
    emit(b, &f);
    f.metric = "wall_s";
    f.value = median(wall, reps);
    emit(b, &f);
    free(wall);
}

/* ---- W3dist: W3 on ranks x threads ------------------------------------------------------------
 * The cores in effect (the thread count) used two ways at an equal global batch: R MPI ranks
 * of T threads each for every R x T = the count (2 x 1 and 1 x 2 on two cores), each rank on
 * its share of W3's batch with one allreduce of the gradient block per step, and 1 x 1 for
 * reference. One-rank configurations run in this process, without MPI; more ranks run this
 * binary under mpirun as `bench W3dist --mpi`, whose rank 0 prints its figure as a JSON line
 * that is read back here. */

/* One configuration's figures: each rank's medians, averaged over the ranks (which wait for
 * each other every step); peak RSS is the largest rank's, CPU over wall the ranks' sum. */
typedef struct w3dist_fig {
    double ms_per_step, peak_rss_mib, cpu_over_wall;
    double ranks, threads_per_rank, allreduce_ms, compute_ms, update_ms, local_batch, final_loss;
} w3dist_fig;

/* The figures' JSON keys, which both print a rank's line and read it back, and how the ranks'
 * values combine. Context keys start at W3DIST_CTX. */
enum w3dist_combine { MEAN, MAX, SUM };
static const struct {
    const char *key;
    size_t off;
    enum w3dist_combine combine;
} W3DIST_KEYS[] = {
    {"value", offsetof(w3dist_fig, ms_per_step), MEAN},
    {"peak_rss_mib", offsetof(w3dist_fig, peak_rss_mib), MAX},
    {"cpu_over_wall", offsetof(w3dist_fig, cpu_over_wall), SUM},
    {"ranks", offsetof(w3dist_fig, ranks), MEAN},
    {"threads_per_rank", offsetof(w3dist_fig, threads_per_rank), MEAN},
    {"allreduce_ms", offsetof(w3dist_fig, allreduce_ms), MEAN},
    {"forward_backward_ms", offsetof(w3dist_fig, compute_ms), MEAN},
    {"update_ms", offsetof(w3dist_fig, update_ms), MEAN},
    {"local_batch", offsetof(w3dist_fig, local_batch), MEAN},
    {"final_loss", offsetof(w3dist_fig, final_loss), MEAN},
};
enum { W3DIST_CTX = 3, W3DIST_N = sizeof W3DIST_KEYS / sizeof *W3DIST_KEYS };

static double *w3dist_field(w3dist_fig *r, size_t k)
{
    return (double *)(void *)((char *)r + W3DIST_KEYS[k].off);
}

/* The parameters of arch a: each layer's weights and biases. */
static double w3_numel(const w3_arch *a)
{
    double n = 0;
    for (int l = 0; l < a->n_layers; l++)
        n += (double)(a->sizes[l] + 1) * (double)a->sizes[l + 1];
    return n;
}

static void w3dist_emit(bench *b, const w3_arch *a, tg_dtype dt, int reps, w3dist_fig *r)
{
    figure f = fig("W3dist", "ms_per_step", dt, reps);
    f.value = r->ms_per_step;
    f.peak_rss_mib = r->peak_rss_mib;
    f.cpu_over_wall = r->cpu_over_wall;
    f.threads = (int)lround(r->ranks * r->threads_per_rank);
    for (size_t k = W3DIST_CTX; k < W3DIST_N; k++) {
        ctx_num(&f, W3DIST_KEYS[k].key, *w3dist_field(r, k));
        if (W3DIST_KEYS[k].off == offsetof(w3dist_fig, allreduce_ms))
            ctx_num(&f, "allreduce_share", r->allreduce_ms / r->ms_per_step);
    }
    ctx_num(&f, "batch", (double)a->batch);
    ctx_str(&f, "layers", a->name);
    /* what one allreduce moves: the gradient block */
    ctx_num(&f, "grad_mib", w3_numel(a) * (double)tg_dtype_size(dt) / (1024.0 * 1024.0));
    emit(b, &f);
}

/* A configuration that cannot run here, and why. */
static void w3dist_unavailable(bench *b, tg_dtype dt, int ranks, int threads, const char *why)
{
    figure f = fig("W3dist", "ms_per_step", dt, 0);
    f.threads = ranks * threads;
    f.unavailable = why;
    ctx_num(&f, "ranks", ranks);
    ctx_num(&f, "threads_per_rank", threads);
    emit(b, &f);
}

/* This process's figures of a finished run; the caller adds RSS, CPU and the layout. */
static void w3dist_summary(const w3_run *run, w3_times *t, int reps, w3dist_fig *r)
{
    r->ms_per_step = median(t->step, reps);
    r->compute_ms = median(t->fb, reps);
    r->allreduce_ms = run->dist ? median(t->allreduce, reps) : 0.0;
    r->update_ms = median(t->upd, reps);
    r->local_batch = (double)run->rows;
    r->final_loss = t->loss;
}

/* 1 x threads, in this process. */
static void w3dist_local(bench *b, const w3_arch *a, tg_dtype dt, int reps, int threads)
{
    if (tg_set_num_threads(threads) != TG_OK) {
        workload_failed(b, "W3dist", tg_last_error());
        return;
    }
    rss_window_start();
    double w0 = monotonic_seconds(), c0 = cpu_seconds();
    w3_times t;
    w3_run run;
    const char *why = w3_times_new(&t, reps) ? w3_init(&run, a, dt, NULL) : "out of memory";
    if (!why && !w3_steps(&run, w3_warmup(b), reps, &t)) {
        why = tg_last_error();
        w3_free(&run);
    }
    if (why) {
        workload_failed(b, "W3dist", why);
    } else {
        w3dist_fig r;
        w3dist_summary(&run, &t, reps, &r);
        r.peak_rss_mib = peak_rss_mib();
        r.cpu_over_wall = (cpu_seconds() - c0) / (monotonic_seconds() - w0);
        r.ranks = 1;
        r.threads_per_rank = threads;
        w3dist_emit(b, a, dt, reps, &r);
        w3_free(&run);
    }
    w3_times_free(&t);
    tg_set_num_threads(b->threads);
}

/* `bench W3dist --mpi`: this process is one rank of an MPI job. Every rank trains on its
 * share of the batch; their figures are summed over the ranks, and rank 0 prints them. */
static void w3dist_rank(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = dtype_or(b, TG_F32);
    const int reps = w3_reps(b);
    tg_dist *dist = NULL;
    if (tg_dist_init(&dist) != TG_OK) {
        workload_failed(b, "W3dist", tg_last_error());
        return;
    }
    const int rank = tg_dist_rank(dist), world = tg_dist_size(dist);
    if (rank == 0 && !b->o->json)
        print_heading(b->o);
    double w0 = monotonic_seconds(), c0 = cpu_seconds();
    w3_times t;
    w3_run run;
    const char *why = w3_times_new(&t, reps) ? w3_init(&run, a, dt, dist) : "out of memory";
    if (!why && !w3_steps(&run, w3_warmup(b), reps, &t)) {
        why = tg_last_error();
        w3_free(&run);
    }
    /* Every rank sees the others' figures in its slots of `all`, zero elsewhere, summed. */
    double *all = why ? NULL : calloc((size_t)world * W3DIST_N, sizeof *all);
    if (!why && !all) {
        w3_free(&run);
        why = "out of memory";
    }
    if (why) {
        char msg[1024];
        snprintf(msg, sizeof msg, "rank %d of %d: %s", rank, world, why);
        workload_failed(b, "W3dist", msg);
        /* the other ranks would wait for this one in their next collective call forever */
        fflush(NULL);
        if (world > 1)
            tg_dist_abort(dist, EXIT_FAIL);
        tg_dist_free(dist);
        w3_times_free(&t);
        return;
    }
    w3dist_fig mine;
    w3dist_summary(&run, &t, reps, &mine);
    mine.peak_rss_mib = peak_rss_mib();
    mine.cpu_over_wall = (cpu_seconds() - c0) / (monotonic_seconds() - w0);
    mine.ranks = world;
    mine.threads_per_rank = b->threads;
    for (size_t k = 0; k < W3DIST_N; k++)
        all[(size_t)rank * W3DIST_N + k] = *w3dist_field(&mine, k);
    /* The figures are of a real data-parallel run only if the ranks still agree. */
    if (tg_dist_check_params(dist, run.model, NULL) != TG_OK ||
        tg_dist_allreduce_sum(dist, all, (size_t)world * W3DIST_N) != TG_OK) {
        workload_failed(b, "W3dist", tg_last_error());
    } else if (rank == 0) {
        w3dist_fig r;
        for (size_t k = 0; k < W3DIST_N; k++) {
            double v = W3DIST_KEYS[k].combine == MAX ? -INFINITY : 0;
            for (int q = 0; q < world; q++) {
                double x = all[(size_t)q * W3DIST_N + k];
                v = W3DIST_KEYS[k].combine == MAX ? fmax(v, x) : v + x;
            }
            *w3dist_field(&r, k) = W3DIST_KEYS[k].combine == MEAN ? v / world : v;
        }
        w3dist_emit(b, a, dt, reps, &r);
    }
    free(all);
    w3_free(&run);
    w3_times_free(&t);
    tg_dist_free(dist);
}

/* `name` as given when it holds a '/', else the first executable of that name on the PATH;
 * NULL when there is none. */
static const char *which(const char *name, char *buf, size_t size)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? name : NULL;
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        int n = snprintf(buf, size, "%.*s/%s", (int)len, path, name);
        if (len && n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
            return buf;
        path += len + (path[len] == ':');
    }
    return NULL;
}

/* The MPI launcher: --mpirun, else the one found with MPI when tapegrad was built, else
 * mpirun or mpiexec on the PATH. NULL when none is there. */
static const char *find_mpirun(const bench *b, char *buf, size_t size)
{
    if (b->o->mpirun)
        return which(b->o->mpirun, buf, size);
#ifdef TAPEGRAD_MPIEXEC
    if (access(TAPEGRAD_MPIEXEC, X_OK) == 0)
        return TAPEGRAD_MPIEXEC;
#endif
    const char *found = which("mpirun", buf, size);
    return found ? found : which("mpiexec", buf, size);
}

/* The figures in a rank 0's JSON line (the last one of W3dist in `out`), which must be of
 * dtype dt and reps steps; false when it is not, or a key is missing or not a finite number. */
static bool w3dist_parse(const char *out, tg_dtype dt, int reps, w3dist_fig *r)
{
    json_value v;
    if (!last_json_line(out, "{\"workload\": \"W3dist\"", &v))
        return false;
    const char *dtype = json_get_str(&v, "dtype");
    bool ok = dtype && strcmp(dtype, tg_dtype_name(dt)) == 0 && json_get_num(&v, "reps") == reps;
    for (size_t k = 0; k < W3DIST_N && ok; k++) {
        double x = json_get_num(&v, W3DIST_KEYS[k].key);
        ok = isfinite(x);
        *w3dist_field(r, k) = x;
    }
    json_free(&v);
    return ok;
}

/* ranks x threads: this binary under mpirun, rank 0's figures read back. */
static void w3dist_mpirun(bench *b, const w3_arch *a, tg_dtype dt, int reps, int ranks,
                          int threads)
{
    char what[64], why[1400];
    snprintf(what, sizeof what, "%d ranks x %d thread%s", ranks, threads, threads > 1 ? "s" : "");
    if (!tg_dist_available()) {
        snprintf(why, sizeof why,
                 "%s: tapegrad was built without MPI (configure with -DTG_MPI=ON)", what);
        w3dist_unavailable(b, dt, ranks, threads, why);
        return;
    }
    char buf[4096], self[4096];
    const char *mpirun = find_mpirun(b, buf, sizeof buf);
    if (!mpirun && b->o->mpirun) { /* asked for by name: a failure, not a gap */
        snprintf(why, sizeof why, "%s: --mpirun %s: no such program", what, b->o->mpirun);
        workload_failed(b, "W3dist", why);
        return;
    }
    if (!mpirun) {
        snprintf(why, sizeof why,
                 "%s: no MPI launcher (mpirun or mpiexec) on the PATH; give one with "
                 "--mpirun PATH",
                 what);
        w3dist_unavailable(b, dt, ranks, threads, why);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1) {
        snprintf(why, sizeof why, "%s: cannot find this program's path: %s", what,
                 n < 0 ? strerror(errno) : "too long");
        workload_failed(b, "W3dist", why);
        return;
    }
    self[n] = '\0';
    char np[16], reps_s[16];
    snprintf(np, sizeof np, "%d", ranks);
    snprintf(reps_s, sizeof reps_s, "%d", reps);
    char *argv[] = {(char *)mpirun, "-np", np, self, "bench", "W3dist", "--mpi", "--json",
                    "--dtype", (char *)tg_dtype_name(dt), "--reps", reps_s,
                    b->o->quick ? "--quick" : NULL, NULL};
    /* Open MPI's settings go by environment, which other MPIs ignore (their command-line
     * spellings differ): ranks may outnumber the cores, are not pinned to one (the one-process
     * runs are not either, and on a shared machine a pinned rank cannot move off a busy
     * core), and may run as root (containers). A setting the caller made stays. */
    char tn[32];
    snprintf(tn, sizeof tn, "TG_NUM_THREADS=%d", threads);
    const char *env[8] = {tn};
    int e = 1;
    if (!getenv("OMPI_MCA_rmaps_base_oversubscribe"))
        env[e++] = "OMPI_MCA_rmaps_base_oversubscribe=1";
    if (!getenv("OMPI_MCA_hwloc_base_binding_policy"))
        env[e++] = "OMPI_MCA_hwloc_base_binding_policy=none";
    if (geteuid() == 0) {
        env[e++] = "OMPI_ALLOW_RUN_AS_ROOT=1";
        env[e++] = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    }
    env[e] = NULL;
    /* Starting MPI takes a second or two; a step of W3 takes milliseconds. */
    double timeout = b->o->timeout > 0 ? b->o->timeout : 120.0 + 0.5 * (w3_warmup(b) + reps);
    proc_result c;
    const proc_opts how = {.env = env, .timeout_s = timeout};
    if (!proc_run((const char *const *)argv, &how, &c)) {
        snprintf(why, sizeof why, "%s: cannot run %s: %s", what, mpirun, strerror(errno));
        workload_failed(b, "W3dist", why);
    } else if (c.timed_out) {
        snprintf(why, sizeof why, "%s: %s did not finish within %g s and was stopped", what,
                 mpirun, timeout);
        workload_failed(b, "W3dist", why);
    } else if (c.status != 0) {
        const char *said = child_reason(c.err);
        snprintf(why, sizeof why, "%s: %s exited with status %d%s%s", what, mpirun, c.status,
                 said[0] ? ": " : "", said);
        workload_failed(b, "W3dist", why);
    } else {
        w3dist_fig r;
        if (!w3dist_parse(c.out, dt, reps, &r)) {
            snprintf(why, sizeof why,
                     "%s: no figures of %s at %d steps from rank 0 in the output of %s", what,
                     tg_dtype_name(dt), reps, mpirun);
            workload_failed(b, "W3dist", why);
        } else if (lround(r.ranks) != ranks) {
            /* each process a job of its own: a launcher of another MPI than tapegrad's */
            snprintf(why, sizeof why,
                     "%s: %s started jobs of %g rank%s, not one of %d: is it the launcher of "
                     "the MPI tapegrad was built with?",
                     what, mpirun, r.ranks, r.ranks == 1 ? "" : "s", ranks);
            workload_failed(b, "W3dist", why);
        } else {
            w3dist_emit(b, a, dt, reps, &r);
        }
    }
    proc_result_free(&c);
}

static void bench_w3dist(bench *b)
{
    if (b->o->mpi) {
        w3dist_rank(b);
        return;
    }
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = dtype_or(b, TG_F32);
    const int reps = w3_reps(b), cores = b->threads;
    for (int ranks = cores; ranks >= 1; ranks--) {
        if (cores % ranks != 0)
            continue;
        if ((size_t)ranks > a->batch) {
            char why[128];
            snprintf(why, sizeof why, "%d ranks: more ranks than the batch has rows (%zu)", ranks,
                     a->batch);
            w3dist_unavailable(b, dt, ranks, cores / ranks, why);
        } else if (ranks > 1) {
            w3dist_mpirun(b, a, dt, reps, ranks, cores / ranks);
        } else {
            w3dist_local(b, a, dt, reps, cores);
        }
    }
    /* 1 x 1 for reference, once: with the first count above 1, unless 1 was asked for */
    int first_above_1 = 0;
    bool one = false;
    for (int i = 0; i < b->o->n_threads; i++) {
        one = one || b->o->threads[i] == 1;
        if (!first_above_1 && b->o->threads[i] > 1)
            first_above_1 = b->o->threads[i];
    }
    if (cores == first_above_1 && !one)
        w3dist_local(b, a, dt, reps, 1);
}

/* ---- the command --------------------------------------------------------------------------- */

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* "1", "1,2": each count from 1 to 1024, at most MAX_THREAD_COUNTS of them. */
static bool parse_threads(const char *s, bench_opts *o)
{
    o->n_threads = 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        char tok[16];
        if (len == 0 || len >= sizeof tok || o->n_threads == MAX_THREAD_COUNTS)
            return false;
        memcpy(tok, s, len);
        tok[len] = '\0';
        if (!parse_int(tok, 1, 1024, &o->threads[o->n_threads++]))
            return false;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

static int bench_parse_args(int argc, char **argv, bench_opts *o)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"W1", DO_W1},     {"W2", DO_W2},     {"W3", DO_W3},  {"W3dist", DO_W3DIST},
                 {"W4", DO_W4},     {"gemm", DO_GEMM}, {"all", DO_ALL}};
    o->dtype = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(BENCH_USAGE, stdout);
            return -1;
        }
        if (a[0] != '-') {
            size_t k = 0;
            while (k < sizeof names / sizeof *names && strcasecmp(a, names[k].name) != 0)
                k++;
            if (k == sizeof names / sizeof *names)
                return usage_error("bench",
                                   "unknown workload '%s' (W1, W2, W3, W3dist, W4, gemm or all)",
                                   a);
            o->workloads |= names[k].bit;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--quick") == 0) {
            o->quick = true;
            continue;
        }
        if (strcmp(a, "--mpi") == 0) {
            o->mpi = true;
            continue;
        }
        static const char *const with_value[] = {"--threads", "--dtype",  "--reps",
                                                 "--data",    "--mpirun", "--timeout"};
        const char *opt = NULL;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !opt; k++)
            if (match_option(a, with_value[k], &v))
                opt = with_value[k];
        if (!opt)
            return usage_error("bench", "unknown option '%s'", a);
        if (!v) {
            if (i + 1 >= argc)
                return usage_error("bench", "option '%s' needs a value", opt);
            v = argv[++i];
        }
        if (strcmp(opt, "--threads") == 0) {
            if (!parse_threads(v, o))
                return usage_error("bench",
                                   "--threads takes counts from 1 to 1024, at most %d separated "
                                   "by commas, not '%s'",
                                   MAX_THREAD_COUNTS, v);
        } else if (strcmp(opt, "--dtype") == 0) {
            if (strcmp(v, "f32") == 0)
                o->dtype = TG_F32;
            else if (strcmp(v, "f64") == 0)
                o->dtype = TG_F64;
            else
                return usage_error("bench", "--dtype must be f32 or f64, not '%s'", v);
        } else if (strcmp(opt, "--reps") == 0) {
            if (!parse_int(v, 1, 1000000, &o->reps))
                return usage_error("bench",
                                   "--reps must be a whole number from 1 to 1000000, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(opt, "--timeout") == 0) {
            char *end;
            errno = 0;
            o->timeout = strtod(v, &end);
            if (end == v || *end || errno || !(o->timeout > 0 && o->timeout <= 1e6))
                return usage_error("bench",
                                   "--timeout must be a number of seconds above 0 (at most "
                                   "1000000), not '%s'",
                                   v);
        } else if (strcmp(opt, "--mpirun") == 0) {
            o->mpirun = v;
        } else {
            o->data = v;
        }
    }
    if (!o->workloads)
        o->workloads = DO_ALL;
    /* A rank joins one MPI job, once: MPI cannot start again in a process that finished it. */
    if (o->mpi && o->workloads != DO_W3DIST)
        return usage_error("bench", "--mpi runs one rank of W3dist; name W3dist and no other "
                                    "workload");
    if (o->mpi && o->n_threads > 1)
        return usage_error("bench", "--mpi takes one thread count (each rank's), not %d",
                           o->n_threads);
    if (o->n_threads == 0) {
        o->threads[0] = tg_get_num_threads();
        o->n_threads = 1;
    }
    return EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {0};
    int st = bench_parse_args(argc, argv, &o);
    if (st != EXIT_OK)
        return st < 0 ? EXIT_OK : st;
    if (!o.json && !o.mpi) /* a rank prints it when it knows it is rank 0 */
        print_heading(&o);
    static const struct {
        unsigned bit;
        void (*run)(bench *b);
    } order[] = {{DO_W1, bench_w1},
                 {DO_W2, bench_w2},
                 {DO_W3, bench_w3},
                 {DO_W3DIST, bench_w3dist},
                 {DO_GEMM, bench_gemm},
                 {DO_W4, bench_w4}};
    bench b = {.o = &o};
    for (size_t w = 0; w < sizeof order / sizeof *order; w++) {
        if (!(o.workloads & order[w].bit))
            continue;
        for (int t = 0; t < o.n_threads; t++) {
            b.threads = o.threads[t];
            if (tg_set_num_threads(b.threads) != TG_OK) {
                workload_failed(&b, "threads", tg_last_error());
                continue;
            }
            rss_window_start();
            b.wall0 = monotonic_seconds();
            b.cpu0 = cpu_seconds();
            order[w].run(&b);
        }
    }
    return b.failed ? EXIT_FAIL : EXIT_OK;
}

/* bench.h: what the files of `tapegrad bench` share: the options and the state of a run
 * (cmd_bench.c parses and drives), figures and their output (bench_output.c), the workloads
 * (bench_tape.c, bench_w3.c, bench_gemm.c, bench_w3dist.c, bench_w4.c, bench_w3jvp.c,
 * bench_ops.c), the
 * hand-written references of W1 and W2 (bench_hand.c), W3's training step, which W3dist runs
 * too, and the child processes (bench_proc.c). Private to tools/. */
#ifndef TAPEGRAD_TOOLS_BENCH_H
#define TAPEGRAD_TOOLS_BENCH_H

#include "cli.h"
#include "common/json.h"
#include "common/proc.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- options and the state of a run ---------------------------------------------------------- */

enum {
    DO_W1 = 1,
    DO_W2 = 2,
    DO_W3 = 4,
    DO_W4 = 8,
    DO_GEMM = 16,
    DO_W3DIST = 32,
    DO_W1REPLAY = 64,
    DO_W3JVP = 128,   /* bench_w3jvp.c */
    DO_TARGETS = 256, /* W1, W2, W3 and gemm, then the targets they meet (bench_targets.c) */
    DO_OPS = 512,     /* bench_ops.c */
    DO_ALL = 255 | DO_OPS
};
enum { MAX_THREAD_COUNTS = 8, MAX_CPUS = 256 };

typedef struct bench_opts {
    unsigned workloads;
    int threads[MAX_THREAD_COUNTS]; /* each count to run with */
    int n_threads;
    int dtype; /* a tg_dtype, or -1: each workload's own */
    int reps;  /* 0: each workload's default */
    bool quick, json;
    bool mpi;               /* a rank of W3dist under mpirun */
    const char *data;       /* W4's CSV, NULL: look for it */
    const char *mpirun;     /* W3dist's launcher, NULL: look for it */
    double timeout;         /* seconds a child run may take, 0: each workload's default */
    const char *cpus;       /* --cpu: the CPUs the process is pinned to ("0,1"), NULL: not pinned */
    int cpu_list[MAX_CPUS]; /* --cpu's CPUs in the order given (ranges ascending), once each */
    int n_cpus;
    const char *kernel; /* --kernel: the packed GEMM kernel large products take, NULL: the CPU's */
} bench_opts;

/* What a running benchmark needs to know and collect. */
typedef struct bench {
    const bench_opts *o;
    int threads;        /* the count in effect */
    const char *cpus;   /* the CPUs the process is pinned to now, NULL: not pinned */
    double wall0, cpu0; /* when the running workload started: wall and process CPU seconds */
    double core_ns;     /* the round trip between the run's first two CPUs (cmd_bench.c,
                         * bench_core_round_trip_ns), measured before a workload of more
                         * than one thread; NaN otherwise */
    bool header_done;
    bool failed;
    struct figure *seen; /* with targets: a copy of every figure emitted, for bench_targets */
    int n_seen, cap_seen;
} bench;

/* Timed repetitions: --reps, else the workload's default, or its --quick one. */
static inline int bench_reps(const bench *b, int dflt, int quick)
{
    return b->o->reps > 0 ? b->o->reps : b->o->quick ? quick : dflt;
}

/* The precision: --dtype, else the workload's own. */
static inline tg_dtype bench_dtype(const bench *b, tg_dtype dflt)
{
    return b->o->dtype >= 0 ? (tg_dtype)b->o->dtype : dflt;
}

/* ---- the workloads: each emits its figures, or says why it failed (bench_failed) ------------- */

void bench_w1(bench *b);       /* bench_tape.c */
void bench_w1replay(bench *b); /* bench_tape.c */
void bench_w2(bench *b);       /* bench_tape.c */
void bench_w3(bench *b);       /* bench_w3.c */
void bench_gemm(bench *b);     /* bench_gemm.c */
void bench_w3dist(bench *b);   /* bench_w3dist.c */
void bench_w4(bench *b);       /* bench_w4.c */
void bench_w3jvp(bench *b);    /* bench_w3jvp.c */
void bench_ops(bench *b);      /* bench_ops.c */
/* After the workloads of `targets`: each target of the performance issue as a figure of
 * workload "target", from the figures the run emitted (bench_targets.c). */
void bench_targets(bench *b);

/* ---- the hand-written references of W1 and W2 (bench_hand.c) -------------------------------- */

/* W1 by hand: `steps` SGD steps from the given weights, input, targets and learning rate in
 * dtype dt; the loss of the last step. */
double bench_hand_w1(tg_dtype dt, const double W1[4], const double W2[4], const double x[2],
                     const double t[2], double lr, long steps);
/* W2 by hand: the chain of n tanh(y w + b) from y = x and its backward, in dtype dt; the
 * seconds of the forward and of both into t_fwd and t_both, and d y_n / d w into dw. False
 * when out of memory. */
bool bench_hand_w2(tg_dtype dt, double x, double w, double b, int n, double *t_fwd, double *t_both,
                   double *dw);

/* ---- statistics and measurements (bench_output.c) -------------------------------------------- */

/* The median of v[0..n) (reorders v). */
double bench_median(double *v, int n);
/* The median of total[0..n), reordering nothing, and into part_median[p] the share of it spent
 * in part[p] (each part[p][i] a piece of repetition i's total): the median split in the
 * proportions the middle half of the repetitions (ranked by total) spent in each part. Parts
 * that add up to at most each total add up to at most the median, which the parts' own medians
 * do not promise on a noisy machine. NaN throughout when out of memory. */
double bench_median_parts(const double *total, const double *const *part, int n_parts, int n,
                          double *part_median);
/* Starts a new peak-RSS window, so that the next workload's peak is its own. */
void bench_rss_window_start(void);
/* This process's CPU time, and its peak RSS in MiB (since the window started). */
double bench_cpu_seconds(void);
double bench_peak_rss_mib(void);

/* ---- figures: one row of the table or one JSON line (bench_output.c) ------------------------- */

enum { MAX_CONTEXT = 20 };

/* A figure. workload, metric, dtype and the context's keys are string literals; the context's
 * string values are borrowed, gone once the workload that emitted it returns. */
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

figure bench_figure(const char *workload, const char *metric, tg_dtype dtype, int reps);
/* Context after the figure's own fields: a number or a string (borrowed). */
void bench_ctx_num(figure *f, const char *key, double v);
void bench_ctx_str(figure *f, const char *key, const char *s);
/* The context number `key` of f, or NaN when it has none (or it is a string). */
double bench_ctx_num_of(const figure *f, const char *key);
/* Prints f: a table row (the header before the first), or a JSON line with --json. A figure
 * of more than one thread that ran gets b->core_ns as core_round_trip_ns, when there is one. */
void bench_emit(bench *b, figure *f);
/* The CPUs the run is pinned to in f's context ("cpus"), when it is. */
static inline void bench_ctx_cpus(const bench *b, figure *f)
{
    if (b->cpus)
        bench_ctx_str(f, "cpus", b->cpus);
}
/* The kernel of --kernel in f's context ("gemm_kernel"), when one was chosen. */
static inline void bench_ctx_kernel(const bench *b, figure *f)
{
    if (b->o->kernel)
        bench_ctx_str(f, "gemm_kernel", b->o->kernel);
}
/* The lines above the table: the version and the machine; with core_ns (not NaN), the round
 * trip between CPUs cpu_a and cpu_b (bench_core_round_trip_ns). */
void bench_heading(const bench_opts *o, int cpu_a, int cpu_b, double core_ns);
/* One core's FMA peak in GFLOP/s for dtype, with the GEMM kernel's instruction set (the best
 * of a few short runs of independent FMA chains; measured once a run, on the calling
 * thread's core; --quick: shorter). 0 when it cannot be measured. */
double bench_fma_peak(tg_dtype dtype, bool quick);
/* The time a cache line takes from CPU cpu_a to CPU cpu_b and back, in ns: two threads, one
 * pinned to each, pass a counter to and fro (the median of 5 batches; --quick: fewer rounds).
 * What any hand-off between threads on the two costs at the least. NaN when a thread cannot
 * be started on them, or the exchange stalls for seconds (bench_cores.c). */
double bench_core_round_trip_ns(int cpu_a, int cpu_b, bool quick);
/* A workload failed: says which and why; the others still run (exit status 1 at the end). */
void bench_failed(bench *b, const char *workload, const char *why);

/* ---- W3's model and training step, which W3dist runs too (bench_w3.c) ------------------------ */

/* W3's architecture; gemm times the products it runs from the same description. */
typedef struct w3_arch {
    size_t batch;
    int n_layers;
    size_t sizes[4]; /* inputs, then each layer's units; every layer but the last is relu */
    const char *name;
} w3_arch;

/* The full architecture, or the small one of --quick. */
const w3_arch *w3_arch_of(const bench *b);
/* The MLP of that architecture in dtype dt: relu after every layer but the last. */
tg_mlp_spec w3_spec(const w3_arch *a, tg_dtype dt);

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

/* Sets up a run of arch a in dtype dt (with dist, this rank's part of a distributed one:
 * collective) and times it: `warmup` untimed steps, then `reps` timed ones into t. NULL, or
 * why not (then r and t hold nothing to free). Otherwise w3_free and w3_times_free them. */
const char *w3_measure(w3_run *r, w3_times *t, const w3_arch *a, tg_dtype dt, tg_dist *dist,
                       int warmup, int reps);
void w3_free(w3_run *r);
void w3_times_free(w3_times *t);
/* W3's timed steps and untimed warm-up steps. */
int w3_reps(const bench *b);
int w3_warmup(const bench *b);

/* Fills n elements of a dtype buffer from the RNG: normal, or uniform class ids below
 * `classes` when classes > 0. */
void bench_fill(void *buf, tg_dtype dt, size_t n, tg_rng *rng, size_t classes);

/* ---- child processes: W4's train and W3dist's MPI jobs (bench_proc.c) ------------------------ */

/* The last line of a child's output that starts with `prefix`, parsed as one JSON value (the
 * whole line) into v; false when there is none or it is no JSON. */
bool bench_json_line(const char *out, const char *prefix, json_value *v);

/* Why a child failed, in one line: the last message of a tapegrad command in its stderr
 * ("tapegrad ...", a rank's among mpirun's own lines), else its last line with something to
 * say. Points into err, which it may cut. */
const char *bench_child_reason(char *err);

/* The MPI launcher: --mpirun, else the one found with MPI when tapegrad was built, else
 * mpirun or mpiexec on the PATH. NULL when none is there. */
const char *bench_find_mpirun(const bench *b, char *buf, size_t size);

/* Runs this program as `ranks` MPI ranks of `threads` threads each: `mpirun -np RANKS SELF
 * ARGS...` (args NULL-terminated), stopped after timeout_s seconds. True when it ran (r then
 * says how; proc_result_free it); false when it could not, with the reason after `what` in
 * why. */
bool bench_run_mpi(const char *mpirun, int ranks, int threads, const char *const *args,
                   double timeout_s, proc_result *r, const char *what, char *why, size_t size);

#endif

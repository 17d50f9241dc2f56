/* test_dist_train.c: `tapegrad train --distributed` under mpirun (2 ranks on this machine, as
 * root when need be; registered only when MPI is found): 2 ranks x batch 32 train like one
 * process x batch 64; distributed digits reaches the single-process accuracy bar with rank 0
 * alone printing; ranks that read different data or were given different settings stop with an
 * error naming what differs, not a hang or a crash; so do a run that diverges (in a step, or
 * after the last exchange), one whose files rank 0 cannot write and one where a rank cannot
 * read its data, without MPI_Abort; --dot records all the rows of a data set smaller than a
 * batch; a run killed with SIGKILL mid-way and resumed from its checkpoint ends where an
 * uninterrupted run does. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/proc.h"

/* ---- reading what the runs leave ----------------------------------------------------------- */

/* The JSON object a --json run printed: the one line of its log that starts with '{'. */
static tj json_in(const char *log)
{
    const char *line = NULL;
    for (const char *p = log; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '{') {
            cr_assert_null(line, "more than one JSON object:\n%s", log);
            line = p;
        }
    cr_assert_not_null(line, "no JSON object:\n%s", log);
    char *one = strndup(line, strcspn(line, "\n"));
    cr_assert_not_null(one);
    tj v = tj_object(one);
    free(one);
    return v;
}

static tg_model *load_model(const char *path)
{
    tg_model *m = NULL;
    cr_assert_eq(tg_model_load(path, &m), TG_OK, "%s", tg_last_error());
    return m;
}

/* The largest parameter difference relative to the largest parameter. */
static double max_rel_diff(tg_model *a, tg_model *b)
{
    cr_assert_eq(tg_model_numel(a), tg_model_numel(b));
    double diff = 0, scale = 0;
    for (size_t i = 0; i < tg_model_param_count(a); i++) {
        tg_tensor *x = tg_model_param(a, i), *y = tg_model_param(b, i);
        for (size_t k = 0; k < tg_tensor_numel(x); k++) {
            diff = fmax(diff, fabs(tg_tensor_get(x, k) - tg_tensor_get(y, k)));
            scale = fmax(scale, fabs(tg_tensor_get(y, k)));
        }
    }
    return diff / scale;
}

/* ---- the command lines ------------------------------------------------------------------------- */

static char tapegrad[4096], mpiexec[4096], digits[4096], tmpdir[64];

static void setup(void)
{
    const char *tools = tp_env("TG_TOOLS_DIR"), *src = tp_env("TG_SOURCE_DIR"),
               *mpi = tp_env("TG_MPIEXEC");
    snprintf(tapegrad, sizeof tapegrad, "%s/tapegrad", tools);
    snprintf(mpiexec, sizeof mpiexec, "%s", mpi);
    snprintf(digits, sizeof digits, "%s/examples/data/digits.csv", src);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg_dist_train_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(dist_train, .init = setup, .fini = teardown, .timeout = 280);

/* A path in the test's directory; valid until 8 more calls. */
static char *path_in(const char *name)
{
    static char paths[8][160];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
    return p;
}

/* mpirun -np 2 tapegrad train DATA --target digit ARGS... (args NULL-terminated), one thread
 * per rank (the machine has two cores), LeakSanitizer off in sanitizer builds (Open MPI's own
 * leaks; the library's allocations are counted by test_dist's worker). */
#define MPI_TRAIN(data, ...)                                                                       \
    (const char *const[])                                                                          \
    {                                                                                              \
        mpiexec, "--allow-run-as-root", "--oversubscribe", "-x", "TG_NUM_THREADS=1", "-x",         \
            "ASAN_OPTIONS=detect_leaks=0", "-np", "2",                                             \
            tapegrad, "train", data, "--target", "digit", __VA_ARGS__, NULL                        \
    }
#define TRAIN(data, ...)                                                                           \
    (const char *const[])                                                                          \
    {                                                                                              \
        tapegrad, "train", data, "--target", "digit", __VA_ARGS__, NULL                            \
    }

Test(dist_train, two_ranks_of_32_match_one_process_of_64)
{
    char *a = tp_run_log(MPI_TRAIN(digits, "--batch", "32", "--epochs", "2", "--distributed",
                                   "--json", "--save", path_in("d.tgm")),
                         path_in("d.log"), 0);
    char *b = tp_run_log(
        TRAIN(digits, "--batch", "64", "--epochs", "2", "--json", "--save", path_in("s.tgm")),
        path_in("s.log"), 0);
    tg_model *md = load_model(path_in("d.tgm")), *ms = load_model(path_in("s.tgm"));
    double rel = max_rel_diff(md, ms);
    cr_log_info("2 ranks x 32 vs 1 x 64, 2 epochs (46 steps): max relative difference %.3g", rel);
    cr_assert_leq(rel, 1e-5, "2 x 32 vs 1 x 64: max relative parameter difference %g", rel);
    /* And the models did train: far from a fresh one. */
    tj v = json_in(a);
    cr_assert_gt(tj_num_of(tj_get(&v, "train"), "accuracy"), 0.5, "%s", a);
    cr_assert_eq(tj_num_of(&v, "ranks"), 2);
    tj_free(&v);
    free(a);
    free(b);
    tg_model_free(md);
    tg_model_free(ms);
}

Test(dist_train, digits_reaches_the_bar_and_only_rank_0_prints)
{
    char *out =
        tp_run_log(MPI_TRAIN(digits, "--batch", "16", "--distributed"), path_in("t.log"), 0);
    /* The text report appears once: rank 1 printed nothing. */
    const char *first = strstr(out, "test:  loss");
    cr_assert_not_null(first, "%s", out);
    ts_assert_lacks(first + 1, "test:  loss"); /* not printed twice */
    ts_assert_has(out, "ranks: 2, global batch 32; parameters identical on every "
                       "rank");
    char *json = tp_run_log(MPI_TRAIN(digits, "--batch", "16", "--distributed", "--json"),
                            path_in("j.log"), 0);
    tj v = json_in(json); /* one object: rank 1 printed none */
    const char *task = strstr(json, "\"task\"");
    cr_assert(task && !strstr(task + 1, "\"task\""), "one JSON object: %s", json);
    double acc = tj_num_of(tj_get(&v, "train"), "accuracy");
    double test_acc = tj_num_of(tj_get(&v, "test"), "accuracy");
    cr_log_info("distributed digits (2 x 16): test accuracy %.4f", test_acc);
    cr_assert_geq(test_acc, 0.97, "the single-process bar is 97%%: %s", json);
    cr_assert_geq(acc, test_acc - 0.05);
    tj_free(&v);
    free(out);
    free(json);
}

/* --dot on a run with fewer training rows than a batch: the recorded step takes them all (11,
 * where each rank trained on its share of 5 or 6), as it does on one process. */
Test(dist_train, the_graph_of_fewer_rows_than_a_batch)
{
    char *text = tp_slurp(digits), *end = text;
    for (int line = 0; line < 12; line++)
        end = strchr(end, '\n') + 1;
    FILE *f = fopen(path_in("tiny.csv"), "w");
    cr_assert_not_null(f);
    fwrite(text, 1, (size_t)(end - text), f);
    fclose(f);
    free(text);
    char *out = tp_run_log(MPI_TRAIN(path_in("tiny.csv"), "--epochs", "2", "--test-split", "0",
                                     "--distributed", "--dot", path_in("g.dot")),
                           path_in("g.log"), 0);
    char *dot = tp_slurp(path_in("g.dot"));
    ts_assert_has(dot, "<B>x</B><BR/>l0 leaf, constant<BR/>[11,64] f32");
    free(dot);
    free(out);
}

/* A NULL-terminated list of arguments. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Appends the NULL-terminated args to argv[*n..], of room for `cap` with its NULL. */
static void append(const char **argv, int *n, int cap, const char *const args[])
{
    for (; *args; args++) {
        cr_assert_lt(*n, cap - 1, "too many arguments");
        argv[(*n)++] = *args;
    }
    argv[*n] = NULL;
}

/* mpirun under timeout(1), so that a regression to a hang fails instead of blocking, one
 * thread a rank: `tapegrad train ARGS... --distributed` on two ranks with rank0's ARGS
 * (NULL-terminated), or with rank1 not NULL on rank 0 with rank0's and on rank 1 with rank1's
 * (an MPMD launch: each rank its own command line). Its wait status; its output in `log`. -x
 * in each app context: in a sanitizer build LeakSanitizer would otherwise report Open MPI's
 * own leaks. */
static int mpi_train(const char *const rank0[], const char *const rank1[], const char *log)
{
    enum { CAP = 64 };
    const char *argv[CAP];
    int n = 0;
    append(argv, &n, CAP,
           ARGS("timeout", "-k", "5", "60", mpiexec, "--allow-run-as-root", "--oversubscribe"));
    for (int r = 0; r < (rank1 ? 2 : 1); r++) {
        if (r == 1)
            append(argv, &n, CAP, ARGS(":")); /* the next app context */
        append(argv, &n, CAP,
               ARGS("-x", "TG_NUM_THREADS=1", "-x", "ASAN_OPTIONS=detect_leaks=0", "-np",
                    rank1 ? "1" : "2", tapegrad, "train"));
        append(argv, &n, CAP, r ? rank1 : rank0);
        append(argv, &n, CAP, ARGS("--distributed"));
    }
    return tp_finish(tp_start(argv, log));
}

/* The output in `log` of a job (wait status st) that every rank ended with exit 1, each
 * printing `want` (unless NULL), and none through MPI_Abort (whose banner names MPI_ABORT);
 * `what` names the case in a failure. The caller frees it. */
static char *expect_every_rank_stopped(int st, const char *log, const char *what, const char *want)
{
    char *out = tp_slurp(log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status 0x%x:\n%s", what, st, out);
    if (want) {
        const char *first = strstr(out, want);
        cr_assert_not_null(first, "%s: want '%s':\n%s", what, want, out);
        cr_assert_not_null(strstr(first + 1, want), "%s: said by one rank only:\n%s", what, out);
    }
    ts_assert_lacks(out, "MPI_ABORT");
    return out;
}

Test(dist_train, ranks_with_different_data_stop_with_an_error)
{
    /* rank 1 reads a copy of digits.csv with one pixel changed: an MPMD launch. */
    char *text = tp_slurp(digits);
    char *row = strchr(text, '\n') + 1;
    *row = *row == '0' ? '1' : '0';
    FILE *f = fopen(path_in("other.csv"), "w");
    fputs(text, f);
    fclose(f);
    free(text);
    int st = mpi_train(ARGS(digits, "--target", "digit"),
                       ARGS(path_in("other.csv"), "--target", "digit"), path_in("m.log"));
    char *out = tp_slurp(path_in("m.log"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status 0x%x:\n%s", st, out);
    if (!strstr(out, "ranks disagree on the data: rank 0's rows hash to"))
        ts_assert_has(out, "ranks disagree on the standardization statistics of feature 1 "
                           "('pixel_0_0'): rank 0 has mean");
    free(out);
}

/* Rank 0 with `a va`, rank 1 with `b vb`, each after `DIGITS --target digit --epochs 2`: every
 * rank must stop with exit 1 and print `want`, before any training. */
static void expect_disagreement(const char *a, const char *va, const char *b, const char *vb,
                                const char *want)
{
    int st = mpi_train(ARGS(digits, "--target", "digit", "--epochs", "2", a, va),
                       ARGS(digits, "--target", "digit", "--epochs", "2", b, vb), path_in("x.log"));
    char what[160];
    snprintf(what, sizeof what, "%s %s vs %s %s", a, va, b, vb);
    char *out = expect_every_rank_stopped(st, path_in("x.log"), what, want);
    ts_assert_lacks(out, "epoch 1/");
    free(out);
}

Test(dist_train, ranks_with_different_settings_stop_with_an_error_naming_it)
{
    expect_disagreement("--layers", "64", "--layers", "32",
                        "ranks disagree on --layers: rank 0 has 64, rank 1 has 32");
    expect_disagreement("--dtype", "f32", "--dtype", "f64",
                        "ranks disagree on --dtype: rank 0 has f32, rank 1 has f64");
    /* --epochs 2 comes first on both command lines; the later one wins. */
    expect_disagreement("--epochs", "3", "--epochs", "4",
                        "ranks disagree on --epochs: rank 0 has 3, rank 1 has 4");
    expect_disagreement("--batch", "32", "--batch", "16",
                        "ranks disagree on --batch: rank 0 has 32, rank 1 has 16");
    expect_disagreement("--lr", "0.01", "--lr", "0.02",
                        "ranks disagree on --lr: rank 0 has 0.01, rank 1 has 0.02");
    expect_disagreement("--optim", "adam", "--optim", "adamw",
                        "ranks disagree on --optim: rank 0 has adam, rank 1 has adamw");
    expect_disagreement("--seed", "1", "--seed", "2",
                        "ranks disagree on --seed: rank 0 has 1, rank 1 has 2");
    expect_disagreement("--act", "relu", "--act", "tanh",
                        "ranks disagree on --act: rank 0 has relu, rank 1 has tanh");
    expect_disagreement("--weight-decay", "0", "--weight-decay", "0.01",
                        "ranks disagree on --weight-decay: rank 0 has 0, rank 1 has 0.01");
    expect_disagreement("--test-split", "0.2", "--test-split", "0.1",
                        "ranks disagree on --test-split: rank 0 has 0.2, rank 1 has 0.1");
    expect_disagreement("--task", "classify", "--task", "regress",
                        "ranks disagree on --task: rank 0 has classify, rank 1 has regress");
}

/* A run that diverges (plain SGD at lr 1e20: the second step's loss is not finite on each
 * rank's shard) fails that step on every rank at its gradient exchange: each rank says why and
 * exits 1, and the job ends normally, not through MPI_Abort (whose banner names MPI_ABORT), under
 * timeout(1) so that a rank left waiting fails the test instead of hanging it. */
Test(dist_train, a_diverging_run_stops_every_rank_without_abort)
{
    int st = mpi_train(
        ARGS(digits, "--target", "digit", "--optim", "sgd", "--lr", "1e20", "--batch", "64"), NULL,
        path_in("n.log"));
    /* nan, or inf on another machine */
    free(expect_every_rank_stopped(st, path_in("n.log"), "lr 1e20",
                                   "epoch 1, step 2: the loss is "));
}

/* A run whose update at an epoch's last step diverges (plain SGD at lr 1e20, one step an
 * epoch: its loss is finite, the forward after it overflows) fails every rank's evaluation of
 * the epoch, after the step's exchange: with another epoch to go the ranks tell one another at the next
 * exchange; after the last one, at the comparison of the parameters. Either way each says why
 * and exits 1, without MPI_Abort. */
Test(dist_train, a_run_diverging_in_an_epochs_last_update_stops_without_abort)
{
    for (int epochs = 1; epochs <= 2; epochs++) {
        char e[8], what[32];
        snprintf(e, sizeof e, "%d", epochs);
        snprintf(what, sizeof what, "%d epochs", epochs);
        int st = mpi_train(ARGS(digits, "--target", "digit", "--optim", "sgd", "--lr", "1e20",
                                "--batch", "1000", "--epochs", e),
                           NULL, path_in("l.log"));
        free(expect_every_rank_stopped(st, path_in("l.log"), what,
                                       "epoch 1: the loss on the training split is "));
    }
}

/* The log of an MPMD job that must end with exit 1 on every rank, without MPI_Abort and
 * before any training: `tapegrad train` with rank0's arguments on rank 0 and rank1's on rank 1
 * (each says something else). */
static char *expect_unready(const char *const rank0[], const char *const rank1[])
{
    int st = mpi_train(rank0, rank1, path_in("u.log"));
    char *out = expect_every_rank_stopped(st, path_in("u.log"), "unready", NULL);
    ts_assert_lacks(out, "epoch 1/");
    return out;
}

/* A rank that cannot make its trainer (a CSV it cannot read, a target its CSV lacks) stops
 * every rank at the comparison of their settings: it says why, the other names it. */
Test(dist_train, a_rank_without_its_data_stops_every_rank_without_abort)
{
    char *out = expect_unready(ARGS(digits, "--target", "digit"),
                               ARGS(path_in("absent.csv"), "--target", "digit"));
    ts_assert_has(out, "absent.csv: cannot open");
    ts_assert_has(out, "rank 1 failed before the exchange");
    free(out);
    out = expect_unready(ARGS(digits, "--target", "nope"), ARGS(digits, "--target", "digit"));
    ts_assert_has(out, "no column 'nope'");
    ts_assert_has(out, "rank 0 failed before the exchange");
    free(out);
}

/* Rank 0 alone cannot write: a --checkpoint in a directory that does not exist (known before
 * training), and one whose directory is moved away after the first checkpoint (every step
 * writes one): every rank stops with exit 1, rank 0 naming the file, the other saying why it
 * stopped, and none calls MPI_Abort. */
Test(dist_train, a_checkpoint_rank_0_cannot_write_stops_every_rank_without_abort)
{
    char *out = tp_run_log(MPI_TRAIN(digits, "--distributed", "--epochs", "1", "--checkpoint",
                                     path_in("missing/run.tgc")),
                           path_in("m.log"), 1);
    ts_assert_has(out, "--checkpoint: cannot write");
    ts_assert_has(out, "stopped: rank 0 cannot write the files it was given");
    ts_assert_lacks(out, "MPI_ABORT");
    free(out);

    char dir[160], gone[160], ckpt[200];
    snprintf(dir, sizeof dir, "%s", path_in("ck"));
    snprintf(gone, sizeof gone, "%s", path_in("ck.gone"));
    snprintf(ckpt, sizeof ckpt, "%s/run.tgc", dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    pid_t pid = tp_start(MPI_TRAIN(digits, "--distributed", "--epochs", "30", "--checkpoint", ckpt,
                                   "--checkpoint-every", "1"),
                         path_in("w.log"));
    int st = 0;
    while (access(ckpt, F_OK) != 0) {
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0,
                     "the run ended (status 0x%x) before its "
                     "first checkpoint",
                     st);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    cr_assert_eq(rename(dir, gone), 0);
    st = tp_finish(pid);
    out = tp_slurp(path_in("w.log"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x:\n%s", st, out);
    ts_assert_has(out, "stopped: rank 0 could not write the checkpoint");
    ts_assert_has(out, "checkpoint_save: ");
    ts_assert_lacks(out, "MPI_ABORT");
    free(out);
}

/* A distributed run killed mid-way (every process, SIGKILL) and resumed ends like one that
 * never stopped: within float tolerance (the allreduce may sum in another order elsewhere). */
Test(dist_train, resume_after_kill)
{
    char *ref = tp_run_log(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                     "--json", "--save", path_in("ref.tgm")),
                           path_in("ref.log"), 0);
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s", path_in("run.tgc"));
    pid_t pid = tp_start(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                   "--json", "--checkpoint", ckpt, "--checkpoint-every", "20",
                                   "--save", path_in("killed.tgm")),
                         path_in("k.log"));
    uint64_t step = tp_kill_after_checkpoint(pid, ckpt, 200); /* of 540 */
    cr_assert_eq(access(path_in("killed.tgm"), F_OK), -1, "the killed run did not finish");
    char *res =
        tp_run_log(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed", "--json",
                             "--resume", ckpt, "--checkpoint", ckpt, "--save", path_in("res.tgm")),
                   path_in("res.log"), 0);
    tg_model *a = load_model(path_in("ref.tgm")), *b = load_model(path_in("res.tgm"));
    double rel = max_rel_diff(a, b);
    cr_log_info("killed after step %llu, resumed: max relative difference %.3g",
                (unsigned long long)step, rel);
    cr_assert_leq(rel, 1e-5, "resumed after step %llu: max relative difference %g",
                  (unsigned long long)step, rel);
    /* The final checkpoint is the end of the run. */
    tg_model *m;
    tg_optim *o;
    tg_checkpoint_progress p;
    cr_assert_eq(tg_checkpoint_load(ckpt, &m, &o, &p), TG_OK, "%s", tg_last_error());
    cr_assert_eq(p.step, 540);
    cr_assert_eq(p.world_size, 2);
    tg_optim_free(o);
    tg_model_free(m);
    /* A checkpoint of 2 ranks does not resume on 1. */
    char *one = tp_run_log(TRAIN(digits, "--batch", "16", "--epochs", "12", "--resume", ckpt),
                           path_in("one.log"), 1);
    ts_assert_has(one, "the checkpoint's run differs on the number of ranks: it has 2, this run "
                       "has 1");
    free(one);
    /* Nor with another seed or batch: every rank stops with rank 0's reason, no hang. */
    char *seed = tp_run_log(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                      "--seed", "7", "--resume", ckpt),
                            path_in("seed.log"), 1);
    ts_assert_has(seed, "the checkpoint's run differs on --seed: it has 42, this run has 7");
    free(seed);
    char *batch = tp_run_log(MPI_TRAIN(digits, "--batch", "8", "--epochs", "12", "--distributed",
                                       "--resume", ckpt),
                             path_in("batch.log"), 1);
    ts_assert_has(batch, "the checkpoint's run differs on --batch: it has 16, this run has 8");
    free(batch);
    free(ref);
    free(res);
    tg_model_free(a);
    tg_model_free(b);
}

/* test_dist_train.c: `tapegrad train --distributed` under mpirun (2 ranks on this machine, as
 * root when need be; registered only when MPI is found): 2 ranks x batch 32 train like one
 * process x batch 64; distributed digits reaches the single-process accuracy bar with rank 0
 * alone printing; ranks that read different data stop with an error, not a hang; a run killed
 * with SIGKILL mid-way and resumed from its checkpoint ends where an uninterrupted run does. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
    const char *argv[] = {mpiexec, "--allow-run-as-root", "--oversubscribe", "-x",
                          "ASAN_OPTIONS=detect_leaks=0", "-np", "1", tapegrad,
                          "train", digits, "--target", "digit", "--distributed", ":", "-np", "1",
                          tapegrad, "train", path_in("other.csv"), "--target", "digit",
                          "--distributed", NULL};
    int st = tp_finish(tp_start(argv, path_in("m.log")));
    char *out = tp_slurp(path_in("m.log"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status 0x%x:\n%s", st, out);
    ts_assert_has(out, "standardization statistics differ from rank 0's");
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
    ts_assert_has(one, "was written by a run on 2 ranks, this one has 1");
    free(one);
    free(ref);
    free(res);
    tg_model_free(a);
    tg_model_free(b);
}

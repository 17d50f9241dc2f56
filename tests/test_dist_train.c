/* test_dist_train.c: `tapegrad train --distributed` under mpirun (2 ranks on this machine, as
 * root when need be; registered only when MPI is found): 2 ranks x batch 32 train like one
 * process x batch 64; distributed digits reaches the single-process accuracy bar with rank 0
 * alone printing; ranks that read different data stop with an error, not a hang; a run killed
 * with SIGKILL mid-way and resumed from its checkpoint ends where an uninterrupted run does. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- running tapegrad train as a subprocess ---------------------------------------------------- */

/* Starts argv (NULL-terminated; argv[0] a path) in its own process group, stdout and stderr to
 * `log`; returns its pid. */
static pid_t start(const char *const *argv, const char *log)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid); /* either side may win the race; both ask for the same */
    return pid;
}

/* Waits for pid; returns its wait status. */
static int finish(pid_t pid)
{
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs to the end; fails the test (with the log) unless it exits with `want`. Returns the log
 * (caller frees). */
static char *run_ok(const char *const *argv, const char *log, int want)
{
    int st = finish(start(argv, log));
    char *out = slurp_file(log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == want, "%s exited with status 0x%x (wanted %d):\n%s",
              argv[0], st, want, out);
    return out;
}

/* A number after "key": in JSON text. */
static double json_field(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    cr_assert_not_null(p, "%s not in %s", key, json);
    return strtod(p + strlen(k), NULL);
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

/* SIGKILL to pid's children (mpirun's ranks, each in its own process group) and to pid. */
static void kill_tree(pid_t pid)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *close_paren = strrchr(buf, ')');
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == pid)
            kill((pid_t)atoi(e->d_name), SIGKILL);
    }
    closedir(d);
    cr_assert_eq(kill(pid, SIGKILL), 0, "kill: %s", strerror(errno));
}

/* Polls `ckpt` until it holds a checkpoint of at least `min_step` steps (every read must find
 * a valid checkpoint once the file exists: saves are atomic), then kills the process group
 * with SIGKILL. Returns the step count of the last checkpoint read. */
static uint64_t kill_after(pid_t pid, const char *ckpt, uint64_t min_step)
{
    uint64_t step = 0;
    for (int tries = 0; tries < 600000; tries++) {
        int st;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the run ended (status 0x%x) before step %llu",
                     st, (unsigned long long)min_step);
        if (access(ckpt, F_OK) == 0) {
            tg_model *m;
            tg_optim *o;
            tg_checkpoint_progress p;
            cr_assert_eq(tg_checkpoint_load(ckpt, &m, &o, &p), TG_OK, "a checkpoint read during "
                         "the run: %s", tg_last_error());
            step = p.step;
            tg_optim_free(o);
            tg_model_free(m);
            if (step >= min_step)
                break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    cr_assert_geq(step, min_step, "no checkpoint of step %llu came", (unsigned long long)min_step);
    kill_tree(pid);
    int st = finish(pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the run was killed (status 0x%x)", st);
    return step;
}

/* ---- the command lines ------------------------------------------------------------------------- */

static char tapegrad[4096], mpiexec[4096], digits[4096], tmpdir[64];

static void setup(void)
{
    const char *tools = getenv("TG_TOOLS_DIR"), *src = getenv("TG_SOURCE_DIR"),
               *mpi = getenv("TG_MPIEXEC");
    cr_assert(tools && src && mpi, "TG_TOOLS_DIR, TG_SOURCE_DIR and TG_MPIEXEC are set by CTest");
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
    char *a = run_ok(MPI_TRAIN(digits, "--batch", "32", "--epochs", "2", "--distributed",
                               "--json", "--save", path_in("d.tgm")),
                     path_in("d.log"), 0);
    char *b = run_ok(TRAIN(digits, "--batch", "64", "--epochs", "2", "--json", "--save",
                           path_in("s.tgm")),
                     path_in("s.log"), 0);
    tg_model *md = load_model(path_in("d.tgm")), *ms = load_model(path_in("s.tgm"));
    double rel = max_rel_diff(md, ms);
    cr_log_info("2 ranks x 32 vs 1 x 64, 2 epochs (46 steps): max relative difference %.3g", rel);
    cr_assert_leq(rel, 1e-5, "2 x 32 vs 1 x 64: max relative parameter difference %g", rel);
    /* And the models did train: far from a fresh one. */
    cr_assert_gt(json_field(a, "accuracy"), 0.5, "%s", a);
    cr_assert_eq(json_field(a, "ranks"), 2);
    free(a);
    free(b);
    tg_model_free(md);
    tg_model_free(ms);
}

Test(dist_train, digits_reaches_the_bar_and_only_rank_0_prints)
{
    char *out = run_ok(MPI_TRAIN(digits, "--batch", "16", "--distributed"), path_in("t.log"), 0);
    /* The text report appears once: rank 1 printed nothing. */
    const char *first = strstr(out, "test:  loss");
    cr_assert_not_null(first, "%s", out);
    cr_assert_null(strstr(first + 1, "test:  loss"), "printed twice:\n%s", out);
    cr_assert_not_null(strstr(out, "ranks: 2, global batch 32; parameters identical on every "
                                   "rank"),
                       "%s", out);
    char *json = run_ok(MPI_TRAIN(digits, "--batch", "16", "--distributed", "--json"),
                        path_in("j.log"), 0);
    double acc = json_field(json, "accuracy"); /* train's */
    const char *test = strstr(json, "\"test\": ");
    cr_assert_not_null(test);
    double test_acc = json_field(test, "accuracy");
    cr_log_info("distributed digits (2 x 16): test accuracy %.4f", test_acc);
    cr_assert_geq(test_acc, 0.97, "the single-process bar is 97%%: %s", json);
    cr_assert_geq(acc, test_acc - 0.05);
    cr_assert_null(strstr(strchr(json, '}') + 1, "\"task\""), "one JSON object: %s", json);
    free(out);
    free(json);
}

Test(dist_train, ranks_with_different_data_stop_with_an_error)
{
    /* rank 1 reads a copy of digits.csv with one pixel changed: an MPMD launch. */
    char *text = slurp_file(digits);
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
    int st = finish(start(argv, path_in("m.log")));
    char *out = slurp_file(path_in("m.log"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status 0x%x:\n%s", st, out);
    cr_assert_not_null(strstr(out, "standardization statistics differ from rank 0's"), "%s", out);
    free(out);
}

/* A distributed run killed mid-way (every process, SIGKILL) and resumed ends like one that
 * never stopped: within float tolerance (the allreduce may sum in another order elsewhere). */
Test(dist_train, resume_after_kill)
{
    char *ref = run_ok(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                 "--json", "--save", path_in("ref.tgm")),
                       path_in("ref.log"), 0);
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s", path_in("run.tgc"));
    pid_t pid = start(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                "--json", "--checkpoint", ckpt, "--checkpoint-every", "20",
                                "--save", path_in("killed.tgm")),
                      path_in("k.log"));
    uint64_t step = kill_after(pid, ckpt, 200); /* of 540 */
    cr_assert_eq(access(path_in("killed.tgm"), F_OK), -1, "the killed run did not finish");
    char *res = run_ok(MPI_TRAIN(digits, "--batch", "16", "--epochs", "12", "--distributed",
                                 "--json", "--resume", ckpt, "--checkpoint", ckpt, "--save",
                                 path_in("res.tgm")),
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
    char *one = run_ok(TRAIN(digits, "--batch", "16", "--epochs", "12", "--resume", ckpt),
                       path_in("one.log"), 1);
    cr_assert_not_null(strstr(one, "was written by a run on 2 ranks, this one has 1"), "%s", one);
    free(one);
    free(ref);
    free(res);
    tg_model_free(a);
    tg_model_free(b);
}

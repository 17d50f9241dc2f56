/* proc.c: see proc.h. The children are started and waited for by tools/common/proc.c; this
 * file adds the assertions, the sanitizer check and what only the tests need (killing a
 * process tree, polling a checkpoint). */
#include "proc.h"

#include "common/file.h"

#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tp_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set (run through ctest)", name);
    return v;
}

char *tp_slurp(const char *path)
{
    char *text = read_file(path, NULL);
    cr_assert_not_null(text, "%s: %s", path, strerror(errno));
    return text;
}

/* Under the sanitizers a child's own reports land in its output: they fail the test. */
static void expect_no_sanitizer_report(const char *const *argv, const char *text)
{
    cr_assert(!strstr(text, "Sanitizer") && !strstr(text, "runtime error:"),
              "%s tripped a sanitizer:\n%s", argv[0], text);
}

int tp_finish(pid_t pid)
{
    int st = 0;
    cr_assert(proc_wait(pid, 0, &st, NULL, NULL), "waiting for %d: %s", (int)pid, strerror(errno));
    return st;
}

tp_run tp_run_argv(const char *const *argv, const tp_opts *opts)
{
    tp_run r;
    cr_assert(proc_run(argv, opts, &r), "cannot run %s: %s", argv[0], strerror(errno));
    expect_no_sanitizer_report(argv, r.out);
    expect_no_sanitizer_report(argv, r.err);
    return r;
}

tp_run tp_tapegrad(const char *const *args, const tp_opts *opts)
{
    static char exe[4096];
    snprintf(exe, sizeof exe, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    size_t n = 0;
    while (args[n])
        n++;
    const char **argv = malloc((n + 2) * sizeof *argv);
    cr_assert_not_null(argv);
    argv[0] = exe;
    memcpy(argv + 1, args, (n + 1) * sizeof *argv);
    tp_run r = tp_run_argv(argv, opts);
    free(argv);
    return r;
}

void tp_run_free(tp_run *r)
{
    proc_result_free(r);
}

void tp_expect_status(const tp_run *r, int status)
{
    cr_assert_eq(r->status, status,
                 "exit status %d (wait status 0x%x), want %d\nstdout:\n%s\n"
                 "stderr:\n%s",
                 r->status, r->wait, status, r->out, r->err);
}

pid_t tp_start(const char *const *argv, const char *log)
{
    pid_t pid = proc_start_logged(argv, log);
    cr_assert_geq(pid, 0, "cannot run %s: %s", argv[0], strerror(errno));
    return pid;
}

char *tp_run_log(const char *const *argv, const char *log, int want)
{
    int st = tp_finish(tp_start(argv, log));
    char *out = tp_slurp(log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == want,
              "%s exited with status 0x%x (wanted %d):\n%s", argv[0], st, want, out);
    expect_no_sanitizer_report(argv, out);
    return out;
}

void tp_kill_tree(pid_t pid)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d, "/proc: %s", strerror(errno));
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
        /* the command name, in parentheses, may hold anything: the fields follow the last ')' */
        const char *close_paren = strrchr(buf, ')');
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == pid)
            kill((pid_t)atoi(e->d_name), SIGKILL);
    }
    closedir(d);
    cr_assert_eq(kill(pid, SIGKILL), 0, "kill: %s", strerror(errno));
}

uint64_t tp_kill_after_checkpoint(pid_t pid, const char *ckpt, uint64_t min_step)
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
            cr_assert_eq(tg_checkpoint_load(ckpt, &m, &o, &p), TG_OK,
                         "a checkpoint read during "
                         "the run: %s",
                         tg_last_error());
            step = p.step;
            tg_optim_free(o);
            tg_model_free(m);
            if (step >= min_step)
                break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    cr_assert_geq(step, min_step, "no checkpoint of step %llu came", (unsigned long long)min_step);
    tp_kill_tree(pid);
    int st = tp_finish(pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the run was killed (status 0x%x)", st);
    return step;
}

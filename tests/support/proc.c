/* proc.c: see proc.h. Children are started with fork and exec (no shell: arguments reach the
 * program as they are, quotes and all), their streams go to temporary files that are read
 * back once they end. */
#include "proc.h"

#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            cr_assert_not_null(buf);
        }
    }
    cr_assert(!ferror(f), "%s: read error", path);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Under the sanitizers a child's own reports land in its output: they fail the test. */
static void expect_no_sanitizer_report(const char *const *argv, const char *text)
{
    cr_assert(!strstr(text, "Sanitizer") && !strstr(text, "runtime error:"),
              "%s tripped a sanitizer:\n%s", argv[0], text);
}

static void redirect(const char *path, int flags, int fd)
{
    int f = open(path, flags, 0644);
    if (f < 0 || dup2(f, fd) < 0) {
        fprintf(stderr, "cannot redirect to %s: %s\n", path, strerror(errno));
        _exit(126);
    }
    close(f);
}

/* Forks and execs argv with its streams from/to these files (err may be the same path as
 * out: one stream then), in cwd (NULL: ours), in a process group of its own when asked. */
static pid_t spawn(const char *const *argv, const char *cwd, const char *in, const char *out,
                   const char *err, int own_group)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (own_group)
            setpgid(0, 0);
        if (cwd && chdir(cwd) != 0) {
            fprintf(stderr, "cannot enter %s: %s\n", cwd, strerror(errno));
            _exit(126);
        }
        redirect(in, O_RDONLY, 0);
        redirect(out, O_WRONLY | O_CREAT | O_TRUNC, 1);
        if (strcmp(err, out) == 0)
            dup2(1, 2);
        else
            redirect(err, O_WRONLY | O_CREAT | O_TRUNC, 2);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (own_group)
        setpgid(pid, pid); /* either side may win the race; both ask for the same */
    return pid;
}

int tp_finish(pid_t pid)
{
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid, "waitpid: %s", strerror(errno));
    return st;
}

/* A new empty temporary file; its path into `path` (a "..._XXXXXX" template). */
static void temp_file(char *path)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp %s: %s", path, strerror(errno));
    close(fd);
}

tp_run tp_run_argv(const char *const *argv, const tp_opts *opts)
{
    static const tp_opts none;
    if (!opts)
        opts = &none;
    char in[] = "/tmp/tg_test_in_XXXXXX", out[] = "/tmp/tg_test_out_XXXXXX",
         err[] = "/tmp/tg_test_err_XXXXXX";
    temp_file(out);
    if (!opts->merge)
        temp_file(err);
    const char *in_path = "/dev/null";
    if (opts->stdin_text) {
        temp_file(in);
        FILE *f = fopen(in, "wb");
        cr_assert_not_null(f, "%s: %s", in, strerror(errno));
        size_t n = strlen(opts->stdin_text);
        cr_assert_eq(fwrite(opts->stdin_text, 1, n, f), n);
        cr_assert_eq(fclose(f), 0);
        in_path = in;
    }
    int st = tp_finish(spawn(argv, opts->cwd, in_path, out, opts->merge ? out : err, 0));
    tp_run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, st, tp_slurp(out),
                opts->merge ? strdup("") : tp_slurp(err)};
    cr_assert_not_null(r.err);
    unlink(out);
    if (!opts->merge)
        unlink(err);
    if (opts->stdin_text)
        unlink(in);
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
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
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
    return spawn(argv, NULL, "/dev/null", log, log, 1);
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

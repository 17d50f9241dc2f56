/* proc.c: the process runner of proc.h. posix_spawn rather than fork and exec: a failure to
 * start comes back as a value, and the parent's page tables are not copied, which a timed
 * child (bench W4 counts its whole run) would otherwise pay for. */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np (glibc 2.29); wait4 */
#include "proc.h"

#include "clock.h"
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* This process's environment with the NULL-terminated "NAME=VALUE" entries of `set` put in
 * (replacing a variable of the same name): a malloc'd array of borrowed strings. */
static char **env_with(const char *const *set)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (set[k])
        k++;
    char **env = malloc((n + k + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t name = strcspn(set[j], "=") + 1; /* "NAME=" */
            replaced = strncmp(environ[i], set[j], name) == 0;
        }
        if (!replaced)
            env[m++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[m++] = (char *)set[j];
    env[m] = NULL;
    return env;
}

/* Starts the program of argv/o with stdin, stdout and stderr from/to these descriptors, in a
 * process group of its own when asked. 0, or an errno value. */
static int spawn(const char *const *argv, const proc_opts *o, int in, int out, int err,
                 bool own_group, pid_t *pid)
{
    /* Copies above 2 (where 0, 1 or 2 was closed, a file of ours may sit there, and setting
     * up one stream would clobber the next), close-on-exec: the child keeps only 0, 1, 2. */
    int fd[3] = {-1, -1, -1};
    const int from[3] = {in, out, err};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if ((fd[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 3)) < 0)
            rc = errno;
    char **envp = o->env ? env_with(o->env) : environ;
    if (rc == 0 && !envp)
        rc = ENOMEM;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0 &&
        (rc = posix_spawnattr_init(&attr)) != 0)
        posix_spawn_file_actions_destroy(&fa);
    if (rc == 0) {
        for (int i = 0; i < 3 && rc == 0; i++)
            rc = posix_spawn_file_actions_adddup2(&fa, fd[i], i);
        if (rc == 0 && o->cwd)
            rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
        if (rc == 0 && own_group) {
            rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
            rc = rc ? rc : posix_spawnattr_setpgroup(&attr, 0);
        }
        const char *exe = o->exe ? o->exe : argv[0];
        char *const *args = (char *const *)argv;
        if (rc == 0)
            rc = strchr(exe, '/') ? posix_spawn(pid, exe, &fa, &attr, args, envp)
                                  : posix_spawnp(pid, exe, &fa, &attr, args, envp);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
    }
    if (envp != environ)
        free(envp);
    for (int i = 0; i < 3; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    return rc;
}

bool proc_wait(pid_t pid, double deadline, int *ws, struct rusage *ru, bool *timed_out)
{
    bool late = false;
    long nap_ns = 1000000; /* 1 ms, doubling to 64 ms */
    for (int sig = SIGTERM;;) {
        pid_t got = wait4(pid, ws, deadline > 0 ? WNOHANG : 0, ru);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return false;
        if (got == 0 && monotonic_seconds() > deadline) {
            late = true;
            kill(pid, sig);
            if (sig == SIGKILL) {
                deadline = 0; /* wait for it, however long */
                continue;
            }
            sig = SIGKILL;
            deadline = monotonic_seconds() + 5.0;
        }
        if (got == 0) {
            nanosleep(&(struct timespec){0, nap_ns}, NULL);
            nap_ns = nap_ns < 64000000 ? 2 * nap_ns : nap_ns;
        }
    }
    if (timed_out)
        *timed_out = late;
    return true;
}

/* A new anonymous temporary file, closed on exec (the child gets only its own copies). */
static FILE *temp_file(void)
{
    FILE *f = tmpfile();
    if (f && fcntl(fileno(f), F_SETFD, FD_CLOEXEC) != 0) {
        fclose(f);
        return NULL;
    }
    return f;
}

/* The whole of a captured stream, from its start. */
static char *captured(FILE *f)
{
    rewind(f);
    return read_stream(f, NULL);
}

bool proc_run(const char *const *argv, const proc_opts *opts, proc_result *r)
{
    static const proc_opts none;
    if (!opts)
        opts = &none;
    memset(r, 0, sizeof *r);
    FILE *out = temp_file(), *err = opts->merge ? NULL : temp_file(), *in = NULL;
    int null_fd = -1;
    bool ok = out && (err || opts->merge);
    if (ok && opts->stdin_text) {
        in = temp_file();
        ok = in && fputs(opts->stdin_text, in) >= 0 && fflush(in) == 0 &&
             fseek(in, 0, SEEK_SET) == 0;
    } else if (ok) {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ok = null_fd >= 0;
    }
    if (ok) {
        pid_t pid;
        double t0 = monotonic_seconds();
        int rc = spawn(argv, opts, in ? fileno(in) : null_fd, fileno(out), fileno(err ? err : out),
                       false, &pid);
        if (rc != 0)
            errno = rc;
        struct rusage ru;
        ok = rc == 0 && proc_wait(pid, opts->timeout_s > 0 ? t0 + opts->timeout_s : 0, &r->wait,
                                  &ru, &r->timed_out);
        r->wall_s = monotonic_seconds() - t0;
        if (ok) {
            r->status = WIFEXITED(r->wait) ? WEXITSTATUS(r->wait) : -1;
            r->peak_rss_mib = (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
            r->cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
            r->out = captured(out);
            r->err = err ? captured(err) : strdup("");
            ok = r->out && r->err;
        }
    }
    int saved = errno;
    if (!ok)
        proc_result_free(r);
    if (out)
        fclose(out);
    if (err)
        fclose(err);
    if (in)
        fclose(in);
    if (null_fd >= 0)
        close(null_fd);
    errno = saved;
    return ok;
}

void proc_result_free(proc_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

pid_t proc_start_logged(const char *const *argv, const char *log)
{
    static const proc_opts none;
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t pid = -1;
    int rc = out < 0 ? errno : spawn(argv, &none, in, out, out, true, &pid);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

/* proc.h: running a program as a child process, for `tapegrad bench` (W4's train, W3dist's
 * mpirun) and the tests (the tapegrad command): started with posix_spawn, no shell (the
 * arguments reach it as they are), its output captured in temporary files (no pipe can fill
 * and stall it) or sent to a log, an optional time limit, and what the wait reports. */
#ifndef TAPEGRAD_TOOLS_COMMON_PROC_H
#define TAPEGRAD_TOOLS_COMMON_PROC_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

/* How to run. All zero: argv[0] is the program, this process's environment and working
 * directory, stdin from /dev/null, stdout and stderr captured apart, no time limit. */
typedef struct proc_opts {
    const char *stdin_text; /* fed to the child's stdin */
    const char *cwd;        /* the child's working directory */
    bool merge;             /* stderr into the same stream as stdout */
    const char *exe;        /* the program, when argv[0] is only the name it is to see */
    const char *const *env; /* "NAME=VALUE" entries, NULL-terminated, put into this
                             * environment for the child (replacing the same NAME) */
    double timeout_s;       /* stop the child after this many seconds (SIGTERM, then
                             * SIGKILL 5 s later; mpirun passes SIGTERM on to its ranks) */
} proc_opts;

/* A finished run. */
typedef struct proc_result {
    int status;          /* exit status; -1 when it did not exit (a signal ended it) */
    int wait;            /* the wait status as wait4 gave it */
    bool timed_out;      /* stopped at the time limit */
    double wall_s;       /* seconds from just before the start to the end of the wait */
    double cpu_s;        /* user + system seconds of the child and the children it waited for */
    double peak_rss_mib; /* the largest peak resident set among those */
    char *out;           /* stdout (with stderr in it when merged), NUL-terminated, malloc'd */
    char *err;           /* stderr; "" when merged */
} proc_result;

/* Runs argv (NULL-terminated; the program is opts->exe, else argv[0], looked up on the PATH
 * when it holds no '/') to its end or its time limit; opts may be NULL (all zero). True when
 * the child ran, whatever it did; false, with errno set and nothing in r to free, when it
 * could not be started or waited for or its output could not be read. */
bool proc_run(const char *const *argv, const proc_opts *opts, proc_result *r);

/* Frees r's output (r may then be freed again). */
void proc_result_free(proc_result *r);

/* Starts argv (argv[0] as in proc_run) in a process group of its own, stdin from /dev/null,
 * stdout and stderr both to the file `log` (created or truncated). Its pid, or -1 with errno
 * set when it cannot be started; proc_wait then waits for it. */
pid_t proc_start_logged(const char *const *argv, const char *log);

/* Waits for child pid until it ends or `deadline` (monotonic_seconds(); 0: no limit) passes;
 * then it gets SIGTERM, and SIGKILL 5 seconds later, and is waited for. Its wait status into
 * *ws and, when ru is not NULL, its resource use into *ru; *timed_out (when not NULL) says
 * whether the deadline passed. False, errno set, when waiting fails. */
bool proc_wait(pid_t pid, double deadline, int *ws, struct rusage *ru, bool *timed_out);

#endif

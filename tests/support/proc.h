/* proc.h: running programs from the tests: the tapegrad command (or any program) as a child
 * process with its output and exit status collected, a long run started in its own process
 * group and written to a log, and a run killed with its whole process tree. Starting and
 * waiting are tools/common/proc.c's (the runner `tapegrad bench` uses too).
 *
 * Every function fails the calling Criterion test (cr_assert) when the machinery itself fails
 * (starting the program, temporary files, a missing environment variable); what the child
 * does is left to the caller to judge, except for sanitizer reports in its output, which
 * always fail the test. */
#ifndef TAPEGRAD_TESTS_SUPPORT_PROC_H
#define TAPEGRAD_TESTS_SUPPORT_PROC_H

#include "common/proc.h"

#include <stdint.h>
#include <sys/types.h>

/* The value of environment variable `name`, which CTest sets (tests/CMakeLists.txt). */
const char *tp_env(const char *name);

/* The whole of file `path`, NUL-terminated (caller frees). */
char *tp_slurp(const char *path);

/* A finished run: status (exit status; -1 when killed by a signal), wait (the wait status),
 * out (stdout, with stderr after it when merged) and err (stderr; "" when merged), both
 * NUL-terminated; and what else common/proc.h's proc_result holds. */
typedef proc_result tp_run;

/* How to run: all zero is stdin from /dev/null, the test's own directory, stderr apart;
 * .stdin_text is fed to the child's stdin, .cwd is its working directory, .merge sends
 * stderr into the same stream as stdout (common/proc.h's proc_opts). */
typedef proc_opts tp_opts;

/* Runs argv (NULL-terminated; argv[0] a path, or a name looked up in PATH) to its end. */
tp_run tp_run_argv(const char *const *argv, const tp_opts *opts);

/* Runs `$TG_TOOLS_DIR/tapegrad args...` (args NULL-terminated) to its end. */
tp_run tp_tapegrad(const char *const *args, const tp_opts *opts);

void tp_run_free(tp_run *r);

/* Fails the test, with both streams, unless the run exited with `status`. */
void tp_expect_status(const tp_run *r, int status);

/* Starts argv (NULL-terminated) in a process group of its own, stdin from /dev/null, stdout
 * and stderr to the file `log`; returns its pid. */
pid_t tp_start(const char *const *argv, const char *log);

/* Waits for pid to end; returns its wait status. */
int tp_finish(pid_t pid);

/* tp_start, then tp_finish: fails the test (with the log) unless argv exits with `want` and
 * without a sanitizer report. Returns the log (caller frees). */
char *tp_run_log(const char *const *argv, const char *log, int want);

/* SIGKILL to pid's children (mpirun's ranks, each in a process group of its own) and to pid;
 * pid is left to be waited for. */
void tp_kill_tree(pid_t pid);

/* Polls the checkpoint file `ckpt` written by run pid until it holds a checkpoint of at least
 * `min_step` steps (every read must find a valid checkpoint once the file exists: saves are
 * atomic), then kills the run's tree and waits for it. Returns the step count of the last
 * checkpoint read. */
uint64_t tp_kill_after_checkpoint(pid_t pid, const char *ckpt, uint64_t min_step);

#endif

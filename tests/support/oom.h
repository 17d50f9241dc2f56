/* oom.h: the out-of-memory driver. A scenario runs once per allocation attempt N = 1, 2, ...
 * with attempt N refused (support/alloc.h's hook), until a run completes without reaching
 * attempt N. Every run must return its errors instead of crashing, and leak nothing: the
 * hook's live blocks and bytes return to where they stood before the run. At the end the
 * library must still work. */
#ifndef TAPEGRAD_TESTS_SUPPORT_OOM_H
#define TAPEGRAD_TESTS_SUPPORT_OOM_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stddef.h>

#include "alloc.h"

/* One run: arms the failure around the calls under test (ts_alloc_fail_at(n), the calls,
 * ts_alloc_fail_at(0)), checks what they did, frees what it made, and returns how many of its
 * calls failed (0: everything succeeded). ud is ts_oom_drive's. */
typedef size_t (*ts_oom_fn)(size_t n, void *ud);

typedef struct ts_oom_opts {
    size_t min_failing; /* at least this many runs must see a call fail */
    size_t max_runs;    /* a scenario still allocating after this many runs fails; 0: 5000 */
    bool no_fallback;   /* the calls never survive a refused allocation: a run that reached
                         * its failing attempt must report a failed call */
} ts_oom_opts;

/* Drives fn through every failing allocation, as described above, asserting for each run:
 * no leak; no failed call unless attempt N was reached (and, with no_fallback, a failed call
 * if it was). Installs the hook for the drive when it is not installed, and removes it again;
 * an installed hook stays (objects made under it before the drive are left alone). Returns
 * the number of runs that saw a call fail. `what` names the scenario in messages. */
size_t ts_oom_drive(const char *what, ts_oom_fn fn, void *ud, ts_oom_opts opts);

/* Asserts that st is TG_ENOMEM and that the last error says "out of memory"; what and n (the
 * failing attempt) go into the message. */
#define ts_assert_enomem(st, what, n) ts__assert_enomem(__FILE__, __LINE__, (st), (what), (n))

void ts__assert_enomem(const char *file, int line, tg_status st, const char *what, size_t n);

#endif

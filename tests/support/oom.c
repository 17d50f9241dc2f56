/* oom.c: see oom.h. */
#include "oom.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <string.h>

#include "helpers.h"

#define MAX_RUNS 5000

void ts__assert_enomem(const char *file, int line, tg_status st, const char *what, size_t n)
{
    if (st != TG_ENOMEM)
        ts__fail(file, line, "%s, allocation %zu failing: %s (%s) instead of TG_ENOMEM", what, n,
                 tg_status_name(st), tg_last_error());
    if (!strstr(tg_last_error(), "out of memory"))
        ts__fail(file, line, "%s, allocation %zu failing: the message does not say so: '%s'", what,
                 n, tg_last_error());
}

/* After a drive: a small graph, forward and backward, on whatever allocator is in place. */
static void assert_library_works(const char *what)
{
    const double v[3] = {1, 2, 3};
    tg_tensor *x = ts_vec(TG_F64, 3, v, true);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape, "%s: no tape after the drive: %s", what, tg_last_error());
    tg_tensor *y = tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s: %s", what, tg_tape_error(tape));
    cr_assert_eq(tg_tensor_item(y), 14.0);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s: %s", what, tg_last_error());
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_grad_get(x, i), 2 * v[i]);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

size_t ts_oom_drive(const char *what, ts_oom_fn fn, void *ud, ts_oom_opts opts)
{
    bool own = !ts_alloc_installed();
    if (own)
        ts_alloc_install();
    size_t max = opts.max_runs ? opts.max_runs : MAX_RUNS;
    size_t n, failing_runs = 0;
    for (n = 1; n <= max; n++) {
        ts_alloc_fail_at(0);
        long long live = ts_alloc.live, bytes = ts_alloc.bytes;
        size_t refused = ts_alloc.failures;
        size_t failed = fn(n, ud);
        bool reached = ts_alloc.failures > refused;
        ts_alloc_fail_at(0);
        cr_assert_eq(ts_alloc.live, live, "%s, allocation %zu failing: %lld blocks leaked", what, n,
                     ts_alloc.live - live);
        cr_assert_eq(ts_alloc.bytes, bytes, "%s, allocation %zu failing: %lld bytes leaked", what,
                     n, ts_alloc.bytes - bytes);
        cr_assert(!failed || reached,
                  "%s: a call failed with allocation %zu failing, which was never made: %s", what,
                  n, tg_last_error());
        cr_assert(!opts.no_fallback || !reached || failed,
                  "%s: allocation %zu was refused, yet every call succeeded", what, n);
        failing_runs += failed > 0;
        if (!reached)
            break; /* the calls completed within fewer than n attempts */
    }
    cr_assert_leq(n, max, "%s: still allocating after %zu runs", what, max);
    cr_assert_geq(failing_runs, opts.min_failing,
                  "%s: %zu runs saw a call fail, fewer than the %zu expected", what, failing_runs,
                  opts.min_failing);
    cr_log_info("%s: %zu runs, %zu of them with a failed call", what, n, failing_runs);
    if (own) {
        ts_alloc_uninstall();
        cr_assert(!ts_alloc_installed());
    }
    assert_library_works(what);
    return failing_runs;
}

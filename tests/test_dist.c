/* test_dist.c: the distributed module (tapegrad/dist.h). Built with MPI, it runs
 * tests/dist_worker.c under mpirun (2 and 3 ranks on this machine, as root when need be) and
 * checks what every rank reports: the API, N ranks x batch B matching one process x batch N·B,
 * and MPI started by the caller or by the library. Built without MPI, it checks that every
 * entry point says TG_ENOTSUP. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/proc.h"

#ifdef TG_TEST_HAVE_MPI

/* Runs `mpirun -np N dist_worker SCENARIO`, stderr merged into stdout (tp_run_free it). */
static tp_run run_worker(int ranks, const char *scenario)
{
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    /* LeakSanitizer off in the ranks (sanitizer builds): Open MPI's own leaks are not ours, and
     * the worker counts the library's allocations itself. */
    /* Under timeout(1): a regression to a hang fails here rather than leaving mpirun behind. */
    return tp_run_argv((const char *const[]){"timeout", "-k", "5", "100", tp_env("TG_MPIEXEC"),
                                             "--allow-run-as-root",
                                             "--oversubscribe", "-x", "ASAN_OPTIONS=detect_leaks=0",
                                             "-np", np, tp_env("TG_DIST_WORKER"), scenario, NULL},
                       &(tp_opts){.merge = 1});
}

/* Every rank printed "rank R: ok SCENARIO" and the job succeeded. */
static void expect_ok(int ranks, const char *scenario)
{
    tp_run r = run_worker(ranks, scenario);
    cr_assert_eq(r.status, 0, "mpirun -np %d dist_worker %s exited %d (wait status 0x%x):\n%s",
                 ranks, scenario, r.status, r.wait, r.out);
    for (int k = 0; k < ranks; k++) {
        char want[64];
        snprintf(want, sizeof want, "rank %d: ok %s", k, scenario);
        ts_assert_has(r.out, want);
    }
    ts_assert_lacks(r.out, "FAIL");
    cr_log_info("%s", r.out);
    tp_run_free(&r);
}

Test(dist, api_on_2_ranks, .timeout = 120)
{
    expect_ok(2, "api");
}

Test(dist, api_on_3_ranks, .timeout = 120)
{
    expect_ok(3, "api");
}

Test(dist, two_ranks_of_32_match_one_process_of_64, .timeout = 120)
{
    expect_ok(2, "equiv");
}

Test(dist, caller_owns_mpi, .timeout = 120)
{
    expect_ok(2, "caller");
}

Test(dist, library_starts_and_finalizes_mpi, .timeout = 120)
{
    expect_ok(2, "own");
}

/* Ranks that disagree on sizes, calls or settings: refused on every rank, nothing overwritten,
 * no hang (the test's timeout). */
Test(dist, ranks_that_disagree_are_refused_not_overflowed, .timeout = 120)
{
    expect_ok(2, "mismatch");
}

/* The worker fails loudly: an unknown scenario is an error, so the checks above can fail. */
Test(dist, worker_reports_failure, .timeout = 120)
{
    tp_run r = run_worker(1, "no-such-scenario");
    cr_assert_neq(r.status, 0, "%s", r.out);
    tp_run_free(&r);
}

#else

Test(dist, built_without_mpi_every_call_is_enotsup)
{
    cr_assert_not(tg_dist_available());
    tg_dist *d = (tg_dist *)&d;
    cr_assert_eq(tg_dist_init(&d), TG_ENOTSUP);
    cr_assert_null(d);
    ts_assert_has(tg_last_error(), "built without MPI");
    ts_assert_has(tg_last_error(), "-DTG_MPI=ON");
    tg_clear_error();
    cr_assert_eq(tg_dist_broadcast_params(NULL, NULL), TG_ENOTSUP);
    ts_assert_has(tg_last_error(), "dist_broadcast_params: ");
    cr_assert_eq(tg_dist_allreduce_grads(NULL, NULL), TG_ENOTSUP);
    double x = 1;
    cr_assert_eq(tg_dist_broadcast(NULL, &x, sizeof x), TG_ENOTSUP);
    cr_assert_eq(tg_dist_allreduce_sum(NULL, &x, 1), TG_ENOTSUP);
    uint64_t h = 5;
    cr_assert_eq(tg_dist_check_params(NULL, NULL, &h), TG_ENOTSUP);
    cr_assert_eq(h, 0);
    cr_assert_eq(tg_dist_barrier(NULL), TG_ENOTSUP);
    cr_assert_eq(tg_dist_check_trainer(NULL, NULL), TG_ENOTSUP);
    cr_assert_eq(tg_dist_abort(NULL, 1), TG_ENOTSUP);
    cr_assert(!tg_dist_in_step(NULL));
    cr_assert_eq(tg_dist_rank(NULL), 0);
    cr_assert_eq(tg_dist_size(NULL), 1);
    tg_dist_free(NULL);
}

/* tapegrad train --distributed in a build without MPI: exit 1 and the library's reason. */
Test(dist, train_distributed_without_mpi_says_so)
{
    char data[4096];
    snprintf(data, sizeof data, "%s/examples/data/digits.csv", tp_env("TG_SOURCE_DIR"));
    tp_run r = tp_tapegrad(
        (const char *const[]){"train", data, "--target", "digit", "--distributed", NULL},
        &(tp_opts){.merge = 1});
    tp_expect_status(&r, 1);
    ts_assert_has(r.out, "--distributed: dist_init: tapegrad was built without MPI");
    tp_run_free(&r);
}

#endif

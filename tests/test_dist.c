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
#include <sys/wait.h>

#ifdef TG_TEST_HAVE_MPI

/* Runs `mpirun -np N dist_worker SCENARIO`, returns its exit status and its output (caller
 * frees). */
static int run_worker(int ranks, const char *scenario, char **out)
{
    const char *mpiexec = getenv("TG_MPIEXEC"), *worker = getenv("TG_DIST_WORKER");
    cr_assert(mpiexec && worker, "TG_MPIEXEC and TG_DIST_WORKER are set by CTest");
    char cmd[2048];
    /* LeakSanitizer off in the ranks (sanitizer builds): Open MPI's own leaks are not ours, and
     * the worker counts the library's allocations itself. */
    snprintf(cmd, sizeof cmd,
             "'%s' --allow-run-as-root --oversubscribe -x ASAN_OPTIONS=detect_leaks=0 -np %d "
             "'%s' %s 2>&1",
             mpiexec, ranks, worker, scenario);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - 1 - len, p)) > 0)
        len += got;
    buf[len] = '\0';
    int status = pclose(p);
    *out = buf;
    return status;
}

/* Every rank printed "rank R: ok SCENARIO" and the job succeeded. */
static void expect_ok(int ranks, const char *scenario)
{
    char *out;
    int status = run_worker(ranks, scenario, &out);
    cr_assert_eq(status, 0, "mpirun -np %d dist_worker %s exited %d:\n%s", ranks, scenario,
                 status, out);
    for (int r = 0; r < ranks; r++) {
        char want[64];
        snprintf(want, sizeof want, "rank %d: ok %s", r, scenario);
        cr_assert_not_null(strstr(out, want), "'%s' missing from:\n%s", want, out);
    }
    cr_assert_null(strstr(out, "FAIL"), "%s", out);
    cr_log_info("%s", out);
    free(out);
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

/* The worker fails loudly: an unknown scenario is an error, so the checks above can fail. */
Test(dist, worker_reports_failure, .timeout = 120)
{
    char *out;
    int status = run_worker(1, "no-such-scenario", &out);
    cr_assert_neq(status, 0, "%s", out);
    free(out);
}

#else

Test(dist, built_without_mpi_every_call_is_enotsup)
{
    cr_assert_not(tg_dist_available());
    tg_dist *d = (tg_dist *)&d;
    cr_assert_eq(tg_dist_init(&d), TG_ENOTSUP);
    cr_assert_null(d);
    cr_assert_not_null(strstr(tg_last_error(), "built without MPI"), "%s", tg_last_error());
    cr_assert_not_null(strstr(tg_last_error(), "-DTG_MPI=ON"), "%s", tg_last_error());
    tg_clear_error();
    cr_assert_eq(tg_dist_broadcast_params(NULL, NULL), TG_ENOTSUP);
    cr_assert_not_null(strstr(tg_last_error(), "dist_broadcast_params: "), "%s",
                       tg_last_error());
    cr_assert_eq(tg_dist_allreduce_grads(NULL, NULL), TG_ENOTSUP);
    double x = 1;
    cr_assert_eq(tg_dist_broadcast(NULL, &x, sizeof x), TG_ENOTSUP);
    cr_assert_eq(tg_dist_allreduce_sum(NULL, &x, 1), TG_ENOTSUP);
    uint64_t h = 5;
    cr_assert_eq(tg_dist_check_params(NULL, NULL, &h), TG_ENOTSUP);
    cr_assert_eq(h, 0);
    cr_assert_eq(tg_dist_barrier(NULL), TG_ENOTSUP);
    cr_assert_eq(tg_dist_abort(NULL, 1), TG_ENOTSUP);
    cr_assert_eq(tg_dist_rank(NULL), 0);
    cr_assert_eq(tg_dist_size(NULL), 1);
    tg_dist_free(NULL);
}

/* tapegrad train --distributed in a build without MPI: exit 1 and the library's reason. */
Test(dist, train_distributed_without_mpi_says_so)
{
    const char *tools = getenv("TG_TOOLS_DIR"), *src = getenv("TG_SOURCE_DIR");
    cr_assert(tools && src, "TG_TOOLS_DIR and TG_SOURCE_DIR are set by CTest");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s/tapegrad' train '%s/examples/data/digits.csv' --target digit --distributed "
             "2>&1",
             tools, src);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status 0x%x: %s", status, out);
    cr_assert_not_null(strstr(out, "--distributed: dist_init: tapegrad was built without MPI"),
                       "%s", out);
}

#endif

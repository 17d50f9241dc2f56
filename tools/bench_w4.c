/* bench_w4.c: the bench's W4, `tapegrad train` on the digits data as a child process of this
 * very binary: the test accuracy, and the whole child's wall time (with the seconds train
 * reports for its own run). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR "."
#endif

static bool readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* The digits CSV: --data, else examples/data/digits.csv under the current directory, else
 * under the source tree this binary was built from. NULL when none is readable. */
static const char *find_digits(const bench *b, char *buf, size_t size)
{
    if (b->o->data)
        return b->o->data;
    const char *rel = "examples/data/digits.csv";
    if (readable(rel))
        return rel;
    snprintf(buf, size, "%s/%s", TAPEGRAD_SOURCE_DIR, rel);
    return readable(buf) ? buf : NULL;
}

/* From train's --json line: the test split's accuracy ("test": {..., "accuracy": A}) and the
 * seconds train reports for itself (NaN when it does not). */
static bool parse_train_json(const char *out, double *accuracy, double *seconds)
{
    json_value v;
    if (!bench_json_line(out, "{", &v))
        return false;
    *accuracy = json_get_num(json_get(&v, "test"), "accuracy");
    *seconds = json_get_num(&v, "seconds");
    json_free(&v);
    return !isnan(*accuracy);
}

static void w4_unavailable(bench *b, tg_dtype dt, const char *why)
{
    figure f = bench_figure("W4", "test_accuracy", dt, 0);
    f.unavailable = why;
    bench_emit(b, &f);
}

void bench_w4(bench *b)
{
    /* W4 runs whatever precision train uses unless told; the figure says which was asked. */
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const int reps = bench_reps(b, 3, 1);
    char path_buf[4096];
    const char *data = find_digits(b, path_buf, sizeof path_buf);
    if (b->o->data && !readable(data)) { /* asked for by name: a failure, not a gap */
        char why[4200];
        snprintf(why, sizeof why, "cannot read %s: %s", data, strerror(errno));
        bench_failed(b, "W4", why);
        return;
    }
    if (!data) {
        w4_unavailable(b, dt,
                       "examples/data/digits.csv is neither here nor in the source "
                       "tree " TAPEGRAD_SOURCE_DIR "; give it with --data FILE");
        return;
    }
    const char *argv[16];
    int n = 0;
    argv[n++] = "tapegrad";
    argv[n++] = "train";
    argv[n++] = data;
    argv[n++] = "--target";
    argv[n++] = "digit";
    argv[n++] = "--json";
    if (b->o->dtype >= 0) {
        argv[n++] = "--dtype";
        argv[n++] = tg_dtype_name(dt);
    }
    if (b->o->quick) {
        argv[n++] = "--epochs";
        argv[n++] = "1";
    }
    argv[n] = NULL;
    /* The child reads its thread count from the environment. */
    char threads[32];
    snprintf(threads, sizeof threads, "TG_NUM_THREADS=%d", b->threads);
    const char *const env[] = {threads, NULL};

    /* wall: each run's; own: the seconds train reports for itself (its epochs) */
    double *wall = calloc(2 * (size_t)reps, sizeof *wall), *own = wall + reps;
    double accuracy = NAN, seconds = NAN, rss = 0;
    double cpu = 0, wall_all = 0; /* over every run, the warm-up included */
    if (!wall) {
        bench_failed(b, "W4", "out of memory");
        return;
    }
    for (int r = -1; r < reps; r++) { /* r = -1: the warm-up (page cache, loader) */
        proc_result c;
        const proc_opts how = {.exe = "/proc/self/exe", .env = env, .timeout_s = b->o->timeout};
        if (!proc_run(argv, &how, &c)) {
            char why[256];
            snprintf(why, sizeof why, "cannot run /proc/self/exe: %s", strerror(errno));
            bench_failed(b, "W4", why);
            free(wall);
            return;
        }
        bool done = true;
        if (c.timed_out) {
            char why[256];
            snprintf(why, sizeof why, "tapegrad train did not finish within %g s and was stopped",
                     b->o->timeout);
            bench_failed(b, "W4", why);
        } else if (c.status == EXIT_USAGE && strstr(c.err, "unknown command 'train'")) {
            w4_unavailable(b, dt, "this tapegrad has no 'train' command");
        } else if (c.status != 0) {
            char why[1024];
            snprintf(why, sizeof why, "tapegrad train exited with status %d: %s", c.status,
                     bench_child_reason(c.err));
            bench_failed(b, "W4", why);
        } else if (!parse_train_json(c.out, &accuracy, &seconds)) {
            bench_failed(b, "W4", "no test accuracy in the output of tapegrad train --json");
        } else {
            done = false;
            if (r >= 0) {
                wall[r] = c.wall_s;
                own[r] = seconds;
            }
            if (c.peak_rss_mib > rss)
                rss = c.peak_rss_mib;
            cpu += c.cpu_s;
            wall_all += c.wall_s;
        }
        proc_result_free(&c);
        if (done) {
            free(wall);
            return;
        }
    }
    figure f = bench_figure("W4", "test_accuracy", dt, reps);
    f.value = accuracy;
    f.peak_rss_mib = rss; /* the children's */
    f.cpu_over_wall = cpu / wall_all;
    bench_ctx_str(&f, "data", data);
    double own_s = bench_median(own, reps);
    if (!isnan(own_s))
        bench_ctx_num(&f, "train_seconds", own_s);
    bench_emit(b, &f);
    f.metric = "wall_s";
    f.value = bench_median(wall, reps);
    bench_emit(b, &f);
    free(wall);
}

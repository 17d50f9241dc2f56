/* bench_ops.c: the bench's ops, the loops of single ops on a large matrix: for each case, the
 * forward (recording it) and the backward (its VJP alone, seeded with ones) of one op on
 * leaves of 1024 x 1024 (--quick: 64 x 64), in ns per element of the matrix. The cases are the
 * loops that walk a matrix against its rows: reductions and softmax along each axis, a
 * transpose, broadcasting against a column and a row, where; those of exp, log1p and
 * sigmoid (core/detmath.h), which the softmax family, log_sigmoid and silu share; those of
 * erf and gelu (the normal distribution's tail, core/detmath.h too); sin's and atan's (the
 * trigonometric functions' reduction and polynomials, core/detmath.h); and pow's, with a constant
 * exponent (x^3) and with a row of exponents (x^row: NaN where x < 0 and the exponent is not an
 * integer, which costs the same, the loops being free of branches). */
#include "bench.h"

#include "common/clock.h"

#include <stdlib.h>
#include <string.h>

typedef struct ops_leaves {
    tg_tensor *x, *col, *row; /* (R, C), (R, 1), (1, C) */
} ops_leaves;

enum { OPS_CASES = 22 };

/* clang-format off */
static const char *const case_names[OPS_CASES] = {
    "sum_axis0",        "sum_axis1",        "max_axis0",        "logsumexp_axis0",
    "softmax_axis0",    "softmax_axis1",    "transpose",        "mul_col",
    "add_row",          "where_col_row",    "mean_all",         "exp",
    "logsumexp_axis1",  "log_softmax_axis1", "log_sigmoid",     "silu",
    "gelu",             "erf",              "sin",              "atan",
    "pow",              "pow_row"};
/* clang-format on */

/* Case k's op on the leaves, recorded on tape; NULL on error. */
static tg_tensor *ops_case(tg_tape *tape, const ops_leaves *l, int k)
{
    switch (k) {
    case 0: return tg_sum(tape, l->x, 0, false);
    case 1: return tg_sum(tape, l->x, 1, false);
    case 2: return tg_max(tape, l->x, 0, false);
    case 3: return tg_logsumexp(tape, l->x, 0, false);
    case 4: return tg_softmax(tape, l->x, 0);
    case 5: return tg_softmax(tape, l->x, 1);
    case 6: return tg_transpose(tape, l->x);
    case 7: return tg_mul(tape, l->x, l->col);
    case 8: return tg_add(tape, l->x, l->row);
    case 9: return tg_where(tape, tg_gt(tape, l->x, l->col), l->x, l->row);
    case 10: return tg_mean(tape, l->x, TG_ALL_AXES, false);
    case 11: return tg_exp(tape, l->x);
    case 12: return tg_logsumexp(tape, l->x, 1, false);
    case 13: return tg_log_softmax(tape, l->x, 1);
    case 14: return tg_log_sigmoid(tape, l->x);
    case 15: return tg_silu(tape, l->x);
    case 16: return tg_gelu(tape, l->x);
    case 17: return tg_erf(tape, l->x);
    case 18: return tg_sin(tape, l->x);
    case 19: return tg_atan(tape, l->x);
    case 20: return tg_pow(tape, l->x, 3);
    default: return tg_pow_tensor(tape, l->x, l->row);
    }
}

/* The case's timed repetitions into fwd and bwd (ns per element of x); NULL, or why not. */
static const char *ops_time(tg_tape *tape, const ops_leaves *l, int k, int warmup, int reps,
                            double *fwd, double *bwd)
{
    const double n = (double)tg_tensor_numel(l->x);
    for (int r = -warmup; r < reps; r++) {
        tg_tape_reset(tape);
        tg_tensor_zero_grad(l->x);
        tg_tensor_zero_grad(l->col);
        tg_tensor_zero_grad(l->row);
        double t0 = monotonic_seconds();
        tg_tensor *y = ops_case(tape, l, k);
        double t1 = monotonic_seconds();
        if (!y)
            return tg_last_error();
        tg_tensor *ones = tg_tensor_ones(tg_tensor_dtype(y), tg_tensor_rank(y), tg_tensor_shape(y));
        if (!ones)
            return tg_last_error();
        double t2 = monotonic_seconds();
        tg_status st = tg_backward_seed(tape, y, ones);
        double t3 = monotonic_seconds();
        tg_tensor_free(ones);
        if (st != TG_OK)
            return tg_last_error();
        if (r >= 0) {
            fwd[r] = (t1 - t0) * 1e9 / n;
            bwd[r] = (t3 - t2) * 1e9 / n;
        }
    }
    return NULL;
}

void bench_ops(bench *b)
{
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const size_t side = b->o->quick ? 64 : 1024;
    const int reps = bench_reps(b, 5, 1), warmup = 1;
    const size_t xs[2] = {side, side}, cs[2] = {side, 1}, rs[2] = {1, side};
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    ops_leaves l = {tg_tensor_randn(dt, 2, xs, &rng, 0, 1), tg_tensor_randn(dt, 2, cs, &rng, 0, 1),
                    tg_tensor_randn(dt, 2, rs, &rng, 0, 1)};
    tg_tape *tape = tg_tape_new();
    double *fwd = calloc(2 * (size_t)reps, sizeof *fwd), *bwd = fwd ? fwd + reps : NULL;
    const char *why = NULL;
    if (!l.x || !l.col || !l.row || !tape || !fwd)
        why = fwd ? tg_last_error() : "out of memory";
    else if (tg_tensor_set_requires_grad(l.x, true) != TG_OK ||
             tg_tensor_set_requires_grad(l.col, true) != TG_OK ||
             tg_tensor_set_requires_grad(l.row, true) != TG_OK)
        why = tg_last_error();
    char shape[32];
    snprintf(shape, sizeof shape, "%zux%zu", side, side);
    for (int k = 0; k < OPS_CASES && !why; k++) {
        if ((why = ops_time(tape, &l, k, warmup, reps, fwd, bwd)) != NULL)
            break;
        const double f_ns = bench_median(fwd, reps), b_ns = bench_median(bwd, reps);
        figure f = bench_figure("ops", case_names[k], dt, reps);
        f.value = f_ns + b_ns;
        bench_ctx_num(&f, "forward_ns_per_element", f_ns);
        bench_ctx_num(&f, "backward_ns_per_element", b_ns);
        bench_ctx_str(&f, "shape", shape);
        bench_ctx_cpus(b, &f);
        bench_emit(b, &f);
    }
    if (why)
        bench_failed(b, "ops", why);
    free(fwd);
    tg_tape_free(tape);
    tg_tensor_free(l.x);
    tg_tensor_free(l.col);
    tg_tensor_free(l.row);
}

/* test_ops_threads.c: long elementwise loops and sums over all elements run over the thread
 * pool (src/ops/op_impl.h, TG_PAR_GRAIN), and so do the lanes of logsumexp, softmax and
 * log_softmax (src/ops/reduce.c, in pieces of lanes), broadcasting binary ops and their
 * gradients (src/ops/binary.c) and transposes. Whatever the thread count, the results must
 * be the same bits from run to run; elementwise results, the blocked sums and the lanes do not
 * depend on the thread count at all; and the sums stay close to an exact reference. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"

enum { N = 200003 }; /* several pool ranges and sum blocks, and a ragged last one */

typedef struct outputs {
    double sum, mean;
    double *act, *dx; /* tanh(x)*w + x, and d(sum + mean)/dx */
    double dw;
} outputs;

static double get(const tg_tensor *t, size_t i)
{
    return tg_tensor_get(t, i);
}

/* The graph at `threads` threads: elementwise unary and binary ops (with a broadcast scalar
 * leaf), a sum and a mean over all elements, backward. */
static outputs run(tg_dtype dt, int threads)
{
    cr_assert_eq(tg_set_num_threads(threads), TG_OK);
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    const size_t shape[2] = {N / 7 + 1, 7};
    tg_tensor *x = tg_tensor_randn(dt, 2, shape, &rng, 0.0, 1.0);
    cr_assert_not_null(x);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *w = ts_scalar(dt, 0.75, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *act = tg_add(tape, tg_mul(tape, tg_tanh(tape, x), w), x);
    tg_tensor *s = tg_sum(tape, act, TG_ALL_AXES, false);
    tg_tensor *m = tg_mean(tape, tg_square(tape, act), TG_ALL_AXES, false);
    tg_tensor *loss = tg_add(tape, s, m);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    size_t n = tg_tensor_numel(x);
    outputs o = {get(s, 0), get(m, 0), malloc(n * sizeof(double)), malloc(n * sizeof(double)),
                 tg_tensor_grad_get(w, 0)};
    cr_assert(o.act && o.dx);
    for (size_t i = 0; i < n; i++) {
        o.act[i] = get(act, i);
        o.dx[i] = tg_tensor_grad_get(x, i);
    }
    /* The exact reference for the sum, in long double from the values themselves. The terms
     * have both signs, so a sum's rounding error scales with the sum of their magnitudes,
     * not with the (much smaller) result. */
    long double ref = 0, magnitude = 0;
    for (size_t i = 0; i < n; i++) {
        ref += (long double)o.act[i];
        magnitude += fabsl((long double)o.act[i]);
    }
    double tol = dt == TG_F64 ? 1e-12 : 1e-5;
    ts_assert_close(o.sum, (double)ref, tol * (double)magnitude, 0,
                    "sum (the sum of magnitudes %.6Lg)", magnitude);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    return o;
}

static void assert_same(outputs a, outputs b, size_t n, const char *what)
{
    cr_assert(memcmp(&a.sum, &b.sum, sizeof a.sum) == 0, "%s: sum %.17g vs %.17g", what, a.sum,
              b.sum);
    cr_assert(memcmp(&a.mean, &b.mean, sizeof a.mean) == 0, "%s: mean", what);
    cr_assert(memcmp(&a.dw, &b.dw, sizeof a.dw) == 0, "%s: dw %.17g vs %.17g", what, a.dw, b.dw);
    cr_assert(memcmp(a.act, b.act, n * sizeof(double)) == 0, "%s: values", what);
    cr_assert(memcmp(a.dx, b.dx, n * sizeof(double)) == 0, "%s: gradients", what);
}

static void check(tg_dtype dt)
{
    const size_t n = (N / 7 + 1) * 7;
    outputs one = run(dt, 1);
    for (int t = 1; t <= 4; t++) {
        outputs a = run(dt, t), b = run(dt, t);
        char what[32];
        snprintf(what, sizeof what, "%d threads, twice", t);
        assert_same(a, b, n, what);
        snprintf(what, sizeof what, "%d threads vs 1", t);
        assert_same(a, one, n, what);
        free(a.act), free(a.dx), free(b.act), free(b.dx);
    }
    free(one.act), free(one.dx);
}

Test(ops_threads, f64_same_bits_for_every_thread_count)
{
    check(TG_F64);
}
Test(ops_threads, f32_same_bits_for_every_thread_count)
{
    check(TG_F32);
}

/* The lane ops along an axis of a shape: contiguous lanes (the last axis), lanes taken by rows
 * (axis 0), and lanes with elements both before and after them (a middle axis, its pieces
 * ranges of inner index over every outer one), each long enough for several pieces of
 * TG_PAR_GRAIN elements, none a multiple of the thread counts. */
typedef struct lane_case {
    int rank;
    size_t shape[3];
    int axis;
} lane_case;

static const lane_case lane_cases[] = {
    {2, {701, 257}, 1},
    {2, {257, 701}, 0},
    {3, {13, 61, 251}, 1},
};

/* softmax, log_softmax and logsumexp of x along the case's axis, and the gradient of x under a
 * fixed random weighting of the three outputs, at `threads` threads: into out (values, then the
 * gradient), out_n elements. */
static void run_lanes(tg_dtype dt, const lane_case *c, int threads, double *out, size_t out_n)
{
    cr_assert_eq(tg_set_num_threads(threads), TG_OK);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *x = tg_tensor_randn(dt, c->rank, c->shape, &rng, 0.0, 3.0);
    cr_assert_not_null(x);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *wa = tg_tensor_randn(dt, c->rank, c->shape, &rng, 0.0, 1.0);
    tg_tensor *wb = tg_tensor_randn(dt, c->rank, c->shape, &rng, 0.0, 1.0);
    tg_tape *tape = tg_tape_new();
    tg_tensor *sm = tg_softmax(tape, x, c->axis), *lsm = tg_log_softmax(tape, x, c->axis);
    tg_tensor *lse = tg_logsumexp(tape, x, c->axis, false);
    tg_tensor *loss = tg_add(tape,
                             tg_add(tape, tg_sum(tape, tg_mul(tape, sm, wa), TG_ALL_AXES, false),
                                    tg_sum(tape, tg_mul(tape, lsm, wb), TG_ALL_AXES, false)),
                             tg_sum(tape, tg_square(tape, lse), TG_ALL_AXES, false));
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    const size_t n = tg_tensor_numel(x), nl = tg_tensor_numel(lse);
    cr_assert_eq(out_n, 3 * n + nl);
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        out[at++] = tg_tensor_get(sm, i);
    for (size_t i = 0; i < n; i++)
        out[at++] = tg_tensor_get(lsm, i);
    for (size_t i = 0; i < nl; i++)
        out[at++] = tg_tensor_get(lse, i);
    for (size_t i = 0; i < n; i++)
        out[at++] = tg_tensor_grad_get(x, i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(wa);
    tg_tensor_free(wb);
}

static void check_lanes(tg_dtype dt)
{
    for (size_t k = 0; k < sizeof lane_cases / sizeof *lane_cases; k++) {
        const lane_case *c = &lane_cases[k];
        size_t n = 1;
        for (int d = 0; d < c->rank; d++)
            n *= c->shape[d];
        const size_t out_n = 3 * n + n / c->shape[c->axis];
        double *one = malloc(out_n * sizeof *one), *got = malloc(out_n * sizeof *got);
        cr_assert(one && got);
        run_lanes(dt, c, 1, one, out_n);
        /* the values are a softmax's: each lane sums to 1 */
        const size_t inner = c->axis == c->rank - 1 ? 1 : c->shape[c->rank - 1];
        const size_t len = c->shape[c->axis], outer = n / len / inner;
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < inner; i++) {
                double sum = 0;
                for (size_t j = 0; j < len; j++)
                    sum += one[(o * len + j) * inner + i];
                ts_assert_close(sum, 1.0, dt == TG_F64 ? 1e-12 : 1e-4, 0,
                                "case %zu lane (%zu, %zu)", k, o, i);
            }
        for (int t = 2; t <= 4; t++) {
            run_lanes(dt, c, t, got, out_n);
            for (size_t i = 0; i < out_n; i++)
                cr_assert(memcmp(&got[i], &one[i], sizeof got[i]) == 0,
                          "%s case %zu, %d threads: element %zu of %zu is %.17g, at 1 thread %.17g",
                          tg_dtype_name(dt), k, t, i, out_n, got[i], one[i]);
        }
        free(one);
        free(got);
    }
}

Test(ops_threads, lane_ops_f64_same_bits_for_every_thread_count)
{
    check_lanes(TG_F64);
}
Test(ops_threads, lane_ops_f32_same_bits_for_every_thread_count)
{
    check_lanes(TG_F32);
}

/* Binary ops under broadcasting over the pool (src/ops/binary.c, binary_each_bcast): the output
 * is split into ranges that start anywhere in a run of the innermost axis and carry over outer
 * axes. For a row, a column and a middle axis broadcast, either input the full one: a / b and the
 * gradient of the full input (dy / b into a, -(dy / b) (a / b) into b) under a random seed,
 * against the same arithmetic done here element by element with the broadcast offsets worked
 * out from each index, at 1 to 4 threads. */
typedef struct bcast_case {
    int ra, rb;
    size_t sa[3], sb[3];
} bcast_case;

static const bcast_case bcast_cases[] = {
    {3, 1, {3, 257, 91}, {91}},       /* b a row, repeated along the leading axes */
    {3, 2, {3, 257, 91}, {257, 1}},   /* b a column, broadcast along the last axis and the first */
    {3, 3, {3, 1, 91}, {3, 257, 91}}, /* a broadcast along the middle axis */
    {2, 3, {257, 1}, {3, 257, 91}},   /* a a column */
};

/* The offset into an input of rank r and shape s (right-aligned against y's) of y's element
 * with multi-index idx. */
static size_t bcast_offset(int r, const size_t *s, const size_t *idx, int ry)
{
    size_t off = 0;
    for (int d = 0; d < r; d++)
        off = off * s[d] + (s[d] == 1 ? 0 : idx[ry - r + d]);
    return off;
}

static void check_bcast_case(tg_dtype dt, const bcast_case *c, int threads)
{
    cr_assert_eq(tg_set_num_threads(threads), TG_OK);
    const int ry = 3;
    const size_t ys[3] = {3, 257, 91}, ny = 3 * 257 * 91;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *a = tg_tensor_randn(dt, c->ra, c->sa, &rng, 0.0, 1.0);
    tg_tensor *b = tg_tensor_rand(dt, c->rb, c->sb, &rng, 0.5, 2.0); /* no zero divisor */
    tg_tensor *seed = tg_tensor_randn(dt, ry, ys, &rng, 0.0, 1.0);
    cr_assert(a && b && seed);
    const bool full_a = tg_tensor_numel(a) == ny;
    tg_tensor_set_requires_grad(full_a ? a : b, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_div(tape, a, b);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
    const tg_tensor *full = full_a ? a : b;
    for (size_t iy = 0; iy < ny; iy++) {
        const size_t idx[3] = {iy / (257 * 91), iy / 91 % 257, iy % 91};
        const size_t ia = bcast_offset(c->ra, c->sa, idx, ry),
                     ib = bcast_offset(c->rb, c->sb, idx, ry);
        double want_y, want_g;
        const double av = tg_tensor_get(a, ia), bv = tg_tensor_get(b, ib),
                     dy = tg_tensor_get(seed, iy);
        if (dt == TG_F32) {
            const float af = (float)av, bf = (float)bv, df = (float)dy;
            want_y = af / bf;
            want_g = full_a ? 0.0f + df / bf : 0.0f + -(df / bf) * (af / bf);
        } else {
            want_y = av / bv;
            want_g = full_a ? 0.0 + dy / bv : 0.0 + -(dy / bv) * (av / bv);
        }
        const double got_y = tg_tensor_get(y, iy), got_g = tg_tensor_grad_get(full, iy);
        cr_assert(memcmp(&got_y, &want_y, sizeof got_y) == 0,
                  "%s case %td, %d threads: y[%zu] = %.17g, expected %.17g", tg_dtype_name(dt),
                  c - bcast_cases, threads, iy, got_y, want_y);
        cr_assert(memcmp(&got_g, &want_g, sizeof got_g) == 0,
                  "%s case %td, %d threads: gradient [%zu] = %.17g, expected %.17g",
                  tg_dtype_name(dt), c - bcast_cases, threads, iy, got_g, want_g);
    }
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(seed);
}

static void check_bcast(tg_dtype dt)
{
    for (size_t k = 0; k < sizeof bcast_cases / sizeof *bcast_cases; k++)
        for (int t = 1; t <= 4; t++)
            check_bcast_case(dt, &bcast_cases[k], t);
}

Test(ops_threads, broadcast_f64_matches_element_by_element)
{
    check_bcast(TG_F64);
}
Test(ops_threads, broadcast_f32_matches_element_by_element)
{
    check_bcast(TG_F32);
}

/* A transpose over the pool (src/ops/shape.c, ranges of whole tiles of the written side's rows):
 * y[i][j] = x[j][i] and, under a random seed, dx[j][i] = dy[i][j], element by element, at 1 to
 * 4 threads, for a shape whose sides are not multiples of the tile. */
static void check_transpose(tg_dtype dt)
{
    const size_t shape[2] = {259, 1031}, R = 259, C = 1031;
    const size_t tshape[2] = {1031, 259};
    for (int t = 1; t <= 4; t++) {
        cr_assert_eq(tg_set_num_threads(t), TG_OK);
        tg_rng rng;
        tg_rng_seed(&rng, 5);
        tg_tensor *x = tg_tensor_randn(dt, 2, shape, &rng, 0.0, 1.0);
        tg_tensor *seed = tg_tensor_randn(dt, 2, tshape, &rng, 0.0, 1.0);
        cr_assert(x && seed);
        tg_tensor_set_requires_grad(x, true);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_transpose(tape, x);
        cr_assert_not_null(y, "%s", tg_tape_error(tape));
        cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++) {
                cr_assert_eq(tg_tensor_get(y, j * R + i), tg_tensor_get(x, i * C + j),
                             "%s, %d threads: y[%zu][%zu]", tg_dtype_name(dt), t, j, i);
                cr_assert_eq(tg_tensor_grad_get(x, i * C + j), tg_tensor_get(seed, j * R + i),
                             "%s, %d threads: dx[%zu][%zu]", tg_dtype_name(dt), t, i, j);
            }
        tg_tape_free(tape);
        tg_tensor_free(x);
        tg_tensor_free(seed);
    }
}

Test(ops_threads, transpose_matches_element_by_element)
{
    check_transpose(TG_F64);
    check_transpose(TG_F32);
}

/* The gradient of a broadcast input over the pool (src/ops/binary.c, binary_sum_many): cut along
 * an outer axis the input is not broadcast along (a column by its rows with a run of terms per
 * row, an input along the outer axis whose runs are longer than a sum block; a row against the
 * batch is not cut), or, for a single element, into blocks of terms. For a * b with both inputs
 * taking gradients and the backward run twice (the second pass adds to the first's sums), each
 * gradient must be the same bits at 1 to 4 threads, and close to the sums taken here in long
 * double. */
static const bcast_case sum_cases[] = {
    {3, 1, {5, 300, 130}, {130}},     /* b a row */
    {3, 2, {5, 300, 130}, {300, 1}},  /* b a column */
    {3, 3, {5, 1, 130}, {1, 300, 1}}, /* both broadcast, each along axes the other has */
    {3, 3, {5, 1, 1}, {5, 300, 130}}, /* a one element per outer index */
    {3, 0, {5, 300, 130}, {1}},       /* b 0-d */
};

/* The gradients of a and b (na + nb values) of case c at `threads` threads. */
static double *run_sums(tg_dtype dt, const bcast_case *c, int threads, size_t *na, size_t *nb)
{
    cr_assert_eq(tg_set_num_threads(threads), TG_OK);
    const size_t ys[3] = {5, 300, 130};
    tg_rng rng;
    tg_rng_seed(&rng, 23);
    tg_tensor *a = tg_tensor_randn(dt, c->ra, c->sa, &rng, 0.0, 1.0);
    tg_tensor *b = tg_tensor_randn(dt, c->rb, c->sb, &rng, 0.0, 1.0);
    tg_tensor *seed = tg_tensor_randn(dt, 3, ys, &rng, 0.0, 1.0);
    cr_assert(a && b && seed);
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_mul(tape, a, b);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    for (int pass = 0; pass < 2; pass++)
        cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
    *na = tg_tensor_numel(a), *nb = tg_tensor_numel(b);
    double *g = malloc((*na + *nb) * sizeof *g);
    cr_assert_not_null(g);
    for (size_t i = 0; i < *na; i++)
        g[i] = tg_tensor_grad_get(a, i);
    for (size_t i = 0; i < *nb; i++)
        g[*na + i] = tg_tensor_grad_get(b, i);
    if (threads == 1) { /* twice the exact sums: sum over y of dy * b into a, dy * a into b */
        long double *ref = calloc(2 * (*na + *nb), sizeof *ref), *mag = ref + *na + *nb;
        cr_assert_not_null(ref);
        for (size_t iy = 0; iy < 5 * 300 * 130; iy++) {
            const size_t idx[3] = {iy / (300 * 130), iy / 130 % 300, iy % 130};
            const size_t ia = bcast_offset(c->ra, c->sa, idx, 3),
                         ib = *na + bcast_offset(c->rb, c->sb, idx, 3);
            const long double dy = tg_tensor_get(seed, iy), av = tg_tensor_get(a, ia),
                              bv = tg_tensor_get(b, ib - *na);
            ref[ia] += 2 * dy * bv, mag[ia] += 2 * fabsl(dy * bv);
            ref[ib] += 2 * dy * av, mag[ib] += 2 * fabsl(dy * av);
        }
        const double tol = dt == TG_F64 ? 1e-13 : 1e-5;
        for (size_t i = 0; i < *na + *nb; i++)
            ts_assert_close(g[i], (double)ref[i], tol * (double)mag[i], 0,
                            "%s case %td: gradient %zu (of a: %zu)", tg_dtype_name(dt),
                            c - sum_cases, i, *na);
        free(ref);
    }
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(seed);
    return g;
}

static void check_sums(tg_dtype dt)
{
    for (size_t k = 0; k < sizeof sum_cases / sizeof *sum_cases; k++) {
        size_t na, nb;
        double *one = run_sums(dt, &sum_cases[k], 1, &na, &nb);
        for (int t = 2; t <= 4; t++) {
            double *g = run_sums(dt, &sum_cases[k], t, &na, &nb);
            for (size_t i = 0; i < na + nb; i++)
                cr_assert(
                    memcmp(&g[i], &one[i], sizeof g[i]) == 0,
                    "%s case %zu, %d threads: gradient %zu (of a: %zu) = %.17g, 1 thread %.17g",
                    tg_dtype_name(dt), k, t, i, na, g[i], one[i]);
            free(g);
        }
        free(one);
    }
}

Test(ops_threads, broadcast_input_gradient_same_bits_for_every_thread_count)
{
    check_sums(TG_F64);
    check_sums(TG_F32);
}

/* where over the pool (src/ops/binary.c, WHERE_EACH_IN): ranges of output elements that start
 * and end anywhere in a run of the last axis. y = where(c, a, b) and the gradients of the branches
 * of the output's shape under a random seed, against the selection done here element by element,
 * at 1 to 4 threads: cond, a and b each full, a row, a column or a middle axis. */
typedef struct where_case {
    int r[3];
    size_t s[3][3]; /* cond, a, b */
} where_case;

static const where_case where_cases[] = {
    {{3, 3, 3}, {{3, 257, 91}, {3, 257, 91}, {3, 257, 91}}}, /* flat */
    {{3, 3, 1}, {{3, 257, 91}, {3, 257, 91}, {91}}},         /* b a row: the last axis whole */
    {{2, 3, 3}, {{257, 1}, {3, 257, 91}, {3, 1, 91}}},       /* cond a column, b a middle axis */
    {{3, 2, 3}, {{3, 1, 91}, {257, 1}, {3, 257, 91}}},       /* a a column */
};

static void check_where_case(tg_dtype dt, const where_case *c, int threads)
{
    cr_assert_eq(tg_set_num_threads(threads), TG_OK);
    const size_t ys[3] = {3, 257, 91}, ny = 3 * 257 * 91;
    tg_rng rng;
    tg_rng_seed(&rng, 31);
    tg_tensor *in[3];
    for (int k = 0; k < 3; k++) {
        in[k] = tg_tensor_randn(dt, c->r[k], c->s[k], &rng, 0.0, 1.0);
        cr_assert_not_null(in[k]);
    }
    tg_tensor *seed = tg_tensor_randn(dt, 3, ys, &rng, 0.0, 1.0);
    cr_assert_not_null(seed);
    for (size_t i = 0; i < tg_tensor_numel(in[0]); i++) /* about half the conditions hold */
        tg_tensor_set(in[0], i, tg_tensor_get(in[0], i) > 0);
    tg_tensor_set_requires_grad(in[1], tg_tensor_numel(in[1]) == ny);
    tg_tensor_set_requires_grad(in[2], tg_tensor_numel(in[2]) == ny);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_where(tape, in[0], in[1], in[2]);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
    for (size_t iy = 0; iy < ny; iy++) {
        const size_t idx[3] = {iy / (257 * 91), iy / 91 % 257, iy % 91};
        size_t off[3];
        for (int k = 0; k < 3; k++)
            off[k] = bcast_offset(c->r[k], c->s[k], idx, 3);
        const bool pick_a = tg_tensor_get(in[0], off[0]) != 0;
        const double want = tg_tensor_get(pick_a ? in[1] : in[2], off[pick_a ? 1 : 2]);
        cr_assert_eq(tg_tensor_get(y, iy), want, "%s case %td, %d threads: y[%zu]",
                     tg_dtype_name(dt), c - where_cases, threads, iy);
        for (int k = 1; k < 3; k++)
            if (tg_tensor_numel(in[k]) == ny)
                cr_assert_eq(tg_tensor_grad_get(in[k], iy),
                             pick_a == (k == 1) ? tg_tensor_get(seed, iy) : 0.0,
                             "%s case %td, %d threads: gradient of input %d [%zu]",
                             tg_dtype_name(dt), c - where_cases, threads, k, iy);
    }
    tg_tape_free(tape);
    for (int k = 0; k < 3; k++)
        tg_tensor_free(in[k]);
    tg_tensor_free(seed);
}

Test(ops_threads, where_matches_element_by_element)
{
    for (size_t k = 0; k < sizeof where_cases / sizeof *where_cases; k++)
        for (int t = 1; t <= 4; t++) {
            check_where_case(TG_F64, &where_cases[k], t);
            check_where_case(TG_F32, &where_cases[k], t);
        }
}

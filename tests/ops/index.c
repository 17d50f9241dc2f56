/* index.c (test_ops): exact values and gradients of the indexing and joining ops (slice, select,
 * concat, stack, take, permute) and of matmul's NumPy cases (1-D operands, a 2-D operand
 * against a 3-D one), in f32 and f64, their normalized attributes and their errors. Every expected
 * value is worked out by hand in the comment beside it, or by a direct formula over the indices. */
#include "ops.h"

/* Values of small integers: exact in both dtypes. */
static void expect(const char *what, const tg_tensor *t, int rank, const size_t *shape,
                   const double *want)
{
    cr_assert(t != NULL, "%s: NULL (%s)", what, tg_tape_error(tape));
    char got[64], exp[64];
    tg_shape_format(got, sizeof got, tg_tensor_rank(t), tg_tensor_shape(t));
    tg_shape_format(exp, sizeof exp, rank, shape);
    cr_assert_str_eq(got, exp, "%s: shape %s, expected %s", what, got, exp);
    ts_assert_values(t, want, tg_tensor_numel(t), 0, 0, "%s", what);
}

static void expect_grad(const char *what, const tg_tensor *t, const double *want)
{
    ts_assert_grad(t, want, tg_tensor_numel(t), 0, 0, "%s", what);
}

/* backward from sum(y * w) with w = 1, 2, 3, ... (y's shape): dy = w. */
static void backward_weighted(tg_tensor *y)
{
    cr_assert(y != NULL, "%s", tg_tape_error(tape));
    double v[128];
    cr_assert(tg_tensor_numel(y) <= 128);
    for (size_t i = 0; i < tg_tensor_numel(y); i++)
        v[i] = (double)(i + 1);
    tg_tensor *seed = own_leaf(tg_tensor_dtype(y), tg_tensor_rank(y), tg_tensor_shape(y), v, false);
    cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
}

/* The fixture's expect_error, then a fresh recording for the next case. */
static void expect_error_reset(const char *what, const tg_tensor *y, tg_status st, const char *frag)
{
    expect_error(what, y, st, frag, NULL);
    tg_tape_reset(tape);
}

#define SH(...) ((const size_t[]){__VA_ARGS__})
#define V(...) ((const double[]){__VA_ARGS__})

Test(ops, slice_values_gradients_and_attrs)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = iota(dt, 1, SH(10), 0, 1, true); /* 0..9 */
        expect("x[1:7:2]", tg_slice(tape, x, 0, 1, 7, 2), 1, SH(3), V(1, 3, 5));
        expect("x[-3:]", tg_slice(tape, x, 0, -3, TG_END, 1), 1, SH(3), V(7, 8, 9));
        expect("x[-100:3]", tg_slice(tape, x, -1, -100, 3, 1), 1, SH(3), V(0, 1, 2));
        expect("x[::4]", tg_slice(tape, x, 0, 0, TG_END, 4), 1, SH(3), V(0, 4, 8));
        expect("x[8:100:5]", tg_slice(tape, x, 0, 8, 100, 5), 1, SH(1), V(8));
        expect("x[5:2]", tg_slice(tape, x, 0, 5, 2, 1), 1, SH(0), V(0));
        expect("x[3:-8]", tg_slice(tape, x, 0, 3, -8, 1), 1, SH(0), V(0));
        /* The normalized attributes: x[1:6:2] takes 1, 3, 5, so stop reads 7. */
        tg_tensor *y = tg_slice(tape, x, -1, 1, 6, 2);
        tg_attrs at;
        cr_assert_eq(tg_tensor_attrs(y, &at), TG_OK);
        cr_expect(at.axis == 0 && at.start == 1 && at.stop == 7 && at.step == 2,
                  "attrs axis %d start %td stop %td step %td", at.axis, at.start, at.stop, at.step);
        /* dy = 1, 2, 3 lands on elements 1, 3, 5 */
        backward_weighted(y);
        expect_grad("dx of x[1:6:2]", x, V(0, 1, 0, 2, 0, 3, 0, 0, 0, 0));

        /* (2,3) along axis 1: [[0,1,2],[3,4,5]][:, 1:] = [[1,2],[4,5]]; dy = [[1,2],[3,4]] */
        tg_tape_reset(tape);
        tg_tensor *m = iota(dt, 2, SH(2, 3), 0, 1, true);
        y = tg_slice(tape, m, -1, 1, TG_END, 1);
        expect("m[:, 1:]", y, 2, SH(2, 2), V(1, 2, 4, 5));
        backward_weighted(y);
        expect_grad("dm", m, V(0, 1, 2, 0, 3, 4));
    }
}

Test(ops, slice_errors)
{
    tg_tensor *x = iota(TG_F64, 2, SH(2, 3), 0, 1, false);
    expect_error_reset("step 0", tg_slice(tape, x, 0, 0, 2, 0), TG_EINVAL, "step 0");
    expect_error_reset("step -1", tg_slice(tape, x, 0, 0, 2, -1), TG_EINVAL, "positive");
    expect_error_reset("axis 2", tg_slice(tape, x, 2, 0, 2, 1), TG_EINVAL,
                       "axis 2 is out of range");
    expect_error_reset("axis -3", tg_slice(tape, x, -3, 0, 2, 1), TG_EINVAL, "axis -3");
    tg_tensor *s = own_leaf(TG_F64, 0, NULL, V(1), false);
    expect_error_reset("0-d", tg_slice(tape, s, 0, 0, 1, 1), TG_EINVAL, "axis 0 is out of range");
    /* a step far past the end takes the first element only */
    expect("huge step", tg_slice(tape, x, 1, 1, TG_END, PTRDIFF_MAX), 2, SH(2, 1), V(1, 4));
}

Test(ops, select_values_gradients_and_errors)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *m = iota(dt, 2, SH(2, 3), 0, 1, true); /* [[0,1,2],[3,4,5]] */
        expect("m[1]", tg_select(tape, m, 0, 1), 1, SH(3), V(3, 4, 5));
        expect("m[-2]", tg_select(tape, m, 0, -2), 1, SH(3), V(0, 1, 2));
        tg_tensor *y = tg_select(tape, m, 1, -1); /* m[:, -1] = [2, 5] */
        expect("m[:, -1]", y, 1, SH(2), V(2, 5));
        tg_attrs at;
        cr_assert_eq(tg_tensor_attrs(y, &at), TG_OK);
        cr_expect(at.axis == 1 && at.index == 2, "attrs axis %d index %td", at.axis, at.index);
        backward_weighted(y); /* dy = [1, 2] onto column 2 */
        expect_grad("dm", m, V(0, 0, 1, 0, 0, 2));
        tg_tensor *v = iota(dt, 1, SH(4), 0, 1, false);
        expect("v[3] (0-d)", tg_select(tape, v, 0, 3), 0, NULL, V(3));
    }
    tg_tape_reset(tape);
    tg_tensor *m = iota(TG_F64, 2, SH(2, 3), 0, 1, false);
    expect_error_reset("index 3", tg_select(tape, m, 1, 3), TG_ESHAPE,
                       "index 3 is out of range for axis 1 of size 3");
    expect_error_reset("index -4", tg_select(tape, m, -1, -4), TG_ESHAPE,
                       "index -4 is out of range for axis 1 of size 3");
    expect_error_reset("axis 2", tg_select(tape, m, 2, 0), TG_EINVAL, "axis 2 is out of range");
    tg_tensor *e = own_leaf(TG_F64, 1, SH(0), V(0), false);
    expect_error_reset("empty", tg_select(tape, e, 0, 0), TG_ESHAPE, "of size 0");
}

Test(ops, concat_values_gradients_and_errors)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 2, SH(2, 1), V(1, 2), true);
        tg_tensor *b = own_leaf(dt, 2, SH(2, 2), V(3, 4, 5, 6), true);
        tg_tensor *y = tg_concat(tape, (tg_tensor *[]){a, b}, 2, -1);
        expect("concat axis 1", y, 2, SH(2, 3), V(1, 3, 4, 2, 5, 6));
        cr_expect_eq(tg_tensor_num_inputs(y), 2);
        cr_expect(tg_tensor_input(y, 1) == b);
        tg_attrs at;
        cr_assert_eq(tg_tensor_attrs(y, &at), TG_OK);
        cr_expect_eq(at.axis, 1);
        /* dy = [[1,2,3],[4,5,6]]: a gets the first column, b the rest */
        backward_weighted(y);
        expect_grad("da", a, V(1, 4));
        expect_grad("db", b, V(2, 3, 5, 6));

        /* the same tensor three times along axis 0: its gradient is the sum of three blocks */
        tg_tape_reset(tape);
        tg_tensor *c = own_leaf(dt, 1, SH(2), V(7, 8), true);
        y = tg_concat(tape, (tg_tensor *[]){c, c, c}, 3, 0);
        expect("concat c c c", y, 1, SH(6), V(7, 8, 7, 8, 7, 8));
        backward_weighted(y); /* dy = 1..6: dc = [1+3+5, 2+4+6] */
        expect_grad("dc", c, V(9, 12));
        expect("concat of one", tg_concat(tape, &c, 1, 0), 1, SH(2), V(7, 8));
    }
    tg_tape_reset(tape);
    tg_tensor *a = iota(TG_F64, 2, SH(2, 1), 0, 1, false),
              *b = iota(TG_F64, 2, SH(3, 2), 0, 1, false);
    expect_error_reset("sizes", tg_concat(tape, (tg_tensor *[]){a, b}, 2, 1), TG_ESHAPE,
                       "input 1 has shape [3,2] and input 0 [2,1]: sizes differ on axis 0");
    tg_tensor *v = iota(TG_F64, 1, SH(2), 0, 1, false);
    expect_error_reset("ranks", tg_concat(tape, (tg_tensor *[]){a, v}, 2, 0), TG_ESHAPE,
                       "ranks differ");
    expect_error_reset("axis", tg_concat(tape, (tg_tensor *[]){a, a}, 2, 2), TG_EINVAL, "axis 2");
    expect_error_reset("none", tg_concat(tape, (tg_tensor *[]){a}, 0, 0), TG_EINVAL, "one or more");
    tg_tensor *s = own_leaf(TG_F64, 0, NULL, V(1), false);
    expect_error_reset("0-d", tg_concat(tape, &s, 1, 0), TG_ESHAPE, "0-d");
}

Test(ops, stack_values_gradients_and_errors)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 1, SH(2), V(1, 2), true),
                  *b = own_leaf(dt, 1, SH(2), V(3, 4), true);
        expect("stack axis 0", tg_stack(tape, (tg_tensor *[]){a, b}, 2, 0), 2, SH(2, 2),
               V(1, 2, 3, 4));
        tg_tensor *y = tg_stack(tape, (tg_tensor *[]){a, b}, 2, -1);
        expect("stack axis -1", y, 2, SH(2, 2), V(1, 3, 2, 4));
        tg_attrs at;
        cr_assert_eq(tg_tensor_attrs(y, &at), TG_OK);
        cr_expect_eq(at.axis, 1);
        backward_weighted(y); /* dy = [[1,2],[3,4]]: a = column 0, b = column 1 */
        expect_grad("da", a, V(1, 3));
        expect_grad("db", b, V(2, 4));
        tg_tensor *s = own_leaf(dt, 0, NULL, V(5), false);
        expect("stack of 0-d", tg_stack(tape, (tg_tensor *[]){s, s, s}, 3, 0), 1, SH(3),
               V(5, 5, 5));
    }
    tg_tape_reset(tape);
    tg_tensor *a = iota(TG_F64, 1, SH(2), 0, 1, false), *b = iota(TG_F64, 1, SH(3), 0, 1, false);
    expect_error_reset("shapes", tg_stack(tape, (tg_tensor *[]){a, b}, 2, 0), TG_ESHAPE,
                       "input 1 has shape [3] and input 0 [2]");
    expect_error_reset("axis", tg_stack(tape, (tg_tensor *[]){a, a}, 2, 2), TG_EINVAL,
                       "axis 2 is out of range -2..1");
    tg_tensor *q = iota(TG_F64, 4, SH(1, 1, 1, 2), 0, 1, false);
    expect_error_reset("rank 5", tg_stack(tape, &q, 1, 0), TG_ESHAPE, "more than 4");
}

Test(ops, take_embedding_lookup)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *E = own_leaf(dt, 2, SH(3, 2), V(1, 2, 3, 4, 5, 6), true);
        tg_tensor *idx = own_leaf(dt, 1, SH(4), V(2, 0, 2, -1), false);
        tg_tensor *y = tg_take(tape, E, idx, 0);
        expect("take rows", y, 2, SH(4, 2), V(5, 6, 1, 2, 5, 6, 5, 6));
        /* dy = [[1,2],[3,4],[5,6],[7,8]]: row 0 gets [3,4]; row 2 gets the sum of the rest */
        backward_weighted(y);
        expect_grad("dE (repeated indices accumulate)", E, V(3, 4, 0, 0, 13, 16));

        /* idx of shape (2,2) along axis 1 of (2,3): y[i, j, k] = x[i, idx[j, k]] */
        tg_tape_reset(tape);
        tg_tensor *x = iota(dt, 2, SH(2, 3), 0, 1, true); /* [[0,1,2],[3,4,5]] */
        tg_tensor *i2 = tg_constant(tape, TG_F64, 2, SH(2, 2), V(0, 2, -1, 1));
        if (dt == TG_F32)
            i2 = tg_constant(tape, TG_F32, 2, SH(2, 2), (float[]){0, 2, -1, 1});
        y = tg_take(tape, x, i2, -1);
        expect("take axis 1", y, 3, SH(2, 2, 2), V(0, 2, 2, 1, 3, 5, 5, 4));
        /* 0-d idx drops the axis, as select does */
        tg_tensor *i0 = dt == TG_F32 ? tg_constant(tape, TG_F32, 0, NULL, (float[]){1})
                                     : tg_constant(tape, TG_F64, 0, NULL, V(1));
        expect("take 0-d idx", tg_take(tape, x, i0, 0), 1, SH(3), V(3, 4, 5));
    }
}

Test(ops, take_errors_name_the_element)
{
    tg_tensor *x = iota(TG_F64, 2, SH(2, 3), 0, 1, false);
    tg_tensor *bad = own_leaf(TG_F64, 1, SH(3), V(0, 3, 1), false);
    expect_error_reset("out of range", tg_take(tape, x, bad, 1), TG_ESHAPE,
                       "idx element 1 is 3, out of range for axis 1 of size 3");
    tg_tensor *neg = own_leaf(TG_F64, 1, SH(2), V(-3, 0), false);
    expect_error_reset("below -dim", tg_take(tape, x, neg, 0), TG_ESHAPE,
                       "idx element 0 is -3, out of range for axis 0 of size 2");
    tg_tensor *frac = own_leaf(TG_F64, 1, SH(2), V(0, 0.5), false);
    expect_error_reset("fraction", tg_take(tape, x, frac, 0), TG_EINVAL,
                       "idx element 1 is 0.5, not an integer index");
    tg_tensor *nan = own_leaf(TG_F64, 1, SH(1), V(NAN), false);
    expect_error_reset("NaN", tg_take(tape, x, nan, 0), TG_EINVAL, "not an integer");
    tg_tensor *x3 = iota(TG_F64, 3, SH(2, 2, 2), 0, 1, false);
    tg_tensor *i3 = own_leaf(TG_F64, 3, SH(1, 1, 1), V(0), false);
    expect_error_reset("rank 5", tg_take(tape, x3, i3, 0), TG_ESHAPE, "more than 4");
    tg_tensor *ok = own_leaf(TG_F64, 1, SH(1), V(0), false);
    expect_error_reset("axis", tg_take(tape, x, ok, 2), TG_EINVAL, "axis 2 is out of range");
    tg_tensor *f32 = own_leaf(TG_F32, 1, SH(1), V(0), false);
    expect_error_reset("dtype", tg_take(tape, x, f32, 0), TG_EDTYPE, "differ");
}

Test(ops, permute_values_gradients_and_errors)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = iota(dt, 3, SH(2, 3, 4), 0, 1, true); /* x[i,j,k] = 12i + 4j + k */
        tg_tensor *y = tg_permute(tape, x, (const int[]){2, 0, 1});
        double want[24], dx[24];
        for (size_t k = 0; k < 4; k++) /* y[k,i,j] = x[i,j,k] */
            for (size_t i = 0; i < 2; i++)
                for (size_t j = 0; j < 3; j++)
                    want[k * 6 + i * 3 + j] = (double)(12 * i + 4 * j + k);
        expect("permute (2,0,1)", y, 3, SH(4, 2, 3), want);
        backward_weighted(y); /* dy[k,i,j] = 1 + 6k + 3i + j, back at x[i,j,k] */
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 4; k++)
                    dx[12 * i + 4 * j + k] = (double)(1 + 6 * k + 3 * i + j);
        expect_grad("dx", x, dx);
        tg_tensor *z = tg_permute(tape, x, (const int[]){-1, 0, -2});
        tg_attrs at;
        cr_assert_eq(tg_tensor_attrs(z, &at), TG_OK);
        cr_expect(at.axes[0] == 2 && at.axes[1] == 0 && at.axes[2] == 1, "axes %d %d %d",
                  at.axes[0], at.axes[1], at.axes[2]);
        tg_tensor *m = iota(dt, 2, SH(2, 3), 0, 1, false);
        expect("permute (1,0) = transpose", tg_permute(tape, m, (const int[]){1, 0}), 2, SH(3, 2),
               V(0, 3, 1, 4, 2, 5));
        tg_tensor *s = own_leaf(dt, 0, NULL, V(4), false);
        expect("permute of 0-d", tg_permute(tape, s, NULL), 0, NULL, V(4));
    }
    tg_tape_reset(tape);
    tg_tensor *x = iota(TG_F64, 3, SH(2, 3, 4), 0, 1, false);
    expect_error_reset("repeat", tg_permute(tape, x, (const int[]){0, 0, 1}), TG_EINVAL,
                       "axes (0, 0, 1) for shape [2,3,4]: not a permutation");
    expect_error_reset("range", tg_permute(tape, x, (const int[]){0, 1, 3}), TG_EINVAL,
                       "out of range");
    expect_error_reset("NULL", tg_permute(tape, x, NULL), TG_EINVAL, "axes is NULL");
}

/* Copies between layouts go by tiles (8 x 8): every permutation of a shape whose axes are not
 * multiples of a tile, and transposes, moving each element and each gradient where the indices
 * say (dy = 1 + y's flat index). */
Test(ops, permutes_and_transposes_beyond_a_tile)
{
    enum { P = 3, Q = 19, R = 21, COUNT = P * Q * R };
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const size_t dims[3] = {P, Q, R};
    static double want[COUNT], dy[COUNT], dx[COUNT], iota_x[COUNT];
    for (size_t i = 0; i < COUNT; i++)
        dy[i] = (double)(i + 1), iota_x[i] = (double)i;
    for (int di = 0; di < 2; di++) {
        for (int p = 0; p < 7; p++) { /* 6: a transpose of the (Q, R) matrix */
            fresh_start();
            const bool tr = p == 6;
            tg_tensor *x = own_leaf(DTYPES[di], tr ? 2 : 3, tr ? SH(Q, R) : dims, iota_x, true);
            tg_tensor *y = tr ? tg_transpose(tape, x) : tg_permute(tape, x, perms[p]);
            const int *pm = tr ? (const int[]){0, 2, 1} : perms[p];
            const size_t n[3] = {tr ? 1 : dims[pm[0]], dims[pm[1]], dims[pm[2]]};
            for (size_t a = 0; a < n[0]; a++) /* y[a,b,c] = x at index (a,b,c) on axes pm */
                for (size_t b = 0; b < n[1]; b++)
                    for (size_t c = 0; c < n[2]; c++) {
                        size_t at[3];
                        at[pm[0]] = a, at[pm[1]] = b, at[pm[2]] = c;
                        const size_t xi = (at[0] * Q + at[1]) * R + at[2],
                                     yi = (a * n[1] + b) * n[2] + c;
                        want[yi] = (double)xi;
                        dx[xi] = dy[yi];
                    }
            cr_assert(y != NULL, "%s", tg_tape_error(tape));
            ts_assert_values(y, want, COUNT / (tr ? P : 1), 0, 0, "perm %d", p);
            tg_tensor *seed =
                own_leaf(DTYPES[di], tg_tensor_rank(y), tg_tensor_shape(y), dy, false);
            cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
            ts_assert_grad(x, dx, COUNT / (tr ? P : 1), 0, 0, "perm %d: dx", p);
        }
    }
}

/* matmul with NumPy's rules. A = [[1,2,3],[4,5,6]]. */
Test(ops, matmul_vectors_and_broadcast_batches)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *A = own_leaf(dt, 2, SH(2, 3), V(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v = own_leaf(dt, 1, SH(3), V(1, 0, -1), true);
        tg_tensor *u = own_leaf(dt, 1, SH(2), V(1, 2), true);
        tg_tensor *y = tg_matmul(tape, A, v); /* [1-3, 4-6] */
        expect("A @ v", y, 1, SH(2), V(-2, -2));
        backward_weighted(y); /* dy = [1,2]: dA = dy v^T, dv = A^T dy = [9, 12, 15] */
        expect_grad("dA", A, V(1, 0, -1, 2, 0, -2));
        expect_grad("dv", v, V(9, 12, 15));

        tg_tape_reset(tape);
        tg_tensor_zero_grad(A);
        y = tg_matmul(tape, u, A); /* [1+8, 2+10, 3+12] */
        expect("u @ A", y, 1, SH(3), V(9, 12, 15));
        backward_weighted(y); /* dy = [1,2,3]: du = A dy = [14, 32], dA = u dy^T */
        expect_grad("du", u, V(14, 32));
        expect_grad("dA", A, V(1, 2, 3, 2, 4, 6));

        tg_tape_reset(tape);
        tg_tensor *w = own_leaf(dt, 1, SH(3), V(4, 5, 6), true);
        tg_tensor_zero_grad(v);
        y = tg_matmul(tape, v, w); /* 4 - 6 */
        expect("v @ w (0-d)", y, 0, NULL, V(-2));
        cr_assert_eq(tg_backward(tape, y), TG_OK);
        expect_grad("dv = w", v, V(4, 5, 6));
        expect_grad("dw = v", w, V(1, 0, -1));

        /* M (2,2) against B (2,2,2) = [I, 2I]: y = [M, 2M]; with dy = ones, dM = sum_p ones
         * B_p^T = [[3,3],[3,3]] and dB_p = M^T ones = [[4,4],[6,6]] for M = [[1,2],[3,4]] */
        tg_tape_reset(tape);
        tg_tensor *M = own_leaf(dt, 2, SH(2, 2), V(1, 2, 3, 4), true);
        tg_tensor *B = own_leaf(dt, 3, SH(2, 2, 2), V(1, 0, 0, 1, 2, 0, 0, 2), true);
        y = tg_matmul(tape, M, B);
        expect("M @ B", y, 3, SH(2, 2, 2), V(1, 2, 3, 4, 2, 4, 6, 8));
        cr_assert_eq(tg_backward(tape, tg_sum(tape, y, TG_ALL_AXES, false)), TG_OK);
        expect_grad("dM (summed over the batch)", M, V(3, 3, 3, 3));
        expect_grad("dB", B, V(4, 4, 6, 6, 4, 4, 6, 6));

        /* B (2,2,2) against M: y_p = B_p M = [M, 2M]; dM = sum_p B_p^T ones = [[3,3],[3,3]],
         * dB_p = ones M^T = [[3,7],[3,7]] */
        tg_tape_reset(tape);
        tg_tensor *M2 = own_leaf(dt, 2, SH(2, 2), V(1, 2, 3, 4), true);
        tg_tensor *B2 = own_leaf(dt, 3, SH(2, 2, 2), V(1, 0, 0, 1, 2, 0, 0, 2), true);
        y = tg_matmul(tape, B2, M2);
        expect("B @ M", y, 3, SH(2, 2, 2), V(1, 2, 3, 4, 2, 4, 6, 8));
        cr_assert_eq(tg_backward(tape, tg_sum(tape, y, TG_ALL_AXES, false)), TG_OK);
        expect_grad("dM", M2, V(3, 3, 3, 3));
        expect_grad("dB", B2, V(3, 7, 3, 7, 3, 7, 3, 7));

        /* vectors against a batch: u (2) @ B -> (2,2) = [u, 2u]; B @ u -> [u, 2u] too */
        tg_tape_reset(tape);
        tg_tensor *u2 = own_leaf(dt, 1, SH(2), V(1, 2), false);
        tg_tensor *B3 = own_leaf(dt, 3, SH(2, 2, 2), V(1, 0, 0, 1, 2, 0, 0, 2), false);
        expect("u @ B", tg_matmul(tape, u2, B3), 2, SH(2, 2), V(1, 2, 2, 4));
        expect("B @ u", tg_matmul(tape, B3, u2), 2, SH(2, 2), V(1, 2, 2, 4));
    }
    tg_tape_reset(tape);
    tg_tensor *a = iota(TG_F64, 1, SH(3), 0, 1, false), *b = iota(TG_F64, 1, SH(2), 0, 1, false);
    expect_error_reset("dot sizes", tg_matmul(tape, a, b), TG_ESHAPE,
                       "[3] @ [2]: inner dimensions 3 and 2 differ");
    tg_tensor *q = iota(TG_F64, 4, SH(1, 1, 2, 2), 0, 1, false),
              *m = iota(TG_F64, 2, SH(2, 2), 0, 1, false);
    expect_error_reset("4-D", tg_matmul(tape, q, m), TG_ESHAPE, "operands must be 1-D, 2-D or 3-D");
    tg_tensor *s = own_leaf(TG_F64, 0, NULL, V(1), false);
    expect_error_reset("0-d", tg_matmul(tape, s, m), TG_ESHAPE, "operands must be");
}

/* index_add by hand: repeated and negative indices accumulate in order; dx = dy and
 * dsrc = take(dy, idx). */
Test(ops, index_add_scatters_and_accumulates)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, SH(2, 3), V(1, 2, 3, 4, 5, 6), true);
        tg_tensor *idx = own_leaf(dt, 1, SH(4), V(2, 0, 2, -1), false);
        tg_tensor *src = own_leaf(dt, 2, SH(2, 4), V(10, 20, 30, 40, 50, 60, 70, 80), true);
        tg_tensor *y = tg_index_add(tape, x, idx, src, 1);
        /* row 0: x[0] + [20, 0, 10 + 30 + 40]; row 1: x[1] + [60, 0, 50 + 70 + 80] */
        expect("index_add along 1", y, 2, SH(2, 3), V(21, 2, 83, 64, 5, 206));
        backward_weighted(y); /* dy = [[1, 2, 3], [4, 5, 6]] */
        expect_grad("dx = dy", x, V(1, 2, 3, 4, 5, 6));
        expect_grad("dsrc = take(dy, idx, 1)", src, V(3, 1, 3, 3, 6, 4, 6, 6));

        /* idx of shape (2,2) along axis 0 of (3,2): src is (2,2,2), one row per index */
        tg_tape_reset(tape);
        tg_tensor *z = own_leaf(dt, 2, SH(3, 2), V(0, 0, 0, 0, 0, 0), false);
        tg_tensor *i2 = own_leaf(dt, 2, SH(2, 2), V(0, 2, 2, 1), false);
        tg_tensor *s3 = iota(dt, 3, SH(2, 2, 2), 0, 1, false);
        expect("2-D idx", tg_index_add(tape, z, i2, s3, 0), 2, SH(3, 2), V(0, 1, 6, 7, 6, 8));
        /* a 0-d idx adds one row, as select picks one */
        tg_tensor *i0 = own_leaf(dt, 0, NULL, V(-2), false);
        tg_tensor *row = own_leaf(dt, 1, SH(2), V(5, 7), false);
        expect("0-d idx", tg_index_add(tape, z, i0, row, 0), 2, SH(3, 2), V(0, 0, 5, 7, 0, 0));
    }
}

Test(ops, index_add_errors_name_the_shapes)
{
    tg_tensor *x = iota(TG_F64, 2, SH(2, 3), 0, 1, false);
    tg_tensor *idx = own_leaf(TG_F64, 1, SH(4), V(2, 0, 2, -1), false);
    tg_tensor *s23 = iota(TG_F64, 2, SH(2, 3), 0, 1, false);
    expect_error_reset("src shape", tg_index_add(tape, x, idx, s23, 1), TG_ESHAPE,
                       "src [2,3] does not fit x [2,3], idx [4] along axis 1: it must have "
                       "take's result shape, [2,4]");
    tg_tensor *s14 = iota(TG_F64, 2, SH(1, 4), 0, 1, false); /* would broadcast: refused */
    expect_error_reset("no broadcasting", tg_index_add(tape, x, idx, s14, 1), TG_ESHAPE,
                       "src [1,4] does not fit");
    tg_tensor *bad = own_leaf(TG_F64, 1, SH(4), V(0, 3, 1, 0), false);
    tg_tensor *s24 = iota(TG_F64, 2, SH(2, 4), 0, 1, false);
    expect_error_reset("out of range", tg_index_add(tape, x, bad, s24, 1), TG_ESHAPE,
                       "idx element 1 is 3, out of range for axis 1 of size 3");
    tg_tensor *frac = own_leaf(TG_F64, 1, SH(4), V(0, 0.5, 1, 1), false);
    expect_error_reset("fraction", tg_index_add(tape, x, frac, s24, 1), TG_EINVAL,
                       "idx element 1 is 0.5, not an integer index");
    tg_tensor *x3 = iota(TG_F64, 3, SH(2, 2, 2), 0, 1, false);
    tg_tensor *i3 = own_leaf(TG_F64, 3, SH(1, 1, 1), V(0), false);
    expect_error_reset("rank 5", tg_index_add(tape, x3, i3, x3, 0), TG_ESHAPE,
                       "take's result would have 5 axes, more than 4");
    expect_error_reset("axis", tg_index_add(tape, x, idx, s24, 2), TG_EINVAL,
                       "axis 2 is out of range");
    tg_tensor *f32 = own_leaf(TG_F32, 2, SH(2, 4), V(0, 0, 0, 0, 0, 0, 0, 0), false);
    expect_error_reset("dtype", tg_index_add(tape, x, idx, f32, 1), TG_EDTYPE,
                       "index_add: input 2 is f32, input 0 f64");
    expect_error_reset("NULL", tg_index_add(tape, x, NULL, s24, 1), TG_EINVAL, "NULL");
}

/* take and index_add over the pool: large enough to split (by rows of o along axis 1, by
 * columns along axis 0), more indices than are read at a time, most of them repeated, in f32
 * with terms of every magnitude (so the order of the sums shows): on 1 and 3 threads, y of
 * take, dx of take (scatter), index_add's y and dsrc (gather) are bit for bit a plain loop's,
 * which adds each (o, j) in order (the documented order of repeated indices). */
Test(ops, take_and_index_add_on_the_pool_match_a_plain_loop)
{
    const size_t outer_of[2] = {1, 300}, dim = 40, inner_of[2] = {96, 2}, m = 700;
    for (int axis = 0; axis < 2; axis++) {
        const size_t outer = outer_of[axis], inner = inner_of[axis];
        const size_t nx = outer * dim * inner, np = outer * m * inner;
        /* axis 0: x (dim, inner); axis 1: x (outer, dim, inner) */
        const size_t xs0[2] = {dim, inner}, xs1[3] = {outer, dim, inner};
        const size_t *xs = axis ? xs1 : xs0;
        const int xr = axis ? 3 : 2;
        size_t ps[3] = {outer, m, inner}; /* take's shape: (m, inner) along axis 0 */
        const size_t *pshape = axis ? ps : ps + 1;
        double *xv = malloc(nx * sizeof *xv), *pv = malloc(np * sizeof *pv), iv[700];
        float *want = malloc((nx > np ? nx : np) * sizeof *want);
        cr_assert(xv && pv && want);
        tg_rng rng;
        tg_rng_seed(&rng, 7);
        for (size_t i = 0; i < nx; i++)
            xv[i] = (2 * tg_rng_uniform(&rng) - 1) * ldexp(1, (int)(i % 37) - 18);
        for (size_t i = 0; i < np; i++)
            pv[i] = (2 * tg_rng_uniform(&rng) - 1) * ldexp(1, (int)(i % 29) - 14);
        for (size_t j = 0; j < m; j++) /* 0..9 and -1..-3 mostly, every row now and then */
            iv[j] = j % 7 == 0 ? (double)(j % dim) : (double)((int)(j % 13) - 3);
        tg_tensor *x = own_leaf(TG_F32, xr, xs, xv, true);
        tg_tensor *idx = own_leaf(TG_F32, 1, SH(m), iv, false);
        tg_tensor *p = own_leaf(TG_F32, xr, pshape, pv, true); /* dy of take, src of index_add */
        for (int threads = 1; threads <= 3; threads += 2) {
            cr_assert_eq(tg_set_num_threads(threads), TG_OK);
            tg_tape_reset(tape);
            tg_tensor_zero_grad(x);
            tg_tensor_zero_grad(p);
            tg_tensor *y = tg_take(tape, x, idx, axis);
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            cr_assert_eq(tg_backward_seed(tape, y, p), TG_OK, "%s", tg_last_error());
            tg_tensor *z = tg_index_add(tape, x, idx, p, axis);
            cr_assert_not_null(z, "%s", tg_tape_error(tape));
            tg_tensor_zero_grad(p);
            cr_assert_eq(tg_backward_seed(tape, z, x), TG_OK, "%s", tg_last_error());
            /* the plain loops: k = idx[j] (negative from the end) */
            const float *X = tg_tensor_data(x), *P = tg_tensor_data(p);
            for (int what = 0; what < 4; what++) {
                const size_t n = what == 0 || what == 3 ? np : nx;
                const float *got = what == 0   ? tg_tensor_data(y)
                                   : what == 1 ? tg_tensor_grad_data(x)
                                   : what == 2 ? tg_tensor_data(z)
                                               : tg_tensor_grad_data(p);
                for (size_t i = 0; i < n; i++) /* x's gradient also has index_add's dx = x */
                    want[i] = what == 0 || what == 3 ? 0.0f : what == 1 ? 0.0f : X[i];
                for (size_t o = 0; o < outer; o++)
                    for (size_t j = 0; j < m; j++) {
                        const size_t k = (size_t)(iv[j] < 0 ? iv[j] + (double)dim : iv[j]);
                        for (size_t i = 0; i < inner; i++) {
                            const size_t f = (o * dim + k) * inner + i, q = (o * m + j) * inner + i;
                            if (what == 0)
                                want[q] = X[f];
                            else if (what == 1 || what == 2)
                                want[f] += P[q];
                            else
                                want[q] += X[f];
                        }
                    }
                if (what == 1) /* then index_add's dx = dy = x, added after take's */
                    for (size_t i = 0; i < nx; i++)
                        want[i] += X[i];
                for (size_t i = 0; i < n; i++)
                    cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0,
                              "axis %d, %d threads, %s: element %zu is %a, a plain loop gives %a",
                              axis, threads,
                              (const char *[]){"take", "take's dx", "index_add",
                                               "index_add's dsrc"}[what],
                              i, (double)got[i], (double)want[i]);
            }
        }
        free(xv);
        free(pv);
        free(want);
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
}

/* slice over the pool (by rows of the result: along axis 1 a row is one element, along axis 0
 * 200): on 1 and 3 threads, y and dx are exactly x's and dy's picked elements. */
Test(ops, slice_on_the_pool_picks_every_element)
{
    const size_t xs[2] = {1400, 200}, n = 1400 * 200;
    double *xv = malloc(n * sizeof *xv);
    cr_assert(xv);
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    for (size_t i = 0; i < n; i++)
        xv[i] = 2 * tg_rng_uniform(&rng) - 1;
    tg_tensor *x = own_leaf(TG_F32, 2, xs, xv, true);
    const float *X = tg_tensor_data(x);
    for (int axis = 0; axis < 2; axis++) {
        const size_t start = 3, step = axis ? 4 : 2, stop = xs[axis] - 5;
        const size_t count = (stop - start + step - 1) / step;
        for (int threads = 1; threads <= 3; threads += 2) {
            cr_assert_eq(tg_set_num_threads(threads), TG_OK);
            tg_tape_reset(tape);
            tg_tensor_zero_grad(x);
            tg_tensor *y =
                tg_slice(tape, x, axis, (ptrdiff_t)start, (ptrdiff_t)stop, (ptrdiff_t)step);
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            cr_assert_eq(tg_backward_seed(tape, y, y), TG_OK, "%s", tg_last_error()); /* dy = y */
            const float *Y = tg_tensor_data(y), *DX = tg_tensor_grad_data(x);
            for (size_t r = 0; r < xs[0]; r++)
                for (size_t c = 0; c < xs[1]; c++) {
                    const size_t along = axis ? c : r;
                    const bool picked =
                        along >= start && along < stop && (along - start) % step == 0;
                    const float want = picked ? X[r * xs[1] + c] : 0.0f;
                    cr_assert(memcmp(&DX[r * xs[1] + c], &want, sizeof want) == 0,
                              "axis %d, %d threads: dx[%zu,%zu] is %a, want %a", axis, threads, r,
                              c, (double)DX[r * xs[1] + c], (double)want);
                    if (picked) {
                        const size_t j = (along - start) / step;
                        const size_t q = axis ? r * count + j : j * xs[1] + c;
                        cr_assert(memcmp(&Y[q], &want, sizeof want) == 0,
                                  "axis %d, %d threads: y[%zu] is %a, want %a", axis, threads, q,
                                  (double)Y[q], (double)want);
                    }
                }
        }
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
    free(xv);
}

/* concat and stack over the pool (by ranges of y's rows, or of its elements when it has one
 * row; backward input by input), large enough to split, along the first, a middle and the last
 * axis (stack's last: a block of one element a row), inputs empty in both paths: on 1 and 3
 * threads, y and every dx_k are bit for bit a plain loop's, which lays out, for each o, input
 * 0's block of row o, then input 1's, ... (dx_k the same blocks of dy). */
Test(ops, concat_and_stack_on_the_pool_match_a_plain_loop)
{
    static const struct {
        bool stack;
        int axis, n;
        size_t shape[3][3];
    } cases[] = {
        {false, 0, 3, {{0, 30, 70}, {40, 30, 70}, {7, 30, 70}}},
        {false, 1, 3, {{40, 30, 70}, {40, 0, 70}, {40, 7, 70}}},
        {false, 2, 2, {{40, 30, 70}, {40, 30, 3}}},
        {true, 0, 3, {{40, 30, 20}, {40, 30, 20}, {40, 30, 20}}},
        {true, 3, 3, {{40, 30, 20}, {40, 30, 20}, {40, 30, 20}}},
    };
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int n = cases[c].n, axis = cases[c].axis;
        tg_tensor *xs[3];
        size_t block[3], row = 0, outer = 1;
        for (int d = 0; d < axis && d < 3; d++)
            outer *= cases[c].shape[0][d];
        for (int k = 0; k < n; k++) {
            const size_t *s = cases[c].shape[k], numel = s[0] * s[1] * s[2];
            double *v = malloc((numel ? numel : 1) * sizeof *v);
            cr_assert(v);
            for (size_t i = 0; i < numel; i++)
                v[i] = 2 * tg_rng_uniform(&rng) - 1;
            xs[k] = own_leaf(TG_F32, 3, s, v, true);
            free(v);
            block[k] = numel / outer;
            row += block[k];
        }
        const size_t ny = outer * row;
        double *sv = malloc(ny * sizeof *sv);
        cr_assert(sv);
        for (size_t i = 0; i < ny; i++)
            sv[i] = 2 * tg_rng_uniform(&rng) - 1;
        for (int threads = 1; threads <= 3; threads += 2) {
            cr_assert_eq(tg_set_num_threads(threads), TG_OK);
            tg_tape_reset(tape);
            for (int k = 0; k < n; k++)
                tg_tensor_zero_grad(xs[k]);
            tg_tensor *y = cases[c].stack ? tg_stack(tape, xs, (size_t)n, axis)
                                          : tg_concat(tape, xs, (size_t)n, axis);
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            cr_assert_eq(tg_tensor_numel(y), ny);
            tg_tensor *seed = own_leaf(TG_F32, tg_tensor_rank(y), tg_tensor_shape(y), sv, false);
            cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
            const float *Y = tg_tensor_data(y), *DY = tg_tensor_data(seed);
            for (size_t o = 0, q = 0; o < outer; o++)
                for (int k = 0; k < n; k++)
                    for (size_t i = 0; i < block[k]; i++, q++) {
                        const float *X = tg_tensor_data(xs[k]), *DX = tg_tensor_grad_data(xs[k]);
                        const size_t f = o * block[k] + i;
                        cr_assert(memcmp(&Y[q], &X[f], sizeof(float)) == 0,
                                  "case %zu, %d threads: y[%zu] is %a, input %d's element %zu %a",
                                  c, threads, q, (double)Y[q], k, f, (double)X[f]);
                        cr_assert(memcmp(&DX[f], &DY[q], sizeof(float)) == 0,
                                  "case %zu, %d threads: dx_%d[%zu] is %a, dy[%zu] %a", c, threads,
                                  k, f, (double)DX[f], q, (double)DY[q]);
                    }
        }
        free(sv);
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
}

/* permute over the pool (by ranges of its two outer loops; of two axes, as a transpose), large
 * enough to split: 4-D with the last axis kept last, moved to the front and moved inside, and
 * 2-D: on 1 and 3 threads, y and dx are bit for bit x's and dy's elements at the permuted
 * indices. */
Test(ops, permute_on_the_pool_moves_every_element)
{
    static const struct {
        int rank, perm[4];
        size_t shape[4];
    } cases[] = {
        {4, {0, 2, 1, 3}, {6, 50, 40, 30}},
        {4, {3, 1, 0, 2}, {6, 50, 40, 30}},
        {4, {2, 0, 3, 1}, {6, 50, 40, 30}},
        {2, {1, 0}, {300, 700}},
    };
    tg_rng rng;
    tg_rng_seed(&rng, 13);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int r = cases[c].rank, *pm = cases[c].perm;
        const size_t *xs = cases[c].shape;
        size_t ys[4], n = 1;
        for (int d = 0; d < r; d++)
            ys[d] = xs[pm[d]], n *= xs[d];
        double *v = malloc(2 * n * sizeof *v);
        cr_assert(v);
        for (size_t i = 0; i < 2 * n; i++)
            v[i] = 2 * tg_rng_uniform(&rng) - 1;
        tg_tensor *x = own_leaf(TG_F32, r, xs, v, true);
        tg_tensor *seed = own_leaf(TG_F32, r, ys, v + n, false);
        free(v);
        const float *X = tg_tensor_data(x), *DY = tg_tensor_data(seed);
        for (int threads = 1; threads <= 3; threads += 2) {
            cr_assert_eq(tg_set_num_threads(threads), TG_OK);
            tg_tape_reset(tape);
            tg_tensor_zero_grad(x);
            tg_tensor *y = tg_permute(tape, x, pm);
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
            const float *Y = tg_tensor_data(y), *DX = tg_tensor_grad_data(x);
            for (size_t q = 0; q < n; q++) {
                size_t xi[4], f = 0, rest = q;
                for (int d = r; d-- > 0; rest /= ys[d]) /* y's index of q, axis d to x's pm[d] */
                    xi[pm[d]] = rest % ys[d];
                for (int d = 0; d < r; d++)
                    f = f * xs[d] + xi[d];
                cr_assert(memcmp(&Y[q], &X[f], sizeof(float)) == 0 &&
                              memcmp(&DX[f], &DY[q], sizeof(float)) == 0,
                          "case %zu, %d threads: y[%zu] %a, x[%zu] %a, dx %a, dy %a", c, threads, q,
                          (double)Y[q], f, (double)X[f], (double)DX[f], (double)DY[q]);
            }
        }
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
}

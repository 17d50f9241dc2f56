/* matrices.c: the dense derivative matrices of tapegrad/diff.h, as new leaves: tg_jacobian
 * (rows by reverse mode, one backward pass per output element; or columns by forward mode,
 * one backward pass of the recorded gradient per input element) and tg_hessian (the recorded
 * gradient once, then one backward pass of it per input element).
 *
 * Every row or column is a first-order backward pass with a one-hot seed: it records nothing,
 * and reuses the gradient buffers of the nodes pass after pass, so the memory of n passes is
 * that of one (no copy of the tape per row). The passes are tg_grad's (tape/captured.h): the
 * tape keeps the leaves' gradients, so no leaf is written, and tapes on other threads may
 * share the leaves. */
#include "diff/diff_impl.h"
#include "tape/captured.h"
#include "tape/grad_inputs.h"

/* ---- rows and columns ---------------------------------------------------------------------- */

static double load(const void *p, tg_dtype dt, size_t i)
{
    return dt == TG_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static void store(void *p, tg_dtype dt, size_t i, double v)
{
    if (dt == TG_F64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

/* Copies n elements from src (dtype sdt; NULL: zeros, already there) to dst[off + k * stride]
 * (dtype ddt). */
static void copy_strided(void *dst, tg_dtype ddt, size_t off, size_t stride, const void *src,
                         tg_dtype sdt, size_t n)
{
    if (!src)
        return;
    if (stride == 1 && ddt == sdt) {
        size_t es = tg_dtype_size(ddt);
        memcpy((char *)dst + off * es, src, n * es);
        return;
    }
    for (size_t k = 0; k < n; k++)
        store(dst, ddt, off + k * stride, load(src, sdt, k));
}

/* out[i] = a new zero matrix (rows, numel(xs[i])) of dtype dt, for i < n (stride apart). */
static tg_status new_blocks(const char *who, tg_dtype dt, size_t rows, tg_tensor *const *xs,
                            size_t n, tg_tensor **out)
{
    for (size_t i = 0; i < n; i++) {
        const size_t shape[2] = {rows, tg_tensor_numel(xs[i])};
        if (!(out[i] = tg_tensor_zeros(dt, 2, shape)))
            return tg__error(tg_last_status(), "%s: the result: %s", who, tg_last_error());
    }
    return TG_OK;
}

static void free_blocks(tg_tensor **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tg_tensor_free(out[i]);
        out[i] = NULL;
    }
}

/* A leaf of zeros of `like`'s dtype and shape, the one-hot seed of a pass. */
static tg_tensor *seed_like(const char *who, const tg_tensor *like)
{
    tg_tensor *s =
        tg_tensor_zeros(tg_tensor_dtype(like), tg_tensor_rank(like), tg_tensor_shape(like));
    if (!s)
        tg__error(tg_last_status(), "%s: the seed: %s", who, tg_last_error());
    return s;
}

/* For each element k of y: one pass from y with the seed e_k; row k of out[i] is the gradient
 * xs[i] received. grads: room for n pointers. */
static tg_status jacobian_rows(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                               const void **grads, tg_tensor **out)
{
    tg_tensor *seed = seed_like("jacobian", y);
    if (!seed)
        return tg_last_status();
    const tg_dtype dt = tg_tensor_dtype(y);
    void *sv = tg_tensor_data(seed);
    tg_status st = TG_OK;
    for (size_t r = 0; r < tg_tensor_numel(y) && st == TG_OK; r++) {
        store(sv, dt, r, 1.0);
        st = tg_tape__captured_pass(tape, y, seed, xs, n, grads);
        for (size_t i = 0; i < n && st == TG_OK; i++) {
            size_t cols = tg_tensor_numel(xs[i]);
            copy_strided(tg_tensor_data(out[i]), dt, r * cols, 1, grads[i],
                         tg_tensor_dtype(xs[i]), cols);
        }
        store(sv, dt, r, 0.0);
    }
    tg_tensor_free(seed);
    return st;
}

/* g = uᵀJ recorded with u = y * 0 as the seed; for each element k of xs[i], one pass from
 * g[i] with the seed e_k gives u the gradient J e_k, column k of out[i]. */
static tg_status jacobian_columns(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                                  tg_tensor **g, tg_tensor *u, tg_tensor **out)
{
    const tg_dtype dt = tg_tensor_dtype(y);
    const size_t rows = tg_tensor_numel(y);
    tg_status st = TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        if (!tg_tensor_requires_grad(g[i])) /* y does not depend on xs[i] */
            continue;
        tg_tensor *seed = seed_like("jacobian", g[i]);
        if (!seed)
            return tg_last_status();
        void *sv = tg_tensor_data(seed);
        const size_t cols = tg_tensor_numel(xs[i]);
        for (size_t k = 0; k < cols && st == TG_OK; k++) {
            store(sv, tg_tensor_dtype(g[i]), k, 1.0);
            const void *du = NULL;
            st = tg_tape__captured_pass(tape, g[i], seed, &u, 1, &du);
            if (st == TG_OK)
                copy_strided(tg_tensor_data(out[i]), dt, k, cols, du, dt, rows);
            store(sv, tg_tensor_dtype(g[i]), k, 0.0);
        }
        tg_tensor_free(seed);
    }
    return st;
}

/* Whether the recording holds a custom op, whose VJP may not be recordable (forward mode
 * would fail on it, and leave the tape with the error). */
static bool has_custom(const tg_tape *tape)
{
    for (size_t i = 0, n = tg_tape_size(tape); i < n; i++)
        if (tg_tensor_op(tg_tape_node(tape, i)) == TG_OP_CUSTOM)
            return true;
    return false;
}

/* Columns by forward mode when they are fewer than a third of the rows: a pass of the
 * recorded gradient walks the gradient's nodes and y's, two to three times a pass of y's. */
#define JACOBIAN_COLUMN_COST 3

tg_status tg_jacobian(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n, tg_tensor **out)
{
    if (n && !out)
        return tg__error(TG_EINVAL, "jacobian: out is NULL");
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    tg_status st = tg_diff__check_output("jacobian", tape, y, false);
    if (st == TG_OK)
        st = tg_diff__check_inputs("jacobian", tape, xs, NULL, n);
    if (st == TG_OK) /* rows by plain passes: the rule tg_grad_graph applies to columns */
        st = tg_tape__check_grad_inputs(tape, y, xs, n, "jacobian");
    if (st != TG_OK)
        return st;
    size_t n_in = 0;
    for (size_t i = 0; i < n; i++)
        n_in += tg_tensor_numel(xs[i]);
    const size_t rows = tg_tensor_numel(y);
    const bool columns = rows > 1 && n_in > 0 && n_in <= (rows - 1) / JACOBIAN_COLUMN_COST &&
                         tg_tape_grad_enabled(tape) && !has_custom(tape);
    tg_tensor **g = NULL, *u = NULL;
    if (columns) {
        if (!(g = tg__calloc(n ? n : 1, sizeof *g)))
            return tg__error(TG_ENOMEM, "jacobian: out of memory");
        u = tg_mul(tape, y, tg_scalar(tape, tg_tensor_dtype(y), 0.0));
        st = u ? tg_grad_graph(tape, y, xs, n, u, g) : tg_tape_status(tape);
    }
    if (st == TG_OK)
        st = new_blocks("jacobian", tg_tensor_dtype(y), rows, xs, n, out);
    if (st == TG_OK && columns) {
        st = jacobian_columns(tape, y, xs, n, g, u, out);
    } else if (st == TG_OK) {
        const void **grads = tg__calloc(n ? n : 1, sizeof *grads);
        st = grads ? jacobian_rows(tape, y, xs, n, grads, out)
                   : tg__error(TG_ENOMEM, "jacobian: out of memory");
        tg__free(grads, (n ? n : 1) * sizeof *grads);
    }
    if (st != TG_OK)
        free_blocks(out, n);
    if (g)
        tg__free(g, (n ? n : 1) * sizeof *g);
    return st;
}

tg_status tg_hessian(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, size_t n, tg_tensor **out)
{
    if (n && !out)
        return tg__error(TG_EINVAL, "hessian: out is NULL");
    for (size_t i = 0; i < n * n; i++)
        out[i] = NULL;
    tg_status st = tg_diff__check_output("hessian", tape, f, true);
    if (st == TG_OK)
        st = tg_diff__check_inputs("hessian", tape, xs, NULL, n);
    if (st == TG_OK)
        st = tg_tape__check_grad_inputs(tape, f, xs, n, "hessian");
    if (st != TG_OK)
        return st;
    if (tg_tensor_numel(f) != 1) {
        char s[96];
        return tg__error(TG_EINVAL,
                         "hessian: f has shape %s, not a single element (the Jacobian of the "
                         "gradient is the matrix of a vector function's second derivatives)",
                         tg_shape_format(s, sizeof s, tg_tensor_rank(f), tg_tensor_shape(f)));
    }
    /* g: the gradient; grads: what xs received in a pass */
    tg_tensor **g = tg__calloc(n ? n : 1, sizeof *g);
    const void **grads = tg__calloc(n ? n : 1, sizeof *grads);
    if (!g || !grads) {
        tg__free(g, (n ? n : 1) * sizeof *g);
        tg__free(grads, (n ? n : 1) * sizeof *grads);
        return tg__error(TG_ENOMEM, "hessian: out of memory");
    }
    const tg_dtype dt = tg_tensor_dtype(f);
    st = tg_grad_graph(tape, f, xs, n, NULL, g);
    for (size_t i = 0; i < n && st == TG_OK; i++)
        st = new_blocks("hessian", dt, tg_tensor_numel(xs[i]), xs, n, out + i * n);
    /* Row k of block (i, j) is the gradient xs[j] gets from a pass from g[i] seeded e_k. */
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        if (!tg_tensor_requires_grad(g[i])) /* f is at most linear in xs: zero rows */
            continue;
        tg_tensor *seed = seed_like("hessian", g[i]);
        if (!seed) {
            st = tg_last_status();
            break;
        }
        void *sv = tg_tensor_data(seed);
        const size_t rows = tg_tensor_numel(xs[i]);
        for (size_t k = 0; k < rows && st == TG_OK; k++) {
            store(sv, tg_tensor_dtype(g[i]), k, 1.0);
            st = tg_tape__captured_pass(tape, g[i], seed, xs, n, grads);
            for (size_t j = 0; j < n && st == TG_OK; j++) {
                size_t cols = tg_tensor_numel(xs[j]);
                copy_strided(tg_tensor_data(out[i * n + j]), dt, k * cols, 1, grads[j],
                             tg_tensor_dtype(xs[j]), cols);
            }
            store(sv, tg_tensor_dtype(g[i]), k, 0.0);
        }
        tg_tensor_free(seed);
    }
    if (st != TG_OK)
        free_blocks(out, n * n);
    tg__free(g, (n ? n : 1) * sizeof *g);
    tg__free(grads, (n ? n : 1) * sizeof *grads);
    return st;
}

/* products.c: the derivative products of tapegrad/diff.h, recorded on the tape (so they can
 * be differentiated again): tg_vjp (vᵀJ: tg_grad_graph with v as the seed), tg_jvp (J·v,
 * forward mode derived from the differentiable VJPs by the double-VJP trick) and tg_hvp (H·v
 * of a scalar function without forming H); and the helpers the module shares (diff_impl.h). */
#include "diff/diff_impl.h"
#include "tape/grad_inputs.h"

/* ---- shared helpers ---------------------------------------------------------------------- */

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    int r = tg_tensor_rank(a);
    if (r != tg_tensor_rank(b))
        return false;
    const size_t *sa = tg_tensor_shape(a), *sb = tg_tensor_shape(b);
    for (int i = 0; i < r; i++)
        if (sa[i] != sb[i])
            return false;
    return true;
}

tg_status tg_diff__check_inputs(const char *who, const tg_tape *tape, tg_tensor *const *xs,
                                tg_tensor *const *vs, size_t n)
{
    if (n && !xs)
        return tg__error(TG_EINVAL, "%s: xs is NULL", who);
    tg_status st;
    for (size_t i = 0; i < n; i++) {
        if (!xs[i])
            return tg__error(TG_EINVAL, "%s: xs[%zu] is NULL", who, i);
        if ((st = tg_tape__check_usable(tape, xs[i], who, "xs", i)) != TG_OK)
            return st;
    }
    if (!vs)
        return TG_OK;
    char s1[96], s2[96];
    for (size_t i = 0; i < n; i++) {
        if (!vs[i])
            return tg__error(TG_EINVAL, "%s: vs[%zu] is NULL", who, i);
        if ((st = tg_tape__check_usable(tape, vs[i], who, "vs", i)) != TG_OK)
            return st;
        if (tg_tensor_dtype(vs[i]) != tg_tensor_dtype(xs[i]))
            return tg__error(TG_EDTYPE, "%s: vs[%zu] has dtype %s, xs[%zu] %s", who, i,
                             tg_dtype_name(tg_tensor_dtype(vs[i])), i,
                             tg_dtype_name(tg_tensor_dtype(xs[i])));
        if (!same_shape(vs[i], xs[i]))
            return tg__error(
                TG_ESHAPE, "%s: vs[%zu] has shape %s, xs[%zu] %s", who, i,
                tg_shape_format(s1, sizeof s1, tg_tensor_rank(vs[i]), tg_tensor_shape(vs[i])), i,
                tg_shape_format(s2, sizeof s2, tg_tensor_rank(xs[i]), tg_tensor_shape(xs[i])));
    }
    return TG_OK;
}

tg_status tg_diff__check_output(const char *who, tg_tape *tape, tg_tensor *y, bool recorded)
{
    if (!tape || !y)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, tape ? "the output" : "tape");
    if (tg_tape_status(tape) != TG_OK)
        return tg__error(tg_tape_status(tape), "%s: the tape has an error: %s", who,
                         tg_tape_error(tape));
    tg_status st = tg_tape__check_usable(tape, y, who, "the output", SIZE_MAX);
    if (st != TG_OK)
        return st;
    if (!tg_tensor_requires_grad(y))
        return tg_tape__output_untracked(tape, y, who);
    /* as every pass would find, but before anything is recorded, and naming `who` */
    if ((st = tg_tape__check_leaves_unchanged(tape, y, who)) != TG_OK)
        return st;
    if (recorded && !tg_tape_grad_enabled(tape))
        return tg__error(TG_EINVAL,
                         "%s: gradient recording is disabled on this tape "
                         "(tg_tape_set_grad_enabled), so gradients cannot be differentiated",
                         who);
    return TG_OK;
}

tg_tensor *tg_diff__zeros_like(tg_tape *tape, const tg_tensor *like)
{
    size_t numel = tg_tensor_numel(like), bytes = numel * tg_dtype_size(tg_tensor_dtype(like));
    void *z = tg__calloc(bytes ? bytes : 1, 1);
    if (!z) {
        tg_tape_fail(tape, TG_ENOMEM, "diff: out of memory for %zu bytes of zeros", bytes);
        return NULL;
    }
    tg_tensor *t =
        tg_constant(tape, tg_tensor_dtype(like), tg_tensor_rank(like), tg_tensor_shape(like), z);
    tg__free(z, bytes ? bytes : 1);
    return t;
}

tg_tensor *tg_diff__inner(tg_tape *tape, tg_tensor *const *a, tg_tensor *const *b, size_t n)
{
    tg_tensor *s = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!tg_tensor_requires_grad(a[i])) /* a constant: no derivative of the sum sees it */
            continue;
        tg_tensor *t = tg_sum(tape, tg_mul(tape, a[i], b[i]), TG_ALL_AXES, false);
        s = s ? tg_add(tape, s, t) : t;
        if (!s)
            return NULL;
    }
    return s;
}

/* ---- the products ------------------------------------------------------------------------ */

/* v for tg_vjp: NULL for a single-element y, else a leaf or a tensor of this recording of y's
 * dtype and shape. Checked here, not left to tg_grad_graph, so that a message names vjp's
 * arguments (v, not a seed). */
static tg_status check_cotangent(const tg_tape *tape, const tg_tensor *y, const tg_tensor *v)
{
    char s1[96], s2[96];
    if (!v) {
        if (tg_tensor_numel(y) == 1)
            return TG_OK;
        return tg__error(TG_EINVAL,
                         "vjp: y has shape %s, not a single element; pass v of that shape",
                         tg_shape_format(s1, sizeof s1, tg_tensor_rank(y), tg_tensor_shape(y)));
    }
    tg_status st = tg_tape__check_usable(tape, v, "vjp", "v", SIZE_MAX);
    if (st != TG_OK)
        return st;
    if (tg_tensor_dtype(v) != tg_tensor_dtype(y))
        return tg__error(TG_EDTYPE, "vjp: v has dtype %s, y %s", tg_dtype_name(tg_tensor_dtype(v)),
                         tg_dtype_name(tg_tensor_dtype(y)));
    if (!same_shape(v, y))
        return tg__error(TG_ESHAPE, "vjp: v has shape %s, y %s",
                         tg_shape_format(s1, sizeof s1, tg_tensor_rank(v), tg_tensor_shape(v)),
                         tg_shape_format(s2, sizeof s2, tg_tensor_rank(y), tg_tensor_shape(y)));
    return TG_OK;
}

tg_status tg_vjp(tg_tape *tape, tg_tensor *y, tg_tensor *v, tg_tensor *const *xs, size_t n,
                 tg_tensor **out)
{
    if (n && !out)
        return tg__error(TG_EINVAL, "vjp: out is NULL");
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    /* a product, so differentiable again: not on a tape that records no gradient */
    tg_status st = tg_diff__check_output("vjp", tape, y, true);
    if (st == TG_OK)
        st = tg_diff__check_inputs("vjp", tape, xs, NULL, n);
    if (st == TG_OK)
        st = check_cotangent(tape, y, v);
    if (st == TG_OK)
        st = tg_tape__check_grad_inputs(tape, y, xs, n, "vjp");
    return st != TG_OK ? st : tg_grad_graph(tape, y, xs, n, v, out);
}

/* A scratch array of n tensor pointers (at least one), or NULL with TG_ENOMEM set. */
static tg_tensor **tensors_new(const char *who, size_t n)
{
    tg_tensor **p = tg__calloc(n ? n : 1, sizeof *p);
    if (!p)
        tg__error(TG_ENOMEM, "%s: out of memory", who);
    return p;
}

static void tensors_free(tg_tensor **p, size_t n)
{
    tg__free(p, (n ? n : 1) * sizeof *p);
}

/* The double-VJP trick: u is a tensor of y's shape that requires grad (y * 0: a node, so the
 * tape never refers to a leaf this function would have to keep alive); g(u) = uᵀJ is
 * recorded by tg_grad_graph with u as the seed, and is linear in u; so <g(u), v> = uᵀ(Jv),
 * whose gradient in u, recorded by tg_grad_graph again, is Jv. */
tg_status tg_jvp(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, tg_tensor *const *vs, size_t n,
                 tg_tensor **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "jvp: out is NULL");
    *out = NULL;
    tg_status st = tg_diff__check_output("jvp", tape, y, true);
    if (st == TG_OK)
        st = tg_diff__check_inputs("jvp", tape, xs, vs, n);
    if (st == TG_OK)
        st = tg_tape__check_grad_inputs(tape, y, xs, n, "jvp");
    if (st != TG_OK)
        return st;
    if (n && !vs)
        return tg__error(TG_EINVAL, "jvp: vs is NULL");
    tg_tensor **g = tensors_new("jvp", n);
    if (!g)
        return TG_ENOMEM;
    tg_tensor *u = tg_mul(tape, y, tg_scalar(tape, tg_tensor_dtype(y), 0.0));
    st = u ? tg_grad_graph(tape, y, xs, n, u, g) : tg_tape_status(tape);
    tg_tensor *s = st == TG_OK ? tg_diff__inner(tape, g, vs, n) : NULL;
    if (st == TG_OK && n && !s)
        st = tg_tape_status(tape);
    if (st == TG_OK) {
        if (s && tg_tensor_requires_grad(s))
            st = tg_grad_graph(tape, s, &u, 1, NULL, out);
        else if (!(*out = tg_diff__zeros_like(tape, y))) /* y depends on none of xs */
            st = tg_tape_status(tape);
    }
    tensors_free(g, n);
    return st;
}

/* Whether a tangent may depend on xs: one that requires grad and is a tensor of the tape
 * (computed, perhaps from xs) or one of xs itself. Then the gradient in xs of sum_i <g_i,
 * vs[i]> would be H v plus (d vs / d xs)ᵀ g: vs must be held constant there. */
static bool tangent_on_inputs(tg_tensor *const *xs, tg_tensor *const *vs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!tg_tensor_requires_grad(vs[i]))
            continue;
        if (!tg_tensor_is_leaf(vs[i]))
            return true;
        for (size_t j = 0; j < n; j++)
            if (vs[i] == xs[j])
                return true;
    }
    return false;
}

/* H v for tangents that may depend on xs: forward mode on the gradient g, as tg_jvp on y.
 * With u_i = g_i * 0 (of g_i's shape, requiring grad), h = d/dxs sum_i <g_i, u_i> is linear
 * in u, h_j = sum_i u_iᵀ (d g_i / d xs[j]); so d/du_i sum_j <h_j, vs[j]> = sum_j (d g_i /
 * d xs[j]) vs[j] = (H v)_i, and no path from that sum back to u runs through vs. The g_i that
 * do not require grad (constants) have zero rows. One recorded pass more than the plain way. */
static tg_status hvp_on_the_gradient(tg_tape *tape, tg_tensor *const *xs, tg_tensor *const *vs,
                                     size_t n, tg_tensor *const *g, tg_tensor **out)
{
    tg_tensor **u = tensors_new("hvp", 4 * n);
    if (!u)
        return TG_ENOMEM;
    tg_tensor **h = u + n, **live = u + 2 * n, **du = u + 3 * n;
    size_t m = 0; /* the u_i that exist, in live[0..m) */
    tg_status st = TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        u[i] = g[i]; /* left out of the inner product below when it is a constant */
        if (tg_tensor_requires_grad(g[i]) &&
            !(u[i] = live[m++] = tg_mul(tape, g[i], tg_scalar(tape, tg_tensor_dtype(g[i]), 0.0))))
            st = tg_tape_status(tape);
    }
    tg_tensor *t = st == TG_OK ? tg_diff__inner(tape, g, u, n) : NULL;
    if (st == TG_OK && t)
        st = tg_grad_graph(tape, t, xs, n, NULL, h);
    tg_tensor *s = st == TG_OK && t ? tg_diff__inner(tape, h, vs, n) : NULL;
    if (st == TG_OK && s)
        st = tg_grad_graph(tape, s, live, m, NULL, du);
    if (st == TG_OK && !s)
        st = tg_tape_status(tape); /* no term: H is zero; or an op failed */
    for (size_t i = 0, k = 0; i < n && st == TG_OK; i++) {
        out[i] = s && tg_tensor_requires_grad(g[i]) ? du[k++] : tg_diff__zeros_like(tape, xs[i]);
        if (!out[i])
            st = tg_tape_status(tape);
    }
    for (size_t i = 0; st != TG_OK && i < n; i++)
        out[i] = NULL;
    tensors_free(u, 4 * n);
    return st;
}

tg_status tg_hvp(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, tg_tensor *const *vs, size_t n,
                 tg_tensor **out)
{
    if (n && !out)
        return tg__error(TG_EINVAL, "hvp: out is NULL");
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    tg_status st = tg_diff__check_output("hvp", tape, f, true);
    if (st == TG_OK)
        st = tg_diff__check_inputs("hvp", tape, xs, vs, n);
    if (st == TG_OK)
        st = tg_tape__check_grad_inputs(tape, f, xs, n, "hvp");
    if (st != TG_OK)
        return st;
    if (n && !vs)
        return tg__error(TG_EINVAL, "hvp: vs is NULL");
    if (tg_tensor_numel(f) != 1) {
        char s[96];
        return tg__error(TG_EINVAL, "hvp: f has shape %s, not a single element",
                         tg_shape_format(s, sizeof s, tg_tensor_rank(f), tg_tensor_shape(f)));
    }
    tg_tensor **g = tensors_new("hvp", n);
    if (!g)
        return TG_ENOMEM;
    st = tg_grad_graph(tape, f, xs, n, NULL, g);
    if (st == TG_OK && tangent_on_inputs(xs, vs, n)) {
        st = hvp_on_the_gradient(tape, xs, vs, n, g, out);
        tensors_free(g, n);
        return st;
    }
    tg_tensor *s = st == TG_OK ? tg_diff__inner(tape, g, vs, n) : NULL;
    if (st == TG_OK && n && !s)
        st = tg_tape_status(tape);
    if (st == TG_OK && s && tg_tensor_requires_grad(s)) {
        st = tg_grad_graph(tape, s, xs, n, NULL, out);
    } else if (st == TG_OK) { /* the gradient is constant: f is at most linear in xs */
        for (size_t i = 0; i < n && st == TG_OK; i++)
            if (!(out[i] = tg_diff__zeros_like(tape, xs[i])))
                st = tg_tape_status(tape);
        for (size_t i = 0; st != TG_OK && i < n; i++)
            out[i] = NULL;
    }
    tensors_free(g, n);
    return st;
}

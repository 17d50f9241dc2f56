/* test_grad_inputs.c: a gradient asked of an input that does not require grad. When y depends
 * on it, tg_grad, tg_grad_graph and the derivative products and matrices refuse (TG_EINVAL,
 * naming the input and why its gradient was not tracked); when y does not, its gradient is
 * zeros, whatever its requires_grad. Reference values are closed forms: y = sum(x * c) has
 * dy/dx = c. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include "support/helpers.h"

/* y = sum(x * c), x = [1, 2, 3] requiring grad, c = [4, 5, 6] ('c') not. */
typedef struct fixture {
    tg_tape *tape;
    tg_tensor *x, *c, *unused, *y;
} fixture;

static fixture make(void)
{
    fixture f = {tg_tape_new(), ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true),
                 ts_vec(TG_F64, 3, TS_VALS(4, 5, 6), false),
                 ts_vec(TG_F64, 2, TS_VALS(7, 8), false), NULL};
    cr_assert(f.tape && f.x && f.c && f.unused);
    cr_assert_eq(tg_tensor_set_name(f.c, "c"), TG_OK);
    f.y = tg_sum(f.tape, tg_mul(f.tape, f.x, f.c), TG_ALL_AXES, false);
    cr_assert_not_null(f.y, "%s", tg_tape_error(f.tape));
    return f;
}

static void done(fixture *f)
{
    tg_tape_free(f->tape);
    tg_tensor_free(f->x);
    tg_tensor_free(f->c);
    tg_tensor_free(f->unused);
}

static void free_all(tg_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(t[i]);
}

Test(grad_inputs, a_constant_y_uses_is_an_error_naming_it)
{
    fixture f = make();
    tg_tensor *out[2] = {(tg_tensor *)&f, (tg_tensor *)&f};
    tg_tensor *xs[2] = {f.x, f.c};
    cr_assert_eq(tg_grad(f.tape, f.y, xs, 2, out), TG_EINVAL);
    const char *msg = tg_last_error();
    ts_assert_has(msg, "grad: y depends on xs[1]");
    ts_assert_has(msg, "'c' [3]");
    ts_assert_has(msg, "does not require grad");
    ts_assert_has(msg, "tg_tensor_set_requires_grad");
    cr_assert(out[0] == NULL && out[1] == NULL, "no result on error");
    cr_assert_null(tg_tensor_grad_data(f.x), "leaf grads untouched");
    /* the tape is untouched: the same call without c works */
    cr_assert_eq(tg_tape_status(f.tape), TG_OK);
    cr_assert_eq(tg_grad(f.tape, f.y, xs, 1, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(4, 5, 6), 3, 0, 0, "dy/dx = c");
    tg_tensor_free(out[0]);
    done(&f);
}

Test(grad_inputs, an_input_y_does_not_use_gets_zeros)
{
    fixture f = make();
    /* unused: never recorded; later: used by a node recorded after y only */
    tg_tensor *later = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), false);
    cr_assert_not_null(tg_exp(f.tape, later));
    tg_tensor *rg_unused = ts_scalar(TG_F64, 2, true);
    tg_tensor *xs[4] = {f.unused, f.x, later, rg_unused}, *out[4];
    cr_assert_eq(tg_grad(f.tape, f.y, xs, 4, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(0, 0), 2, 0, 0, "unused constant");
    ts_assert_values(out[1], TS_VALS(4, 5, 6), 3, 0, 0, "dy/dx");
    ts_assert_values(out[2], TS_VALS(0, 0, 0), 3, 0, 0, "constant used after y");
    ts_assert_values(out[3], TS_VALS(0), 1, 0, 0, "unused, requiring grad");
    free_all(out, 4);
    /* the same with tg_grad_graph: zeros recorded on the tape */
    cr_assert_eq(tg_grad_graph(f.tape, f.y, xs, 4, NULL, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(0, 0), 2, 0, 0, "grad_graph: unused constant");
    ts_assert_values(out[1], TS_VALS(4, 5, 6), 3, 0, 0, "grad_graph: dy/dx");
    ts_assert_values(out[2], TS_VALS(0, 0, 0), 3, 0, 0, "grad_graph: used after y");
    tg_tensor_free(later);
    tg_tensor_free(rg_unused);
    done(&f);
}

Test(grad_inputs, intermediates_whose_gradient_was_not_tracked)
{
    fixture f = make();
    tg_tensor *w = ts_vec(TG_F64, 3, TS_VALS(1, -1, 2), true);
    /* h = exp(x) recorded with gradient recording off, though x requires grad */
    bool was = tg_tape_set_grad_enabled(f.tape, false);
    tg_tensor *h = tg_exp(f.tape, f.x);
    tg_tape_set_grad_enabled(f.tape, was);
    /* k = c^2: from tensors none of which requires grad; m = (x > c): an op without gradient */
    tg_tensor *k = tg_square(f.tape, f.c);
    tg_tensor *m = tg_gt(f.tape, f.x, f.c);
    tg_tensor *y = tg_sum(f.tape, tg_mul(f.tape, tg_add(f.tape, tg_add(f.tape, h, k), m), w),
                          TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(f.tape));
    cr_assert_eq(tg_tensor_set_name(h, "h"), TG_OK);
    tg_tensor *out[2] = {NULL, NULL}, *xs[2] = {w, h};
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "y depends on xs[1], node 2 (exp) 'h' [3]");
    ts_assert_has(tg_last_error(), "gradient recording was off");
    xs[1] = k;
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "(square)");
    ts_assert_has(tg_last_error(), "none of the tensors it was computed from requires grad");
    xs[1] = m;
    cr_assert_eq(tg_grad_graph(f.tape, y, xs, 2, NULL, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "grad_graph: y depends on xs[1]");
    ts_assert_has(tg_last_error(), "its op has no gradient");
    cr_assert(out[0] == NULL && out[1] == NULL);
    /* x itself requires grad: its gradient is what flows (only through m's path, none) */
    xs[1] = f.x;
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[1], TS_VALS(0, 0, 0), 3, 0, 0, "no tracked path from x");
    free_all(out, 2);
    tg_tensor_free(w);
    done(&f);
}

/* A leaf that requires no grad and feeds y only through nodes that require none is read by no
 * backward, so it may be freed before one (tape.h). Finding what y depends on, for an input that
 * does not require grad, must not read it either (ASan builds check that). */
Test(grad_inputs, a_freed_leaf_off_the_gradient_path_is_not_read)
{
    fixture f = make();
    tg_tensor *a = ts_vec(TG_F64, 3, TS_VALS(0, 0, 0), false);
    tg_tensor *e = tg_exp(f.tape, a);
    tg_tensor *y = tg_sum(f.tape, tg_mul(f.tape, f.x, e), TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(f.tape));
    tg_tensor_free(a);
    tg_tensor *xs[2] = {f.x, f.unused}, *out[2];
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(1, 1, 1), 3, 0, 0, "dy/dx = exp(a)");
    ts_assert_values(out[1], TS_VALS(0, 0), 2, 0, 0, "unused constant");
    free_all(out, 2);
    /* e, computed from a alone, is refused, and the message says why without reading a */
    xs[1] = e;
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "none of the tensors it was computed from requires grad");
    done(&f);
}

Test(grad_inputs, mixed_lists_name_the_first_refused)
{
    fixture f = make();
    tg_tensor *c2 = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), false); /* unnamed */
    tg_tensor *y = tg_add(f.tape, f.y, tg_sum(f.tape, tg_mul(f.tape, f.x, c2), TG_ALL_AXES, false));
    cr_assert_not_null(y);
    tg_tensor *xs[4] = {f.x, f.unused, c2, f.c}, *out[4];
    cr_assert_eq(tg_grad(f.tape, y, xs, 4, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "xs[2], a leaf [3] that does not require grad");
    cr_assert_eq(tg_grad_graph(f.tape, y, xs, 4, NULL, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "xs[2]");
    cr_assert_eq(tg_grad(f.tape, y, xs, 2, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(5, 6, 7), 3, 0, 0, "dy/dx = c + 1");
    ts_assert_values(out[1], TS_VALS(0, 0), 2, 0, 0, "unused");
    free_all(out, 2);
    tg_tensor_free(c2);
    done(&f);
}

Test(grad_inputs, derivative_products_and_matrices_inherit_the_rule)
{
    fixture f = make();
    /* y2 = x * c (3 elements), f2 = sum((x * c)^2) */
    tg_tensor *y2 = tg_mul(f.tape, f.x, f.c);
    tg_tensor *f2 = tg_sum(f.tape, tg_square(f.tape, y2), TG_ALL_AXES, false);
    cr_assert_not_null(f2);
    tg_tensor *v = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), false);
    tg_tensor *xs[2] = {f.x, f.c}, *vs[2] = {v, v}, *out[4] = {NULL, NULL, NULL, NULL};
    cr_assert_eq(tg_jacobian(f.tape, y2, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "jacobian: y depends on xs[1]");
    cr_assert_eq(tg_hessian(f.tape, f2, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "hessian: y depends on xs[1]");
    cr_assert_eq(tg_hvp(f.tape, f2, xs, vs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "hvp: y depends on xs[1]");
    tg_tensor *jv = NULL;
    cr_assert_eq(tg_jvp(f.tape, y2, xs, vs, 2, &jv), TG_EINVAL);
    ts_assert_has(tg_last_error(), "jvp: y depends on xs[1]");
    cr_assert_eq(tg_vjp(f.tape, y2, v, xs, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "xs[1]");
    /* an unused constant still gets zeros: the Jacobian's block is a zero matrix */
    tg_tensor *ys[2] = {f.x, f.unused};
    cr_assert_eq(tg_jacobian(f.tape, y2, ys, 2, out), TG_OK, "%s", tg_last_error());
    /* d(x_i c_i)/dx_j = c_i [i == j] */
    ts_assert_values(out[0], TS_VALS(4, 0, 0, 0, 5, 0, 0, 0, 6), 9, 0, 0, "dy/dx");
    ts_assert_values(out[1], TS_VALS(0, 0, 0, 0, 0, 0), 6, 0, 0, "dy/dunused");
    free_all(out, 2);
    tg_tensor_free(v);
    done(&f);
}

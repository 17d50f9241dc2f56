/* test_versions.c: leaf version counters (tapegrad/tensor.h). Writing a leaf between a recording
 * that used it and that recording's backward is refused (TG_ESTALE, naming the leaf and the
 * node that used it); replaying or recording again makes the new values usable. Reference
 * values are closed forms: y = sum(x * w) has dy/dw = x. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include "support/alloc.h"
#include "support/helpers.h"
#include "tensor/tensor_impl.h" /* the set of leaves alive */

/* y = sum(x * w): x = [1, 2, 3] ('x', data), w = [4, 5, 6] ('w', requires grad). */
typedef struct fixture {
    tg_tape *tape;
    tg_tensor *x, *w, *y;
} fixture;

static tg_tensor *record(fixture *f)
{
    f->y = tg_sum(f->tape, tg_mul(f->tape, f->x, f->w), TG_ALL_AXES, false);
    cr_assert_not_null(f->y, "%s", tg_tape_error(f->tape));
    return f->y;
}

static fixture make(void)
{
    fixture f = {tg_tape_new(), ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false),
                 ts_vec(TG_F64, 3, TS_VALS(4, 5, 6), true), NULL};
    cr_assert(f.tape && f.x && f.w);
    cr_assert_eq(tg_tensor_set_name(f.x, "x"), TG_OK);
    cr_assert_eq(tg_tensor_set_name(f.w, "w"), TG_OK);
    record(&f);
    return f;
}

static void done(fixture *f)
{
    tg_tape_free(f->tape);
    tg_tensor_free(f->x);
    tg_tensor_free(f->w);
}

/* Frees leaf `old` and makes a new 3-element leaf of values v at its address, as glibc's
 * allocator gives a block just freed to the next allocation that fits (ts_alloc_reuse_next_free
 * does so under AddressSanitizer too). The caller uninstalls the hook (ts_alloc_uninstall). */
static tg_tensor *new_leaf_at_address_of(tg_tensor *old, const double *v)
{
    void *freed = old;
    ts_alloc_reuse_next_free();
    tg_tensor_free(old);
    tg_tensor *leaf = ts_vec(TG_F64, 3, v, false);
    cr_assert_eq((void *)leaf, freed, "the new leaf was to get the freed one's address");
    return leaf;
}

Test(versions, what_counts_as_a_write)
{
    tg_tensor *x = ts_vec(TG_F32, 2, TS_VALS(1, 2), false);
    cr_assert_eq(tg_tensor_version(x), 0, "a new leaf");
    double v[2];
    (void)tg_tensor_data_const(x);
    (void)tg_tensor_get(x, 0);
    (void)tg_tensor_item(x);
    cr_assert_eq(tg_tensor_to_f64(x, v), TG_OK);
    cr_assert_eq(tg_tensor_version(x), 0, "reads are not writes");
    float *p = tg_tensor_data(x);
    cr_assert_eq(tg_tensor_version(x), 1, "tg_tensor_data gives a pointer to write through");
    p[0] = 3;
    cr_assert_eq(tg_tensor_version(x), 1, "counted at the call, not at each store");
    cr_assert_eq(tg_tensor_set(x, 1, 4), TG_OK);
    cr_assert_eq(tg_tensor_version(x), 2);
    cr_assert_eq(tg_tensor_set(x, 2, 4), TG_EINVAL);
    cr_assert_eq(tg_tensor_version(x), 2, "a refused write counts nothing");
    cr_assert_eq(tg_tensor_bump_version(x), TG_OK);
    cr_assert_eq(tg_tensor_version(x), 3);
    /* tape tensors have no version: their values are read-only */
    tg_tape *tape = tg_tape_new();
    tg_tensor *e = tg_exp(tape, x);
    cr_assert_not_null(e);
    (void)tg_tensor_data(e);
    cr_assert_eq(tg_tensor_version(e), 0);
    cr_assert_eq(tg_tensor_bump_version(e), TG_EINVAL);
    cr_assert_eq(tg_tensor_bump_version(NULL), TG_EINVAL);
    cr_assert_eq(tg_tensor_version(NULL), 0);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(versions, a_write_after_recording_fails_backward_naming_the_leaf)
{
    fixture f = make();
    cr_assert_eq(tg_tensor_set(f.x, 0, 10), TG_OK); /* y was 1*4 + 2*5 + 3*6 = 32 */
    cr_assert_eq(tg_backward(f.tape, f.y), TG_ESTALE);
    const char *msg = tg_last_error();
    ts_assert_has(msg, "backward: leaf 0 of the recording, 'x' [3], was written");
    ts_assert_has(msg, "(version 0, now 1)");
    ts_assert_has(msg, "at node 0 (mul)");
    ts_assert_has(msg, "tg_tape_replay");
    cr_assert_null(tg_tensor_grad_data(f.w), "nothing accumulated");
    cr_assert_eq(tg_tape_status(f.tape), TG_OK, "a refused backward leaves the tape usable");
    /* tg_grad and tg_grad_graph refuse it too */
    tg_tensor *out[1] = {NULL};
    cr_assert_eq(tg_grad(f.tape, f.y, &f.w, 1, out), TG_ESTALE);
    ts_assert_has(tg_last_error(), "grad: leaf 0 of the recording, 'x' [3]");
    cr_assert_null(out[0]);
    cr_assert_eq(tg_grad_graph(f.tape, f.y, &f.w, 1, NULL, out), TG_ESTALE);
    ts_assert_has(tg_last_error(), "grad_graph: leaf 0");
    /* so does a write through tg_tensor_data, to the leaf that requires grad (unnamed now) */
    tg_tensor *w2 = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), true);
    tg_tape_reset(f.tape);
    tg_tensor *y2 = tg_sum(f.tape, tg_exp(f.tape, tg_mul(f.tape, f.x, w2)), TG_ALL_AXES, false);
    cr_assert_not_null(y2);
    double *p = tg_tensor_data(w2);
    (void)p; /* even without a store: the pointer was taken to write */
    cr_assert_eq(tg_backward(f.tape, y2), TG_ESTALE);
    ts_assert_has(tg_last_error(), "leaf 1 of the recording, [3], was written");
    tg_tensor_free(w2);
    done(&f);
}

Test(versions, write_then_replay_then_backward)
{
    fixture f = make();
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(1, 2, 3), 3, 0, 0, "dy/dw = x");
    double *xv = tg_tensor_data(f.x);
    xv[0] = 2, xv[1] = 0, xv[2] = -1;
    cr_assert_eq(tg_backward(f.tape, f.y), TG_ESTALE, "the recording is at the old x");
    cr_assert_eq(tg_tape_replay(f.tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(f.y, TS_VALS(2 * 4 + 0 * 5 - 1 * 6), 1, 0, 0, "y at the new x");
    cr_assert_eq(tg_tensor_zero_grad(f.w), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(2, 0, -1), 3, 0, 0, "dy/dw = the new x");
    done(&f);
}

Test(versions, write_after_backward_then_record_again)
{
    fixture f = make();
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(1, 2, 3), 3, 0, 0, "dy/dw = x");
    cr_assert_eq(tg_tensor_set(f.x, 2, 5), TG_OK);
    tg_tape_reset(f.tape);
    record(&f);
    ts_assert_values(f.y, TS_VALS(1 * 4 + 2 * 5 + 5 * 6), 1, 0, 0, "y at the new x");
    cr_assert_eq(tg_tensor_zero_grad(f.w), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(1, 2, 5), 3, 0, 0, "dy/dw = the new x");
    done(&f);
}

Test(versions, an_optimizer_step_before_a_second_backward)
{
    fixture f = make();
    tg_optim *opt = NULL;
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.lr = 0.5;
    cr_assert_eq(tg_optim_new(&o, &f.w, 1, &opt), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_optim_step(opt), TG_OK);
    ts_assert_values(f.w, TS_VALS(4 - 0.5, 5 - 1, 6 - 1.5), 3, 0, 0, "w - lr * x");
    cr_assert_eq(tg_backward(f.tape, f.y), TG_ESTALE, "a second backward after the step");
    ts_assert_has(tg_last_error(), "leaf 1 of the recording, 'w' [3], was written");
    ts_assert_has(tg_last_error(), "at node 0 (mul)");
    tg_optim_free(opt);
    done(&f);
}

Test(versions, leaves_used_after_the_output_only_do_not_count)
{
    fixture f = make();
    tg_tensor *q = ts_vec(TG_F64, 2, TS_VALS(0, 1), false);
    tg_tensor *later = tg_exp(f.tape, q);
    cr_assert_not_null(later);
    cr_assert_eq(tg_tensor_set(q, 0, 2), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "q is not read by y's backward: %s",
                 tg_last_error());
    ts_assert_grad(f.w, TS_VALS(1, 2, 3), 3, 0, 0, "dy/dw = x");
    /* a leaf y itself: nothing recorded is read */
    tg_tensor *s = ts_scalar(TG_F64, 1, true);
    cr_assert_not_null(tg_mul(f.tape, s, s));
    cr_assert_eq(tg_tensor_set(s, 0, 2), TG_OK);
    cr_assert_eq(tg_backward(f.tape, s), TG_OK, "%s", tg_last_error());
    ts_assert_grad(s, TS_VALS(1), 1, 0, 0, "ds/ds");
    tg_tensor_free(s);
    tg_tensor_free(q);
    done(&f);
}

Test(versions, model_parameter_block_counts_as_a_write)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 1;
    spec.sizes[0] = 2;
    spec.sizes[1] = 1;
    spec.dtype = TG_F64;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK);
    tg_tensor *x = ts_mat(TG_F64, 1, 2, TS_VALS(1, 2), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_model_forward(tape, m, x), TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    uint64_t v0 = tg_tensor_version(tg_model_param(m, 0));
    double *p = tg_model_param_data(m);
    cr_assert_gt(tg_tensor_version(tg_model_param(m, 0)), v0);
    p[0] += 1;
    cr_assert_eq(tg_backward(tape, y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "was written");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_model_free(m);
}

/* A leaf the recording used but the backward does not read may be freed before it (the
 * pattern of a Hessian built row by row with a one-hot leaf per row): backward then checks
 * only the leaves it reads, never the freed one (ASan builds check that), and still refuses
 * a written one. */
Test(versions, freed_leaves_off_the_path_are_not_read)
{
    fixture f = make();
    for (int k = 0; k < 3; k++) {
        tg_tensor *e = ts_vec(TG_F64, 3, TS_VALS(1, 0, 0), false);
        tg_tensor *s = tg_sum(f.tape, tg_mul(f.tape, f.y, e), TG_ALL_AXES, false);
        cr_assert_not_null(s);
        cr_assert_eq(tg_tensor_zero_grad(f.w), TG_OK);
        cr_assert_eq(tg_backward(f.tape, s), TG_OK, "%s", tg_last_error());
        ts_assert_grad(f.w, TS_VALS(1, 2, 3), 3, 0, 0, "ds/dw = x");
        tg_tensor_free(e); /* the tape still lists it */
    }
    cr_assert_eq(tg_tensor_zero_grad(f.w), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(1, 2, 3), 3, 0, 0, "dy/dw = x");
    cr_assert_eq(tg_tensor_set(f.x, 1, 0), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "'x' [3], was written (version 0, now 1)");
    done(&f);
}

/* The same pattern, with the allocator giving each new row leaf the freed one's address, as
 * glibc's does: row leaf e2 is a new leaf of the recording, whose own version it notes, not the
 * one e1 had. e1 was written once before its recording, e2 once after: taken for e1, it would
 * pass, and the backward would mix e2's new values into the gradient. */
Test(versions, a_leaf_made_where_a_freed_leaf_was_is_noted_as_itself)
{
    fixture f = make();
    tg_tensor *e1 = ts_vec(TG_F64, 3, TS_VALS(0, 0, 0), false);
    cr_assert_eq(tg_tensor_set(e1, 0, 1), TG_OK);
    tg_tensor *s1 = tg_sum(f.tape, tg_mul(f.tape, f.w, e1), TG_ALL_AXES, false);
    cr_assert_not_null(s1, "%s", tg_tape_error(f.tape));
    cr_assert_eq(tg_backward(f.tape, s1), TG_OK, "%s", tg_last_error());
    tg_tensor *e2 = new_leaf_at_address_of(e1, TS_VALS(0, 0, 0));
    tg_tensor *s2 = tg_sum(f.tape, tg_mul(f.tape, f.w, e2), TG_ALL_AXES, false);
    cr_assert_not_null(s2, "%s", tg_tape_error(f.tape));
    cr_assert_eq(tg_tensor_set(e2, 1, 1), TG_OK);
    cr_assert_eq(tg_backward(f.tape, s2), TG_ESTALE);
    ts_assert_has(tg_last_error(), "[3], was written (version 0, now 1)");
    tg_tensor_free(e2);
    done(&f);
    ts_alloc_uninstall();
}

/* A leaf freed after its recording, whose address a new leaf took (as glibc gives a freed block
 * to the next allocation that fits): backward and replay would read the new leaf for the
 * recording's, a gradient of other values without a word; both refuse (TG_ESTALE). Recorded
 * again on the new leaf, y = sum(d * w) has dy/dw = d. */
Test(versions, a_leaf_freed_after_the_recording_whose_address_was_taken_is_refused)
{
    fixture f = make();
    tg_tape_reset(f.tape);
    tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false);
    tg_tensor *y = tg_sum(f.tape, tg_mul(f.tape, c, f.w), TG_ALL_AXES, false); /* c leaf 0 */
    cr_assert_not_null(y, "%s", tg_tape_error(f.tape));
    tg_tensor *d = new_leaf_at_address_of(c, TS_VALS(7, 8, 9));
    cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "backward: leaf 0 of the recording, used at node 0 (mul), was "
                                   "freed since, and another leaf, [3], has its address now");
    cr_assert_null(tg_tensor_grad_data(f.w), "nothing accumulated");
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(f.tape, y, &f.w, 1, &g), TG_ESTALE);
    ts_assert_has(tg_last_error(),
                  "grad: leaf 0 of the recording, used at node 0 (mul), was freed");
    cr_assert_null(g);
    cr_assert_eq(tg_tape_replay(f.tape), TG_ESTALE);
    ts_assert_has(tg_last_error(), "replay: leaf 0 was freed since the recording used it, and "
                                   "another leaf has its address now");
    tg_tape_reset(f.tape);
    y = tg_sum(f.tape, tg_mul(f.tape, d, f.w), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(f.tape, y), TG_OK, "%s", tg_last_error());
    ts_assert_grad(f.w, TS_VALS(7, 8, 9), 3, 0, 0, "dy/dw = d");
    tg_tensor_free(d);
    done(&f);
    ts_alloc_uninstall();
}

/* A view (reshape, detach) shares its leaf's data, and a VJP that reads the view reads the
 * leaf, though the view requires no grad and the walk never visits it: y = sum(w * view(x))
 * has dy/dw = x, so a write to x after the recording is refused as for x itself, and so is x
 * freed with a new leaf at its address (the backward would read the new leaf's values). */
Test(versions, a_leaf_read_through_a_view_of_no_grad_is_checked)
{
    for (int view = 0; view < 3; view++) {
        fixture f = make();
        if (view == 2)
            cr_assert_eq(tg_tensor_set_requires_grad(f.x, true), TG_OK); /* detach cuts it */
        tg_tape_reset(f.tape);
        const size_t n = 3;
        tg_tensor *vx = view == 0 ? tg_reshape(f.tape, f.x, 1, &n) : tg_detach(f.tape, f.x);
        tg_tensor *y = tg_sum(f.tape, tg_mul(f.tape, f.w, vx), TG_ALL_AXES, false);
        cr_assert_not_null(y, "%s", tg_tape_error(f.tape));
        cr_assert(!tg_tensor_requires_grad(vx));
        cr_assert_eq(tg_tensor_set(f.x, 0, 100), TG_OK);
        cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE, "view %d", view);
        ts_assert_has(tg_last_error(), "leaf 0 of the recording, 'x' [3], was written (version "
                                       "0, now 1) after the recording used it at node 1 (mul)");
        cr_assert_null(tg_tensor_grad_data(f.w), "nothing accumulated");
        tg_tensor *g = NULL;
        cr_assert_eq(tg_grad(f.tape, y, &f.w, 1, &g), TG_ESTALE);
        cr_assert_eq(tg_tape_replay(f.tape), TG_OK, "%s", tg_last_error());
        cr_assert_eq(tg_backward(f.tape, y), TG_OK, "%s", tg_last_error());
        ts_assert_grad(f.w, TS_VALS(100, 2, 3), 3, 0, 0, "dy/dw = x, replayed");

        tg_tape_reset(f.tape);
        tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false);
        vx = view == 0 ? tg_reshape(f.tape, c, 1, &n) : tg_detach(f.tape, c);
        y = tg_sum(f.tape, tg_mul(f.tape, f.w, vx), TG_ALL_AXES, false);
        cr_assert_not_null(y, "%s", tg_tape_error(f.tape));
        tg_tensor *d = new_leaf_at_address_of(c, TS_VALS(7, 8, 9));
        cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE);
        ts_assert_has(tg_last_error(), "leaf 0 of the recording, used at node 1 (mul), was freed "
                                       "since, and another leaf, [3], has its address now");
        tg_tensor_free(d);
        ts_alloc_uninstall();
        done(&f);
    }
}

/* y = sum(x * w) + sum(x * c), recorded in that order. */
static tg_tensor *record_with(fixture *f, tg_tensor *c)
{
    tg_tensor *a = tg_sum(f->tape, tg_mul(f->tape, f->x, f->w), TG_ALL_AXES, false);
    tg_tensor *b = tg_sum(f->tape, tg_mul(f->tape, f->x, c), TG_ALL_AXES, false);
    tg_tensor *y = tg_add(f->tape, a, b);
    cr_assert_not_null(y, "%s", tg_tape_error(f->tape));
    return y;
}

/* A leaf whose requires_grad changes after the recording used it: the nodes recorded on it
 * decided their own from it, so backward and tg_grad refuse (TG_ESTALE, naming it) rather than
 * give a gradient without its paths. y = sum(x * w) + sum(x * c), c = [10, 10, 10]: turned on
 * afterwards, x's gradient would be w alone (4, 5, 6) instead of w + c (14, 15, 16). */
Test(versions, requires_grad_changed_after_recording_fails_backward_naming_the_leaf)
{
    fixture f = make();
    tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(10, 10, 10), false);
    tg_tape_reset(f.tape);
    tg_tensor *y = record_with(&f, c); /* x leaf 0, w leaf 1, c leaf 2 */
    cr_assert_eq(tg_tensor_set_requires_grad(f.x, true), TG_OK);
    cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "backward: leaf 0 of the recording, 'x' [3], did not require "
                                   "grad when recorded and does now");
    tg_tensor *out[1] = {NULL};
    cr_assert_eq(tg_grad(f.tape, y, &f.x, 1, out), TG_ESTALE);
    ts_assert_has(tg_last_error(), "grad: leaf 0 of the recording, 'x' [3], did not require");
    cr_assert_null(out[0]);
    cr_assert_null(tg_tensor_grad_data(f.w), "nothing accumulated");
    /* set back, the recording holds again; turning a leaf's flag off is refused the same way */
    cr_assert_eq(tg_tensor_set_requires_grad(f.x, false), TG_OK);
    cr_assert_eq(tg_backward(f.tape, y), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_set_requires_grad(f.w, false), TG_OK);
    cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "leaf 1 of the recording, 'w' [3], required grad when "
                                   "recorded and does not now");
    cr_assert_eq(tg_tensor_set_requires_grad(f.w, true), TG_OK);
    /* recorded again, the new flag counts: dy/dx = w + c */
    cr_assert_eq(tg_tensor_set_requires_grad(f.x, true), TG_OK);
    tg_tape_reset(f.tape);
    y = record_with(&f, c);
    cr_assert_eq(tg_grad(f.tape, y, &f.x, 1, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(14, 15, 16), 3, 0, 0, "dy/dx = w + c");
    tg_tensor_free(out[0]);
    tg_tensor_free(c);
    done(&f);
}

/* With a leaf freed since the recording, backward reads only the leaves it needs: a changed
 * flag among them is named, and one it cannot read is still refused (a leaf of the recording
 * may have changed), while an unchanged recording goes through. */
Test(versions, requires_grad_changed_with_a_leaf_freed_is_still_refused)
{
    fixture f = make();
    tg_tensor *e = ts_vec(TG_F64, 3, TS_VALS(1, 0, 0), false);
    tg_tensor *s = tg_sum(f.tape, tg_mul(f.tape, f.y, e), TG_ALL_AXES, false);
    cr_assert_not_null(s);
    tg_tensor_free(e); /* off the gradient path: backward does not read it */
    cr_assert_eq(tg_tensor_set_requires_grad(f.x, true), TG_OK);
    cr_assert_eq(tg_backward(f.tape, f.y), TG_ESTALE);
    ts_assert_has(tg_last_error(), "leaf 0 of the recording, 'x' [3], did not require grad");
    done(&f);
}

/* The leaf that changed feeds only nodes recorded as constant, and a leaf of another tape was
 * freed meanwhile (so the recording's leaves may not all be alive): the ones alive are compared,
 * and c is named, not given a zero gradient where dy/dc = x. */
Test(versions, requires_grad_changed_off_the_gradient_path_with_a_leaf_freed)
{
    fixture f = make();
    tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(10, 10, 10), false);
    tg_tape_reset(f.tape);
    tg_tensor *y = record_with(&f, c);
    tg_tape *other = tg_tape_new();
    tg_tensor *e = ts_vec(TG_F64, 3, TS_VALS(1, 0, 0), false);
    cr_assert_not_null(tg_neg(other, e)); /* registered there, then freed */
    tg_tensor_free(e);
    tg_tensor *out[1] = {NULL};
    cr_assert_eq(tg_grad(f.tape, y, &f.w, 1, out), TG_OK, "%s", tg_last_error());
    tg_tensor_free(out[0]);
    cr_assert_eq(tg_tensor_set_requires_grad(c, true), TG_OK);
    cr_assert_eq(tg_grad(f.tape, y, &c, 1, out), TG_ESTALE);
    ts_assert_has(tg_last_error(), "grad: leaf 2 of the recording, [3], did not require grad when "
                                   "recorded and does now");
    cr_assert_null(out[0]);
    cr_assert_eq(tg_backward(f.tape, y), TG_ESTALE);
    /* recorded again, the new flag counts: dy/dc = x */
    tg_tape_reset(f.tape);
    y = record_with(&f, c);
    cr_assert_eq(tg_grad(f.tape, y, &c, 1, out), TG_OK, "%s", tg_last_error());
    ts_assert_values(out[0], TS_VALS(1, 2, 3), 3, 0, 0, "dy/dc = x");
    tg_tensor_free(out[0]);
    tg_tape_free(other);
    tg_tensor_free(c);
    done(&f);
}

/* A flag that changes on a leaf of another recording, with a leaf freed meanwhile, is that
 * recording's business: this one's leaves, all alive and unchanged, go through (a minimization
 * on another thread turns its leaves' flags on and off and frees leaves; this backward refused
 * while it did). A freed leaf of this recording that needed no gradient asks for none. */
Test(versions, another_recordings_flag_change_with_a_leaf_freed_is_not_this_ones)
{
    fixture f = make();
    tg_tensor *e = ts_vec(TG_F64, 3, TS_VALS(1, 0, 0), false);
    tg_tensor *s = tg_sum(f.tape, tg_mul(f.tape, f.y, e), TG_ALL_AXES, false);
    cr_assert_not_null(s);
    tg_tape *other = tg_tape_new();
    tg_tensor *z = ts_vec(TG_F64, 2, TS_VALS(1, 2), false);
    cr_assert_not_null(tg_exp(other, z)); /* registered on the other tape */
    cr_assert_eq(tg_tensor_set_requires_grad(z, true), TG_OK);
    cr_assert_eq(tg_tensor_set_requires_grad(z, false), TG_OK);
    tg_tensor *gone = ts_vec(TG_F64, 1, TS_VALS(5), true);
    cr_assert_not_null(tg_neg(other, gone));
    tg_tensor_free(gone);
    tg_tensor_free(e); /* this recording's, off the gradient path */
    cr_assert_eq(tg_backward(f.tape, f.y), TG_OK, "%s", tg_last_error());
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(tg_tensor_grad_get(f.w, i), (double)(i + 1), "dy/dw = x");
    tg_tape_free(other);
    tg_tensor_free(z);
    done(&f);
}

/* The list of registered leaves alive (tensor_impl.h) that lets it: 300 leaves registered, then
 * freed in a scattered order (from the list's ends and its middle), the list walked after each
 * free. */
typedef struct live_seen {
    const uint64_t *serial;
    bool *seen;
    size_t n;
} live_seen;

static tg_status note_live(const tg_tensor *leaf, void *ctx)
{
    live_seen *c = ctx;
    for (size_t j = 0; j < c->n; j++)
        if (c->serial[j] == leaf->serial) {
            cr_assert(!c->seen[j], "leaf %zu listed twice", j);
            c->seen[j] = true;
        }
    return TG_OK;
}

Test(versions, the_list_of_leaves_alive_follows_every_free)
{
    enum { N = 300 };
    tg_tensor *leaf[N];
    uint64_t serial[N];
    bool alive[N], seen[N];
    tg_tape *tape = tg_tape_new();
    for (size_t i = 0; i < N; i++) {
        leaf[i] = ts_scalar(TG_F64, (double)i, false);
        cr_assert_not_null(tg_neg(tape, leaf[i]), "%s", tg_tape_error(tape));
        serial[i] = leaf[i]->serial;
        alive[i] = true;
    }
    for (size_t k = 0; k < N; k++) {
        const size_t i = (k * 7919) % N; /* 7919 is prime: every index once */
        tg_tensor_free(leaf[i]);
        alive[i] = false;
        live_seen c = {serial, seen, N};
        memset(seen, 0, sizeof seen);
        cr_assert_eq(tg_tensor__each_live(note_live, &c), TG_OK);
        for (size_t j = 0; j < N; j++)
            cr_assert_eq(seen[j], alive[j], "leaf %zu after %zu frees", j, k + 1);
    }
    tg_tape_free(tape);
}

/* tapegrad/diff.h: derivatives beyond the first. tg_grad (tape.h) computes gradients with fast
 * in-place loops; tg_grad_graph computes the same gradients as ops recorded on the tape, so
 * that they are tape tensors like any other and can be differentiated again, to any order
 * (PyTorch's create_graph, JAX's grad of grad). */
#ifndef TAPEGRAD_DIFF_H
#define TAPEGRAD_DIFF_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The gradients of y with respect to xs[0..n), recorded on the tape: out[i] is a tensor of
 * xs[i]'s shape and dtype, owned by the tape (valid until its reset), that requires grad when
 * it depends on a tensor that does (and the tape records gradients): pass it to tg_backward,
 * tg_grad or tg_grad_graph again for second and higher derivatives. Every op records its VJP
 * as ops (each op's derivative formula written with the op constructors), so the values equal
 * tg_grad's up to rounding. An input y does not depend on gets a constant zero.
 *
 * y must be a single element, unless seed is given: then the result is the vector-Jacobian
 * product seed^T (dy/dxs), seed a tensor of y's shape and dtype (a leaf or a tensor of this
 * tape; a tape tensor that requires grad makes the result differentiable in it too).
 *
 * Errors (out[] all NULL): as tg_grad's (TG_EINVAL for NULL arguments, a y that does not
 * require grad, a multi-element y without a seed, a tensor of another tape; TG_ESTALE;
 * TG_EDTYPE/TG_ESHAPE for a bad seed), the tape's own error when an op fails, and TG_EINVAL
 * naming the op when a gradient must flow through an op whose VJP cannot be recorded (a
 * custom op without one). Nodes recorded before an error stay on the tape. */
TG_API tg_status tg_grad_graph(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                               tg_tensor *seed, tg_tensor **out);

/* ---- derivative products and matrices -------------------------------------------------------
 * y is an output already recorded on `tape` from inputs xs[0..n) (leaves or tape tensors of
 * that tape). Products are tape tensors (differentiable again); matrices are new leaves, the
 * caller's (tg_tensor_free). A "pass" below is one backward walk of the recorded graph. */

/* Forward mode: out = J v = sum_i (dy/dxs[i]) vs[i], a tensor of y's shape; vs[i] has
 * xs[i]'s shape and dtype. */
TG_API tg_status tg_jvp(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, tg_tensor *const *vs,
                        size_t n, tg_tensor **out);
/* Reverse mode: out[i] = v^T dy/dxs[i], of xs[i]'s shape; v has y's shape. (tg_grad_graph with
 * v as the seed.) */
TG_API tg_status tg_vjp(tg_tape *tape, tg_tensor *y, tg_tensor *v, tg_tensor *const *xs, size_t n,
                        tg_tensor **out);
/* out[i] = (H v)_i for a single-element f, H its Hessian in xs, without forming H. */
TG_API tg_status tg_hvp(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, tg_tensor *const *vs,
                        size_t n, tg_tensor **out);
/* out[i] = dy/dxs[i] as a 2-D leaf of shape (numel(y), numel(xs[i])), rows in y's row-major
 * element order, columns in xs[i]'s. */
TG_API tg_status tg_jacobian(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                             tg_tensor **out);
/* out[i * n + j] = d2f / dxs[i] dxs[j] as a 2-D leaf of shape (numel(xs[i]), numel(xs[j])),
 * for a single-element f. */
TG_API tg_status tg_hessian(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, size_t n,
                            tg_tensor **out);

#ifdef __cplusplus
}
#endif

#endif

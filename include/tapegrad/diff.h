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
 * tg_grad's up to rounding. An input y does not depend on gets a constant zero; one y depends
 * on must require grad, as for tg_grad (TG_EINVAL naming it otherwise: tapegrad/tape.h).
 *
 * y must be a single element, unless seed is given: then the result is the vector-Jacobian
 * product seed^T (dy/dxs), seed a tensor of y's shape and dtype (a leaf or a tensor of this
 * tape; a tape tensor that requires grad makes the result differentiable in it too). A leaf
 * seed is recorded on the tape first (times 1), so it becomes one of the recording's leaves:
 * keep it alive while the recording is replayed or differentiated (tape.h).
 *
 * Errors (out[] all NULL): as tg_grad's (TG_EINVAL for NULL arguments, a y that does not
 * require grad, an input y depends on that does not, a multi-element y without a seed, a
 * tensor of another tape; TG_ESTALE, also for a leaf written since the recording used it;
 * TG_EDTYPE/TG_ESHAPE for a bad seed), the tape's own error when an op fails, and TG_EINVAL
 * naming the op when a gradient must flow through an op whose VJP cannot be recorded (a
 * custom op without one). Nodes recorded before an error stay on the tape. */
TG_API tg_status tg_grad_graph(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                               tg_tensor *seed, tg_tensor **out);

/* ---- derivative products and matrices -------------------------------------------------------
 * y (or f) is an output already recorded on `tape` from inputs xs[0..n) (leaves or tape
 * tensors of that tape). Products (jvp, vjp, hvp) are tape tensors owned by the tape (valid
 * until its reset) and differentiable again; matrices (jacobian, hessian) are new 2-D leaves,
 * the caller's (tg_tensor_free), in y's dtype.
 *
 * Cost, in passes: a "pass" is one backward walk of a recorded graph. A recorded pass
 * (tg_grad_graph) also records the gradient as ops: it costs about a plain backward plus a
 * forward of the gradient graph, and leaves that graph on the tape (nodes stay until the
 * tape's reset). A plain pass (a backward walk as tg_grad's) records nothing, writes no leaf
 * and reuses the nodes' gradient buffers, so n plain passes need the memory of one. "y's graph"
 * is what y was recorded from; "the gradient graph" what a recorded pass of it added (about
 * one to two times its size).
 *
 * Errors, for all five (out all NULL), each message naming the function called and the
 * argument: TG_EINVAL for NULL arguments, an output that does not depend on any tensor that
 * requires grad, an xs[i] the output depends on that does not require grad (naming it, as
 * tg_grad does), an output, xs[i], vs[i] or v recorded on another tape, a NULL v with a y of
 * more than one element, or a tape whose gradient recording is disabled (products and
 * tg_hessian: their gradients must be differentiable); TG_ESTALE for one recorded before the
 * tape's last reset, and for a leaf the output was computed from that was written since the
 * recording used it, or whose requires_grad changed (tape.h); the tape's own error when it
 * has one; TG_EDTYPE/TG_ESHAPE for a tangent (vs[i]) unlike its xs[i], or a v unlike y. All
 * of these are found before anything is recorded: the tape is left as it was. And
 * tg_grad_graph's errors when a recorded pass fails, among them TG_EINVAL naming the op whose
 * VJP cannot be recorded (a custom op without a differentiable one): then the tape keeps that
 * error, and the nodes recorded before it. */

/* Forward mode: *out = J v = sum_i (dy/dxs[i]) vs[i], a tape tensor of y's shape; vs[i] has
 * xs[i]'s shape and dtype (a leaf or a tensor of this tape; one that requires grad makes the
 * result differentiable in it too). Derived from the differentiable VJPs by the double-VJP
 * trick: with u a tensor of y's shape that requires grad, g(u) = uᵀJ is linear in u, so
 * J v = d/du sum_i <g_i(u), vs[i]>.
 * Cost: two recorded passes: one of y's graph (g(u)), then one of the gradient graph and y's
 * graph together. Measured on W3's MLP (`tapegrad bench W3jvp`, docs/performance.md; on a
 * shared machine, so noisy): 6 to 8 times the forward recorded in the same loop, about 20 times
 * a warm forward.
 * Native tangent rules would cost about one forward; this trick needs nothing beyond each
 * op's VJP. */
TG_API tg_status tg_jvp(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, tg_tensor *const *vs,
                        size_t n, tg_tensor **out);
/* Reverse mode: out[i] = vᵀ dy/dxs[i], a tape tensor of xs[i]'s shape; v has y's shape and
 * dtype (NULL for a single-element y: the gradient). tg_grad_graph with v as the seed.
 * Cost: one recorded pass of y's graph. */
TG_API tg_status tg_vjp(tg_tape *tape, tg_tensor *y, tg_tensor *v, tg_tensor *const *xs, size_t n,
                        tg_tensor **out);
/* out[i] = (H v)_i = sum_j (d2f / dxs[i] dxs[j]) vs[j], a tape tensor of xs[i]'s shape, for a
 * single-element f (TG_EINVAL otherwise), H its Hessian in xs, without forming H: the
 * gradient g = tg_grad_graph(f, xs), then tg_grad_graph(sum_i <g_i, vs[i]>, xs). vs as in
 * tg_jvp; a tangent that may be computed from xs (one that requires grad and is a tensor of
 * the tape, or one of xs: H x, say) is held constant in that second gradient, which would
 * otherwise add (d vs / d xs)ᵀ g: H v is then forward mode on g (as tg_jvp on y). A gradient
 * that is constant (f at most linear in xs) gives constant zeros.
 * Cost: two recorded passes: one of f's graph, one of the gradient graph and f's graph; with
 * a tangent computed from xs, three (the gradient graph's twice). */
TG_API tg_status tg_hvp(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, tg_tensor *const *vs,
                        size_t n, tg_tensor **out);
/* out[i] = dy/dxs[i] as a 2-D leaf of shape (numel(y), numel(xs[i])), rows in y's row-major
 * element order, columns in xs[i]'s: the entry (r, k) is d y[r] / d xs[i][k].
 * Rows by reverse mode: one plain pass of y's graph per element of y, seeded with the one-hot
 * e_r (numel(y) passes, nothing recorded). Columns by forward mode, when N = sum_i
 * numel(xs[i]) is less than a third of numel(y), gradient recording is on and the recording
 * holds no custom op: one recorded pass of y's graph for g(u) = uᵀJ (as tg_jvp), then one
 * plain pass of the gradient graph per input element, seeded e_k, whose gradient in u is
 * column k (1 recorded + N plain passes; a plain pass of the gradient graph costs two to
 * three of y's, hence the third).
 * The plain passes are tg_grad's: the leaves' grad buffers are not touched, so tapes on other
 * threads may share the leaves (tape.h), and a leaf's gradient from an earlier tg_backward is
 * left as it was.
 * Where a partial on the way is infinite (log at 0, exp beyond its range, say), entries may
 * come out NaN (0 * inf, as in any chain rule): one that is exactly 0, and also a finite one
 * whose input reaches another output through that partial (y = [exp(x0), sum(sin(x))] at
 * x0 = 1000: d y1 / d x0 = cos(1000) is NaN, as in PyTorch's jacobian); which entries do
 * depends on the mode: rows and columns multiply the partials in different orders.
 * In column mode the gradient graph stays on the tape until its reset, as tg_hessian's. */
TG_API tg_status tg_jacobian(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                             tg_tensor **out);
/* out[i * n + j] = d2f / dxs[i] dxs[j] as a 2-D leaf of shape (numel(xs[i]), numel(xs[j])),
 * for a single-element f (TG_EINVAL otherwise, with no block made): entry (k, l) is
 * d2f / dxs[i][k] dxs[j][l]. Each block is computed on its own (block (j, i) is not copied
 * from (i, j)), so the symmetry of the result holds to rounding, not by construction; past
 * an infinite partial (log at 0, say) an entry that is exactly 0 may come out NaN in one block
 * and not in its mirror, as for tg_jacobian.
 * Cost: one recorded pass of f's graph (the gradient g), then one plain pass of the
 * gradient graph per input element (row k of blocks (i, *) from g_i seeded e_k): N = sum_i
 * numel(xs[i]) plain passes, which touch no leaf's grad buffer (as in tg_jacobian). Memory:
 * f's graph, the gradient graph and one set of gradient buffers for its nodes and leaves,
 * however large N is (no copy of the tape per row), plus the result (N^2 elements). Measured,
 * f = sum(x^2 sin x) + sum(x)^2 in f64 on a new tape: for 300 inputs the tape's arena ends at
 * 192 KiB, no more than after the gradient graph and a single row (tests/test_diff.c checks
 * that), peak RSS 5.2 MiB of a small program (3.5 for one input), of which the result is 0.7;
 * for 1,000 inputs 320 KiB and 12.3 MiB, 7.6 of them the result.
 * The gradient graph stays on f's tape until its reset, and a replay (tape.h) evaluates it
 * too: a loop that writes the inputs, replays and calls tg_hessian adds a gradient graph each
 * time and replays all of them. Reset the tape and record f again for each point instead (as
 * tg_minimize does after a Hessian). */
TG_API tg_status tg_hessian(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, size_t n,
                            tg_tensor **out);

#ifdef __cplusplus
}
#endif

#endif

/* diff_impl.h: what the files of the diff module share (products.c, matrices.c): argument
 * checks, constants of zeros, and the inner product sum_i <a_i, b_i> recorded on a tape. The
 * module sits above ops and uses the public API only (and core/core.h for errors and memory,
 * tape/grad_inputs.h for the checks the tape layer shares with it). */
#ifndef TAPEGRAD_DIFF_DIFF_IMPL_H
#define TAPEGRAD_DIFF_DIFF_IMPL_H

#include "core/core.h"

/* Checks xs[0..n) (and vs[0..n) when vs is not NULL: each of xs[i]'s dtype and shape) for
 * the function `who`: TG_EINVAL for NULL arrays or entries or a tensor of another tape,
 * TG_ESTALE for one of an earlier recording, TG_EDTYPE, TG_ESHAPE. Sets this thread's error
 * only, so that a bad argument leaves the tape as it was. */
tg_status tg_diff__check_inputs(const char *who, const tg_tape *tape, tg_tensor *const *xs,
                                tg_tensor *const *vs, size_t n);

/* Checks what every derivative product and matrix needs of the tape and the output: neither
 * NULL, the tape without an error, y a leaf or a tensor of this recording (TG_EINVAL,
 * TG_ESTALE), y depending on a tensor that requires grad, no leaf a pass from y reads written
 * since the recording used it (TG_ESTALE, as the pass would find), and (with recorded)
 * gradient recording enabled, so that recorded gradients are differentiable. Sets this
 * thread's error only. */
tg_status tg_diff__check_output(const char *who, tg_tape *tape, tg_tensor *y, bool recorded);

/* A constant of zeros of `like`'s dtype and shape on tape; NULL with the tape's error. */
tg_tensor *tg_diff__zeros_like(tg_tape *tape, const tg_tensor *like);

/* sum_i sum(a[i] * b[i]) over the i whose a[i] requires grad, a 0-d tape tensor, for the
 * callers that differentiate it: the other terms are constants, which no derivative sees, and
 * may be of another dtype (the zeros of an input of another dtype that the output does not
 * depend on), which tg_add refuses. NULL when no a[i] requires grad, or with the tape's
 * error. */
tg_tensor *tg_diff__inner(tg_tape *tape, tg_tensor *const *a, tg_tensor *const *b, size_t n);

#endif

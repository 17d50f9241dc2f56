/* grad_inputs.h: the one rule on the inputs of a gradient that the modules above the tape
 * share (tg_grad here, tg_grad_graph in ops, tg_jacobian in diff): a gradient is asked of an
 * input that does not require grad, and the output depends on it. Never installed. */
#ifndef TAPEGRAD_TAPE_GRAD_INPUTS_H
#define TAPEGRAD_TAPE_GRAD_INPUTS_H

#include "tapegrad.h"

/* TG_OK when every xs[i] (not NULL; a tensor of another tape or recording counts as one y
 * does not depend on) either requires grad or is one y does not depend on (y was not computed from
 * it, through any op); else TG_EINVAL naming the first other one (its index in xs, its name, its
 * node or shape) and why its gradient was not tracked, for the function `who`. This thread's error
 * only. Costs a pass over xs when every one requires grad; else one over the nodes up to y (and
 * TG_ENOMEM when its marks cannot be allocated). */
tg_status tg_tape__check_grad_inputs(tg_tape *tape, const tg_tensor *y, tg_tensor *const *xs,
                                     size_t n, const char *who);

/* The error (TG_EINVAL, this thread's) for an output y (not NULL) that does not require grad,
 * for the function `who`: when y is a node of this recording computed from a tensor that
 * requires grad, it names the node where the gradient stops (recorded while gradient recording
 * was off, or by an op without a gradient, a comparison); else "the output does not depend on
 * any tensor that requires grad". A pass over the nodes up to y. */
tg_status tg_tape__output_untracked(const tg_tape *tape, const tg_tensor *y, const char *who);

/* TG_OK when t (not NULL) can take part in a derivative on tape: a leaf, or a tensor recorded
 * on tape since its last reset. Else TG_EINVAL (a tensor of another tape) or TG_ESTALE (of an
 * earlier recording), naming t as `what`, with its index when i != SIZE_MAX ("xs[2]"), for
 * the function `who`. This thread's error only. */
tg_status tg_tape__check_usable(const tg_tape *tape, const tg_tensor *t, const char *who,
                                const char *what, size_t i);

/* TG_OK when a backward from y (not NULL; a leaf, or a node of this recording) reads no leaf
 * written since the recording used it, and no leaf's requires_grad changed since; else
 * TG_ESTALE naming the leaf, for the function `who`: the check backward makes before it walks
 * (tape_impl.h, tg_tape__check_versions), for callers that must refuse before they record.
 * This thread's error only. */
tg_status tg_tape__check_leaves_unchanged(const tg_tape *tape, const tg_tensor *y, const char *who);

#endif

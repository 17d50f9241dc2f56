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

#endif

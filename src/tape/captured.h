/* captured.h: the backward pass tg_grad makes, for the modules above the tape that need it
 * seeded (tg_jacobian and tg_hessian in diff): leaf gradients are kept by the tape, not added
 * into the leaves' own grad buffers, so a pass writes no leaf, and tapes on other threads may
 * share the leaves (tape.h). Never installed. */
#ifndef TAPEGRAD_TAPE_CAPTURED_H
#define TAPEGRAD_TAPE_CAPTURED_H

#include "tapegrad.h"

/* One backward pass from y with dy = seed (as tg_backward_seed checks them: TG_OK or its
 * errors), then grads[i] = the gradient xs[i] received in it, valid until the next pass or the
 * tape's reset: NULL when the pass did not reach xs[i] (its gradient is zero). A leaf y depends
 * on itself alone (no walk): the seed's data for y, NULL for any other. xs[i] are tensors
 * tg_tape__check_usable accepts; on an error every grads[i] is NULL. */
tg_status tg_tape__captured_pass(tg_tape *tape, tg_tensor *y, const tg_tensor *seed,
                                 tg_tensor *const *xs, size_t n, const void **grads);

#endif

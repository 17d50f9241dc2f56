/* borrow.h: the one piece of the tensor's internals that the model (src/nn) uses: a leaf
 * whose gradient lives in memory it does not own, so that all of a model's gradients are one
 * contiguous block (zeroed with one memset, updated by one loop, sent in one allreduce). */
#ifndef TAPEGRAD_TENSOR_BORROW_H
#define TAPEGRAD_TENSOR_BORROW_H

#include "tapegrad.h"

/* Makes `grad` (numel elements of the leaf's dtype, owned by the caller) the leaf's grad
 * buffer, freeing a grad the leaf owned. Backward then accumulates into it; tg_tensor_free
 * does not free it. NULL returns the leaf to owning none. */
void tg_tensor__borrow_grad(tg_tensor *leaf, void *grad);

#endif

/* tapegrad/tensor.h: dense tensors (rank 0..TG_MAX_RANK, contiguous row-major, f32 or f64).
 *
 * Two kinds share one handle type:
 *  - leaves, made here, owned by the caller (parameters, inputs, data batches); a leaf may
 *    require grad, and then backward accumulates into its grad buffer, allocated on first need;
 *  - tape tensors, returned by op constructors (tapegrad/ops.h), owned by their tape.
 * The accessors below work on both. */
#ifndef TAPEGRAD_TENSOR_H
#define TAPEGRAD_TENSOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Leaf constructors. `shape` has `rank` entries (it may be NULL when rank is 0). They return
 * NULL with TG_EINVAL for a bad rank or dtype, or a fill value (tg_tensor_full,
 * tg_tensor_scalar) that an f32 tensor cannot hold (finite, beyond 3.4e38: it would become
 * inf), TG_ESHAPE when the element count overflows, TG_ENOMEM when out of memory. The caller
 * frees the result with tg_tensor_free. */
TG_API tg_tensor *tg_tensor_zeros(tg_dtype dtype, int rank, const size_t *shape);
TG_API tg_tensor *tg_tensor_ones(tg_dtype dtype, int rank, const size_t *shape);
TG_API tg_tensor *tg_tensor_full(tg_dtype dtype, int rank, const size_t *shape, double value);
/* A 0-d leaf holding `value`. */
TG_API tg_tensor *tg_tensor_scalar(tg_dtype dtype, double value);
/* Copies numel elements of `dtype` from `data`. */
TG_API tg_tensor *tg_tensor_from_data(tg_dtype dtype, int rank, const size_t *shape,
                                      const void *data);
/* Copies numel doubles from `data`, converting them to `dtype` as a C cast does: for f32,
 * rounded to nearest, so a finite value beyond 3.4e38 becomes inf and one below 1.4e-45 zero,
 * unlike a fill value (a conversion of many values, checked by none; tg_tensor_set checks
 * one). */
TG_API tg_tensor *tg_tensor_from_f64(tg_dtype dtype, int rank, const size_t *shape,
                                     const double *data);
/* Wraps caller memory without copying (for data batches): `data` must hold numel elements
 * of `dtype`, suitably aligned for it, and stay alive and unchanged while the tensor is used
 * on any tape. tg_tensor_free releases the handle, never `data`. */
TG_API tg_tensor *tg_tensor_wrap(tg_dtype dtype, int rank, const size_t *shape, void *data);
/* Seeded random leaves: normal(mean, std) and uniform [lo, hi). */
TG_API tg_tensor *tg_tensor_randn(tg_dtype dtype, int rank, const size_t *shape, tg_rng *rng,
                                  double mean, double std);
TG_API tg_tensor *tg_tensor_rand(tg_dtype dtype, int rank, const size_t *shape, tg_rng *rng,
                                 double lo, double hi);
/* Frees a leaf and its grad. NULL is ignored; so is a tape tensor (its tape owns it). */
TG_API void tg_tensor_free(tg_tensor *t);

/* Marks a leaf as requiring (or not) a gradient. TG_EINVAL on a tape tensor, whose flag is
 * derived from its inputs. Set it before recording: a recording decides from it which of its
 * nodes require grad, so backward, tg_grad and replay refuse (TG_ESTALE) a recording one of
 * whose leaves changed its flag since. (A leaf freed since the recording began asks for no
 * gradient: backward compares the flags of the recording's leaves still alive.) */
TG_API tg_status tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad);
TG_API bool tg_tensor_requires_grad(const tg_tensor *t);
/* True for leaves, false for tensors recorded on a tape. */
TG_API bool tg_tensor_is_leaf(const tg_tensor *t);

/* A display name (used by the dot writer and error messages). The string is copied: for a
 * leaf onto the heap, for a tape tensor into its tape. TG_ENOMEM when the copy fails. */
TG_API tg_status tg_tensor_set_name(tg_tensor *t, const char *name);
/* The name, or NULL when none was set, or for a tape tensor whose tape was reset (TG_ESTALE). */
TG_API const char *tg_tensor_name(const tg_tensor *t);

/* The element type and the rank (number of axes, 0..TG_MAX_RANK) of a leaf or a tape tensor;
 * TG_F32 and 0 for NULL. */
TG_API tg_dtype tg_tensor_dtype(const tg_tensor *t);
TG_API int tg_tensor_rank(const tg_tensor *t);
/* The shape array (rank entries); valid as long as the tensor. */
TG_API const size_t *tg_tensor_shape(const tg_tensor *t);
/* Size of one axis; negative axes count from the end. 0 when the axis is out of range. */
TG_API size_t tg_tensor_dim(const tg_tensor *t, int axis);
TG_API size_t tg_tensor_numel(const tg_tensor *t);

/* The values, contiguous row-major, numel elements of the tensor's dtype. A tape tensor's
 * values are computed when it is recorded, so they can be read right away; they are
 * read-only. NULL (TG_ESTALE) for a tape tensor whose tape was reset.
 *
 * tg_tensor_data gives a pointer to write through, and so counts as a write to a leaf (see
 * versions below); to read, use tg_tensor_data_const, tg_tensor_get or tg_tensor_to_f64,
 * which do not. */
TG_API void *tg_tensor_data(tg_tensor *t);
TG_API const void *tg_tensor_data_const(const tg_tensor *t);
/* Element `i` (flat row-major index) as a double; NaN with TG_EINVAL out of range. */
TG_API double tg_tensor_get(const tg_tensor *t, size_t i);
/* Sets element `i` of a leaf (a write: see versions below). TG_EINVAL for a tape tensor, an
 * index out of range, or a finite value an f32 tensor cannot hold (beyond 3.4e38), which
 * leaves the element as it was. */
TG_API tg_status tg_tensor_set(tg_tensor *t, size_t i, double value);
/* The first element as a double: the value of a 0-d tensor. */
TG_API double tg_tensor_item(const tg_tensor *t);
/* Copies all elements, converted to double, into out[0..numel). */
TG_API tg_status tg_tensor_to_f64(const tg_tensor *t, double *out);

/* Versions (PyTorch's version counters). A recording uses a leaf's values as they are then,
 * and backward uses them again: a VJP reads its inputs (the gradient of x * w in w is x). So
 * writing a leaf between a recording that used it and that recording's backward would mix
 * old values (in the recorded results) with new ones (in the gradients), silently. To catch
 * it, every leaf counts its writes: tg_tensor_data (the pointer to write through; from the
 * call, not from the writes made through it), tg_tensor_set, tg_tensor_bump_version, and the
 * library's own writes into existing leaves (an optimizer step, tg_model_param_data, a model
 * or checkpoint loaded into existing parameters). A recording notes the version of each leaf
 * when it first uses it, and tg_backward, tg_backward_seed, tg_grad and tg_grad_graph
 * (tapegrad/diff.h) then fail with TG_ESTALE when a leaf they would read has been written
 * since: an input of a node on the output's gradient path (a node requiring grad that the
 * output was computed from). The message names the leaf (its name, its shape) and the first
 * such node. To take a gradient at new values, either record again (tg_tape_reset, then the
 * same calls: the usual training step) or replay the recording at them (tg_tape_replay, which
 * notes the versions again). Writing after the backward is always fine (optimizer steps do
 * it), and so is writing a leaf this backward does not read.
 *
 * What the count cannot see: writes through a pointer taken before the recording (take it
 * again after, or call tg_tensor_bump_version when done), and writes to the caller's memory
 * under a tg_tensor_wrap leaf (call tg_tensor_bump_version after them). The check costs one
 * load per leaf of the recording and one compare; it looks closer (a pass over the nodes up
 * to the output) only after a leaf was written, or a leaf some tape used was freed. */
/* The number of counted writes to a leaf so far (0 when made by the constructors above; a
 * model's parameters count the write of their initialization; 0 for a tape tensor or NULL). */
TG_API uint64_t tg_tensor_version(const tg_tensor *t);
/* Counts one write to leaf t, made where the count cannot see it (see above). TG_EINVAL for
 * NULL or a tape tensor. */
TG_API tg_status tg_tensor_bump_version(tg_tensor *t);

/* The gradient buffer (numel elements of the tensor's dtype), or NULL when no gradient has
 * been computed for it: for a leaf, before its first backward; for a tape tensor, when the
 * latest backward on its tape did not reach it. */
TG_API void *tg_tensor_grad_data(tg_tensor *t);
/* Gradient element `i` as a double; 0 when there is no gradient (as tg_tensor_grad_data
 * says). NaN with TG_EINVAL for t NULL or i out of range, TG_ESTALE for a tape tensor recorded
 * before its tape was reset. */
TG_API double tg_tensor_grad_get(const tg_tensor *t, size_t i);
/* Sets a leaf's gradient to zero (keeping the buffer). TG_EINVAL for a tape tensor. */
TG_API tg_status tg_tensor_zero_grad(tg_tensor *t);

/* Writes the shape as "[2,3]" into buf (always NUL-terminated); returns buf. A shape NULL of
 * rank > 0 is written "[?]", and a rank outside 0..TG_MAX_RANK "[rank 9?]" (shape unread). */
TG_API char *tg_shape_format(char *buf, size_t size, int rank, const size_t *shape);

#ifdef __cplusplus
}
#endif

#endif

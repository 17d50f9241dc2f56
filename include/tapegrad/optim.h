/* tapegrad/optim.h: optimizers, learning-rate schedules and gradient clipping. They update
 * leaves in place from their grad buffers, between recordings (never while a recorded graph
 * that uses them is still to be differentiated). Options structs start from their _INIT. */
#ifndef TAPEGRAD_OPTIM_H
#define TAPEGRAD_OPTIM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The updates, per element, with g the gradient and t the step number (1 for the first):
 *   SGD, MOMENTUM:  g += wd w;  if mu > 0: v = mu v + g, and d = g + mu v (nesterov) or v;
 *                   else d = g;  w -= lr d
 *   ADAM:           g += wd w;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *                   w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   ADAMW:          w -= lr wd w (decoupled: from the weight before this step's update, as in
 *                   Loshchilov & Hutter's Algorithm 2 and PyTorch), then Adam without wd.
 * Buffers start at zero (PyTorch's first momentum step sets v = g; with v = 0 it is the same). */
typedef enum tg_optim_kind {
    TG_OPTIM_SGD = 0,      /* w -= lr * g (with momentum > 0: v = mu v + g; w -= lr v) */
    TG_OPTIM_MOMENTUM = 1, /* SGD with momentum (momentum 0 means 0.9); nesterov optional */
    TG_OPTIM_ADAM = 2,     /* Adam with bias correction; weight_decay adds wd * w to g */
    TG_OPTIM_ADAMW = 3,    /* Adam with decoupled weight decay: w -= lr * wd * w */
} tg_optim_kind;

/* Valid values (TG_EINVAL otherwise): lr finite >= 0; momentum in [0, 1); nesterov only for
 * SGD/MOMENTUM with momentum > 0; beta1, beta2 in [0, 1); eps finite > 0; weight_decay
 * finite >= 0. Fields an optimizer does not use are not checked. */
typedef struct tg_optim_options {
    tg_optim_kind kind;
    double lr;
    double momentum;     /* SGD/momentum */
    bool nesterov;       /* SGD/momentum */
    double beta1, beta2; /* Adam/AdamW */
    double eps;          /* Adam/AdamW */
    double weight_decay; /* L2 (SGD, Adam) or decoupled (AdamW) */
} tg_optim_options;

#define TG_OPTIM_OPTIONS_INIT {TG_OPTIM_SGD, 0.01, 0.0, false, 0.9, 0.999, 1e-8, 0.0}

/* "sgd", "momentum", "adam", "adamw"; and back (TG_EINVAL for an unknown name). */
TG_API const char *tg_optim_kind_name(tg_optim_kind kind);
TG_API tg_status tg_optim_kind_parse(const char *name, tg_optim_kind *out);

/* An optimizer: its options, the leaves it updates, its step count and its state block.
 * Opaque. Made by tg_optim_new, tg_model_optim_new (tapegrad/nn.h: over a model's parameters)
 * or tg_checkpoint_load, it is the caller's, freed with tg_optim_free (the leaves are not
 * freed); tg_trainer_optim's belongs to the trainer. */
typedef struct tg_optim tg_optim;

/* An optimizer over n >= 1 distinct leaves (all of one dtype, each requiring grad; for a
 * model's parameters, tg_model_optim_new passes tg_model_param(m, 0..count-1)); it keeps its
 * state (momentum, Adam moments, in the leaves' dtype) in one block. opt NULL means
 * TG_OPTIM_OPTIONS_INIT. The leaves stay the caller's and must outlive it. *out is the
 * caller's (tg_optim_free). TG_EINVAL for bad options or leaves (NULL, not a leaf, not
 * requiring grad, repeated), TG_EDTYPE for leaves of different dtypes, TG_ENOMEM. */
TG_API tg_status tg_optim_new(const tg_optim_options *opt, tg_tensor *const *params, size_t n,
                              tg_optim **out);
TG_API void tg_optim_free(tg_optim *optim);
/* One update from the current grads (a leaf without a grad buffer is skipped, its state
 * untouched). The step count advances by one. It is the optimizer's, not each leaf's: Adam's
 * bias correction at step t applies to every leaf, also one skipped in earlier steps (PyTorch
 * counts the steps of each parameter, so its first update of such a leaf is larger).
 * TG_EINVAL for a NULL optim, or a step count of 2^64 - 1 (it would wrap to 0, and Adam's bias
 * correction divide by zero), nothing changed. */
TG_API tg_status tg_optim_step(tg_optim *optim);
/* TG_EINVAL (and no change) unless lr is finite and >= 0. */
TG_API tg_status tg_optim_set_lr(tg_optim *optim, double lr);
TG_API double tg_optim_lr(const tg_optim *optim);
/* Steps taken so far. */
TG_API uint64_t tg_optim_steps(const tg_optim *optim);
/* The state block (for checkpoints): bytes, and a pointer to them (0 and NULL for SGD without momentum).
 * Layout: for momentum, v of every leaf in order; for Adam/AdamW, m of every leaf in order,
 * then v of every leaf in order; each leaf's numel elements of its dtype. */
TG_API size_t tg_optim_state_size(const tg_optim *optim);
TG_API void *tg_optim_state(tg_optim *optim);
TG_API void tg_optim_set_steps(tg_optim *optim, uint64_t steps);
/* Restores a saved state (a checkpoint's): `bytes` must equal tg_optim_state_size and `state`
 * hold the block in the layout above (state NULL is allowed when bytes is 0), every value
 * finite except Adam's second moments, which must be >= 0 and may be +inf (what a step stores
 * when g^2 overflows the dtype; that weight's later moves are 0, as in PyTorch); the step count
 * becomes `steps` (below 2^64 - 1).
 * TG_EINVAL naming the first bad value, and then nothing changes. */
TG_API tg_status tg_optim_set_state(tg_optim *optim, const void *state, size_t bytes,
                                    uint64_t steps);
/* The options in effect: MOMENTUM's 0 reads back as 0.9, the fields the kind does not use as in
 * TG_OPTIM_OPTIONS_INIT, lr as last set. TG_EINVAL for NULL. */
TG_API tg_status tg_optim_get_options(const tg_optim *optim, tg_optim_options *out);
/* The leaves it updates, in order (NULL with TG_EINVAL for an index out of range). */
TG_API size_t tg_optim_param_count(const tg_optim *optim);
TG_API tg_tensor *tg_optim_param(const tg_optim *optim, size_t i);
/* The dtype of its leaves and state. */
TG_API tg_dtype tg_optim_dtype(const tg_optim *optim);

/* Learning-rate schedules: the rate for step `step` (0-based) of `total`. STEP divides with
 * integer division (gamma applied every step_size steps); COSINE stays at min from step
 * `total` on. */
typedef enum tg_schedule_kind {
    TG_SCHEDULE_CONSTANT = 0, /* base */
    TG_SCHEDULE_STEP = 1,     /* base * gamma^(step / step_size) */
    TG_SCHEDULE_COSINE = 2,   /* min + (base - min) (1 + cos(pi step / total)) / 2 */
} tg_schedule_kind;

/* A learning-rate schedule, for tg_schedule_lr: the kind and the fields it reads (the
 * others are ignored). A plain struct that owns nothing; start from TG_SCHEDULE_INIT. */
typedef struct tg_schedule {
    tg_schedule_kind kind;
    double base;
    uint64_t step_size; /* STEP */
    double gamma;       /* STEP */
    uint64_t total;     /* COSINE */
    double min;         /* COSINE */
} tg_schedule;

#define TG_SCHEDULE_INIT {TG_SCHEDULE_CONSTANT, 0.01, 1, 0.1, 1, 0.0}

/* TG_OK, or TG_EINVAL naming the bad field: unknown kind, base not finite or < 0; STEP:
 * step_size 0, gamma not finite or < 0; COSINE: total 0, min not finite or < 0, or above
 * base. */
TG_API tg_status tg_schedule_check(const tg_schedule *schedule);
/* The rate; NaN (with tg_schedule_check's error) for a NULL or invalid schedule. */
TG_API double tg_schedule_lr(const tg_schedule *schedule, uint64_t step);

/* Scales the grads of n leaves so their global L2 norm is at most max_norm: when the norm
 * (over all elements of all grads, summed in f64) exceeds max_norm, every grad is multiplied
 * by max_norm / (norm + 1e-6) (PyTorch's epsilon: it keeps the factor finite for a tiny
 * max_norm and leaves the result a hair under max_norm); otherwise nothing changes. *norm (if
 * not NULL) receives the norm before clipping. Leaves without grads count as zero. TG_EINVAL
 * for a NULL or non-leaf tensor, a leaf listed twice, or max_norm not finite and > 0;
 * TG_ENUMERIC (grads untouched) when the norm is NaN or Inf. */
TG_API tg_status tg_clip_grad_norm(tg_tensor *const *params, size_t n, double max_norm,
                                   double *norm);

#ifdef __cplusplus
}
#endif

#endif

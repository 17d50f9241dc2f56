/* tapegrad/optim.h: optimizers, learning-rate schedules and gradient clipping. They update
 * leaves in place from their grad buffers, between recordings (never while a recorded graph
 * that uses them is still to be differentiated). Options structs start from their _INIT. */
#ifndef TAPEGRAD_OPTIM_H
#define TAPEGRAD_OPTIM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tg_optim_kind {
    TG_OPTIM_SGD = 0,      /* w -= lr * g (with momentum: v = mu v + g; w -= lr v) */
    TG_OPTIM_MOMENTUM = 1, /* SGD with momentum (default 0.9); nesterov optional */
    TG_OPTIM_ADAM = 2,     /* Adam with bias correction; weight_decay adds wd * w to g */
    TG_OPTIM_ADAMW = 3,    /* Adam with decoupled weight decay: w -= lr * wd * w */
} tg_optim_kind;

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

typedef struct tg_optim tg_optim;

/* An optimizer over n leaves (all of one dtype, each requiring grad); it keeps its state
 * (momentum, Adam moments) in one block. The leaves stay the caller's and must outlive it.
 * *out is the caller's (tg_optim_free). TG_EINVAL for bad options or leaves, TG_ENOMEM. */
TG_API tg_status tg_optim_new(const tg_optim_options *opt, tg_tensor *const *params, size_t n,
                              tg_optim **out);
TG_API void tg_optim_free(tg_optim *optim);
/* One update from the current grads (a leaf without a grad buffer is skipped). */
TG_API tg_status tg_optim_step(tg_optim *optim);
TG_API void tg_optim_set_lr(tg_optim *optim, double lr);
TG_API double tg_optim_lr(const tg_optim *optim);
/* Steps taken so far. */
TG_API uint64_t tg_optim_steps(const tg_optim *optim);
/* The state block (for checkpoints): bytes, and a pointer to them. */
TG_API size_t tg_optim_state_size(const tg_optim *optim);
TG_API void *tg_optim_state(tg_optim *optim);
TG_API void tg_optim_set_steps(tg_optim *optim, uint64_t steps);

/* Learning-rate schedules: the rate for step `step` (0-based) of `total`. */
typedef enum tg_schedule_kind {
    TG_SCHEDULE_CONSTANT = 0, /* base */
    TG_SCHEDULE_STEP = 1,     /* base * gamma^(step / step_size) */
    TG_SCHEDULE_COSINE = 2,   /* min + (base - min) (1 + cos(pi step / total)) / 2 */
} tg_schedule_kind;

typedef struct tg_schedule {
    tg_schedule_kind kind;
    double base;
    uint64_t step_size; /* STEP */
    double gamma;       /* STEP */
    uint64_t total;     /* COSINE */
    double min;         /* COSINE */
} tg_schedule;

#define TG_SCHEDULE_INIT {TG_SCHEDULE_CONSTANT, 0.01, 1, 0.1, 1, 0.0}

TG_API double tg_schedule_lr(const tg_schedule *schedule, uint64_t step);

/* Scales the grads of n leaves so their global L2 norm is at most max_norm; *norm (if not
 * NULL) receives the norm before clipping. Leaves without grads count as zero. */
TG_API tg_status tg_clip_grad_norm(tg_tensor *const *params, size_t n, double max_norm,
                                   double *norm);

#ifdef __cplusplus
}
#endif

#endif

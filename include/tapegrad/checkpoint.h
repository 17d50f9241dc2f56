/* tapegrad/checkpoint.h: checkpoints to resume training: the model (a complete model file,
 * metadata included), the optimizer (options, step count and state block), where the run
 * was (epoch, batch, step, the RNG that drives shuffling, the number of ranks) and the run's
 * other settings (seed, batch size, test split, clipping norm, split sizes), which
 * tg_trainer_restore (tapegrad/train.h) compares with the run being resumed. The format is
 * in docs/checkpoint-format.md: little-endian, versioned, an XXH3-64 checksum of everything
 * before it, every field validated on load.
 *
 * Saving is atomic, as for model files: a new temporary file beside PATH ("PATH.tmp-" and six
 * hex digits, created exclusively) is written, fsync'ed and renamed over PATH, and the
 * directory is fsync'ed, so a crash or a kill at any moment leaves PATH holding the previous
 * checkpoint or the new one, never a mix (a PATH that is not a regular file is refused, a
 * symbolic link followed). Restoring a model and optimizer from a checkpoint and repeating
 * the same steps gives bit-identical parameters (the optimizer state is stored bit for bit). */
#ifndef TAPEGRAD_CHECKPOINT_H
#define TAPEGRAD_CHECKPOINT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A model (tapegrad/nn.h): opaque, freed with tg_model_free. */
typedef struct tg_model tg_model;
/* An optimizer (tapegrad/optim.h): opaque, freed with tg_optim_free. */
typedef struct tg_optim tg_optim;

/* Where a training run was, and the settings of that run that the model and the optimizer
 * do not record (tg_trainer_progress fills all of it; tg_trainer_restore compares the
 * settings with the run being resumed). The fields mean what the trainer makes them mean; the
 * loader only checks them: rng must not be all zero (xoshiro's one invalid state), world_size
 * >= 1, batch and batch_size < 2^63, test_split in [0, 1), clip_norm finite and >= 0. A
 * batch_size of 0 means that the settings were not recorded (the caller filled the position
 * only): nothing is then compared with them. */
typedef struct tg_checkpoint_progress {
    uint64_t epoch;      /* the epoch in progress, 0-based */
    uint64_t batch;      /* batches of that epoch already taken */
    uint64_t step;       /* training steps taken over the whole run */
    tg_rng rng;          /* the RNG as training should continue with it */
    uint32_t world_size; /* ranks that trained (1 for a single process) */
    uint64_t seed;       /* the run's seed: split, initial weights, epoch orders */
    uint64_t batch_size; /* rows per step and rank; 0: the settings are not recorded */
    double test_split;   /* fraction of rows held out */
    double clip_norm;    /* gradient clipping norm (0: none) */
    uint64_t train_rows; /* rows in the training split */
    uint64_t test_rows;  /* rows in the test split */
    uint64_t data_hash;  /* a hash of the rows trained and tested on, features and target
                          * (XXH3-64); 0: not recorded, not compared */
} tg_checkpoint_progress;

#define TG_CHECKPOINT_PROGRESS_INIT {0, 0, 0, {{0, 0, 0, 0}}, 1, 0, 0, 0.0, 0.0, 0, 0, 0}

/* Writes a checkpoint of `model`, `optim` (which must update exactly the model's parameters,
 * in order: tg_model_optim_new(opt, model, &optim), or tg_optim_new over tg_model_param(model,
 * 0..count-1)) and `progress`.
 * TG_EINVAL (NULL arguments, an optimizer over other leaves, invalid progress), TG_ENUMERIC (a
 * parameter is NaN or infinite: a diverged run is not saved), TG_EIO (with the path, the
 * failed step and the OS reason; PATH is untouched), TG_ENOMEM. */
TG_API tg_status tg_checkpoint_save(const char *path, const tg_model *model,
                                    const tg_optim *optim,
                                    const tg_checkpoint_progress *progress);

/* Reads a checkpoint: *model receives a new model, *optim a new optimizer over its
 * parameters with the saved options, step count and state, and *progress the progress (each
 * out may be NULL only for progress). All are the caller's (tg_model_free, tg_optim_free).
 * TG_EIO (cannot open or read, with the OS reason), TG_EFORMAT (bad magic, unknown version,
 * truncated at byte N, checksum mismatch, a field out of range, an invalid embedded model,
 * ...: the message says which), TG_ENOMEM. On error nothing is returned. */
TG_API tg_status tg_checkpoint_load(const char *path, tg_model **model, tg_optim **optim,
                                    tg_checkpoint_progress *progress);

/* Restores a checkpoint into an existing model and optimizer (a trainer's, built with the
 * options of the run that wrote it): the model's parameters, the optimizer's state, step count
 * and learning rate, and *progress (if not NULL). The model must have the checkpoint's spec,
 * and the optimizer the same kind and options (the learning rate aside) over the model's
 * parameters: TG_EINVAL naming what differs. Metadata (standardization, names) is not copied
 * nor compared, nor are the progress's settings: a trainer resumes with tg_trainer_restore,
 * which compares them all.
 * Errors as tg_checkpoint_load otherwise; on any error model and optimizer are untouched. */
TG_API tg_status tg_checkpoint_restore(const char *path, tg_model *model, tg_optim *optim,
                                       tg_checkpoint_progress *progress);

/* The same on memory buffers. *out_buf from save_buffer is the caller's: release it with
 * tg_checkpoint_buffer_free(buf, size). */
TG_API tg_status tg_checkpoint_save_buffer(const tg_model *model, const tg_optim *optim,
                                           const tg_checkpoint_progress *progress,
                                           void **out_buf, size_t *out_size);
TG_API void tg_checkpoint_buffer_free(void *buf, size_t size);
TG_API tg_status tg_checkpoint_load_buffer(const void *buf, size_t size, tg_model **model,
                                           tg_optim **optim, tg_checkpoint_progress *progress);

#ifdef __cplusplus
}
#endif

#endif

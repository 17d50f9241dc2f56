/* tapegrad/train.h: the supervised training loop, once, for everyone who trains an MLP on a
 * table: the `tapegrad train` command, the benchmarks, the reproducibility tests and
 * distributed training. It splits the table by seed, standardizes the features with the
 * training split's statistics, builds the model, and runs epochs of seeded mini-batches:
 * gather -> forward -> loss -> backward -> gradient hook -> clip -> optimizer step -> zero
 * grads -> tape reset, on one tape and preallocated batch leaves, so a step allocates nothing.
 *
 * Distributed training plugs in without reshaping the loop: every rank builds the same trainer
 * (same table, same options, same seed: the same split, initial weights and epoch orders) with
 * its own `rank` of `world`. Each global batch of world * batch rows of an epoch's shuffled
 * order is cut into `world` shards, one per rank; the gradient hook, called after backward and
 * before the optimizer step, averages the model's contiguous gradient block across ranks.
 * Then N ranks at batch B train like one process at batch N*B (up to rounding). Ranks that
 * were given different settings would not train one model (and collective calls of different
 * sizes would corrupt memory): call tg_dist_check_trainer (tapegrad/dist.h) on every rank after
 * tg_trainer_new and before the first step; it compares every setting and the data.
 *
 * Checkpoints: everything a resumed run needs is reachable between epochs: the model
 * (tg_trainer_model: its parameter block), the optimizer (tg_trainer_optim: its state block
 * and step count), the epoch index (tg_trainer_epoch_index / tg_trainer_set_epoch) and the
 * shuffle RNG (tg_trainer_rng). Each epoch's order is drawn from an RNG seeded by (seed,
 * epoch), so restoring the epoch index restores the order; the RNG is exposed all the same. */
#ifndef TAPEGRAD_TRAIN_H
#define TAPEGRAD_TRAIN_H

#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What to learn: a tg_task (tapegrad/nn.h), numbered as it is, or AUTO, which lets the targets
 * decide. AUTO classifies when the targets are exactly the integers 0..K-1 with every one of
 * them present and 2 <= K <= TG_TRAIN_MAX_CLASSES, and regresses otherwise (a column such as
 * 25..346 is a quantity, not a label). CLASSIFY needs integer targets >= 0 (K is the largest
 * + 1); REGRESS takes any numbers. AUTO is -1, like TG_TRAIN_INIT_AUTO, so that any other value
 * converts to tg_task as it is. Start from TG_TRAIN_OPTIONS_INIT: a zeroed struct means
 * REGRESS. */
typedef enum tg_train_task {
    TG_TRAIN_AUTO = -1,                   /* the targets decide, as above */
    TG_TRAIN_REGRESS = TG_TASK_REGRESS,   /* regression: one output, mean squared error */
    TG_TRAIN_CLASSIFY = TG_TASK_CLASSIFY, /* classification: K outputs, cross-entropy */
} tg_train_task;

#define TG_TRAIN_MAX_CLASSES 1024
/* The `init` field's default: He (uniform) for every layer (the output layer's too) when the
 * hidden layers are relu, Xavier (uniform) else. */
#define TG_TRAIN_INIT_AUTO (-1)

/* Scores on one split. Classification: loss is the mean categorical cross-entropy, accuracy
 * the fraction of rows whose largest logit is the target, rmse NaN. Regression: loss is the
 * mean squared error of the standardized target (what the optimizer minimizes), rmse is in
 * the target's own units, accuracy NaN. All NaN for an empty split (no test rows). */
typedef struct tg_train_scores {
    double loss;
    double accuracy;
    double rmse;
} tg_train_scores;

/* One epoch, as the callback sees it and as the history keeps it. Scores are of the model at
 * the end of the epoch, evaluated on the whole split without gradients (not running means of
 * the batches). */
typedef struct tg_train_epoch {
    int epoch;  /* 1-based */
    int epochs; /* the total the run was asked for */
    tg_train_scores train, test;
    double seconds; /* since the run's first epoch started (wall clock) */
} tg_train_epoch;

/* Called after every epoch. Anything but TG_OK stops the run after that epoch and
 * tg_trainer_run returns it (with the callback's tg_last_error message, if it set one). */
typedef tg_status (*tg_train_epoch_fn)(const tg_train_epoch *epoch, void *ud);

/* Called once per step after backward, before clipping and the optimizer step, on every rank
 * (also a rank whose shard of the last batch is empty: its gradients are then zero). `grad`
 * is the model's contiguous gradient block (tg_model_grad_data): numel elements of dtype. The
 * loop has already scaled it so that averaging it over the ranks gives the gradient of the
 * whole global batch's mean loss (it multiplies by world * local_rows / global_rows when the
 * last batch does not split evenly). The hook averages in place; anything but TG_OK stops.
 * When this rank's step fails before the hook (its tape's error, a loss that is NaN or Inf),
 * the hook is still called, with grad NULL and numel 0, before the step returns that error:
 * a hook that exchanges with the other ranks tells them there (tg_dist_allreduce_grads with a
 * NULL model does: they return TG_EIO naming this rank), rather than leave them waiting for
 * a gradient that will not come. So is it, once, after a failure of this rank's clipping,
 * optimizer step or evaluation of the epoch, when the run has a step after it: in place of that
 * step's call, where the other ranks are heading. Its status is then ignored. A failure the
 * hook itself returns makes no further call, nor does a failure of on_step or on_epoch (a
 * callback that can fail on one rank alone tells the others itself, as `tapegrad train`'s
 * checkpoints do), nor one after the run's last exchange: there every rank should make one
 * more collective call that says whether it succeeded (tg_dist_check_params, with a NULL model
 * on a rank that failed: `tapegrad train` does). Whether a step follows is judged by the
 * epochs asked for: a program whose callbacks may stop the run early on every rank should end
 * it with such a call too. */
typedef tg_status (*tg_train_grad_fn)(tg_model *model, void *grad, size_t numel, tg_dtype dtype,
                                      void *ud);

/* A training run (tg_trainer_new, below): opaque, freed with tg_trainer_free. */
typedef struct tg_trainer tg_trainer;
/* Called after every optimizer step with the epoch in progress (0-based) and the steps of it
 * taken so far (1..steps per epoch): the point where a checkpoint is consistent (see
 * tg_trainer_set_position). Anything but TG_OK stops the run (with the callback's
 * tg_last_error message, if it set one). It may read the trainer and take a checkpoint; the
 * calls that run or move it (tg_trainer_epoch, _run, _set_epoch, _set_position, _restore) are
 * refused there (TG_EINVAL) while the epoch is under way, and it must not free it. */
typedef tg_status (*tg_train_step_fn)(tg_trainer *trainer, int epoch, size_t batch, void *ud);

/* The options, all with defaults (TG_TRAIN_OPTIONS_INIT): one hidden layer of 64 relu units,
 * Adam at lr 0.003 with L2 weight decay 1e-3, 30 epochs of batch 32, a 20% test split, seed
 * 42, f32 (what they give on the digits data: README, "Training from the command line"). */
typedef struct tg_train_options {
    tg_train_task task;
    int n_hidden;                         /* hidden layers, 0..TG_MLP_MAX_LAYERS-1 */
    size_t hidden[TG_MLP_MAX_LAYERS - 1]; /* their sizes, each >= 1 */
    tg_activation act;                    /* of every hidden layer; the output is linear */
    int init;                             /* TG_TRAIN_INIT_AUTO or a tg_init */
    tg_optim_options optim;               /* kind, lr, momentum, betas, weight decay */
    int epochs;                           /* >= 1 */
    size_t batch;                         /* rows per step and rank, >= 1 */
    double test_split;                    /* fraction of rows held out, in [0, 1) */
    uint64_t seed;                        /* split, initial weights, epoch orders */
    tg_dtype dtype;                       /* of the model and the batches */
    double clip_norm;                     /* clip gradients to this global norm; 0: never */
    int rank, world;                      /* this rank's shard of every batch: 0 <= rank <
                                           * world; 0 and 1 for one process */
    tg_train_epoch_fn on_epoch;           /* NULL: none */
    void *on_epoch_ud;
    tg_train_grad_fn grad_hook; /* NULL: none */
    void *grad_hook_ud;
    tg_train_step_fn on_step; /* NULL: none */
    void *on_step_ud;
} tg_train_options;

#define TG_TRAIN_OPTIONS_INIT                                                                      \
    {                                                                                              \
        TG_TRAIN_AUTO, 1, {64}, TG_ACT_RELU, TG_TRAIN_INIT_AUTO,                                   \
            {TG_OPTIM_ADAM, 0.003, 0.0, false, 0.9, 0.999, 1e-8, 1e-3}, 30, 32, 0.2, 42, TG_F32,   \
            0.0, 0, 1, NULL, NULL, NULL, NULL, NULL, NULL                                          \
    }

/* What a run gives: the task it settled on, the final scores (of the model after the last
 * epoch run, on the whole splits), and counts. */
typedef struct tg_train_result {
    tg_task task;
    size_t n_classes; /* 0 for regression */
    size_t n_train, n_test;
    size_t n_features;
    size_t params;  /* parameter elements of the model */
    int epochs;     /* epochs completed: the epoch index reached, which counts a resumed run's
                     * epochs before its checkpoint too (fewer than asked when the callback
                     * stopped it) */
    double seconds; /* wall time of the epochs this trainer ran, evaluation included */
    tg_train_scores train, test;
} tg_train_result;

/* A training run: the split and standardized data, the model, the optimizer, the tape and
 * batch leaves its steps use, and the history. Opaque. Made by tg_trainer_new, the caller's,
 * freed with tg_trainer_free (which frees its model and optimizer too). */
typedef struct tg_trainer tg_trainer;

/* Checks the options, finds `target` in the table, splits it (seed), standardizes the features
 * with the training split's mean and standard deviation, settles the task, builds the model
 * (sizes[0] = features, the hidden sizes, then the class count or 1) and the optimizer, and
 * allocates everything the steps use. Nothing is trained yet. The table is copied from; it
 * need not outlive the trainer. *out is the caller's (tg_trainer_free).
 * Errors: TG_EINVAL for a bad option (naming it), an unknown target column (naming the
 * columns there are), a table with no feature column, a split that leaves no training rows
 * (or fewer than `world`), targets that cannot be classes when CLASSIFY is asked for (naming
 * the first bad row), a class count above TG_TRAIN_MAX_CLASSES; TG_ENOMEM. */
TG_API tg_status tg_trainer_new(const tg_table *table, const char *target,
                                const tg_train_options *opt, tg_trainer **out);
TG_API void tg_trainer_free(tg_trainer *trainer);

/* Runs one epoch (the next one) and evaluates; *out (if not NULL) receives its scores, which
 * are also appended to the history. The callback is not called here. TG_EINVAL when every
 * epoch asked for has run; the status of a failed step (the tape's, the hook's, TG_ENUMERIC
 * when the loss is NaN or Inf, on_step's) or evaluation (TG_ENUMERIC when the loss after the
 * last step is not finite), after which the trainer should be freed; the hook may have been
 * called once more without a gradient (tg_train_grad_fn). */
TG_API tg_status tg_trainer_epoch(tg_trainer *trainer, tg_train_epoch *out);
/* Runs the remaining epochs, calling on_epoch after each, then evaluates the final model;
 * *result (if not NULL) receives the summary. Errors as tg_trainer_epoch, or the callback's. */
TG_API tg_status tg_trainer_run(tg_trainer *trainer, tg_train_result *result);

/* The summary so far (final scores are those of the last epoch run; NaN before any). */
TG_API void tg_trainer_result(const tg_trainer *trainer, tg_train_result *result);
/* The epochs this trainer has run, oldest first; *n receives the count. Valid until the next
 * epoch. After tg_trainer_set_epoch moved ahead (a resumed run), they begin at the epoch it
 * resumed from: each entry's epoch says which it is. */
TG_API const tg_train_epoch *tg_trainer_history(const tg_trainer *trainer, size_t *n);

/* The model being trained, owned by the trainer. For regression it predicts the standardized
 * target; tg_trainer_export gives one that predicts the target itself. */
TG_API tg_model *tg_trainer_model(tg_trainer *trainer);
TG_API tg_optim *tg_trainer_optim(tg_trainer *trainer);
/* The shuffle RNG: the state after drawing the latest epoch's order (before the first epoch,
 * seeded for it). */
TG_API tg_rng *tg_trainer_rng(tg_trainer *trainer);
/* Epochs completed (0 before the first). Setting it (0..epochs) makes the next epoch
 * index+1, with that epoch's order: with the parameter block and the optimizer state restored,
 * a resumed run continues exactly. The history is not restored (TG_EINVAL out of range). */
TG_API int tg_trainer_epoch_index(const tg_trainer *trainer);
TG_API tg_status tg_trainer_set_epoch(tg_trainer *trainer, int epoch);
/* The same in the middle of an epoch: the next epoch run is epoch+1 (its order drawn as
 * always) and it skips its first `batch` steps, so a checkpoint taken by on_step resumes
 * exactly. TG_EINVAL for epoch out of 0..epochs-1, or batch beyond the epoch's steps. */
TG_API tg_status tg_trainer_set_position(tg_trainer *trainer, int epoch, size_t batch);

/* Fills *progress for tg_checkpoint_save: the position (`epoch` in progress, 0-based, and
 * `batch` steps of it taken: what on_step reports), the optimizer's step count, the shuffle
 * RNG, the number of ranks, and the settings a checkpoint records besides the model and the
 * optimizer: seed, batch size, test split, clipping norm and the rows of each split. */
TG_API void tg_trainer_progress(const tg_trainer *trainer, int epoch, size_t batch,
                                tg_checkpoint_progress *progress);

/* Resumes from a checkpoint written with tg_trainer_progress's record: restores the
 * parameters, the optimizer's state, step count and learning rate, and the position
 * (tg_trainer_set_position); *progress (if not NULL) receives the checkpoint's. The run must
 * be the one that wrote it, or the resumed run would not continue it (another seed makes test
 * rows training rows): every setting the checkpoint records is compared with this trainer's:
 * the task, the number of features and classes, the hidden layers, activation, dtype, the
 * optimizer and all its options (the learning rate included: the trainer has no schedule),
 * the number of ranks, and, when the checkpoint recorded them (tg_trainer_progress does),
 * the batch size, test split, seed, clipping norm and row counts of the splits; then the
 * column names stored in the checkpoint's model (the target's, then each feature's) and its
 * standardization statistics against this run's, feature by feature. A difference is
 * TG_EINVAL naming the setting (as `tapegrad train` spells it: "--seed", "--batch", ...) with
 * both values: "the checkpoint's run differs on --seed: it has 42, this run has 7". The
 * number of epochs may differ (a run can be extended: each epoch's order depends on the seed
 * and its index only). Errors of tg_checkpoint_load otherwise, and TG_EINVAL when the
 * checkpoint's position is past this run's epochs. On any error the trainer is untouched. */
TG_API tg_status tg_trainer_restore(tg_trainer *trainer, const char *path,
                                    tg_checkpoint_progress *progress);

/* A copy of the model to keep or save (*out is the caller's, tg_model_free): the same weights,
 * with the standardization, the task, the class count and the column names stored, and, for
 * regression, the target's scaling folded into the last layer (w * std, b * std + mean), so
 * it predicts in the target's units from raw feature rows. TG_ENOMEM; TG_EINVAL for a
 * regression model whose output cannot hold the target in its units: values (mean + 4
 * standard deviations) beyond its dtype's range, or, in f32, spaced more than 2^-10 of their
 * standard deviation apart (a target of 1e9 + x, say), which f64 holds; a constant target is
 * held to f32's precision. */
TG_API tg_status tg_trainer_export(const tg_trainer *trainer, tg_model **out);

/* Records one training step on `tape` for looking at it (tapegrad/io.h's dot writer): the
 * first batch of training rows in file order (batch rows, or all when fewer) through the model
 * and the loss, then backward, so every node carries its gradient; nothing is updated. The
 * data leaves are named "x" and "target" and hold those rows until the next epoch; the
 * model's gradient block holds this batch's gradients until then (every step zeroes it before
 * its backward). Returns the loss, owned by the tape; NULL with the error on failure. */
TG_API tg_tensor *tg_trainer_record(tg_trainer *trainer, tg_tape *tape);

/* "classify" / "regress" / "auto"; and back (TG_EINVAL for an unknown name). */
TG_API const char *tg_train_task_name(tg_train_task task);
TG_API tg_status tg_train_task_parse(const char *name, tg_train_task *out);

#ifdef __cplusplus
}
#endif

#endif

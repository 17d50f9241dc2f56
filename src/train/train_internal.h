/* train_internal.h: the trainer's settings record, one list of everything that shapes a run
 * (the model, the optimizer, the schedule of batches, the data it was given), as fixed-width
 * words. dist compares the records of all ranks before the first collective call
 * (tg_dist_check_trainer); tg_trainer_restore compares the parts a checkpoint stores with the
 * run being resumed. Either way a difference is reported by name with both values. */
#ifndef TAPEGRAD_TRAIN_INTERNAL_H
#define TAPEGRAD_TRAIN_INTERNAL_H

#include "core/core.h"

/* Word indices of the record. Floating-point settings are stored as their bit patterns. */
enum {
    TG_TRAIN__TASK,     /* the settled tg_task */
    TG_TRAIN__FEATURES, /* feature columns */
    TG_TRAIN__CLASSES,  /* 0 for regression */
    TG_TRAIN__LAYERS,   /* hidden layers, then their sizes (TG_MLP_MAX_LAYERS - 1 words) */
    TG_TRAIN__ACT = TG_TRAIN__LAYERS + TG_MLP_MAX_LAYERS, /* 0 without hidden layers */
    TG_TRAIN__INIT,                                       /* resolved (never AUTO) */
    TG_TRAIN__DTYPE,
    TG_TRAIN__OPTIM,
    TG_TRAIN__LR,
    TG_TRAIN__MOMENTUM,
    TG_TRAIN__NESTEROV,
    TG_TRAIN__BETA1,
    TG_TRAIN__BETA2,
    TG_TRAIN__EPS,
    TG_TRAIN__DECAY,
    TG_TRAIN__EPOCHS,
    TG_TRAIN__BATCH,
    TG_TRAIN__TEST_SPLIT,
    TG_TRAIN__SEED,
    TG_TRAIN__CLIP,
    TG_TRAIN__WORLD,
    TG_TRAIN__TRAIN_ROWS,
    TG_TRAIN__TEST_ROWS,
    TG_TRAIN__RANK,      /* not compared: each rank's own, checked against its place */
    TG_TRAIN__DATA_HASH, /* XXH3-64 of the standardized splits: compared last */
    TG_TRAIN__SETTINGS_WORDS
};

/* Which fields a comparison covers. */
typedef enum tg_train__scope {
    TG_TRAIN__RANKS,      /* everything but the rank and the data hash (compared after the
                           * statistics, so that a differing file is named by its feature) */
    TG_TRAIN__CHECKPOINT, /* what a checkpoint records (not the initializer, the epochs, the
                           * rank or the data hash) */
} tg_train__scope;

/* The record of a trainer. */
void tg_train__settings(const tg_trainer *t, uint64_t w[TG_TRAIN__SETTINGS_WORDS]);
/* The optimizer's fields of a record (OPTIM to DECAY), from its options as it runs them (a
 * momentum of 0 is 0.9 there for TG_OPTIM_MOMENTUM), which both records read. */
void tg_train__optim_settings(const tg_optim *optim, uint64_t w[TG_TRAIN__SETTINGS_WORDS]);
/* The record of a checkpoint's run, from what it stores: the fields of the CHECKPOINT scope;
 * the others are 0. progress->batch_size 0 (settings not recorded) leaves the batch, test
 * split, seed, clipping norm and row counts 0 too: *recorded says whether they were. */
void tg_train__settings_of_checkpoint(const tg_model *model, const tg_optim *optim,
                                      const tg_checkpoint_progress *progress,
                                      uint64_t w[TG_TRAIN__SETTINGS_WORDS], bool *recorded);
/* The first field (a word index, in the order above) where a and b differ within `scope`
 * (with `recorded` false, the CHECKPOINT scope skips the fields a checkpoint did not record);
 * -1 when none does. */
int tg_train__settings_diff(const uint64_t *a, const uint64_t *b, tg_train__scope scope,
                            bool recorded);
/* The field's name as a user knows it ("--batch", "the number of features", ...). */
const char *tg_train__setting_name(int field);
/* The field's value in the record w, as text ("32", "0.003", "64,32", "f32", "adam"). */
void tg_train__setting_text(int field, const uint64_t *w, char *buf, size_t size);

/* The first feature whose standardization (mean, std; n of each) differs between a and b,
 * bit for bit, or (size_t)-1. feature_text names feature i of model: "feature 4 ('x3')". */
size_t tg_train__stats_diff(size_t n, const double *mean_a, const double *std_a,
                            const double *mean_b, const double *std_b);
void tg_train__feature_text(const tg_model *model, size_t i, char *buf, size_t size);

/* Whether a and b describe the same architecture, compared field by field: never with memcmp,
 * as a spec's padding bytes are whatever the caller's copy held. spec_text writes it as "f32 2 8
 * 2 (tanh, identity)" (the dtype, the sizes, the activations; cut to size) and returns buf. */
bool tg_train__same_spec(const tg_mlp_spec *a, const tg_mlp_spec *b);
const char *tg_train__spec_text(const tg_mlp_spec *s, char *buf, size_t size);

#endif

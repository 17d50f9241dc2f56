/* settings.c: the settings record of train_internal.h: what each word means, how it is
 * compared and how its value reads in a message. The record of a trainer is filled in train.c
 * (it needs the trainer's insides); a checkpoint's record is filled here from what the file
 * stores. */
#include "train_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum kind {
    K_PART, /* a word of the field before it (the hidden sizes of LAYERS): 0, so that the
             * words the table leaves out are parts */
    K_U64,
    K_F64,
    K_TASK,
    K_LAYERS,
    K_ACT,
    K_INIT,
    K_DTYPE,
    K_OPTIM,
    K_BOOL,
    K_HEX,
} kind;

typedef struct field {
    const char *name;
    kind kind;
    bool in_checkpoint; /* a checkpoint records it (model, optimizer or progress) */
    bool recorded_only; /* only when the checkpoint's progress recorded the run's settings */
} field;

static const field FIELDS[TG_TRAIN__SETTINGS_WORDS] = {
    [TG_TRAIN__TASK] = {"--task", K_TASK, true, false},
    [TG_TRAIN__FEATURES] = {"the number of features", K_U64, true, false},
    [TG_TRAIN__CLASSES] = {"the number of classes", K_U64, true, false},
    [TG_TRAIN__LAYERS] = {"--layers", K_LAYERS, true, false},
    [TG_TRAIN__ACT] = {"--act", K_ACT, true, false},
    [TG_TRAIN__INIT] = {"the initializer", K_INIT, false, false},
    [TG_TRAIN__DTYPE] = {"--dtype", K_DTYPE, true, false},
    [TG_TRAIN__OPTIM] = {"--optim", K_OPTIM, true, false},
    [TG_TRAIN__LR] = {"--lr", K_F64, true, false},
    [TG_TRAIN__MOMENTUM] = {"the momentum", K_F64, true, false},
    [TG_TRAIN__NESTEROV] = {"nesterov", K_BOOL, true, false},
    [TG_TRAIN__BETA1] = {"beta1", K_F64, true, false},
    [TG_TRAIN__BETA2] = {"beta2", K_F64, true, false},
    [TG_TRAIN__EPS] = {"eps", K_F64, true, false},
    [TG_TRAIN__DECAY] = {"--weight-decay", K_F64, true, false},
    [TG_TRAIN__EPOCHS] = {"--epochs", K_U64, false, false},
    [TG_TRAIN__BATCH] = {"--batch", K_U64, true, true},
    [TG_TRAIN__TEST_SPLIT] = {"--test-split", K_F64, true, true},
    [TG_TRAIN__SEED] = {"--seed", K_U64, true, true},
    [TG_TRAIN__CLIP] = {"the clipping norm", K_F64, true, true},
    [TG_TRAIN__WORLD] = {"the number of ranks", K_U64, true, false},
    [TG_TRAIN__TRAIN_ROWS] = {"the number of training rows", K_U64, true, true},
    [TG_TRAIN__TEST_ROWS] = {"the number of test rows", K_U64, true, true},
    [TG_TRAIN__RANK] = {"the rank", K_U64, false, false},
    [TG_TRAIN__DATA_HASH] = {"the data", K_HEX, false, false},
};

static const field *field_of(int f)
{
    return &FIELDS[f];
}

static uint64_t f64_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static double bits_f64(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void tg_train__optim_settings(const tg_optim *optim, uint64_t w[TG_TRAIN__SETTINGS_WORDS])
{
    tg_optim_options o;
    tg_optim_get_options(optim, &o);
    w[TG_TRAIN__OPTIM] = (uint64_t)o.kind;
    w[TG_TRAIN__LR] = f64_bits(o.lr);
    w[TG_TRAIN__MOMENTUM] = f64_bits(o.momentum);
    w[TG_TRAIN__NESTEROV] = o.nesterov;
    w[TG_TRAIN__BETA1] = f64_bits(o.beta1);
    w[TG_TRAIN__BETA2] = f64_bits(o.beta2);
    w[TG_TRAIN__EPS] = f64_bits(o.eps);
    w[TG_TRAIN__DECAY] = f64_bits(o.weight_decay);
}

void tg_train__settings_of_checkpoint(const tg_model *model, const tg_optim *optim,
                                      const tg_checkpoint_progress *p,
                                      uint64_t w[TG_TRAIN__SETTINGS_WORDS], bool *recorded)
{
    memset(w, 0, TG_TRAIN__SETTINGS_WORDS * sizeof *w);
    const tg_mlp_spec *s = tg_model_spec(model);
    size_t classes = 0;
    w[TG_TRAIN__TASK] = (uint64_t)tg_model_task(model, &classes);
    w[TG_TRAIN__FEATURES] = s->sizes[0];
    w[TG_TRAIN__CLASSES] = classes;
    int hidden = s->n_layers - 1;
    w[TG_TRAIN__LAYERS] = (uint64_t)hidden;
    for (int i = 0; i < hidden; i++)
        w[TG_TRAIN__LAYERS + 1 + i] = s->sizes[i + 1];
    w[TG_TRAIN__ACT] = hidden > 0 ? (uint64_t)s->act[0] : 0;
    w[TG_TRAIN__DTYPE] = (uint64_t)s->dtype;
    tg_train__optim_settings(optim, w);
    w[TG_TRAIN__WORLD] = p->world_size;
    *recorded = p->batch_size != 0;
    if (*recorded) {
        w[TG_TRAIN__BATCH] = p->batch_size;
        w[TG_TRAIN__TEST_SPLIT] = f64_bits(p->test_split);
        w[TG_TRAIN__SEED] = p->seed;
        w[TG_TRAIN__CLIP] = f64_bits(p->clip_norm);
        w[TG_TRAIN__TRAIN_ROWS] = p->train_rows;
        w[TG_TRAIN__TEST_ROWS] = p->test_rows;
    }
}

int tg_train__settings_diff(const uint64_t *a, const uint64_t *b, tg_train__scope scope,
                            bool recorded)
{
    for (int f = 0; f < TG_TRAIN__SETTINGS_WORDS; f++) {
        const field *d = field_of(f);
        if (d->kind == K_PART || f == TG_TRAIN__RANK || f == TG_TRAIN__DATA_HASH)
            continue;
        if (scope == TG_TRAIN__CHECKPOINT && (!d->in_checkpoint || (d->recorded_only && !recorded)))
            continue;
        int words = d->kind == K_LAYERS ? TG_MLP_MAX_LAYERS : 1;
        if (memcmp(a + f, b + f, (size_t)words * sizeof *a) != 0)
            return f;
    }
    return -1;
}

const char *tg_train__setting_name(int f)
{
    return f >= 0 && f < TG_TRAIN__SETTINGS_WORDS && FIELDS[f].name ? FIELDS[f].name : "?";
}

void tg_train__setting_text(int f, const uint64_t *w, char *buf, size_t size)
{
    uint64_t v = w[f];
    switch (field_of(f)->kind) {
    case K_F64: {
        /* The shortest text that tells the value apart (0.003, not 0.0030000000000000001). */
        double x = bits_f64(v);
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, x);
            if (strtod(buf, NULL) == x)
                break;
        }
        return;
    }
    case K_TASK:
        snprintf(buf, size, "%s", v == TG_TASK_CLASSIFY ? "classify" : "regress");
        return;
    case K_LAYERS: {
        if (v == 0) {
            snprintf(buf, size, "none");
            return;
        }
        int n = 0;
        for (uint64_t i = 0; i < v && i < TG_MLP_MAX_LAYERS - 1 && n >= 0 && (size_t)n < size; i++)
            n += snprintf(buf + n, size - (size_t)n, "%s%" PRIu64, i ? "," : "",
                          w[f + 1 + (int)i]);
        return;
    }
    case K_ACT:
        snprintf(buf, size, "%s", tg_activation_name((tg_activation)v));
        return;
    case K_INIT: {
        static const char *const names[] = {"xavier-uniform", "xavier-normal", "he-uniform",
                                            "he-normal"};
        snprintf(buf, size, "%s", v < 4 ? names[v] : "?");
        return;
    }
    case K_DTYPE:
        snprintf(buf, size, "%s", tg_dtype_name((tg_dtype)v));
        return;
    case K_OPTIM:
        snprintf(buf, size, "%s", tg_optim_kind_name((tg_optim_kind)v));
        return;
    case K_BOOL:
        snprintf(buf, size, "%s", v ? "on" : "off");
        return;
    case K_HEX:
        snprintf(buf, size, "0x%016" PRIx64, v);
        return;
    case K_U64:
    case K_PART:
        break;
    }
    snprintf(buf, size, "%" PRIu64, v);
}

size_t tg_train__stats_diff(size_t n, const double *mean_a, const double *std_a,
                            const double *mean_b, const double *std_b)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&mean_a[i], &mean_b[i], sizeof *mean_a) != 0 ||
            memcmp(&std_a[i], &std_b[i], sizeof *std_a) != 0)
            return i;
    return (size_t)-1;
}

void tg_train__feature_text(const tg_model *model, size_t i, char *buf, size_t size)
{
    const char *name = tg_model_feature_name(model, i);
    if (name)
        snprintf(buf, size, "feature %zu ('%.200s')", i + 1, name);
    else
        snprintf(buf, size, "feature %zu", i + 1);
}

bool tg_train__same_spec(const tg_mlp_spec *a, const tg_mlp_spec *b)
{
    if (a->n_layers != b->n_layers || a->dtype != b->dtype)
        return false;
    for (int i = 0; i <= a->n_layers; i++)
        if (a->sizes[i] != b->sizes[i] || (i < a->n_layers && a->act[i] != b->act[i]))
            return false;
    return true;
}

const char *tg_train__spec_text(const tg_mlp_spec *s, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", tg_dtype_name(s->dtype));
    for (int i = 0; i <= s->n_layers && n > 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, " %zu", s->sizes[i]);
    for (int i = 0; i < s->n_layers && n > 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, "%s%s", i ? ", " : " (",
                      tg_activation_name(s->act[i]));
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ")");
    return buf;
}

/* model.c: the MLP: a spec, its parameters (leaves wrapping slices of ONE parameter block,
 * their grads borrowed slices of ONE gradient block, as in llm.c), the forward pass as a
 * composition of public ops, and the metadata that model files carry for `predict`. */
#include "core/core.h"
#include "core/pool.h"
#include "tensor/borrow.h"

#include <math.h>
#include <stdio.h>

#define MAX_PARAMS (2 * TG_MLP_MAX_LAYERS)
/* Column names longer than this are refused (model files bound every length they read). */
#define MAX_COLUMN_NAME 4096

struct tg_model {
    tg_mlp_spec spec;
    size_t n_params;
    tg_tensor *params[MAX_PARAMS]; /* layer0.weight, layer0.bias, layer1.weight, ... */
    size_t numel;                  /* elements of all parameters */
    size_t block_bytes;            /* bytes of each raw block allocation */
    void *param_raw, *grad_raw;    /* the allocations; the blocks are these aligned up */
    void *param_block, *grad_block;
    /* metadata */
    size_t n_std;
    double *mean_std; /* 2 * n_std doubles: means, then standard deviations */
    tg_task task;
    size_t n_classes;
    char **features; /* spec.sizes[0] names, or NULL */
    char *target;
};

/* ---- spec ---------------------------------------------------------------------------------- */

/* Checks a spec and computes its parameter count; TG_EINVAL naming `who` and the field. */
static tg_status check_spec(const char *who, const tg_mlp_spec *spec, size_t *numel)
{
    if (!spec)
        return tg__error(TG_EINVAL, "%s: spec is NULL", who);
    if (spec->n_layers < 1 || spec->n_layers > TG_MLP_MAX_LAYERS)
        return tg__error(TG_EINVAL, "%s: n_layers is %d, expected 1..%d", who, spec->n_layers,
                         TG_MLP_MAX_LAYERS);
    if (spec->dtype != TG_F32 && spec->dtype != TG_F64)
        return tg__error(TG_EINVAL, "%s: unknown dtype %d (expected TG_F32 or TG_F64)", who,
                         (int)spec->dtype);
    size_t n = 0;
    for (int i = 0; i <= spec->n_layers; i++)
        if (spec->sizes[i] == 0)
            return tg__error(TG_EINVAL, "%s: sizes[%d] is 0 (every layer needs a unit)", who, i);
    for (int i = 0; i < spec->n_layers; i++) {
        if ((unsigned)spec->act[i] > TG_ACT_RELU)
            return tg__error(TG_EINVAL, "%s: act[%d] is %d, not a known activation", who, i,
                             (int)spec->act[i]);
        size_t w, layer;
        if (__builtin_mul_overflow(spec->sizes[i], spec->sizes[i + 1], &w) ||
            __builtin_add_overflow(w, spec->sizes[i + 1], &layer) ||
            __builtin_add_overflow(n, layer, &n) || n > SIZE_MAX / 8 - TG_DATA_ALIGN)
            return tg__error(TG_EINVAL, "%s: layer %d (%zu -> %zu) makes too many parameters",
                             who, i, spec->sizes[i], spec->sizes[i + 1]);
    }
    *numel = n;
    return TG_OK;
}

/* ---- construction ------------------------------------------------------------------------ */

/* A 64-byte aligned block of `bytes` inside a raw allocation of bytes + 64. */
static void *aligned_block(void *raw)
{
    return (void *)(((uintptr_t)raw + TG_DATA_ALIGN - 1) & ~(uintptr_t)(TG_DATA_ALIGN - 1));
}

static void free_columns(tg_model *m)
{
    if (m->features) {
        for (size_t i = 0; i < m->spec.sizes[0]; i++)
            if (m->features[i])
                tg__free(m->features[i], strlen(m->features[i]) + 1);
        tg__free(m->features, m->spec.sizes[0] * sizeof *m->features);
        m->features = NULL;
    }
    if (m->target) {
        tg__free(m->target, strlen(m->target) + 1);
        m->target = NULL;
    }
}

void tg_model_free(tg_model *model)
{
    if (!model)
        return;
    for (size_t i = 0; i < model->n_params; i++)
        tg_tensor_free(model->params[i]); /* the grad is borrowed: the block stays */
    tg__free(model->param_raw, model->block_bytes);
    tg__free(model->grad_raw, model->block_bytes);
    tg__free(model->mean_std, 2 * model->n_std * sizeof(double));
    free_columns(model);
    tg__free(model, sizeof *model);
}

tg_status tg_model_new(const tg_mlp_spec *spec, tg_init init, tg_rng *rng, tg_model **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "model_new: out is NULL");
    *out = NULL;
    size_t numel = 0;
    tg_status st = check_spec("model_new", spec, &numel);
    if (st != TG_OK)
        return st;
    if ((unsigned)init > TG_INIT_HE_NORMAL)
        return tg__error(TG_EINVAL, "model_new: unknown initializer %d", (int)init);
    if (!rng)
        return tg__error(TG_EINVAL, "model_new: rng is NULL");

    tg_model *m = tg__calloc(1, sizeof *m);
    if (!m)
        return tg__error(TG_ENOMEM, "model_new: out of memory");
    m->spec = *spec;
    /* Slots past n_layers are not part of the architecture: keep them zero so two equal
     * architectures compare equal field by field (and files never see stray values). */
    for (int i = spec->n_layers + 1; i <= TG_MLP_MAX_LAYERS; i++)
        m->spec.sizes[i] = 0;
    for (int i = spec->n_layers; i < TG_MLP_MAX_LAYERS; i++)
        m->spec.act[i] = TG_ACT_IDENTITY;
    m->numel = numel;
    size_t es = tg_dtype_size(spec->dtype);
    m->block_bytes = numel * es + TG_DATA_ALIGN;
    m->param_raw = tg__malloc(m->block_bytes);
    m->grad_raw = m->param_raw ? tg__malloc(m->block_bytes) : NULL;
    if (!m->grad_raw) {
        tg_model_free(m);
        return tg__error(TG_ENOMEM, "model_new: out of memory for %zu parameters", numel);
    }
    m->param_block = aligned_block(m->param_raw);
    m->grad_block = aligned_block(m->grad_raw);
    memset(m->param_block, 0, numel * es);
    memset(m->grad_block, 0, numel * es);

    size_t off = 0;
    for (int l = 0; l < spec->n_layers; l++) {
        const size_t w_shape[2] = {spec->sizes[l], spec->sizes[l + 1]};
        for (int k = 0; k < 2; k++) { /* weight, then bias */
            char name[32];
            snprintf(name, sizeof name, "layer%d.%s", l, k ? "bias" : "weight");
            unsigned char *data = (unsigned char *)m->param_block + off * es;
            tg_tensor *p = tg_tensor_wrap(spec->dtype, k ? 1 : 2, k ? w_shape + 1 : w_shape, data);
            if (!p || tg_tensor_set_name(p, name) != TG_OK) {
                tg_tensor_free(p);
                tg_model_free(m);
                return tg__error(TG_ENOMEM, "model_new: out of memory for parameter %s", name);
            }
            m->params[m->n_params++] = p;
            (void)tg_tensor_set_requires_grad(p, true); /* a leaf: cannot fail */
            tg_tensor__borrow_grad(p, (unsigned char *)m->grad_block + off * es);
            off += tg_tensor_numel(p);
        }
        /* Weights are drawn layer by layer; biases stay 0 and draw nothing. */
        st = tg_init_weight(m->params[m->n_params - 2], init, rng);
        TG_ASSERT(st == TG_OK);
    }
    TG_ASSERT(off == numel);
    *out = m;
    return TG_OK;
}

const tg_mlp_spec *tg_model_spec(const tg_model *model)
{
    return model ? &model->spec : NULL;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* y = x @ w + b */
tg_tensor *tg_linear(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    if (!tape) {
        tg__error(TG_EINVAL, "linear: tape is NULL");
        return NULL;
    }
    if (tg_tape_status(tape) != TG_OK)
        return NULL;
    if (!x || !w || !b) {
        tg_tape_fail(tape, TG_EINVAL, "linear: %s is NULL", !x ? "x" : !w ? "w" : "b");
        return NULL;
    }
    /* Checked here so the message names all three shapes, not matmul's or add's half. */
    if (tg_tensor_rank(x) != 2 || tg_tensor_rank(w) != 2 || tg_tensor_rank(b) != 1 ||
        tg_tensor_dim(x, 1) != tg_tensor_dim(w, 0) || tg_tensor_dim(b, 0) != tg_tensor_dim(w, 1)) {
        char sx[96], sw[96], sb[96];
        tg_tape_fail(tape, TG_ESHAPE,
                     "linear: x %s, w %s, b %s: expected (rows, in), (in, out) and (out)",
                     tg_shape_format(sx, sizeof sx, tg_tensor_rank(x), tg_tensor_shape(x)),
                     tg_shape_format(sw, sizeof sw, tg_tensor_rank(w), tg_tensor_shape(w)),
                     tg_shape_format(sb, sizeof sb, tg_tensor_rank(b), tg_tensor_shape(b)));
        return NULL;
    }
    return tg_add(tape, tg_matmul(tape, x, w), b);
}

tg_tensor *tg_model_forward(tg_tape *tape, tg_model *model, tg_tensor *x)
{
    if (!tape) {
        tg__error(TG_EINVAL, "model_forward: tape is NULL");
        return NULL;
    }
    if (tg_tape_status(tape) != TG_OK)
        return NULL;
    if (!model || !x) {
        tg_tape_fail(tape, TG_EINVAL, "model_forward: %s is NULL", model ? "input" : "model");
        return NULL;
    }
    const tg_mlp_spec *s = &model->spec;
    if (tg_tensor_rank(x) != 2 || tg_tensor_dim(x, 1) != s->sizes[0]) {
        char sh[96];
        tg_tape_fail(tape, TG_ESHAPE,
                     "model_forward: input %s does not fit the model's %zu inputs (expected "
                     "(rows, %zu))",
                     tg_shape_format(sh, sizeof sh, tg_tensor_rank(x), tg_tensor_shape(x)),
                     s->sizes[0], s->sizes[0]);
        return NULL;
    }
    if (tg_tensor_dtype(x) != s->dtype) {
        tg_tape_fail(tape, TG_EDTYPE, "model_forward: input is %s, the model is %s",
                     tg_dtype_name(tg_tensor_dtype(x)), tg_dtype_name(s->dtype));
        return NULL;
    }
    /* h = act(h @ W + b), the (out) bias broadcast over rows */
    tg_tensor *h = x;
    for (int l = 0; l < s->n_layers; l++) {
        tg_tensor *W = model->params[2 * l], *b = model->params[2 * l + 1];
        h = tg_activate(tape, tg_linear(tape, h, W, b), s->act[l]);
    }
    return h;
}

/* ---- parameters -------------------------------------------------------------------------- */

size_t tg_model_param_count(const tg_model *model)
{
    return model ? model->n_params : 0;
}

tg_tensor *tg_model_param(const tg_model *model, size_t i)
{
    if (!model || i >= model->n_params) {
        tg__error(TG_EINVAL, "model_param: %s", model ? "index out of range" : "model is NULL");
        return NULL;
    }
    return model->params[i];
}

const char *tg_model_param_name(const tg_model *model, size_t i)
{
    tg_tensor *p = tg_model_param(model, i);
    return tg_tensor_name(p);
}

size_t tg_model_numel(const tg_model *model)
{
    return model ? model->numel : 0;
}

void *tg_model_param_data(tg_model *model)
{
    if (!model)
        return NULL;
    for (size_t i = 0; i < model->n_params; i++) /* a pointer to write through (tensor.h) */
        tg_tensor_bump_version(model->params[i]);
    return model->param_block;
}

void *tg_model_grad_data(tg_model *model)
{
    return model ? model->grad_block : NULL;
}

typedef struct zero_job {
    unsigned char *block;
    size_t es;
} zero_job;

static void zero_range(void *ctx, size_t begin, size_t end)
{
    const zero_job *z = ctx;
    memset(z->block + begin * z->es, 0, (end - begin) * z->es);
}

/* Over the pool, in the ranges of the optimizer's step over the same parameters (a model's
 * optimizer covers them all, in block order), so each thread zeroes the gradients its step
 * just read. W3 on 2 threads (Intel Xeon VM): 1.48-1.51 ms a step against 1.58-1.64 with one
 * memset on the caller, its update 0.14-0.15 ms against 0.22-0.23, and its backward, whose
 * weight gradients add into the block, 0.72-0.73 against 0.76-0.77. */
void tg_model_zero_grad(tg_model *model)
{
    if (model) {
        zero_job z = {model->grad_block, tg_dtype_size(model->spec.dtype)};
        tg__parallel_for(model->numel, TG_POOL_STREAM_GRAIN, zero_range, &z);
    }
}

/* The optimizer over params[0..n_params-1], the order checkpoints assume. */
tg_status tg_model_optim_new(const tg_optim_options *opt, tg_model *model, tg_optim **out)
{
    if (out)
        *out = NULL;
    if (!model || !out)
        return tg__error(TG_EINVAL, "model_optim_new: %s is NULL", model ? "out" : "model");
    return tg_optim_new(opt, model->params, model->n_params, out);
}

/* ---- metadata ---------------------------------------------------------------------------- */

tg_status tg_model_set_standardization(tg_model *model, size_t n, const double *mean,
                                       const double *std)
{
    if (!model)
        return tg__error(TG_EINVAL, "model_set_standardization: model is NULL");
    double *copy = NULL;
    if (mean || std) {
        if (!mean || !std)
            return tg__error(TG_EINVAL, "model_set_standardization: %s is NULL (pass both, or "
                                        "neither to clear)",
                             mean ? "std" : "mean");
        if (n != model->spec.sizes[0])
            return tg__error(TG_EINVAL,
                             "model_set_standardization: %zu features, the model has %zu inputs",
                             n, model->spec.sizes[0]);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0))
                return tg__error(TG_EINVAL,
                                 "model_set_standardization: feature %zu has mean %g and std %g "
                                 "(expected finite values and std > 0)",
                                 i, mean[i], std[i]);
        copy = tg__malloc(2 * n * sizeof *copy);
        if (!copy)
            return tg__error(TG_ENOMEM, "model_set_standardization: out of memory");
        memcpy(copy, mean, n * sizeof *copy);
        memcpy(copy + n, std, n * sizeof *copy);
    } else {
        n = 0;
    }
    tg__free(model->mean_std, 2 * model->n_std * sizeof(double));
    model->mean_std = copy;
    model->n_std = n;
    return TG_OK;
}

tg_status tg_model_standardization(const tg_model *model, size_t *n, const double **mean,
                                   const double **std)
{
    if (!model || !n || !mean || !std)
        return tg__error(TG_EINVAL, "model_standardization: %s is NULL",
                         !model ? "model" : !n ? "n" : !mean ? "mean" : "std");
    *n = model->n_std;
    *mean = model->n_std ? model->mean_std : NULL;
    *std = model->n_std ? model->mean_std + model->n_std : NULL;
    return TG_OK;
}

tg_status tg_model_set_task(tg_model *model, tg_task task, size_t n_classes)
{
    if (!model)
        return tg__error(TG_EINVAL, "model_set_task: model is NULL");
    if (task == TG_TASK_REGRESS) {
        n_classes = 0;
    } else if (task == TG_TASK_CLASSIFY) {
        if (n_classes < 2)
            return tg__error(TG_EINVAL, "model_set_task: classification needs at least 2 "
                                        "classes, got %zu",
                             n_classes);
    } else {
        return tg__error(TG_EINVAL, "model_set_task: unknown task %d", (int)task);
    }
    model->task = task;
    model->n_classes = n_classes;
    return TG_OK;
}

tg_task tg_model_task(const tg_model *model, size_t *n_classes)
{
    if (n_classes)
        *n_classes = model ? model->n_classes : 0;
    return model ? model->task : TG_TASK_REGRESS;
}

static tg_status check_column(const char *what, size_t i, const char *name)
{
    if (!name)
        return tg__error(TG_EINVAL, "model_set_columns: %s %zu is NULL", what, i);
    if (strlen(name) > MAX_COLUMN_NAME)
        return tg__error(TG_EINVAL, "model_set_columns: %s %zu is %zu bytes long (at most %d)",
                         what, i, strlen(name), MAX_COLUMN_NAME);
    return TG_OK;
}

tg_status tg_model_set_columns(tg_model *model, const char *const *features, const char *target)
{
    if (!model)
        return tg__error(TG_EINVAL, "model_set_columns: model is NULL");
    size_t n = model->spec.sizes[0];
    tg_status st;
    for (size_t i = 0; features && i < n; i++)
        if ((st = check_column("feature", i, features[i])) != TG_OK)
            return st;
    if (target && (st = check_column("target", 0, target)) != TG_OK)
        return st;
    /* Build every copy first, so a failure leaves the old names in place. */
    char **fcopy = NULL, *tcopy = NULL;
    if (features) {
        fcopy = tg__calloc(n, sizeof *fcopy);
        for (size_t i = 0; fcopy && i < n; i++) {
            if (!(fcopy[i] = tg__strdup(features[i]))) {
                for (size_t j = 0; j < i; j++)
                    tg__free(fcopy[j], strlen(fcopy[j]) + 1);
                tg__free(fcopy, n * sizeof *fcopy);
                fcopy = NULL;
            }
        }
        if (!fcopy)
            return tg__error(TG_ENOMEM, "model_set_columns: out of memory");
    }
    if (target && !(tcopy = tg__strdup(target))) {
        for (size_t j = 0; fcopy && j < n; j++)
            tg__free(fcopy[j], strlen(fcopy[j]) + 1);
        tg__free(fcopy, n * sizeof *fcopy);
        return tg__error(TG_ENOMEM, "model_set_columns: out of memory");
    }
    free_columns(model);
    model->features = fcopy;
    model->target = tcopy;
    return TG_OK;
}

const char *tg_model_feature_name(const tg_model *model, size_t i)
{
    if (!model || !model->features || i >= model->spec.sizes[0])
        return NULL;
    return model->features[i];
}

const char *tg_model_target_name(const tg_model *model)
{
    return model ? model->target : NULL;
}

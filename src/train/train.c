/* train.c: the supervised training loop of tapegrad/train.h: a table in, a trained MLP out,
 * with per-epoch scores. One tape and preallocated batch leaves serve every step, so the
 * steady state allocates nothing; the hooks for distributed training (the rank's shard of
 * each batch, the gradient hook) and the state a checkpoint needs live here too. */
#include "train_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <xxhash.h>

/* Rows evaluated per forward pass (at least the batch size): big enough that evaluation costs
 * few recordings, small enough that its buffer stays modest for wide tables. */
#define EVAL_CHUNK 512

struct tg_trainer {
    tg_train_options opt;
    tg_task task;
    size_t n_classes, n_out; /* classes (0 for regression); model outputs */
    tg_dataset train, test;  /* features standardized; regression targets standardized too */
    double y_mean, y_std;    /* regression: the target's training statistics (else 0, 1) */
    bool y_constant;         /* regression: every training target is the same (y_std is 1) */
    tg_model *model;
    tg_optim *optim;
    tg_tensor *params[2 * TG_MLP_MAX_LAYERS];
    size_t n_params;
    tg_tape *tape;
    tg_rng rng; /* the shuffle RNG of the latest epoch */

    size_t *perm; /* the epoch's order of training rows */
    size_t global_batch;
    /* Step data: one buffer, wrapped as the full batch and as this rank's share of the last
     * (partial) global batch. NULL leaves where that shape never occurs. */
    void *xb, *yb;
    size_t last_rows;
    tg_tensor *x_full, *y_full, *x_last, *y_last;
    /* tg_trainer_record's leaves over xb, made at its first call when neither pair above has
     * its rows (fewer training rows than a batch, on several ranks). */
    tg_tensor *x_record, *y_record;
    /* Evaluation data: chunks of eval_rows, plus each split's remainder. */
    void *xe, *ye;
    size_t eval_rows;
    tg_tensor *x_eval, *y_eval, *x_train_rest, *y_train_rest, *x_test_rest, *y_test_rest;

    int epoch;      /* epochs completed */
    size_t skip;    /* steps of the next epoch already taken (tg_trainer_set_position) */
    bool in_epoch;  /* tg_trainer_epoch is running: on_step may not run or move the trainer */
    double seconds; /* wall time of those epochs */
    /* A slot per epoch: [history_first, n_history) were run by this trainer (n_history is
     * always `epoch`); the epochs before history_first were skipped by a resume. */
    tg_train_epoch *history;
    size_t history_first, n_history;
    uint64_t data_hash; /* data_hash_of the rows held, taken once */
};

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Puts `context` in front of the current error message (which tg__error cannot take as an
 * argument: it would format the buffer into itself). */
static tg_status prefix_error(tg_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static tg_status prefix_error(tg_status st, const char *fmt, ...)
{
    char msg[1024], ctx[256];
    snprintf(msg, sizeof msg, "%s", tg_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return tg__error(st, "%s: %s", ctx, msg);
}

const char *tg_train_task_name(tg_train_task task)
{
    switch (task) {
    case TG_TRAIN_AUTO: return "auto";
    case TG_TRAIN_CLASSIFY: return "classify";
    case TG_TRAIN_REGRESS: return "regress";
    }
    return "?";
}

tg_status tg_train_task_parse(const char *name, tg_train_task *out)
{
    static const tg_train_task all[] = {TG_TRAIN_AUTO, TG_TRAIN_CLASSIFY, TG_TRAIN_REGRESS};
    if (!name || !out)
        return tg__error(TG_EINVAL, "train_task_parse: %s is NULL", name ? "out" : "name");
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(name, tg_train_task_name(all[i])) == 0) {
            *out = all[i];
            return TG_OK;
        }
    return tg__error(TG_EINVAL, "unknown task '%s' (auto, classify or regress)", name);
}

/* ---- options ------------------------------------------------------------------------------ */

static tg_status check_options(const tg_train_options *o)
{
    if (o->task != TG_TRAIN_AUTO && o->task != TG_TRAIN_REGRESS && o->task != TG_TRAIN_CLASSIFY)
        return tg__error(TG_EINVAL, "train: unknown task %d", (int)o->task);
    if (o->n_hidden < 0 || o->n_hidden > TG_MLP_MAX_LAYERS - 1)
        return tg__error(TG_EINVAL, "train: %d hidden layers; at most %d", o->n_hidden,
                         TG_MLP_MAX_LAYERS - 1);
    for (int i = 0; i < o->n_hidden; i++)
        if (o->hidden[i] == 0)
            return tg__error(TG_EINVAL, "train: hidden layer %d has 0 units", i + 1);
    if ((unsigned)o->act > TG_ACT_RELU)
        return tg__error(TG_EINVAL, "train: unknown activation %d", (int)o->act);
    if (o->init != TG_TRAIN_INIT_AUTO && (o->init < 0 || o->init > TG_INIT_HE_NORMAL))
        return tg__error(TG_EINVAL, "train: unknown initializer %d", o->init);
    if (o->epochs < 1)
        return tg__error(TG_EINVAL, "train: epochs must be at least 1, not %d", o->epochs);
    if (o->batch < 1)
        return tg__error(TG_EINVAL, "train: the batch size must be at least 1");
    if (!(o->test_split >= 0.0 && o->test_split < 1.0))
        return tg__error(TG_EINVAL, "train: the test split must be in [0, 1), not %g",
                         o->test_split);
    if (o->dtype != TG_F32 && o->dtype != TG_F64)
        return tg__error(TG_EINVAL, "train: unknown dtype %d", (int)o->dtype);
    if (!(o->clip_norm >= 0.0 && isfinite(o->clip_norm)))
        return tg__error(TG_EINVAL, "train: the clipping norm must be finite and >= 0, not %g",
                         o->clip_norm);
    if (o->world < 1 || o->rank < 0 || o->rank >= o->world)
        return tg__error(TG_EINVAL, "train: rank %d of world %d: need 0 <= rank < world", o->rank,
                         o->world);
    return TG_OK;
}

/* ---- the task ------------------------------------------------------------------------------ */

/* Classes when the targets allow (see tg_train_task); *n_classes 0 means regression. */
static tg_status settle_task(const tg_dataset *all, tg_train_task asked, size_t *n_classes)
{
    *n_classes = 0;
    if (asked == TG_TRAIN_REGRESS)
        return TG_OK;
    double max = 0;
    for (size_t i = 0; i < all->n; i++) {
        double y = all->y[i];
        if (y != floor(y) || y < 0) {
            if (asked == TG_TRAIN_AUTO)
                return TG_OK;
            return tg__error(TG_EINVAL,
                             "train: cannot classify: the target of data row %zu is %g, not a "
                             "class number (an integer >= 0); use regression for quantities",
                             i + 1, y);
        }
        max = y > max ? y : max;
    }
    if (max + 1 > TG_TRAIN_MAX_CLASSES) {
        if (asked == TG_TRAIN_AUTO)
            return TG_OK;
        return tg__error(TG_EINVAL,
                         "train: cannot classify: %.0f classes (targets 0..%.0f); "
                         "at most %d",
                         max + 1, max, TG_TRAIN_MAX_CLASSES);
    }
    size_t k = (size_t)max + 1;
    if (asked == TG_TRAIN_AUTO) {
        /* Every class 0..k-1 must occur: labels are dense, quantities (ages, counts from 25
         * on) leave gaps. The k flags fit a small stack array. */
        bool seen[TG_TRAIN_MAX_CLASSES] = {false};
        size_t distinct = 0;
        for (size_t i = 0; i < all->n; i++) {
            size_t c = (size_t)all->y[i];
            distinct += !seen[c];
            seen[c] = true;
        }
        if (k < 2 || distinct != k)
            return TG_OK;
    } else if (k < 2) {
        return tg__error(TG_EINVAL, "train: cannot classify: every target is 0 (one class)");
    }
    *n_classes = k;
    return TG_OK;
}

/* ---- building -------------------------------------------------------------------------------- */

void tg_trainer_free(tg_trainer *t)
{
    if (!t)
        return;
    tg_tensor *leaves[] = {t->x_full,      t->y_full,     t->x_last,       t->y_last,
                           t->x_record,    t->y_record,   t->x_eval,       t->y_eval,
                           t->x_train_rest, t->y_train_rest, t->x_test_rest, t->y_test_rest};
    for (size_t i = 0; i < sizeof leaves / sizeof *leaves; i++)
        tg_tensor_free(leaves[i]);
    size_t es = tg_dtype_size(t->opt.dtype), d = t->train.d;
    tg__free(t->xb, t->opt.batch * d * es + 1);
    tg__free(t->yb, t->opt.batch * es + 1);
    tg__free(t->xe, t->eval_rows * d * es + 1);
    tg__free(t->ye, t->eval_rows * es + 1);
    tg__free(t->perm, t->train.n * sizeof *t->perm);
    tg__free(t->history, (size_t)t->opt.epochs * sizeof *t->history);
    tg_tape_free(t->tape);
    tg_optim_free(t->optim);
    tg_model_free(t->model);
    tg_dataset_free(&t->train);
    tg_dataset_free(&t->test);
    tg__free(t, sizeof *t);
}

/* Wraps `data` as x (rows, d) and y: (rows) class ids, or (rows, 1) regression targets, the
 * shape of the model's output, so tg_mse needs no broadcast. rows 0 wraps nothing. */
static tg_status wrap_pair(tg_trainer *t, size_t rows, void *xdata, void *ydata, const char *xn,
                           const char *yn, tg_tensor **x, tg_tensor **y)
{
    if (rows == 0)
        return TG_OK;
    const size_t xs[2] = {rows, t->train.d}, ys[2] = {rows, 1};
    *x = tg_tensor_wrap(t->opt.dtype, 2, xs, xdata);
    *y = tg_tensor_wrap(t->opt.dtype, t->n_classes ? 1 : 2, ys, ydata);
    if (!*x || !*y || tg_tensor_set_name(*x, xn) != TG_OK || tg_tensor_set_name(*y, yn) != TG_OK)
        return tg__error(TG_ENOMEM, "train: out of memory for the batch tensors");
    return TG_OK;
}

/* Allocates a data buffer of n elements (at least one byte, so it is never NULL). */
static void *buffer(size_t n, size_t es)
{
    return tg__malloc(n * es + 1);
}

static tg_status build_model(tg_trainer *t, const tg_table *table, size_t target_col)
{
    const tg_train_options *o = &t->opt;
    size_t d = t->train.d;
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = o->n_hidden + 1;
    spec.sizes[0] = d;
    for (int i = 0; i < o->n_hidden; i++) {
        spec.sizes[i + 1] = o->hidden[i];
        spec.act[i] = o->act;
    }
    spec.sizes[spec.n_layers] = t->n_out;
    spec.act[o->n_hidden] = TG_ACT_IDENTITY; /* logits, or the regression value */
    spec.dtype = o->dtype;
    tg_init init = o->init != TG_TRAIN_INIT_AUTO              ? (tg_init)o->init
                   : o->act == TG_ACT_RELU && o->n_hidden > 0 ? TG_INIT_HE_UNIFORM
                                                              : TG_INIT_XAVIER_UNIFORM;
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    tg_status st = tg_model_new(&spec, init, &rng, &t->model);
    if (st != TG_OK)
        return st;
    st = tg_model_set_task(t->model, t->task, t->n_classes);
    if (st != TG_OK)
        return st;
    /* The feature names, for predict to find its columns by name in another file. */
    size_t cols = tg_table_cols(table);
    const char **names = tg__malloc(cols * sizeof *names);
    if (!names)
        return tg__error(TG_ENOMEM, "train: out of memory for column names");
    for (size_t j = 0, k = 0; j < cols; j++)
        if (j != target_col)
            names[k++] = tg_table_col_name(table, j);
    st = tg_model_set_columns(t->model, names, tg_table_col_name(table, target_col));
    tg__free(names, cols * sizeof *names);
    if (st != TG_OK)
        return st;
    /* The parameters again, for gradient clipping. */
    t->n_params = tg_model_param_count(t->model);
    for (size_t i = 0; i < t->n_params; i++)
        t->params[i] = tg_model_param(t->model, i);
    return tg_model_optim_new(&o->optim, t->model, &t->optim);
}

/* Features standardized with the training split's statistics (stored in the model, so files
 * carry them); regression targets standardized too, so the output layer starts at the right
 * scale whatever the target's units. */
static tg_status standardize(tg_trainer *t)
{
    size_t d = t->train.d;
    double *ms = tg__malloc(2 * d * sizeof *ms);
    if (!ms)
        return tg__error(TG_ENOMEM, "train: out of memory for statistics");
    tg_status st = tg_dataset_stats(&t->train, ms, ms + d);
    if (st == TG_OK) {
        tg_dataset_standardize(&t->train, ms, ms + d);
        tg_dataset_standardize(&t->test, ms, ms + d);
        st = tg_model_set_standardization(t->model, d, ms, ms + d);
    }
    tg__free(ms, 2 * d * sizeof *ms);
    if (st != TG_OK || t->n_classes)
        return st;
    /* The targets as a one-column data set: the same statistics and scaling as features (a
     * constant target gets std 1: it is only centred). */
    tg_dataset train_y = {.n = t->train.n, .d = 1, .x = t->train.y};
    tg_dataset test_y = {.n = t->test.n, .d = 1, .x = t->test.y};
    t->y_constant = true;
    for (size_t i = 1; i < train_y.n && t->y_constant; i++)
        t->y_constant = train_y.x[i] == train_y.x[0];
    if ((st = tg_dataset_stats(&train_y, &t->y_mean, &t->y_std)) != TG_OK)
        return st;
    tg_dataset_standardize(&train_y, &t->y_mean, &t->y_std);
    tg_dataset_standardize(&test_y, &t->y_mean, &t->y_std);
    return TG_OK;
}

/* XXH3-64 of the training and test rows, features and target, as the trainer holds them. */
static uint64_t data_hash_of(const tg_trainer *t)
{
    const tg_dataset *sets[2] = {&t->train, &t->test};
    uint64_t h = 0;
    for (int i = 0; i < 2; i++) {
        const tg_dataset *ds = sets[i];
        h = XXH3_64bits_withSeed(ds->x, ds->n * ds->d * sizeof *ds->x, h);
        h = XXH3_64bits_withSeed(ds->y, ds->n * sizeof *ds->y, h);
    }
    return h;
}

static tg_status alloc_steps(tg_trainer *t)
{
    const tg_train_options *o = &t->opt;
    size_t d = t->train.d, es = tg_dtype_size(o->dtype), n = t->train.n;
    size_t world = (size_t)o->world, rank = (size_t)o->rank;
    if (o->batch > SIZE_MAX / world || o->batch > SIZE_MAX / es / (d + 1))
        return tg__error(TG_EINVAL, "train: a batch of %zu rows is too large", o->batch);
    t->global_batch = o->batch * world;
    /* This rank's share of the last, partial global batch: its rows split as evenly as they
     * go, the first ranks taking one more. */
    size_t rem = n % t->global_batch;
    t->last_rows = rem / world + (rank < rem % world);
    t->eval_rows = o->batch > EVAL_CHUNK ? o->batch : EVAL_CHUNK;
    t->perm = tg__malloc(n * sizeof *t->perm);
    t->xb = buffer(o->batch * d, es);
    t->yb = buffer(o->batch, es);
    t->xe = buffer(t->eval_rows * d, es);
    t->ye = buffer(t->eval_rows, es);
    t->history = tg__calloc((size_t)o->epochs, sizeof *t->history);
    t->tape = tg_tape_new();
    if (!t->perm || !t->xb || !t->yb || !t->xe || !t->ye || !t->history || !t->tape)
        return tg__error(TG_ENOMEM, "train: out of memory for the training buffers");
    tg_status st = wrap_pair(t, o->batch, t->xb, t->yb, "x", "target", &t->x_full, &t->y_full);
    if (st == TG_OK && t->last_rows != o->batch)
        st = wrap_pair(t, t->last_rows, t->xb, t->yb, "x", "target", &t->x_last, &t->y_last);
    if (st == TG_OK)
        st = wrap_pair(t, t->eval_rows, t->xe, t->ye, "x", "target", &t->x_eval, &t->y_eval);
    if (st == TG_OK)
        st = wrap_pair(t, t->train.n % t->eval_rows, t->xe, t->ye, "x", "target", &t->x_train_rest,
                       &t->y_train_rest);
    if (st == TG_OK)
        st = wrap_pair(t, t->test.n % t->eval_rows, t->xe, t->ye, "x", "target", &t->x_test_rest,
                       &t->y_test_rest);
    return st;
}

/* Seeds the shuffle RNG for epoch e (0-based), as epoch_order draws it. */
static void epoch_seed(tg_trainer *t, int e)
{
    tg_rng_seed(&t->rng, t->opt.seed + UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(e + 1));
}

tg_status tg_trainer_new(const tg_table *table, const char *target, const tg_train_options *opt,
                         tg_trainer **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "trainer_new: out is NULL");
    *out = NULL;
    if (!table || !target || !opt)
        return tg__error(TG_EINVAL, "trainer_new: %s is NULL",
                         !table    ? "table"
                         : !target ? "target"
                                   : "opt");
    tg_status st = check_options(opt);
    if (st != TG_OK)
        return st;
    size_t col = tg_table_find(table, target);
    if (col == (size_t)-1)
        return prefix_error(TG_EINVAL, "train");

    tg_trainer *t = tg__calloc(1, sizeof *t);
    if (!t)
        return tg__error(TG_ENOMEM, "train: out of memory");
    t->opt = *opt;
    t->y_std = 1.0;
    tg_dataset all;
    st = tg_dataset_from_table(table, col, &all);
    if (st == TG_OK) {
        st = settle_task(&all, opt->task, &t->n_classes);
        if (st == TG_OK)
            st = tg_dataset_split(&all, opt->test_split, opt->seed, &t->train, &t->test);
        tg_dataset_free(&all);
    }
    if (st == TG_OK && t->train.n < (size_t)opt->world)
        st = tg__error(TG_EINVAL, "train: %zu training rows cannot be shared by %d ranks",
                       t->train.n, opt->world);
    t->task = t->n_classes ? TG_TASK_CLASSIFY : TG_TASK_REGRESS;
    t->n_out = t->n_classes ? t->n_classes : 1;
    if (st == TG_OK)
        st = build_model(t, table, col);
    if (st == TG_OK)
        st = standardize(t);
    if (st == TG_OK)
        st = alloc_steps(t);
    if (st == TG_OK) {
        t->data_hash = data_hash_of(t);
        /* Seeded as the first epoch will seed it: a checkpoint of the trainer before any
         * epoch (tg_trainer_progress) then carries a valid RNG, not xoshiro's all-zero one. */
        epoch_seed(t, 0);
    }
    if (st != TG_OK) {
        tg_trainer_free(t);
        return st;
    }
    *out = t;
    return TG_OK;
}

/* ---- steps ------------------------------------------------------------------------------------
 */

static tg_tensor *loss_of(tg_trainer *t, tg_tape *tape, tg_tensor *x, tg_tensor *y, tg_tensor **out)
{
    tg_tensor *z = tg_model_forward(tape, t->model, x);
    if (out)
        *out = z;
    return t->n_classes ? tg_cross_entropy(tape, z, y) : tg_mse(tape, z, y);
}

/* Multiplies the gradient block by f. */
static void scale_grads(tg_trainer *t, double f)
{
    size_t n = tg_model_numel(t->model);
    void *g = tg_model_grad_data(t->model);
    if (t->opt.dtype == TG_F32) {
        float *p = g, ff = (float)f;
        for (size_t i = 0; i < n; i++)
            p[i] *= ff;
    } else {
        double *p = g;
        for (size_t i = 0; i < n; i++)
            p[i] *= f;
    }
}

/* The error st of a failure on this rank outside its gradient hook (already in
 * tg_last_error): the hook is called with grad NULL, so that a hook that exchanges gradients
 * with other ranks can tell them rather than leave them waiting (train.h). Before the hook, in
 * place of this step's call; after it (clipping, the optimizer, the epoch's evaluation), in
 * place of the next step's, where the others, which may not have failed, are heading: only
 * when the run has a next step (step_follows). Ranks that all fail at the same point all make
 * the call, and pair with one another. A failure of the hook itself (the exchange's verdict,
 * every rank's) or of a callback makes none. The hook's own status and message give way to
 * st's. */
static tg_status tell_hook(tg_trainer *t, tg_status st)
{
    const tg_train_options *o = &t->opt;
    if (!o->grad_hook)
        return st;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", tg_last_error());
    o->grad_hook(t->model, NULL, 0, o->dtype, o->grad_hook_ud);
    return tg__error(st, "%s", msg);
}

/* Whether the run has a step after this point, in which every rank calls the hook again: a
 * later step of this epoch (`later_in_epoch`) or another epoch. */
static bool step_follows(const tg_trainer *t, bool later_in_epoch)
{
    return later_in_epoch || t->epoch + 1 < t->opt.epochs;
}

/* One step on this rank's shard of the global batch that starts at `start`. */
static tg_status step(tg_trainer *t, size_t start, size_t step_no)
{
    const tg_train_options *o = &t->opt;
    size_t n = t->train.n;
    size_t global = n - start < t->global_batch ? n - start : t->global_batch;
    bool full = global == t->global_batch;
    size_t rows = full ? o->batch : t->last_rows;
    size_t world = (size_t)o->world, rank = (size_t)o->rank;
    /* Rank r's rows: a block of `batch` in a full global batch; in the last one, the even
     * split of alloc_steps (ranks before r took last_rows each, plus one for each of the
     * first rem % world of them). */
    size_t first =
        full ? start + rank * o->batch
             : start + rank * (global / world) + (rank < global % world ? rank : global % world);
    tg_model_zero_grad(t->model);
    if (rows > 0) {
        tg_dataset_gather(&t->train, t->perm, first, rows, o->dtype, t->xb, t->yb);
        /* By the row count, not by `full`: a rank's share of the last global batch may be a
         * whole batch, and then only the full leaves (x_last is not made) have its shape. */
        bool whole = rows == o->batch;
        tg_tensor *x = whole ? t->x_full : t->x_last, *y = whole ? t->y_full : t->y_last;
        tg_tensor *loss = loss_of(t, t->tape, x, y, NULL);
        tg_status st = tg_tape_status(t->tape);
        if (st == TG_OK)
            st = tg_backward(t->tape, loss);
        if (st != TG_OK)
            return tell_hook(t,
                             prefix_error(st, "train: epoch %d, step %zu", t->epoch + 1, step_no));
        double v = tg_tensor_item(loss);
        if (!isfinite(v))
            return tell_hook(
                t, tg__error(TG_ENUMERIC,
                             "train: epoch %d, step %zu: the loss is %g (diverging: try a "
                             "smaller learning rate)",
                             t->epoch + 1, step_no, v));
        tg_tape_reset(t->tape);
        /* Averaging over ranks must weigh each rank by its rows: scale so the plain average
         * of the blocks is the mean over the global batch. Exactly 1 on every full batch. */
        if (rows * world != global)
            scale_grads(t, (double)(rows * world) / (double)global);
    }
    if (o->grad_hook) {
        tg_status st = o->grad_hook(t->model, tg_model_grad_data(t->model),
                                    tg_model_numel(t->model), o->dtype, o->grad_hook_ud);
        if (st != TG_OK)
            return prefix_error(st, "train: epoch %d, step %zu: gradient hook", t->epoch + 1,
                                step_no);
    }
    tg_status st =
        o->clip_norm > 0 ? tg_clip_grad_norm(t->params, t->n_params, o->clip_norm, NULL) : TG_OK;
    if (st == TG_OK)
        st = tg_optim_step(t->optim);
    if (st != TG_OK) {
        st = prefix_error(st, "train: epoch %d, step %zu", t->epoch + 1, step_no);
        if (step_follows(t, start + t->global_batch < n))
            st = tell_hook(t, st);
    }
    return st;
}

/* The index of the largest of n logits. */
static size_t argmax(const void *z, tg_dtype dtype, size_t n)
{
    size_t best = 0;
    if (dtype == TG_F32) {
        const float *v = z;
        for (size_t i = 1; i < n; i++)
            best = v[i] > v[best] ? i : best;
    } else {
        const double *v = z;
        for (size_t i = 1; i < n; i++)
            best = v[i] > v[best] ? i : best;
    }
    return best;
}

/* The scores of the model on a whole split, forward only, in chunks of eval_rows; for the test
 * split, `train` holds the training split's, just taken. */
static tg_status evaluate(tg_trainer *t, const tg_dataset *ds, tg_train_scores *s,
                          const tg_train_scores *train)
{
    s->loss = s->accuracy = s->rmse = NAN;
    if (ds->n == 0)
        return TG_OK;
    bool is_train = ds == &t->train;
    tg_dtype dtype = t->opt.dtype;
    bool old = tg_tape_set_grad_enabled(t->tape, false);
    double loss_sum = 0;
    size_t correct = 0;
    tg_status st = TG_OK;
    for (size_t start = 0; start < ds->n && st == TG_OK; start += t->eval_rows) {
        size_t rows = ds->n - start < t->eval_rows ? ds->n - start : t->eval_rows;
        bool whole = rows == t->eval_rows;
        tg_tensor *x = whole ? t->x_eval : is_train ? t->x_train_rest : t->x_test_rest;
        tg_tensor *y = whole ? t->y_eval : is_train ? t->y_train_rest : t->y_test_rest;
        tg_dataset_gather(ds, NULL, start, rows, dtype, t->xe, t->ye);
        tg_tensor *z = NULL;
        tg_tensor *loss = loss_of(t, t->tape, x, y, &z);
        st = tg_tape_status(t->tape);
        if (st != TG_OK) {
            st = prefix_error(st, "train: evaluating");
            break;
        }
        loss_sum += tg_tensor_item(loss) * (double)rows;
        if (t->n_classes) {
            const unsigned char *zd = tg_tensor_data_const(z);
            size_t es = tg_dtype_size(dtype);
            for (size_t i = 0; i < rows; i++)
                correct +=
                    argmax(zd + i * t->n_out * es, dtype, t->n_out) == (size_t)ds->y[start + i];
        }
        tg_tape_reset(t->tape);
    }
    tg_tape_set_grad_enabled(t->tape, old);
    if (st != TG_OK)
        return st;
    s->loss = loss_sum / (double)ds->n;
    if (!isfinite(s->loss) && !is_train && isfinite(train->loss)) /* the model is finite */
        return tg__error(TG_ENUMERIC,
                         "train: epoch %d: the loss on the test split is %g after the last step, "
                         "where the training split's is %g: some test rows lie so far outside "
                         "the training rows that their loss overflows %s",
                         t->epoch + 1, s->loss, train->loss, tg_dtype_name(dtype));
    if (!isfinite(s->loss)) /* the last update diverged (the step checks the loss before it) */
        return tg__error(TG_ENUMERIC,
                         "train: epoch %d: the loss on the %s split is %g after the last step "
                         "(diverging: try a smaller learning rate)",
                         t->epoch + 1, is_train ? "training" : "test", s->loss);
    if (t->n_classes)
        s->accuracy = (double)correct / (double)ds->n;
    else
        s->rmse = sqrt(s->loss) * t->y_std; /* pred - y = y_std (pred_s - y_s) */
    return TG_OK;
}

/* The order of epoch e (0-based): a function of the seed and e alone, so resuming at an
 * epoch reproduces it. (seed itself seeds the initial weights; the split uses it through its
 * own RNG.) */
static void epoch_order(tg_trainer *t, int e)
{
    epoch_seed(t, e);
    tg_shuffle(t->perm, t->train.n, &t->rng);
}

/* TG_EINVAL for `who`, a call that would run or move trainer t from its step callback, in the
 * middle of the epoch whose steps and history slot are under way. */
static tg_status refuse_in_epoch(const char *who)
{
    return tg__error(TG_EINVAL,
                     "%s: the trainer is in the middle of an epoch (called from its step "
                     "callback); stop the run there and call it after",
                     who);
}

static tg_status run_epoch(tg_trainer *t, tg_train_epoch *out)
{
    double start = now();
    epoch_order(t, t->epoch);
    size_t step_no = t->skip + 1;
    t->skip = 0;
    for (size_t b = (step_no - 1) * t->global_batch; b < t->train.n;
         b += t->global_batch, step_no++) {
        tg_status st = step(t, b, step_no);
        if (st == TG_OK && t->opt.on_step) {
            tg_clear_error(); /* so a callback that sets no message can be told apart */
            st = t->opt.on_step(t, t->epoch, step_no, t->opt.on_step_ud);
            if (st != TG_OK && tg_last_status() == TG_OK)
                tg__error(st, "train: stopped by the step callback at epoch %d, step %zu",
                          t->epoch + 1, step_no);
        }
        if (st != TG_OK) {
            tg_tape_reset(t->tape);
            return st;
        }
    }
    tg_train_epoch e = {t->epoch + 1, t->opt.epochs, {NAN, NAN, NAN}, {NAN, NAN, NAN}, 0};
    tg_status st = evaluate(t, &t->train, &e.train, NULL);
    if (st == TG_OK)
        st = evaluate(t, &t->test, &e.test, &e.train);
    if (st != TG_OK) {
        tg_tape_reset(t->tape);
        return step_follows(t, false) ? tell_hook(t, st) : st;
    }
    t->seconds += now() - start;
    e.seconds = t->seconds;
    t->epoch++;
    /* The history has a slot per epoch; a run set back (set_epoch) rewrites old ones. */
    t->history[t->epoch - 1] = e;
    t->n_history = (size_t)t->epoch;
    if (out)
        *out = e;
    return TG_OK;
}

tg_status tg_trainer_epoch(tg_trainer *t, tg_train_epoch *out)
{
    if (!t)
        return tg__error(TG_EINVAL, "trainer_epoch: trainer is NULL");
    if (t->in_epoch)
        return refuse_in_epoch("trainer_epoch");
    if (t->epoch >= t->opt.epochs)
        return tg__error(TG_EINVAL, "trainer_epoch: all %d epochs have run", t->opt.epochs);
    t->in_epoch = true;
    tg_status st = run_epoch(t, out);
    t->in_epoch = false;
    return st;
}

tg_status tg_trainer_run(tg_trainer *t, tg_train_result *result)
{
    if (!t)
        return tg__error(TG_EINVAL, "trainer_run: trainer is NULL");
    if (t->in_epoch)
        return refuse_in_epoch("trainer_run");
    tg_status st = TG_OK;
    while (t->epoch < t->opt.epochs) {
        tg_train_epoch e;
        st = tg_trainer_epoch(t, &e);
        if (st != TG_OK)
            break;
        if (!t->opt.on_epoch)
            continue;
        tg_clear_error(); /* so a callback that sets no message can be told apart */
        if ((st = t->opt.on_epoch(&e, t->opt.on_epoch_ud)) != TG_OK) {
            if (tg_last_status() == TG_OK)
                tg__error(st, "train: stopped by the epoch callback after epoch %d", e.epoch);
            break;
        }
    }
    if (result)
        tg_trainer_result(t, result);
    return st;
}

/* ---- state -------------------------------------------------------------------------------------
 */

void tg_trainer_result(const tg_trainer *t, tg_train_result *r)
{
    if (!t || !r)
        return;
    const tg_train_scores none = {NAN, NAN, NAN};
    *r = (tg_train_result){
        t->task,  t->n_classes, t->train.n, t->test.n, t->train.d, tg_model_numel(t->model),
        t->epoch, t->seconds,   none,       none};
    if (t->n_history > t->history_first) {
        r->train = t->history[t->n_history - 1].train;
        r->test = t->history[t->n_history - 1].test;
    }
}

const tg_train_epoch *tg_trainer_history(const tg_trainer *t, size_t *n)
{
    if (n)
        *n = t ? t->n_history - t->history_first : 0;
    return t ? t->history + t->history_first : NULL;
}

tg_model *tg_trainer_model(tg_trainer *t)
{
    return t ? t->model : NULL;
}

tg_optim *tg_trainer_optim(tg_trainer *t)
{
    return t ? t->optim : NULL;
}

tg_rng *tg_trainer_rng(tg_trainer *t)
{
    return t ? &t->rng : NULL;
}

int tg_trainer_epoch_index(const tg_trainer *t)
{
    return t ? t->epoch : 0;
}

tg_status tg_trainer_set_epoch(tg_trainer *t, int epoch)
{
    if (!t)
        return tg__error(TG_EINVAL, "trainer_set_epoch: trainer is NULL");
    if (t->in_epoch)
        return refuse_in_epoch("trainer_set_epoch");
    if (epoch < 0 || epoch > t->opt.epochs)
        return tg__error(TG_EINVAL, "trainer_set_epoch: epoch %d is not in 0..%d", epoch,
                         t->opt.epochs);
    t->epoch = epoch;
    t->skip = 0;
    if (t->n_history > (size_t)epoch) { /* back: the later epochs will be run again */
        t->n_history = (size_t)epoch;
        if (t->history_first > t->n_history)
            t->history_first = t->n_history;
    } else if (t->n_history < (size_t)epoch) { /* ahead: the epochs between are not run here */
        t->history_first = t->n_history = (size_t)epoch;
    }
    return TG_OK;
}

tg_status tg_trainer_set_position(tg_trainer *t, int epoch, size_t batch)
{
    if (!t)
        return tg__error(TG_EINVAL, "trainer_set_position: trainer is NULL");
    if (t->in_epoch)
        return refuse_in_epoch("trainer_set_position");
    size_t steps = (t->train.n + t->global_batch - 1) / t->global_batch;
    if (epoch < 0 || epoch >= t->opt.epochs || batch > steps)
        return tg__error(TG_EINVAL,
                         "trainer_set_position: epoch %d, step %zu is not in 0..%d, 0..%zu",
                         epoch, batch, t->opt.epochs - 1, steps);
    tg_status st = tg_trainer_set_epoch(t, epoch);
    if (st == TG_OK)
        t->skip = batch;
    return st;
}

/* Whether a model that predicts in the target's units can hold it and, in f32, resolve it: the
 * folded last layer must fit the dtype; and an f32 output's spacing near the target's mean must
 * be small next to the target's spread (at most 2^-10 of it: the rounding then adds under a
 * thousandth of the spread to the error). A target of 1e9 + 3x (spread 1.7, spacing 64 there)
 * came out of an f32 model as 1e9 for every row, 75 times the RMSE training reported. A
 * constant target has no spread to resolve (its std of 1 is a stand-in): f32 holds it to its
 * precision. TG_EINVAL saying so and what to do. */
static tg_status check_export_target(const tg_trainer *t)
{
    const bool f32 = t->opt.dtype == TG_F32;
    const double top = fabs(t->y_mean) + 4 * t->y_std; /* where most predictions lie */
    if (!(top < (f32 ? FLT_MAX : DBL_MAX)))
        return tg__error(TG_EINVAL,
                         "trainer_export: the target's values (mean %g, standard deviation %g) "
                         "do not fit an %s model's output; %s",
                         t->y_mean, t->y_std, f32 ? "f32" : "f64",
                         f32 ? "train in f64 (--dtype f64)" : "scale the target down");
    if (!f32 || t->y_constant)
        return TG_OK;
    const double spacing = ldexp(1.0, ilogb(top) - 23); /* f32's spacing at top */
    if (spacing > ldexp(t->y_std, -10))
        return tg__error(TG_EINVAL,
                         "trainer_export: an f32 model cannot predict this target in its units: "
                         "its values (mean %g) are spaced %g apart in f32, %.3g of their "
                         "standard deviation %g; train in f64 (--dtype f64), or subtract the "
                         "mean from the target",
                         t->y_mean, spacing, spacing / t->y_std, t->y_std);
    return TG_OK;
}

tg_status tg_trainer_export(const tg_trainer *t, tg_model **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "trainer_export: out is NULL");
    *out = NULL;
    if (!t)
        return tg__error(TG_EINVAL, "trainer_export: trainer is NULL");
    /* The target's statistics decide alone: checked before the copy, not after it. */
    tg_status st;
    if (!t->n_classes && (st = check_export_target(t)) != TG_OK)
        return st;
    /* A copy through the file format: one definition of what a model holds. */
    void *buf = NULL;
    size_t size = 0;
    if ((st = tg_model_save_buffer(t->model, &buf, &size)) != TG_OK)
        return st;
    tg_model *m = NULL;
    st = tg_model_load_buffer(buf, size, &m);
    tg_model_buffer_free(buf, size);
    if (st != TG_OK)
        return st;
    if (!t->n_classes) {
        /* y = y_std * (h W + b) + y_mean = h (y_std W) + (y_std b + y_mean) */
        size_t last = tg_model_param_count(m) - 2;
        tg_tensor *w = tg_model_param(m, last), *b = tg_model_param(m, last + 1);
        /* (a weight scaled beyond f32's range is refused by tg_tensor_set, not made inf) */
        for (size_t i = 0; st == TG_OK && i < tg_tensor_numel(w); i++)
            st = tg_tensor_set(w, i, tg_tensor_get(w, i) * t->y_std);
        for (size_t i = 0; st == TG_OK && i < tg_tensor_numel(b); i++)
            st = tg_tensor_set(b, i, tg_tensor_get(b, i) * t->y_std + t->y_mean);
        if (st != TG_OK) {
            tg_model_free(m);
            return prefix_error(st, "trainer_export");
        }
    }
    *out = m;
    return TG_OK;
}

tg_tensor *tg_trainer_record(tg_trainer *t, tg_tape *tape)
{
    if (!t || !tape) {
        tg__error(TG_EINVAL, "trainer_record: %s is NULL", t ? "tape" : "trainer");
        return NULL;
    }
    size_t rows = t->train.n < t->opt.batch ? t->train.n : t->opt.batch;
    /* x_full has `batch` rows; with fewer training rows than that, the last shard's leaves
     * have them all on one rank, and on several only this rank's share: then leaves of their
     * own over the same buffer. */
    tg_tensor *x = rows == t->opt.batch ? t->x_full : t->x_last;
    tg_tensor *y = rows == t->opt.batch ? t->y_full : t->y_last;
    if (!x || tg_tensor_dim(x, 0) != rows) {
        if (!t->x_record && wrap_pair(t, rows, t->xb, t->yb, "x", "target", &t->x_record,
                                      &t->y_record) != TG_OK) {
            tg_tensor_free(t->x_record), tg_tensor_free(t->y_record);
            t->x_record = t->y_record = NULL;
            return NULL;
        }
        x = t->x_record, y = t->y_record;
    }
    tg_dataset_gather(&t->train, NULL, 0, rows, t->opt.dtype, t->xb, t->yb);
    tg_model_zero_grad(t->model);
    tg_tensor *loss = loss_of(t, tape, x, y, NULL);
    if (tg_tape_status(tape) != TG_OK || tg_backward(tape, loss) != TG_OK)
        return NULL;
    return loss;
}

/* ---- settings and checkpoints ------------------------------------------------------------- */

static uint64_t f64_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* The splits after standardization, hashed in order: two ranks (or two runs) with the same
 * settings and statistics but other rows, or rows in another order, still differ here. */
/* The hash of the rows the trainer holds, taken once when it is made (data_hash_of): every
 * checkpoint records it, and hashing a large data set at each would cost more than the steps
 * between them. */
static uint64_t data_hash(const tg_trainer *t)
{
    return t->data_hash;
}

void tg_train__settings(const tg_trainer *t, uint64_t w[TG_TRAIN__SETTINGS_WORDS])
{
    const tg_train_options *o = &t->opt;
    memset(w, 0, TG_TRAIN__SETTINGS_WORDS * sizeof *w);
    w[TG_TRAIN__TASK] = (uint64_t)t->task;
    w[TG_TRAIN__FEATURES] = t->train.d;
    w[TG_TRAIN__CLASSES] = t->n_classes;
    w[TG_TRAIN__LAYERS] = (uint64_t)o->n_hidden;
    for (int i = 0; i < o->n_hidden; i++)
        w[TG_TRAIN__LAYERS + 1 + i] = o->hidden[i];
    w[TG_TRAIN__ACT] = o->n_hidden > 0 ? (uint64_t)o->act : 0;
    w[TG_TRAIN__INIT] = o->init != TG_TRAIN_INIT_AUTO               ? (uint64_t)o->init
                        : o->act == TG_ACT_RELU && o->n_hidden > 0 ? TG_INIT_HE_UNIFORM
                                                                   : TG_INIT_XAVIER_UNIFORM;
    w[TG_TRAIN__DTYPE] = (uint64_t)o->dtype;
    tg_train__optim_settings(t->optim, w);
    w[TG_TRAIN__LR] = f64_bits(o->optim.lr); /* the rate asked for, whatever was set since */
    w[TG_TRAIN__EPOCHS] = (uint64_t)o->epochs;
    w[TG_TRAIN__BATCH] = o->batch;
    w[TG_TRAIN__TEST_SPLIT] = f64_bits(o->test_split);
    w[TG_TRAIN__SEED] = o->seed;
    w[TG_TRAIN__CLIP] = f64_bits(o->clip_norm);
    w[TG_TRAIN__WORLD] = (uint64_t)o->world;
    w[TG_TRAIN__TRAIN_ROWS] = t->train.n;
    w[TG_TRAIN__TEST_ROWS] = t->test.n;
    w[TG_TRAIN__RANK] = (uint64_t)o->rank;
    w[TG_TRAIN__DATA_HASH] = data_hash(t);
}

void tg_trainer_progress(const tg_trainer *t, int epoch, size_t batch, tg_checkpoint_progress *p)
{
    if (!t || !p)
        return;
    const tg_train_options *o = &t->opt;
    *p = (tg_checkpoint_progress)TG_CHECKPOINT_PROGRESS_INIT;
    p->epoch = epoch < 0 ? 0 : (uint64_t)epoch;
    p->batch = batch;
    p->step = tg_optim_steps(t->optim);
    p->rng = t->rng;
    p->world_size = (uint32_t)o->world;
    p->seed = o->seed;
    p->batch_size = o->batch;
    p->test_split = o->test_split;
    p->clip_norm = o->clip_norm;
    p->train_rows = t->train.n;
    p->test_rows = t->test.n;
    p->data_hash = data_hash(t);
}

/* TG_EINVAL when the checkpoint's run (model m, optimizer o, progress p) is not this one:
 * a setting, or the standardization statistics (when the checkpoint's model has some). */
static tg_status compare_run(const tg_trainer *t, const char *path, const tg_model *m,
                             const tg_optim *o, const tg_checkpoint_progress *p)
{
    const char *who = "trainer_restore";
    uint64_t mine[TG_TRAIN__SETTINGS_WORDS], theirs[TG_TRAIN__SETTINGS_WORDS];
    bool recorded;
    tg_train__settings(t, mine);
    tg_train__settings_of_checkpoint(m, o, p, theirs, &recorded);
    int f = tg_train__settings_diff(theirs, mine, TG_TRAIN__CHECKPOINT, recorded);
    if (f >= 0) {
        char a[128], b[128];
        tg_train__setting_text(f, theirs, a, sizeof a);
        tg_train__setting_text(f, mine, b, sizeof b);
        return tg__error(TG_EINVAL,
                         "%s: %s: the checkpoint's run differs on %s: it has %s, this run has %s "
                         "(resume with the options of the run that wrote it)",
                         who, path, tg_train__setting_name(f), a, b);
    }
    /* The columns by name, when both models have them (the checkpoint's model stores them):
     * another --target with as many features would otherwise be reported below as the
     * statistics of this run's feature next to the checkpoint's values of another column. */
    const char *ta = tg_model_target_name(m), *tb = tg_model_target_name(t->model);
    if (ta && tb && strcmp(ta, tb) != 0)
        return tg__error(TG_EINVAL,
                         "%s: %s: the checkpoint's run differs on --target: it has '%.200s', "
                         "this run has '%.200s'",
                         who, path, ta, tb);
    for (size_t i = 0; i < t->train.d; i++) {
        const char *fa = tg_model_feature_name(m, i), *fb = tg_model_feature_name(t->model, i);
        if (fa && fb && strcmp(fa, fb) != 0)
            return tg__error(TG_EINVAL,
                             "%s: %s: the checkpoint's run differs on feature %zu: it has column "
                             "'%.200s', this run has '%.200s' (another data file?)",
                             who, path, i + 1, fa, fb);
    }
    size_t n_a = 0, n_b = 0;
    const double *mean_a, *std_a, *mean_b, *std_b;
    tg_model_standardization(m, &n_a, &mean_a, &std_a);
    tg_model_standardization(t->model, &n_b, &mean_b, &std_b);
    if (n_a > 0) {
        size_t i = n_a == n_b ? tg_train__stats_diff(n_a, mean_a, std_a, mean_b, std_b) : 0;
        if (n_a != n_b)
            return tg__error(TG_EINVAL,
                             "%s: %s: the checkpoint's model standardizes %zu features, this "
                             "run %zu",
                             who, path, n_a, n_b);
        if (i != (size_t)-1) {
            char name[256];
            tg_train__feature_text(t->model, i, name, sizeof name);
            return tg__error(TG_EINVAL,
                             "%s: %s: the standardization statistics of %s differ: the "
                             "checkpoint has mean %.17g, std %.17g; this run has mean %.17g, std "
                             "%.17g (the training rows are not the same: another data file?)",
                             who, path, name, mean_a[i], std_a[i], mean_b[i], std_b[i]);
        }
    }
    const tg_mlp_spec *sa = tg_model_spec(m), *sb = tg_model_spec(t->model);
    if (!tg_train__same_spec(sa, sb)) {
        char a[640], b[640];
        return tg__error(TG_EINVAL, "%s: %s: the checkpoint's model (%s) is not this run's (%s)",
                         who, path, tg_train__spec_text(sa, a, sizeof a),
                         tg_train__spec_text(sb, b, sizeof b));
    }
    /* Last: the settings and statistics above name what differs when they can; the same
     * features with another target column (or rows in another order) differ only here. */
    const uint64_t h = data_hash(t);
    if (recorded && p->data_hash && p->data_hash != h)
        return tg__error(TG_EINVAL,
                         "%s: %s: the checkpoint's run trained on other data: its rows (features "
                         "and target) hash to %016llx, this run's to %016llx (another data file, "
                         "or another --target?)",
                         who, path, (unsigned long long)p->data_hash, (unsigned long long)h);
    return TG_OK;
}

tg_status tg_trainer_restore(tg_trainer *t, const char *path, tg_checkpoint_progress *progress)
{
    const char *who = "trainer_restore";
    if (!t || !path)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, t ? "path" : "trainer");
    if (t->in_epoch)
        return refuse_in_epoch(who);
    tg_model *m = NULL;
    tg_optim *o = NULL;
    tg_checkpoint_progress p;
    tg_status st = tg_checkpoint_load(path, &m, &o, &p);
    if (st != TG_OK)
        return st;
    st = compare_run(t, path, m, o, &p);
    if (st == TG_OK) {
        /* Position first: it is the last thing that can fail, and it changes nothing else. */
        /* --epochs is the one setting that may differ: a shorter run is refused in its terms
         * (set_position's message counts from 0 and names no option). */
        if (p.epoch >= (uint64_t)t->opt.epochs)
            st = tg__error(TG_EINVAL,
                           "%s: %s stopped in epoch %llu, step %llu of it; this run has --epochs "
                           "%d (a resumed run may have more epochs, not fewer)",
                           who, path, (unsigned long long)p.epoch + 1, (unsigned long long)p.batch,
                           t->opt.epochs);
        else if ((st = tg_trainer_set_position(t, (int)p.epoch, (size_t)p.batch)) != TG_OK)
            st = prefix_error(st, "%s: %s stopped at epoch %llu, step %llu of it", who, path,
                              (unsigned long long)p.epoch + 1, (unsigned long long)p.batch);
    }
    if (st == TG_OK) {
        /* The same spec and optimizer options (compare_run), so the sizes match. */
        tg_optim_options og;
        tg_optim_get_options(o, &og);
        st = tg_optim_set_state(t->optim, tg_optim_state(o), tg_optim_state_size(o),
                                tg_optim_steps(o));
        TG_ASSERT(st == TG_OK);
        tg_optim_set_lr(t->optim, og.lr);
        memcpy(tg_model_param_data(t->model), tg_model_param_data(m),
               tg_model_numel(m) * tg_dtype_size(t->opt.dtype));
        if (progress)
            *progress = p;
    }
    tg_optim_free(o);
    tg_model_free(m);
    return st;
}

/* test_train.c: the training loop of tapegrad/train.h: the default options on digits reach the
 * issue's bar, a seed reproduces a run bit for bit, the task is inferred from the targets, bad
 * options and columns are refused with messages, regression models are exported in the
 * target's units, two ranks sharing every batch through the gradient hook train like one
 * process at twice the batch, a step allocates nothing, and every allocation failure of
 * tg_trainer_new is reported and leaks nothing. Then `tapegrad train` and `tapegrad predict`
 * as subprocesses (TG_TOOLS_DIR, run from TG_SOURCE_DIR): the JSON's shape, the text output
 * and per-epoch progress, exit statuses 0/1/2 with their messages, --save then predict,
 * --plot's SVG, --dot/--render, and regression's RMSE. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/oom.h"
#include "support/proc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tapegrad/io.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------------------
 */

static tg_table *read_data(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/data/%s.csv", tp_env("TG_SOURCE_DIR"), name);
    tg_table *t = NULL;
    cr_assert_eq(tg_table_read_csv(path, &t), TG_OK, "%s", tg_last_error());
    return t;
}

static tg_table *parse(const char *text)
{
    tg_table *t = NULL;
    cr_assert_eq(tg_table_parse_csv(text, strlen(text), "t.csv", &t), TG_OK, "%s", tg_last_error());
    return t;
}

/* A small table: two features and a target column `y` of 0/1/2 classes that depend on them. */
static char *small_csv(size_t rows, bool integer_classes)
{
    size_t cap = 64 + rows * 64;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t n = (size_t)snprintf(s, cap, "a,b,y\n");
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (size_t i = 0; i < rows; i++) {
        double a = tg_rng_uniform(&rng) * 4 - 2, b = tg_rng_uniform(&rng) * 4 - 2;
        double y = integer_classes ? (a + b > 1 ? 2 : a + b > -1 ? 1 : 0) : a * 3 - b + 0.5;
        n += (size_t)snprintf(s + n, cap - n, "%.6f,%.6f,%.6g\n", a, b, y);
    }
    return s;
}

static tg_trainer *make(const tg_table *table, const char *target, const tg_train_options *o)
{
    tg_trainer *t = NULL;
    cr_assert_eq(tg_trainer_new(table, target, o, &t), TG_OK, "%s", tg_last_error());
    return t;
}

/* Whether two trainers' models hold the same parameters, bit for bit. */
static bool same_params(tg_trainer *a, tg_trainer *b)
{
    tg_model *ma = tg_trainer_model(a), *mb = tg_trainer_model(b);
    tg_dtype dt = tg_model_spec(ma)->dtype;
    cr_assert_eq(dt, tg_model_spec(mb)->dtype);
    cr_assert_eq(tg_model_numel(ma), tg_model_numel(mb));
    return memcmp(tg_model_param_data(ma), tg_model_param_data(mb),
                  tg_model_numel(ma) * tg_dtype_size(dt)) == 0;
}

/* ---- the bar and the run ------------------------------------------------------------------- */

static int callback_calls;

static tg_status count_epochs(const tg_train_epoch *e, void *ud)
{
    cr_assert_eq(e->epoch, callback_calls + 1);
    cr_assert_eq(e->epochs, *(int *)ud);
    cr_assert(e->seconds >= 0);
    callback_calls++;
    return TG_OK;
}

Test(train, digits_defaults_reach_the_bar)
{
    tg_table *table = read_data("digits");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.on_epoch = count_epochs;
    o.on_epoch_ud = &o.epochs;
    tg_trainer *t = make(table, "digit", &o);
    tg_train_result r;
    cr_assert_eq(tg_trainer_run(t, &r), TG_OK, "%s", tg_last_error());
    cr_assert_eq(r.task, TG_TASK_CLASSIFY);
    cr_assert_eq(r.n_classes, 10);
    cr_assert_eq(r.n_features, 64);
    cr_assert_eq(r.n_train + r.n_test, tg_table_rows(table));
    cr_assert_eq(r.n_test, 359); /* round(1797 * 0.2) */
    cr_assert_eq(r.params, 64 * 64 + 64 + 64 * 10 + 10);
    cr_assert_eq(r.epochs, o.epochs);
    cr_assert_eq(callback_calls, o.epochs);
    cr_assert_geq(r.test.accuracy, 0.96, "test accuracy %.4f", r.test.accuracy);
    cr_assert(isnan(r.test.rmse) && isnan(r.train.rmse));
    /* The result is the last epoch's evaluation; training loss went down. */
    size_t n;
    const tg_train_epoch *h = tg_trainer_history(t, &n);
    cr_assert_eq(n, (size_t)o.epochs);
    cr_assert_eq(h[n - 1].test.accuracy, r.test.accuracy);
    cr_assert_eq(h[n - 1].train.loss, r.train.loss);
    cr_assert_lt(h[n - 1].train.loss, h[0].train.loss / 4);
    for (size_t i = 1; i < n; i++)
        cr_assert_geq(h[i].seconds, h[i - 1].seconds);
    /* The exported model predicts the same classes from raw rows (its stored standardization):
     * its accuracy on the whole file is between the train and test accuracies. */
    tg_model *m = NULL;
    cr_assert_eq(tg_trainer_export(t, &m), TG_OK, "%s", tg_last_error());
    size_t k;
    cr_assert_eq(tg_model_task(m, &k), TG_TASK_CLASSIFY);
    cr_assert_eq(k, 10);
    cr_assert_str_eq(tg_model_target_name(m), "digit");
    cr_assert_str_eq(tg_model_feature_name(m, 0), "pixel_0_0");
    cr_assert_eq(tg_trainer_epoch(t, NULL), TG_EINVAL); /* every epoch has run */
    tg_model_free(m);
    tg_trainer_free(t);
    tg_table_free(table);
}

/* Everything a seed decides (split, weights, orders) is the same twice; another seed differs. */
Test(train, a_seed_reproduces_the_run)
{
    tg_table *table = read_data("breast_cancer");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 3;
    o.seed = 5;
    tg_trainer *a = make(table, "benign", &o), *b = make(table, "benign", &o);
    o.seed = 6;
    tg_trainer *c = make(table, "benign", &o);
    tg_train_result ra, rb, rc;
    cr_assert_eq(tg_trainer_run(a, &ra), TG_OK);
    cr_assert_eq(tg_trainer_run(b, &rb), TG_OK);
    cr_assert_eq(tg_trainer_run(c, &rc), TG_OK);
    cr_assert_eq(ra.n_classes, 2);
    cr_assert(same_params(a, b));
    cr_assert_not(same_params(a, c));
    cr_assert_eq(ra.train.loss, rb.train.loss);
    cr_assert_eq(ra.test.loss, rb.test.loss);
    cr_assert_neq(ra.train.loss, rc.train.loss);
    tg_trainer_free(a);
    tg_trainer_free(b);
    tg_trainer_free(c);
    tg_table_free(table);
}

/* Resuming at an epoch with the saved parameters and optimizer state continues exactly. */
Test(train, resuming_at_an_epoch_continues_exactly)
{
    tg_table *table = read_data("breast_cancer");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 4;
    tg_trainer *a = make(table, "benign", &o), *b = make(table, "benign", &o);
    cr_assert_eq(tg_trainer_run(a, NULL), TG_OK);
    cr_assert_eq(tg_trainer_epoch(b, NULL), TG_OK);
    cr_assert_eq(tg_trainer_epoch(b, NULL), TG_OK);
    /* The checkpoint: parameters, optimizer state and steps, epoch index. */
    tg_model *mb = tg_trainer_model(b);
    tg_optim *ob = tg_trainer_optim(b);
    size_t pbytes = tg_model_numel(mb) * 4, sbytes = tg_optim_state_size(ob);
    void *params = malloc(pbytes), *state = malloc(sbytes);
    memcpy(params, tg_model_param_data(mb), pbytes);
    memcpy(state, tg_optim_state(ob), sbytes);
    uint64_t steps = tg_optim_steps(ob), rng_s0 = tg_trainer_rng(b)->s[0];
    cr_assert_eq(tg_trainer_epoch_index(b), 2);
    tg_trainer_free(b);

    tg_trainer *c = make(table, "benign", &o);
    memcpy(tg_model_param_data(tg_trainer_model(c)), params, pbytes);
    memcpy(tg_optim_state(tg_trainer_optim(c)), state, sbytes);
    tg_optim_set_steps(tg_trainer_optim(c), steps);
    cr_assert_eq(tg_trainer_set_epoch(c, 2), TG_OK);
    cr_assert_eq(tg_trainer_set_epoch(c, 5), TG_EINVAL);
    size_t n;
    tg_train_result r;
    tg_trainer_history(c, &n);
    tg_trainer_result(c, &r);
    cr_assert_eq(n, 0, "no epoch run yet");
    cr_assert(isnan(r.train.loss));
    cr_assert_eq(tg_trainer_run(c, NULL), TG_OK);
    cr_assert_neq(tg_trainer_rng(c)->s[0], rng_s0); /* a new epoch drew a new order */
    cr_assert(same_params(a, c));
    /* The history holds the epochs c ran, 3 and 4, as a's: none for the two it skipped (a
     * plot once drew them as losses of 0) */
    const tg_train_epoch *hc = tg_trainer_history(c, &n), *ha = tg_trainer_history(a, NULL);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(hc[i].epoch, (int)i + 3);
        cr_assert_eq(hc[i].train.loss, ha[i + 2].train.loss, "epoch %d", hc[i].epoch);
    }
    /* set back, it runs epoch 4 again: the history keeps epoch 3 */
    cr_assert_eq(tg_trainer_set_epoch(c, 3), TG_OK);
    cr_assert_eq(tg_trainer_run(c, NULL), TG_OK);
    hc = tg_trainer_history(c, &n);
    cr_assert_eq(n, 2);
    cr_assert(hc[0].epoch == 3 && hc[1].epoch == 4);
    free(params);
    free(state);
    tg_trainer_free(a);
    tg_trainer_free(c);
    tg_table_free(table);
}

/* ---- the task ------------------------------------------------------------------------------ */

Test(train, the_task_comes_from_the_targets)
{
    struct {
        const char *csv;
        tg_train_task asked;
        tg_task task;
        size_t classes;
    } cases[] = {
        {"x,y\n1,0\n2,1\n3,2\n4,0\n5,1\n6,2\n", TG_TRAIN_AUTO, TG_TASK_CLASSIFY, 3},
        /* gaps (no 0) or fractions: quantities */
        {"x,y\n1,1\n2,2\n3,3\n4,1\n5,2\n6,3\n", TG_TRAIN_AUTO, TG_TASK_REGRESS, 0},
        {"x,y\n1,0\n2,1\n3,0.5\n4,0\n5,1\n6,0\n", TG_TRAIN_AUTO, TG_TASK_REGRESS, 0},
        {"x,y\n1,0\n2,-1\n3,1\n4,0\n5,1\n6,0\n", TG_TRAIN_AUTO, TG_TASK_REGRESS, 0},
        /* told: classes up to the largest, gaps allowed; or regression of labels */
        {"x,y\n1,1\n2,2\n3,3\n4,1\n5,2\n6,3\n", TG_TRAIN_CLASSIFY, TG_TASK_CLASSIFY, 4},
        {"x,y\n1,0\n2,1\n3,2\n4,0\n5,1\n6,2\n", TG_TRAIN_REGRESS, TG_TASK_REGRESS, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_table *table = parse(cases[i].csv);
        tg_train_options o = TG_TRAIN_OPTIONS_INIT;
        o.task = cases[i].asked;
        o.epochs = 1;
        tg_trainer *t = make(table, "y", &o);
        tg_train_result r;
        cr_assert_eq(tg_trainer_run(t, &r), TG_OK, "case %zu: %s", i, tg_last_error());
        cr_assert_eq(r.task, cases[i].task, "case %zu", i);
        cr_assert_eq(r.n_classes, cases[i].classes, "case %zu", i);
        size_t k;
        cr_assert_eq(tg_model_task(tg_trainer_model(t), &k), cases[i].task);
        const tg_mlp_spec *spec = tg_model_spec(tg_trainer_model(t));
        cr_assert_eq(spec->sizes[spec->n_layers], cases[i].classes ? cases[i].classes : 1);
        tg_trainer_free(t);
        tg_table_free(table);
    }
    tg_train_task task;
    cr_assert_eq(tg_train_task_parse("regress", &task), TG_OK);
    cr_assert_eq(task, TG_TRAIN_REGRESS);
    cr_assert_str_eq(tg_train_task_name(TG_TRAIN_CLASSIFY), "classify");
    cr_assert_eq(tg_train_task_parse("cluster", &task), TG_EINVAL);
    ts_assert_has(tg_last_error(), "cluster");
}

Test(train, the_task_is_numbered_as_the_model_and_its_files_number_it)
{
    /* Model files store tg_task as a u32 (0 regress, 1 classify); the training request uses
     * the same numbers, and AUTO stays apart from them. */
    cr_assert_eq((int)TG_TRAIN_REGRESS, (int)TG_TASK_REGRESS);
    cr_assert_eq((int)TG_TRAIN_CLASSIFY, (int)TG_TASK_CLASSIFY);
    cr_assert_eq(TG_TASK_REGRESS, 0);
    cr_assert_eq(TG_TASK_CLASSIFY, 1);
    cr_assert_eq(TG_TRAIN_AUTO, -1);
    tg_table *table = parse("x,y\n1,0\n2,1\n3,0\n4,1\n5,1\n");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    cr_assert_eq(o.task, TG_TRAIN_AUTO);
    const int unknown[] = {-2, 2, 7};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        o.task = (tg_train_task)unknown[i];
        tg_trainer *t = NULL;
        cr_assert_eq(tg_trainer_new(table, "y", &o, &t), TG_EINVAL);
        cr_assert_null(t);
        cr_assert(strstr(tg_last_error(), "unknown task"), "%s", tg_last_error());
    }
    tg_table_free(table);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void expect_error(const tg_table *table, const char *target, const tg_train_options *o,
                         const char *needle)
{
    tg_trainer *t = (tg_trainer *)&t; /* must be set to NULL */
    cr_assert_eq(tg_trainer_new(table, target, o, &t), TG_EINVAL, "expected an error about %s",
                 needle);
    cr_assert_null(t);
    ts_assert_has(tg_last_error(), needle);
}

Test(train, bad_options_and_columns_are_refused)
{
    tg_table *table = parse("a,b,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,1\n");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    expect_error(table, "label", &o, "no column 'label'");
    expect_error(table, "label", &o, "a, b, y"); /* it says which columns there are */

    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.epochs = 0;
    expect_error(table, "y", &o, "epochs");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.batch = 0;
    expect_error(table, "y", &o, "batch");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.test_split = 1.0;
    expect_error(table, "y", &o, "test split");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.test_split = NAN;
    expect_error(table, "y", &o, "test split");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.n_hidden = TG_MLP_MAX_LAYERS;
    expect_error(table, "y", &o, "hidden layers");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.n_hidden = 2;
    o.hidden[1] = 0;
    expect_error(table, "y", &o, "hidden layer 2 has 0 units");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.rank = 2;
    o.world = 2;
    expect_error(table, "y", &o, "rank 2 of world 2");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.world = 0;
    expect_error(table, "y", &o, "world 0");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.clip_norm = -1;
    expect_error(table, "y", &o, "clipping");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.optim.lr = -1;
    expect_error(table, "y", &o, "lr");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.act = (tg_activation)9;
    expect_error(table, "y", &o, "activation");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.init = 7;
    expect_error(table, "y", &o, "initializer");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.dtype = (tg_dtype)5;
    expect_error(table, "y", &o, "dtype");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.test_split = 0.7; /* 5 rows: 4 go to test, one trains; two ranks cannot share one */
    o.world = 2;
    expect_error(table, "y", &o, "1 training rows cannot be shared by 2 ranks");
    /* Classes must be integers >= 0; the message names the row. */
    tg_table *frac = parse("a,y\n1,0\n2,1.5\n3,1\n");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    o.task = TG_TRAIN_CLASSIFY;
    expect_error(frac, "y", &o, "data row 2 is 1.5");
    tg_table *one = parse("a,y\n1,0\n2,0\n3,0\n");
    expect_error(one, "y", &o, "one class");
    /* No feature column. */
    tg_table *only = parse("y\n0\n1\n");
    o = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    expect_error(only, "y", &o, "no features");
    cr_assert_eq(tg_trainer_new(NULL, "y", &o, &(tg_trainer *){NULL}), TG_EINVAL);
    cr_assert_eq(tg_trainer_new(table, "y", NULL, &(tg_trainer *){NULL}), TG_EINVAL);
    cr_assert_eq(tg_trainer_new(table, "y", &o, NULL), TG_EINVAL);
    tg_table_free(only);
    tg_table_free(one);
    tg_table_free(frac);
    tg_table_free(table);
}

/* The gradient hook of divergence_is_an_error: counts the calls with and without a gradient,
 * and fails on the call without one, with a message the step's error must win over. */
typedef struct hook_calls {
    size_t with_grad, without;
} hook_calls;

static tg_status count_calls(tg_model *model, void *grad, size_t numel, tg_dtype dtype, void *ud)
{
    (void)model, (void)dtype;
    hook_calls *c = ud;
    if (grad) {
        c->with_grad++;
        return TG_OK;
    }
    c->without++;
    cr_expect_eq(numel, 0);
    (void)tg_tensor_item(NULL); /* leaves a message of its own in tg_last_error */
    return TG_EIO;
}

/* A learning rate that blows the loss up stops the run with TG_ENUMERIC and says so; the
 * gradient hook hears of the failed step (grad NULL: train.h), once, and its own error does
 * not replace the step's. */
Test(train, divergence_is_an_error)
{
    char *csv = small_csv(200, false);
    tg_table *table = parse(csv);
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.optim.kind = TG_OPTIM_SGD;
    o.optim.lr = 1e6;
    o.optim.weight_decay = 0;
    o.epochs = 20;
    hook_calls calls = {0, 0};
    o.grad_hook = count_calls, o.grad_hook_ud = &calls;
    tg_trainer *t = make(table, "y", &o);
    cr_assert_eq(tg_trainer_run(t, NULL), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "smaller learning rate");
    cr_expect(calls.with_grad > 0 && calls.without == 1, "hook calls: %zu with, %zu without",
              calls.with_grad, calls.without);
    tg_trainer_free(t);
    tg_table_free(table);
    free(csv);
}

static tg_status stop_after_two(const tg_train_epoch *e, void *ud)
{
    (void)ud;
    return e->epoch == 2 ? TG_EINVAL : TG_OK;
}

Test(train, the_callback_can_stop_the_run)
{
    tg_table *table = parse("a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.on_epoch = stop_after_two;
    tg_trainer *t = make(table, "y", &o);
    tg_train_result r;
    cr_assert_eq(tg_trainer_run(t, &r), TG_EINVAL);
    ts_assert_has(tg_last_error(), "stopped by the epoch callback after epoch 2");
    cr_assert_eq(r.epochs, 2);
    tg_trainer_free(t);
    tg_table_free(table);
}

/* ---- regression ----------------------------------------------------------------------------- */

/* An f32 model cannot predict 1e9 + 2x in the target's units (f32 is spaced 64 apart there,
 * the target's spread is about 1.2: every prediction once came out as 1e9), nor a target
 * beyond f32's range: export says so, where f64 exports both. */
Test(train, an_f32_export_refuses_a_target_it_cannot_resolve)
{
    static const double offsets[2] = {1e9, 1e39};
    for (int k = 0; k < 2; k++) {
        char text[4096] = "x,y\n";
        size_t len = strlen(text);
        for (int i = 0; i < 60; i++) {
            const double x = -1 + i / 30.0;
            len += (size_t)snprintf(text + len, sizeof text - len, "%.17g,%.17g\n", x,
                                    k ? offsets[k] * (2 + x) : offsets[k] + 2 * x);
        }
        tg_table *table = NULL;
        cr_assert_eq(tg_table_parse_csv(text, len, "offset", &table), TG_OK, "%s", tg_last_error());
        for (int d = 0; d < 2; d++) {
            tg_train_options o = TG_TRAIN_OPTIONS_INIT;
            o.dtype = d ? TG_F64 : TG_F32;
            o.epochs = 2;
            o.task = TG_TRAIN_REGRESS;
            tg_trainer *t = make(table, "y", &o);
            cr_assert_eq(tg_trainer_run(t, NULL), TG_OK, "%s", tg_last_error());
            tg_model *m = NULL;
            tg_status st = tg_trainer_export(t, &m);
            if (d) {
                cr_expect_eq(st, TG_OK, "f64, offset %g: %s", offsets[k], tg_last_error());
            } else {
                cr_expect_eq(st, TG_EINVAL, "f32, offset %g", offsets[k]);
                ts_assert_has(tg_last_error(), k ? "do not fit an f32 model's output"
                                                 : "are spaced 64 apart in f32");
                ts_assert_has(tg_last_error(), "--dtype f64");
                cr_expect_null(m);
            }
            tg_model_free(m);
            tg_trainer_free(t);
        }
        tg_table_free(table);
    }
}

/* What an exported model must hold: a constant target of 100000 in f32 (no spread to resolve:
 * exported, and predicted near 100000), and values near 1e308 in f64 (beyond its range once 4
 * standard deviations are added: refused). */
Test(train, export_holds_a_constant_target_and_refuses_values_beyond_f64)
{
    for (int k = 0; k < 2; k++) {
        char text[4096] = "x,y\n";
        size_t len = strlen(text);
        for (int i = 0; i < 20; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%d,%.17g\n", i,
                                    k ? (i % 2 ? 1.7e308 : -1.7e308) : 100000.0);
        tg_table *table = NULL;
        cr_assert_eq(tg_table_parse_csv(text, len, "t", &table), TG_OK, "%s", tg_last_error());
        tg_train_options o = TG_TRAIN_OPTIONS_INIT;
        o.dtype = k ? TG_F64 : TG_F32;
        o.epochs = 300; /* a step an epoch (16 training rows): enough to learn the constant */
        o.task = TG_TRAIN_REGRESS;
        tg_trainer *t = make(table, "y", &o);
        cr_assert_eq(tg_trainer_run(t, NULL), TG_OK, "%s", tg_last_error());
        tg_model *m = NULL;
        tg_status st = tg_trainer_export(t, &m);
        if (k) {
            cr_expect_eq(st, TG_EINVAL);
            ts_assert_has(tg_last_error(), "do not fit an f64 model's output; scale the target");
        } else {
            cr_assert_eq(st, TG_OK, "%s", tg_last_error());
            const double x = 3;
            double y = 0;
            cr_assert_eq(tg_model_predict(m, &x, 1, 1, &y, 1), TG_OK, "%s", tg_last_error());
            cr_expect(fabs(y - 100000) < 0.1, "predicted %.9g", y);
        }
        tg_model_free(m);
        tg_trainer_free(t);
        tg_table_free(table);
    }
}

/* The exported model predicts in the target's units from raw rows: its RMSE on the raw test
 * split (the same seed splits the same way) is the RMSE the trainer reported. */
Test(train, regression_exports_a_model_in_the_targets_units)
{
    tg_table *table = read_data("diabetes");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.dtype = TG_F64;
    o.epochs = 40;
    o.hidden[0] = 8;
    o.act = TG_ACT_TANH;
    o.optim.lr = 0.005;
    tg_trainer *t = make(table, "progression", &o);
    tg_train_result r;
    cr_assert_eq(tg_trainer_run(t, &r), TG_OK, "%s", tg_last_error());
    cr_assert_eq(r.task, TG_TASK_REGRESS); /* integers 25..346: a quantity */
    cr_assert(isnan(r.test.accuracy));
    cr_assert(r.test.rmse > 30 && r.test.rmse < 70, "rmse %g", r.test.rmse);

    tg_model *m = NULL;
    cr_assert_eq(tg_trainer_export(t, &m), TG_OK);
    tg_dataset all, train, test;
    cr_assert_eq(tg_dataset_from_table(table, tg_table_find(table, "progression"), &all), TG_OK);
    cr_assert_eq(tg_dataset_split(&all, o.test_split, o.seed, &train, &test), TG_OK);
    size_t d;
    const double *mean, *std;
    cr_assert_eq(tg_model_standardization(m, &d, &mean, &std), TG_OK);
    cr_assert_eq(d, test.d);
    tg_dataset_standardize(&test, mean, std);
    double *x = malloc(test.n * d * sizeof *x);
    tg_dataset_gather(&test, NULL, 0, test.n, TG_F64, x, NULL);
    const size_t shape[2] = {test.n, d};
    tg_tensor *xt = tg_tensor_wrap(TG_F64, 2, shape, x);
    tg_tape *tape = tg_tape_new();
    tg_tensor *p = tg_model_forward(tape, m, xt);
    cr_assert_not_null(p, "%s", tg_last_error());
    double ss = 0;
    for (size_t i = 0; i < test.n; i++)
        ss += (tg_tensor_get(p, i) - test.y[i]) * (tg_tensor_get(p, i) - test.y[i]);
    double rmse = sqrt(ss / (double)test.n);
    cr_assert(fabs(rmse - r.test.rmse) < 1e-9 * r.test.rmse, "%.12g vs %.12g", rmse, r.test.rmse);
    tg_tape_free(tape);
    tg_tensor_free(xt);
    free(x);
    tg_dataset_free(&all);
    tg_dataset_free(&train);
    tg_dataset_free(&test);
    tg_model_free(m);
    tg_trainer_free(t);
    tg_table_free(table);
}

/* ---- distributed: two ranks on two threads, gradients averaged by the hook ------------------ */

typedef struct allreduce {
    pthread_barrier_t barrier;
    double *slot[2];
    size_t numel;
} allreduce;

typedef struct rank_arg {
    allreduce *ar;
    int rank;
    const tg_table *table;
    tg_train_options opt;
    double *params; /* the final parameters */
    tg_status st;
    size_t calls;
} rank_arg;

static tg_status average(tg_model *model, void *grad, size_t numel, tg_dtype dtype, void *ud)
{
    (void)model;
    rank_arg *a = ud;
    cr_assert_eq(dtype, TG_F64);
    a->calls++;
    a->ar->slot[a->rank] = grad;
    pthread_barrier_wait(&a->ar->barrier);
    double *g = grad, *other = a->ar->slot[1 - a->rank];
    double *sum = malloc(numel * sizeof *sum);
    for (size_t i = 0; i < numel; i++)
        sum[i] = (g[i] + other[i]) / 2;
    pthread_barrier_wait(&a->ar->barrier); /* both have read both before either writes */
    memcpy(g, sum, numel * sizeof *sum);
    free(sum);
    return TG_OK;
}

static void *run_rank(void *p)
{
    rank_arg *a = p;
    tg_trainer *t = NULL;
    a->st = tg_trainer_new(a->table, "y", &a->opt, &t);
    if (a->st == TG_OK)
        a->st = tg_trainer_run(t, NULL);
    if (a->st == TG_OK) {
        size_t n = tg_model_numel(tg_trainer_model(t));
        a->params = malloc(n * sizeof(double));
        memcpy(a->params, tg_model_param_data(tg_trainer_model(t)), n * sizeof(double));
    }
    tg_trainer_free(t);
    return NULL;
}

Test(train, two_ranks_train_like_one_process_at_twice_the_batch)
{
    tg_set_num_threads(1);
    /* 163 training rows of 204: batches of 2 x 16 leave a last global batch of 3 rows, which
     * the ranks share 2 + 1, so the weighting of uneven shards is exercised. */
    char *csv = small_csv(204, true);
    tg_table *table = parse(csv);
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.dtype = TG_F64;
    o.epochs = 3;
    o.batch = 32;
    o.hidden[0] = 8;
    tg_trainer *one = make(table, "y", &o);
    cr_assert_eq(tg_trainer_run(one, NULL), TG_OK);
    tg_train_result r;
    tg_trainer_result(one, &r);
    cr_assert_eq(r.n_train % 32, 3);

    allreduce ar = {.numel = 0};
    pthread_barrier_init(&ar.barrier, NULL, 2);
    rank_arg args[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        args[k] = (rank_arg){&ar, k, table, o, NULL, TG_OK, 0};
        args[k].opt.batch = 16;
        args[k].opt.rank = k;
        args[k].opt.world = 2;
        args[k].opt.grad_hook = average;
        args[k].opt.grad_hook_ud = &args[k];
        pthread_create(&th[k], NULL, run_rank, &args[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    size_t n = tg_model_numel(tg_trainer_model(one));
    const double *p1 = tg_model_param_data(tg_trainer_model(one));
    size_t steps = (size_t)o.epochs * ((r.n_train + 31) / 32);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(args[k].st, TG_OK);
        cr_assert_eq(args[k].calls, steps);
        for (size_t i = 0; i < n; i++)
            cr_assert(fabs(args[k].params[i] - p1[i]) < 1e-10, "rank %d param %zu: %.17g vs %.17g",
                      k, i, args[k].params[i], p1[i]);
    }
    free(args[0].params);
    free(args[1].params);
    pthread_barrier_destroy(&ar.barrier);
    tg_trainer_free(one);
    tg_table_free(table);
    free(csv);
}

/* A last, partial global batch can still give a rank a whole batch of rows: 11 rows at 2 x 3
 * leave 5, shared 3 + 2, and rank 0's 3 rows are a full local batch. Each rank's steps are its
 * own here (no hook), so each trains alone. */
Test(train, a_last_shard_of_a_whole_batch_trains)
{
    tg_table *table = parse("a,y\n0,0\n1,2\n2,4\n3,6\n4,8\n5,10\n6,12\n7,14\n8,16\n9,18\n10,20\n");
    for (int rank = 0; rank < 2; rank++) {
        tg_train_options o = TG_TRAIN_OPTIONS_INIT;
        o.test_split = 0;
        o.batch = 3;
        o.epochs = 1;
        o.rank = rank;
        o.world = 2;
        tg_trainer *t = make(table, "y", &o);
        cr_assert_eq(tg_trainer_run(t, NULL), TG_OK, "rank %d: %s", rank, tg_last_error());
        tg_trainer_free(t);
    }
    tg_table_free(table);
}

/* ---- memory -----------------------------------------------------------------------------------
 */

Test(train, a_step_allocates_nothing)
{
    ts_alloc_install();
    tg_table *table = read_data("digits");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 3;
    o.clip_norm = 5;
    tg_trainer *t = make(table, "digit", &o);
    cr_assert_eq(tg_trainer_epoch(t, NULL), TG_OK); /* the tape grows to its size */
    size_t before = ts_alloc.allocs;
    cr_assert_eq(tg_trainer_epoch(t, NULL), TG_OK);
    cr_assert_eq(tg_trainer_epoch(t, NULL), TG_OK);
    cr_assert_eq(ts_alloc.allocs, before, "%zu allocations in two epochs",
                 ts_alloc.allocs - before);
    tg_trainer_free(t);
    tg_table_free(table);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
}

typedef struct oom_case {
    tg_table *table;
    tg_train_options o;
} oom_case;

static size_t oom_trainer_new(size_t n, void *ud)
{
    const oom_case *c = ud;
    tg_trainer *t = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_trainer_new(c->table, "y", &c->o, &t);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "trainer_new", n);
        cr_assert_null(t);
    }
    tg_trainer_free(t);
    return st != TG_OK;
}

Test(train, every_allocation_failure_is_reported)
{
    ts_alloc_install();
    char *csv = small_csv(50, true);
    oom_case c = {.table = parse(csv), .o = TG_TRAIN_OPTIONS_INIT};
    c.o.epochs = 1;
    /* Success means no allocation was refused. */
    ts_oom_drive("trainer_new", oom_trainer_new, &c,
                 (ts_oom_opts){.min_failing = 11, .no_fallback = true});
    tg_table_free(c.table);
    cr_assert_eq(ts_alloc.live, 0);
    ts_alloc_uninstall();
    free(csv);
}

/* ---- the recorded graph -----------------------------------------------------------------------
 */

Test(train, a_recorded_step_has_gradients)
{
    tg_table *table = parse("a,b,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,1\n6,1,0\n");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 1;
    tg_trainer *t = make(table, "y", &o);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_trainer_record(t, tape);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert(tg_tensor_item(loss) > 0);
    bool named_x = false;
    for (size_t i = 0; i < tg_tape_leaf_count(tape); i++) {
        const char *name = tg_tensor_name(tg_tape_leaf(tape, i));
        named_x |= name && strcmp(name, "x") == 0;
    }
    cr_assert(named_x);
    tg_model *m = tg_trainer_model(t);
    double norm = 0;
    for (size_t i = 0; i < tg_model_numel(m); i++)
        norm += fabs(((float *)tg_model_grad_data(m))[i]);
    cr_assert_gt(norm, 0);
    tg_tape_free(tape);
    tg_trainer_free(t);
    tg_table_free(table);
}

/* ==== the command: tapegrad train and tapegrad predict, as subprocesses ====================== */

/* Runs `tapegrad args...` from the source tree, stdin from /dev/null. */
#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

static tp_run run(const char *const *args)
{
    return tp_tapegrad(args, &(tp_opts){.cwd = tp_env("TG_SOURCE_DIR")});
}

static size_t count_lines(const char *s, const char *prefix)
{
    size_t n = 0;
    for (const char *p = s; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

/* ---- train ------------------------------------------------------------------------------------
 */

Test(train_cmd, json_on_digits_with_the_defaults)
{
    tp_run r = RUN("train", "examples/data/digits.csv", "--target", "digit", "--json");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.err, "", "--json prints nothing else: %s", r.err);
    tj v = tj_line(r.out);
    tj_expect_keys(
        &v, TJ_KEYS("task", "classes", "train", "test", "epochs", "seconds", "params", "dtype"));
    cr_assert_str_eq(tj_str_of(&v, "task"), "classify");
    cr_assert_eq(tj_num_of(&v, "classes"), 10);
    cr_assert_eq(tj_num_of(&v, "epochs"), 30);
    cr_assert_eq(tj_num_of(&v, "params"), 64 * 64 + 64 + 64 * 10 + 10);
    cr_assert_str_eq(tj_str_of(&v, "dtype"), "f32");
    cr_assert(tj_num_of(&v, "seconds") > 0);
    const tj *train = tj_get(&v, "train"), *test = tj_get(&v, "test");
    tj_expect_keys(train, TJ_KEYS("loss", "accuracy", "rows"));
    tj_expect_keys(test, TJ_KEYS("loss", "accuracy", "rows"));
    cr_assert_eq(tj_num_of(train, "rows") + tj_num_of(test, "rows"), 1797);
    cr_assert_geq(tj_num_of(test, "accuracy"), 0.96);
    cr_assert(tj_num_of(train, "loss") > 0 &&
              tj_num_of(train, "loss") < tj_num_of(test, "loss") + 1);
    tj_free(&v);
    tp_run_free(&r);
}

Test(train_cmd, text_output_and_one_progress_line_per_epoch)
{
    tp_run r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs",
                   "4", "--layers", "16,8", "--act", "tanh", "--optim", "momentum", "--seed", "3");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "target 'benign': classification, 2 classes");
    ts_assert_has(r.out, "model: 30 -> 16 tanh -> 8 tanh -> 2, ");
    ts_assert_has(r.out, "momentum, lr 0.05, 4 epochs of batch 32");
    ts_assert_has(r.out, "(seed 3)");
    cr_assert_eq(count_lines(r.out, "train: loss "), 1, "%s", r.out);
    cr_assert_eq(count_lines(r.out, "test:  loss "), 1, "%s", r.out);
    /* stderr is not a terminal here: one plain line per epoch, no bar */
    cr_assert_eq(count_lines(r.err, "epoch "), 4, "%s", r.err);
    ts_assert_has(r.err, "epoch 4/4  train loss ");
    cr_assert(!strchr(r.err, '\r') && !strchr(r.err, '\033'), "%s", r.err);
    tp_run_free(&r);
}

Test(train_cmd, regression_reports_rmse)
{
    tp_run r = RUN("train", "examples/data/diabetes.csv", "--target", "progression", "--json",
                   "--dtype", "f64", "--epochs", "20");
    tp_expect_status(&r, 0);
    tj v = tj_line(r.out);
    cr_assert_str_eq(tj_str_of(&v, "task"), "regress");
    cr_assert_eq(tj_num_of(&v, "classes"), 0);
    cr_assert_str_eq(tj_str_of(&v, "dtype"), "f64");
    cr_assert_eq(tj_num_of(&v, "params"), 10 * 64 + 64 + 64 + 1);
    tj_expect_keys(tj_get(&v, "train"), TJ_KEYS("loss", "rmse", "rows"));
    tj_expect_keys(tj_get(&v, "test"), TJ_KEYS("loss", "rmse", "rows"));
    double rmse = tj_num_of(tj_get(&v, "test"), "rmse");
    /* The target spreads about 77 around its mean: a model worth having does better. */
    cr_assert(rmse > 35 && rmse < 70, "test RMSE %g", rmse);
    tj_free(&v);
    tp_run_free(&r);

    r = RUN("train", "examples/data/diabetes.csv", "--target", "progression", "--epochs", "2",
            "--test-split", "0");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "regression");
    ts_assert_has(r.out, "RMSE ");
    cr_assert_eq(count_lines(r.out, "test:"), 0, "no test rows, no test line:\n%s", r.out);
    tp_run_free(&r);
}

Test(train_cmd, usage_errors_exit_2)
{
    struct {
        const char *args[9];
        const char *msg;
    } cases[] = {
        {{"train"}, "no data file given"},
        {{"train", "examples/data/digits.csv"}, "no target column given"},
        {{"train", "d.csv", "--target"}, "option '--target' needs a value"},
        {{"train", "d.csv", "--target", "y", "--epochs", "0"}, "--epochs must be an integer"},
        {{"train", "d.csv", "--target", "y", "--epochs", "3x"}, "--epochs must be an integer"},
        {{"train", "d.csv", "--target", "y", "--lr", "abc"}, "--lr must be a number > 0"},
        {{"train", "d.csv", "--target", "y", "--test-split", "1"}, "--test-split must be"},
        {{"train", "d.csv", "--target", "y", "--batch", "-4"}, "--batch must be an integer"},
        {{"train", "d.csv", "--target", "y", "--seed", "-1"}, "--seed must be an integer"},
        {{"train", "d.csv", "--target", "y", "--layers", "32,,8"}, "--layers: expected sizes"},
        {{"train", "d.csv", "--target", "y", "--layers", "0"}, "--layers: a layer size"},
        {{"train", "d.csv", "--target", "y", "--act", "softplus"}, "--act must be relu"},
        {{"train", "d.csv", "--target", "y", "--optim", "lbfgs"}, "--optim must be sgd"},
        {{"train", "d.csv", "--target", "y", "--task", "cluster"}, "--task must be auto"},
        {{"train", "d.csv", "--target", "y", "--dtype", "f16"}, "--dtype must be f32 or f64"},
        {{"train", "d.csv", "--target", "y", "--render", "g.txt"}, "cannot tell the format"},
        {{"train", "d.csv", "--target", "y", "--plot", "p.png"}, "--plot writes SVG"},
        {{"train", "d.csv", "--target", "y", "--plot", "svg"}, "--plot writes SVG"},
        {{"train", "d.csv", "--target", "y", "--frobnicate"}, "unknown option '--frobnicate'"},
        {{"train", "d.csv", "e.csv", "--target", "y"}, "one data file only"},
        {{"train", "d.csv", "--target", "y", "--checkpoint-every", "5"},
         "--checkpoint-every needs --checkpoint FILE"},
        {{"train", "d.csv", "--target", "y", "--save", "m.tgm", "--checkpoint", "./m.tgm"},
         "--save 'm.tgm' and --checkpoint './m.tgm' are one file: give each its own"},
        {{"train", "d.csv", "--target", "y", "--dot", "g.svg", "--render", "g.svg"},
         "--dot 'g.svg' and --render 'g.svg' are one file"},
        {{"train", "d.csv", "--target", "y", "--save", "./d.csv"},
         "--save './d.csv' would write over the data file it reads ('d.csv')"},
        {{"train", "d.csv", "--target", "y", "--checkpoint", "c", "--checkpoint-every",
          "99999999999999999999"},
         "--checkpoint-every must be an integer >= 1"},
        {{"predict", "m.tgm"}, "expected a model and a data file"},
        {{"predict", "-", "d.csv"},
         "the model must be a file: '-' (standard input) is for the data"},
        {{"predict", "m.tgm", "d.csv", "x"}, "unexpected argument 'x'"},
        {{"predict", "m.tgm", "d.csv", "--plot"}, "unknown option '--plot'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tp_run r = run(cases[i].args);
        tp_expect_status(&r, 2);
        ts_assert_has(r.err, cases[i].msg);
        ts_assert_has(r.err, "--help' for more information");
        cr_assert_str_eq(r.out, "");
        tp_run_free(&r);
    }
}

Test(train_cmd, failures_exit_1_with_the_reason)
{
    tp_run r = RUN("train", "no/such.csv", "--target", "y");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad train: ");
    ts_assert_has(r.err, "no/such.csv");
    tp_run_free(&r);

    r = RUN("train", "examples/data/digits.csv", "--target", "label", "--json");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad train: no column 'label'; the columns are: pixel_0_0, ");
    cr_assert_str_eq(r.out, "");
    tp_run_free(&r);

    r = RUN("train", "examples/data/breast_cancer.csv", "--target", "mean_radius", "--task",
            "classify");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad train: cannot classify: the target of data row 1 is 17.99");
    tp_run_free(&r);

    r = RUN("predict", "no/model.tgm", "examples/data/digits.csv");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "no/model.tgm");
    tp_run_free(&r);

    /* files that could not be written are refused before the training, not after it: no
     * progress line, nothing on stdout */
    const char *const unwritable[][2] = {{"--save", "no/dir/m.tgm"},
                                         {"--save", "examples"},
                                         {"--plot", "no/dir/p.svg"},
                                         {"--checkpoint", "examples"}};
    for (size_t i = 0; i < sizeof unwritable / sizeof *unwritable; i++) {
        r = RUN("train", "examples/data/digits.csv", "--target", "digit", unwritable[i][0],
                unwritable[i][1]);
        tp_expect_status(&r, 1);
        char want[128];
        snprintf(want, sizeof want, "tapegrad train: %s: cannot write '%s': ", unwritable[i][0],
                 unwritable[i][1]);
        ts_assert_has(r.err, want);
        ts_assert_lacks(r.err, "epoch");
        cr_assert_str_eq(r.out, "");
        tp_run_free(&r);
    }

    r = RUN("train", "--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad train DATA.csv --target COLUMN");
    tp_run_free(&r);
    r = RUN("--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "train");
    ts_assert_has(r.out, "predict");
    tp_run_free(&r);
}

/* --save, then predict on the same file: one prediction per row, the accuracy on stderr, and
 * the same predictions in JSON; a file that lacks a feature column is refused. */
Test(train_cmd, save_then_predict)
{
    char model[] = "/tmp/tg_train_model_XXXXXX";
    int fd = mkstemp(model);
    cr_assert(fd >= 0);
    close(fd);
    tp_run r = RUN("train", "examples/data/digits.csv", "--target", "digit", "--epochs", "10",
                   "--save", model);
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "saved: ");
    tp_run_free(&r);

    r = RUN("predict", model, "examples/data/digits.csv");
    tp_expect_status(&r, 0);
    cr_assert_eq(count_lines(r.out, ""), 1797);
    for (const char *p = r.out; *p; p = strchr(p, '\n') + 1)
        cr_assert(p[0] >= '0' && p[0] <= '9' && p[1] == '\n', "not a class: %.10s", p);
    ts_assert_has(r.err, "accuracy ");
    double acc = strtod(strstr(r.err, "accuracy ") + 9, NULL);
    /* 80% of the rows were trained on, 20% never seen */
    cr_assert(acc >= 0.96 && acc <= 1.0, "accuracy %g", acc);
    char *text = strdup(r.out);
    tp_run_free(&r);

    r = RUN("predict", model, "examples/data/digits.csv", "--json");
    tp_expect_status(&r, 0);
    tj v = tj_line(r.out);
    tj_expect_keys(&v, TJ_KEYS("task", "rows", "predictions", "accuracy"));
    cr_assert_eq(tj_num_of(&v, "rows"), 1797);
    const tj *pred = tj_get(&v, "predictions");
    cr_assert_eq(pred->n, 1797);
    const char *line = text;
    for (size_t i = 0; i < pred->n; i++, line = strchr(line, '\n') + 1)
        cr_assert_eq(pred->items[i].num, atof(line), "row %zu", i);
    cr_assert(fabs(tj_num_of(&v, "accuracy") - acc) < 1e-4);
    tj_free(&v);
    tp_run_free(&r);
    free(text);

    /* Without the target column: predictions only. Without a feature column: refused. With a
     * target that is no class of the model (12, in the fourth row): refused, as train would. */
    char csv[] = "/tmp/tg_train_csv_XXXXXX";
    fd = mkstemp(csv);
    FILE *f = fdopen(fd, "w");
    tg_table *table = read_data("digits");
    for (int drop = 0; drop < 3; drop++) {
        cr_assert_eq(ftruncate(fd, 0), 0);
        rewind(f);
        const char *skip = drop == 0 ? "digit" : drop == 1 ? "pixel_3_4" : "";
        bool first = true;
        for (size_t c = 0; c < tg_table_cols(table); c++)
            if (strcmp(tg_table_col_name(table, c), skip) != 0) {
                fprintf(f, "%s%s", first ? "" : ",", tg_table_col_name(table, c));
                first = false;
            }
        fputc('\n', f);
        for (size_t i = 0; i < 5; i++) {
            first = true;
            for (size_t c = 0; c < tg_table_cols(table); c++)
                if (strcmp(tg_table_col_name(table, c), skip) != 0) {
                    const bool bad = i == 3 && strcmp(tg_table_col_name(table, c), "digit") == 0;
                    fprintf(f, "%s%g", first ? "" : ",", bad ? 12.0 : tg_table_row(table, i)[c]);
                    first = false;
                }
            fputc('\n', f);
        }
        fflush(f);
        r = RUN("predict", model, csv);
        if (drop == 1) {
            tp_expect_status(&r, 1);
            ts_assert_has(r.err, "lacks the model's feature column 'pixel_3_4'");
        } else if (drop == 2) {
            tp_expect_status(&r, 1);
            ts_assert_has(r.err, "the target 'digit' of data row 4 is 12, not one of the model's "
                                 "classes (0 to 9)");
            cr_assert_str_eq(r.out, "", "nothing predicted");
        } else {
            tp_expect_status(&r, 0);
            cr_assert_eq(count_lines(r.out, ""), 5);
            cr_assert_str_eq(r.err, "", "no target, no score");
        }
        tp_run_free(&r);
    }
    fclose(f);
    tg_table_free(table);

    /* A damaged model file is refused. */
    f = fopen(model, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    r = RUN("predict", model, "examples/data/digits.csv");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad predict: model_load: ");
    tp_run_free(&r);
    unlink(csv);
    unlink(model);
}

/* A regression model predicts in the target's units. */
Test(train_cmd, predict_regression)
{
    char model[] = "/tmp/tg_train_model_XXXXXX";
    int fd = mkstemp(model);
    close(fd);
    tp_run r = RUN("train", "examples/data/diabetes.csv", "--target", "progression", "--save",
                   model, "--json");
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    r = RUN("predict", model, "examples/data/diabetes.csv", "--json");
    tp_expect_status(&r, 0);
    tj v = tj_line(r.out);
    tj_expect_keys(&v, TJ_KEYS("task", "rows", "predictions", "rmse"));
    cr_assert_str_eq(tj_str_of(&v, "task"), "regress");
    const tj *pred = tj_get(&v, "predictions");
    double mean = 0;
    for (size_t i = 0; i < pred->n; i++)
        mean += pred->items[i].num / (double)pred->n;
    cr_assert(mean > 120 && mean < 185, "mean prediction %g (the target's mean is 152)", mean);
    cr_assert(tj_num_of(&v, "rmse") < 65, "rmse %g", tj_num_of(&v, "rmse"));
    tj_free(&v);
    tp_run_free(&r);
    unlink(model);
}

/* ---- the picture and the graph ----------------------------------------------------------------
 */

/* Well-formed XML as far as an SVG writer can get it wrong: tags nest and close, attribute
 * values are quoted, and every '&' starts an entity. */
static void expect_well_formed(const char *s)
{
    const char *stack[64];
    size_t depth = 0, elements = 0;
    cr_assert(strncmp(s, "<?xml ", 6) == 0);
    for (const char *p = s; (p = strchr(p, '<')) != NULL;) {
        const char *end = strchr(p, '>');
        cr_assert_not_null(end, "unclosed tag");
        if (p[1] == '?') {
            p = end + 1;
            continue;
        }
        if (p[1] == '/') {
            cr_assert_gt(depth, 0, "close without open at %.30s", p);
            const char *open = stack[--depth];
            size_t n = strcspn(open + 1, " />");
            cr_assert(strncmp(open + 1, p + 2, n) == 0 && p[2 + n] == '>', "<%.*s> closed by %.20s",
                      (int)n, open + 1, p);
        } else if (end[-1] != '/') {
            cr_assert_lt(depth, 64);
            stack[depth++] = p;
        }
        elements++;
        size_t quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        cr_assert_eq(quotes % 2, 0, "unbalanced quotes in %.60s", p);
        p = end + 1;
    }
    cr_assert_eq(depth, 0, "unclosed elements");
    cr_assert_gt(elements, 50);
    for (const char *p = s; (p = strchr(p, '&')) != NULL; p++)
        cr_assert(strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                      strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&quot;", 6) == 0,
                  "bare '&' at %.20s", p);
}

Test(train_cmd, plot_writes_a_well_formed_svg)
{
    char dir[] = "/tmp/tg_train_plot_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char svg[4200], csv[4200];
    snprintf(svg, sizeof svg, "%s/curves.svg", dir);
    tp_run r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs",
                   "12", "--plot", svg);
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "plot:  ");
    tp_run_free(&r);
    char *text = tp_slurp(svg);
    expect_well_formed(text);
    ts_assert_has(text, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    /* two panels with titles, axis labels, a legend with train and test, 12 points a curve */
    ts_assert_has(text, ">Loss</text>");
    ts_assert_has(text, ">Accuracy</text>");
    ts_assert_has(text, ">epoch</text>");
    ts_assert_has(text, ">cross-entropy</text>");
    ts_assert_has(text, ">train</text>");
    ts_assert_has(text, ">test</text>");
    size_t polylines = 0, circles = 0;
    for (const char *p = text; (p = strstr(p, "<polyline")) != NULL; p++)
        polylines++;
    for (const char *p = text; (p = strstr(p, "<circle")) != NULL; p++)
        circles++;
    cr_assert_eq(polylines, 4);
    cr_assert_eq(circles, 4 * 12);
    free(text);

    /* Resumed from the checkpoint after epoch 9's last step: its curves have points for
     * epochs 9 (its scores, taken on resuming) to 12 only, on an axis of epochs 1 to 12 (the
     * skipped ones were once drawn at a loss and accuracy of 0) */
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs", "9",
            "--checkpoint", ckpt);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs", "12",
            "--resume", ckpt, "--plot", svg);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    text = tp_slurp(svg);
    expect_well_formed(text);
    circles = 0;
    for (const char *p = text; (p = strstr(p, "<circle")) != NULL; p++)
        circles++;
    cr_assert_eq(circles, 4 * 4);
    ts_assert_has(text, ">10</text>");
    free(text);
    unlink(ckpt);

    /* A regression plot, and a target name that needs escaping in the title. */
    snprintf(csv, sizeof csv, "%s/odd.csv", dir);
    FILE *f = fopen(csv, "w");
    fputs("x,\"a<b & \"\"c\"\"\"\n", f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "%d,%g\n", i, 0.5 * i + (i % 3));
    fclose(f);
    r = RUN("train", csv, "--target", "a<b & \"c\"", "--epochs", "3", "--plot", svg);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    text = tp_slurp(svg);
    expect_well_formed(text);
    ts_assert_has(text, "a&lt;b &amp; &quot;c&quot;");
    ts_assert_has(text, ">RMSE</text>");
    free(text);

    r = RUN("train", csv, "--target", "x", "--epochs", "1", "--plot", "/nonexistent/dir/p.svg");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "--plot: cannot write '/nonexistent/dir/p.svg'");
    tp_run_free(&r);
    unlink(svg);
    unlink(csv);
    rmdir(dir);
}

Test(train_cmd, dot_of_the_trained_network)
{
    char dot[] = "/tmp/tg_train_dot_XXXXXX";
    int fd = mkstemp(dot);
    close(fd);
    tp_run r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs",
                   "2", "--dot", dot);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    char *text = tp_slurp(dot);
    ts_assert_has(text, "digraph");
    ts_assert_has(text, "layer0.weight");
    ts_assert_has(text, "layer1.bias");
    ts_assert_has(text, "breast_cancer.csv: 30 -&gt; 64 relu -&gt; 2, one training step after 2 "
                        "epochs");
    ts_assert_has(text, "grad "); /* after backward, nodes show gradients */
    free(text);
    unlink(dot);
    /* --dot -: the graph alone on stdout, the results on stderr */
    r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs", "1",
            "--dot", "-");
    tp_expect_status(&r, 0);
    cr_assert_eq(strncmp(r.out, "digraph", 7), 0, "the graph alone on stdout:\n%.200s", r.out);
    cr_assert_null(strstr(r.out, "test:"), "results on stdout");
    ts_assert_has(r.err, "test:  loss");
    tp_run_free(&r);
    if (tg_dot_can_render()) {
        char dir[] = "/tmp/tg_train_graph_XXXXXX", svg[4200];
        cr_assert_not_null(mkdtemp(dir));
        snprintf(svg, sizeof svg, "%s/graph.svg", dir);
        r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs", "1",
                "--render", svg);
        tp_expect_status(&r, 0);
        ts_assert_has(r.out, "graph: ");
        text = tp_slurp(svg);
        ts_assert_has(text, "<svg");
        ts_assert_has(text, "layer0.weight");
        free(text);
        tp_run_free(&r);
        unlink(svg);
        rmdir(dir);
    }
}

/* --plot's and --dot's files are written as model files are: with a write that fails (any
 * file limited to 1024 bytes: dash's `ulimit -f 2`, SIGXFSZ ignored, so writes past it fail
 * with EFBIG), the old files stay as they were, with no temporary file beside them. */
Test(train_cmd, plot_and_dot_files_are_replaced_whole_or_not_at_all)
{
    char dir[] = "/tmp/tg_train_out_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char svg[4096], dot[4096], tool[4096];
    snprintf(svg, sizeof svg, "%s/p.svg", dir);
    snprintf(dot, sizeof dot, "%s/g.dot", dir);
    snprintf(tool, sizeof tool, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? dot : svg, "w");
        cr_assert_not_null(f);
        fputs("old\n", f);
        fclose(f);
    }
    const char *limited = "trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\"";
    for (int k = 0; k < 2; k++) {
        tp_run r = tp_run_argv(
            (const char *const[]){"/bin/sh", "-c", limited, tool, "train",
                                  "examples/data/breast_cancer.csv", "--target", "benign",
                                  "--epochs", "1", k ? "--dot" : "--plot", k ? dot : svg, NULL},
            &(tp_opts){.cwd = tp_env("TG_SOURCE_DIR")});
        tp_expect_status(&r, 1);
        ts_assert_has(r.err, k ? "tapegrad train: --dot: cannot write '"
                               : "tapegrad train: --plot: cannot write '");
        ts_assert_has(r.err, "File too large");
        tp_run_free(&r);
        char *text = tp_slurp(k ? dot : svg);
        cr_assert_str_eq(text, "old\n", "%s was changed", k ? "--dot" : "--plot");
        free(text);
    }
    /* And in full without the limit (both files are larger than it). */
    tp_run r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs",
                   "1", "--plot", svg, "--dot", dot);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    for (int k = 0; k < 2; k++) {
        char *text = tp_slurp(k ? dot : svg);
        cr_assert_gt(strlen(text), 1024);
        ts_assert_has(text, k ? "digraph" : "</svg>");
        free(text);
    }
    unlink(svg);
    unlink(dot);
    /* Names too long for "NAME.tmp-XXXXXX" (250 bytes and an extension): the temporary file
     * takes the name's place, for --plot (the command's writer) as for --save (the
     * library's), and both are probed before the training the same way. */
    char name[251];
    memset(name, 'm', 250);
    name[250] = '\0';
    snprintf(svg, sizeof svg, "%s/%s.svg", dir, name);
    snprintf(dot, sizeof dot, "%s/%s.tgm", dir, name);
    r = RUN("train", "examples/data/breast_cancer.csv", "--target", "benign", "--epochs", "1",
            "--plot", svg, "--save", dot);
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    cr_assert_eq(unlink(svg), 0, "--plot wrote no %s", svg);
    cr_assert_eq(unlink(dot), 0, "--save wrote no %s", dot);
    cr_assert_eq(rmdir(dir), 0, "a file was left in %s", dir);
}

/* ---- what must never pass silently ------------------------------------------------------------
 */

/* One full-batch SGD step at lr 1e20: the loss of the step itself is finite (it is computed
 * before the update), the parameters after it are not. The run must fail and save nothing,
 * and a model that goes non-finite on the data predicts nothing. */
Test(train_cmd, divergence_on_the_last_step_exits_1_and_saves_nothing, .timeout = 120)
{
    char dir[] = "/tmp/tg_diverge_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char model[64];
    snprintf(model, sizeof model, "%s/m.tgm", dir);
    tp_run r = RUN("train", "examples/data/digits.csv", "--target", "digit", "--optim", "sgd",
                   "--lr", "1e20", "--batch", "2000", "--epochs", "1", "--save", model);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "after the last step (diverging: try a smaller learning rate)");
    cr_expect_neq(access(model, F_OK), 0, "a diverged model was saved");
    tp_run_free(&r);
    rmdir(dir);
}

/* DATA.csv '-' is standard input, for train and for predict: the same rows piped in train as
 * from the file, and predict gives the file's predictions; not with --distributed. */
Test(train_cmd, data_from_standard_input)
{
    char dir[] = "/tmp/tg_stdin_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char model[64], data[64];
    snprintf(data, sizeof data, "%s/d.csv", dir);
    snprintf(model, sizeof model, "%s/m.tgm", dir);
    char text[2048] = "a,b,y\n";
    size_t len = strlen(text);
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%d,%d,%d\n", i % 7, (i * 3) % 5,
                                (i % 7 + (i * 3) % 5) % 2);
    FILE *f = fopen(data, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    const char *const piped[] = {"train", "-", "--target", "y", "--json", "--save", model, NULL};
    tp_run r = tp_tapegrad(piped, &(tp_opts){.stdin_text = text});
    tp_expect_status(&r, 0);
    tp_run from_file = RUN("train", data, "--target", "y", "--json");
    tp_expect_status(&from_file, 0);
    /* the same losses (the JSON up to its timing) */
    cr_expect_eq(strncmp(r.out, from_file.out, (size_t)(strstr(r.out, "\"seconds\"") - r.out)), 0,
                 "%s\nagainst\n%s", r.out, from_file.out);
    tp_run_free(&from_file);
    tp_run_free(&r);
    const char *const predict[] = {"predict", model, "-", NULL};
    r = tp_tapegrad(predict, &(tp_opts){.stdin_text = text});
    tp_expect_status(&r, 0);
    tp_run direct = RUN("predict", model, data);
    tp_expect_status(&direct, 0);
    cr_expect_str_eq(r.out, direct.out);
    tp_run_free(&direct);
    tp_run_free(&r);
    r = RUN("train", "-", "--target", "y", "--distributed");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "--distributed reads DATA.csv on every rank: not '-'");
    tp_run_free(&r);
    unlink(model);
    unlink(data);
    rmdir(dir);
}

/* --save with a target the f32 model could not hold (1e9 + 2x: spaced 64 apart there) fails
 * before training, not after every epoch has run: nothing printed, nothing saved. */
Test(train_cmd, save_refuses_an_unresolvable_f32_target_before_training)
{
    char dir[] = "/tmp/tg_save_f32_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char model[64], data[64];
    snprintf(data, sizeof data, "%s/d.csv", dir);
    snprintf(model, sizeof model, "%s/m.tgm", dir);
    FILE *f = fopen(data, "w");
    cr_assert(f);
    fputs("x,y\n", f);
    for (int i = 0; i < 60; i++)
        fprintf(f, "%d,%d\n", i, 1000000000 + 2 * i);
    fclose(f);
    tp_run r = RUN("train", data, "--target", "y", "--save", model);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "--save: trainer_export: an f32 model cannot predict this target");
    cr_expect_str_eq(r.out, "", "it trained first");
    cr_expect_neq(access(model, F_OK), 0);
    tp_run_free(&r);
    unlink(data);
    rmdir(dir);
}

/* A feature of 1e300 does not fit f32; in f64, features of +-1e308 drive the relu units, and
 * then the logits, past the largest double (at this seed, to +inf). Either way predict fails,
 * rather than print class 0 for the row. The CSV is rewritten for each model. */
Test(train_cmd, predict_refuses_outputs_that_are_not_finite, .timeout = 120)
{
    char dir[] = "/tmp/tg_predict_nf_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char model[64], data[64];
    snprintf(data, sizeof data, "%s/d.csv", dir);
    static const char *const dtypes[2] = {"f32", "f64"};
    for (int d = 0; d < 2; d++) {
        FILE *f = fopen(data, "w");
        cr_assert(f);
        fputs("a,b,y\n", f);
        for (int i = 0; i < 40; i++)
            fprintf(f, "%d,%d,%d\n", i % 7, (i * 3) % 5, i % 2);
        fclose(f);
        snprintf(model, sizeof model, "%s/m_%s.tgm", dir, dtypes[d]);
        tp_run r = RUN("train", data, "--target", "y", "--epochs", "2", "--dtype", dtypes[d],
                       "--save", model);
        tp_expect_status(&r, 0);
        tp_run_free(&r);
        f = fopen(data, "a");
        cr_assert(f);
        fputs(d == 0 ? "1e300,1,0\n" : "1e308,-1e308,0\n", f); /* f64: relu units overflow */
        fclose(f);
        r = RUN("predict", model, data);
        tp_expect_status(&r, 1);
        ts_assert_has(r.err, "row 40"); /* 0-based: the 41st data row */
        ts_assert_has(r.err, d == 0 ? "does not fit the model's f32" : "the model's output is");
        tp_run_free(&r);
    }
}

/* The step callback may read the trainer, not run or move it: in the middle of an epoch each of
 * those calls is refused, and the run goes on as if none had been made (the last epoch's history
 * slot was written past its end when on_step moved the trainer to the end). */
static tg_status move_from_step(tg_trainer *t, int epoch, size_t batch, void *ud)
{
    (void)epoch, (void)batch;
    int *refused = ud;
    tg_train_epoch e;
    tg_status st[] = {tg_trainer_set_epoch(t, 1), tg_trainer_set_position(t, 0, 1),
                      tg_trainer_epoch(t, &e), tg_trainer_run(t, NULL),
                      tg_trainer_restore(t, "/nonexistent", NULL)};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        cr_assert_eq(st[i], TG_EINVAL, "call %zu", i);
        ts_assert_has(tg_last_error(), "the trainer is in the middle of an epoch");
        *refused += 1;
    }
    tg_clear_error();
    return TG_OK;
}

Test(train, the_step_callback_cannot_run_or_move_the_trainer)
{
    char *csv = small_csv(40, true);
    tg_table *table = parse(csv);
    free(csv);
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 1, o.batch = 8, o.n_hidden = 1, o.hidden[0] = 4;
    int refused = 0;
    o.on_step = move_from_step, o.on_step_ud = &refused;
    tg_trainer *t = make(table, "y", &o);
    tg_train_result r;
    cr_assert_eq(tg_trainer_run(t, &r), TG_OK, "%s", tg_last_error());
    cr_expect_eq(refused, 5 * 4, "four steps of 8 rows (32 training rows), five calls each");
    size_t n = 0;
    const tg_train_epoch *h = tg_trainer_history(t, &n);
    cr_expect_eq(n, 1);
    cr_expect_eq(h[0].epoch, 1);
    cr_expect_eq(tg_trainer_epoch_index(t), 1);
    /* Between epochs the same calls work. */
    cr_expect_eq(tg_trainer_set_epoch(t, 0), TG_OK, "%s", tg_last_error());
    tg_trainer_free(t);
    tg_table_free(table);
}

/* A test row far outside the training rows (a target of 1e300 where the others are 0 and 1)
 * overflows the test loss of a model that trains finely: said so, not called a divergence. */
Test(train, a_test_row_far_outside_the_training_rows_is_named_as_such)
{
    tg_table *table = parse("a,y\n1,0\n2,1\n3,1e300\n4,0\n");
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 1;
    tg_trainer *t = make(table, "y", &o);
    cr_assert_eq(tg_trainer_run(t, NULL), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "the loss on the test split is inf after the last step, where "
                                   "the training split's is");
    ts_assert_has(tg_last_error(), "some test rows lie so far outside the training rows");
    tg_trainer_free(t);
    tg_table_free(table);
}

/* A FIFO as the model or the checkpoint to resume: refused at once (it has no writer, and
 * opening it for reading would wait for one forever). */
Test(train_cmd, a_fifo_as_a_model_or_checkpoint_is_refused, .timeout = 60)
{
    char dir[] = "/tmp/tg_fifo_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/f", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    tp_run r = RUN("predict", fifo, "examples/data/digits.csv");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "not a regular file");
    tp_run_free(&r);
    r = RUN("train", "examples/data/digits.csv", "--target", "digit", "--epochs", "1",
            "--resume", fifo);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "not a regular file");
    tp_run_free(&r);
    unlink(fifo);
    rmdir(dir);
}

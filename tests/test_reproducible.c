/* test_reproducible.c: training is a pure function of its seed. The digits pipeline of
 * examples/digits.c (read, split, standardize, an MLP 64 -> 32 tanh -> 10 trained by Adam on
 * shuffled mini-batches with cross-entropy) is run several times with one seed; the
 * parameters must come out bit for bit the same (XXH3-64 of all parameter bytes), run after
 * run and with 1 or 2 threads (tg_set_num_threads): the library promises that a parallel
 * split depends only on the problem size and the thread count, and its kernels give every
 * output element the same summation order whatever the split. When two runs differ, the
 * message names every parameter tensor that differs and its first differing element. The
 * library's own loop (tg_trainer, tapegrad/train.h) is held to the same. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "support/proc.h"

#define SEED 42
#define EPOCHS 8
#define BATCH 32
#define HIDDEN 32
#define CLASSES 10

typedef struct run {
    uint64_t hash;                            /* all parameter bytes */
    uint64_t param_hash[2 * TG_MLP_MAX_LAYERS]; /* each parameter tensor */
    float *params;                            /* a copy, for the first difference */
    size_t numel;
    double loss;                              /* the last epoch's summed loss */
    size_t batches;                           /* per epoch */
} run;

static void ok(tg_status st, const char *what)
{
    cr_assert_eq(st, TG_OK, "%s: %s", what, tg_last_error());
}

/* examples/data/digits.csv, read (the caller frees it). */
static tg_table *read_digits(void)
{
    const char *root = tp_env("TG_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/data/digits.csv", root);
    tg_table *table = NULL;
    ok(tg_table_read_csv(path, &table), "reading digits.csv");
    return table;
}

static void train_digits(int threads, tg_dtype dtype, run *out)
{
    ok(tg_set_num_threads(threads), "threads");
    tg_table *table = read_digits();
    size_t target = tg_table_find(table, "digit");
    tg_dataset all, train, test;
    ok(tg_dataset_from_table(table, target, &all), "data set");
    ok(tg_dataset_split(&all, 0.2, SEED, &train, &test), "split");
    size_t d = train.d;
    double *mean = malloc(d * sizeof *mean), *std = malloc(d * sizeof *std);
    ok(tg_dataset_stats(&train, mean, std), "stats");
    tg_dataset_standardize(&train, mean, std);

    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = d;
    spec.sizes[1] = HIDDEN;
    spec.sizes[2] = CLASSES;
    spec.act[0] = TG_ACT_TANH;
    spec.act[1] = TG_ACT_IDENTITY;
    spec.dtype = dtype;
    tg_rng rng;
    tg_rng_seed(&rng, SEED);
    tg_model *model = NULL;
    ok(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &model), "model");
    tg_tensor *params[2 * TG_MLP_MAX_LAYERS];
    size_t n_params = tg_model_param_count(model);
    for (size_t i = 0; i < n_params; i++)
        params[i] = tg_model_param(model, i);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = 0.005;
    opt.weight_decay = 1e-3;
    tg_optim *optim = NULL;
    ok(tg_optim_new(&opt, params, n_params, &optim), "optimizer");

    size_t es = tg_dtype_size(dtype);
    void *xb = malloc(BATCH * d * es), *yb = malloc(BATCH * es);
    size_t *perm = malloc(train.n * sizeof *perm);
    tg_tape *tape = tg_tape_new();
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        tg_shuffle(perm, train.n, &rng);
        out->loss = 0;
        for (size_t b = 0; b < train.n; b += BATCH) {
            size_t count = train.n - b < BATCH ? train.n - b : BATCH;
            tg_dataset_gather(&train, perm, b, count, dtype, xb, yb);
            const size_t xs[2] = {count, d}, ys[1] = {count};
            tg_tensor *x = tg_tensor_wrap(dtype, 2, xs, xb);
            tg_tensor *y = tg_tensor_wrap(dtype, 1, ys, yb);
            tg_tensor *loss = tg_cross_entropy(tape, tg_model_forward(tape, model, x), y);
            ok(tg_tape_status(tape), "recording");
            ok(tg_backward(tape, loss), "backward");
            ok(tg_optim_step(optim), "step");
            out->loss += tg_tensor_item(loss);
            out->batches += epoch == 0;
            tg_model_zero_grad(model);
            tg_tape_reset(tape);
            tg_tensor_free(x);
            tg_tensor_free(y);
        }
    }

    out->numel = tg_model_numel(model);
    out->hash = XXH3_64bits(tg_model_param_data(model), out->numel * es);
    out->params = malloc(out->numel * es);
    memcpy(out->params, tg_model_param_data(model), out->numel * es);
    for (size_t i = 0; i < n_params; i++)
        out->param_hash[i] = XXH3_64bits(tg_tensor_data(params[i]),
                                          tg_tensor_numel(params[i]) * es);
    tg_tape_free(tape);
    tg_optim_free(optim);
    tg_model_free(model);
    tg_dataset_free(&all);
    tg_dataset_free(&train);
    tg_dataset_free(&test);
    tg_table_free(table);
    free(xb);
    free(yb);
    free(perm);
    free(mean);
    free(std);
    ok(tg_set_num_threads(1), "threads");
}

static const char *const NAMES[4] = {"layer0.weight", "layer0.bias", "layer1.weight",
                                     "layer1.bias"};

/* Equal hashes, or a message naming each parameter that differs and where. */
static void assert_same(const run *a, const run *b, tg_dtype dtype, const char *what)
{
    if (a->hash == b->hash) {
        cr_assert_eq(memcmp(a->params, b->params, a->numel * tg_dtype_size(dtype)), 0);
        return;
    }
    char msg[2048];
    size_t len = (size_t)snprintf(msg, sizeof msg, "%s: parameters differ (XXH3-64 %016llx vs "
                                  "%016llx, last-epoch loss %.17g vs %.17g):",
                                  what, (unsigned long long)a->hash,
                                  (unsigned long long)b->hash, a->loss, b->loss);
    const size_t sizes[4] = {64 * HIDDEN, HIDDEN, HIDDEN * CLASSES, CLASSES};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        if (a->param_hash[i] != b->param_hash[i] && len < sizeof msg) {
            size_t j = 0;
            double va = 0, vb = 0;
            for (; j < sizes[i]; j++) {
                if (dtype == TG_F32) {
                    va = ((float *)a->params)[off + j], vb = ((float *)b->params)[off + j];
                } else {
                    va = ((double *)a->params)[off + j], vb = ((double *)b->params)[off + j];
                }
                if (memcmp(&va, &vb, sizeof va) != 0)
                    break;
            }
            len += (size_t)snprintf(msg + len, sizeof msg - len,
                                    " %s (first at element %zu: %.9g vs %.9g);", NAMES[i], j,
                                    va, vb);
        }
        off += sizes[i];
    }
    cr_assert_fail("%s", msg);
}

static void check(tg_dtype dtype)
{
    run first = {0}, again = {0}, two = {0};
    train_digits(1, dtype, &first);
    train_digits(1, dtype, &again);
    assert_same(&first, &again, dtype, "two runs on 1 thread");
    train_digits(2, dtype, &two);
    assert_same(&first, &two, dtype, "1 thread vs 2 threads");
    /* Training did something: a different seed would not give these bytes, but a broken
     * pipeline could give equal hashes of unchanged parameters. */
    double mean_loss = first.loss / (double)first.batches;
    cr_assert_lt(mean_loss, 0.2, "the model learned (mean loss %g)", mean_loss);
    fprintf(stderr, "reproducible: digits %s, %d epochs: parameters XXH3-64 %016llx on 1 and 2 "
            "threads, twice\n", tg_dtype_name(dtype), EPOCHS, (unsigned long long)first.hash);
    free(first.params);
    free(again.params);
    free(two.params);
}

/* The same through the library's training loop (tapegrad/train.h), with its defaults. */
static uint64_t train_with_trainer(int threads, const tg_table *table, tg_dtype dtype,
                                   double *accuracy)
{
    ok(tg_set_num_threads(threads), "threads");
    tg_train_options opt = TG_TRAIN_OPTIONS_INIT;
    opt.epochs = EPOCHS;
    opt.dtype = dtype;
    tg_trainer *trainer = NULL;
    ok(tg_trainer_new(table, "digit", &opt, &trainer), "trainer");
    tg_train_result result;
    ok(tg_trainer_run(trainer, &result), "training");
    *accuracy = result.test.accuracy;
    tg_model *m = tg_trainer_model(trainer);
    uint64_t h = XXH3_64bits(tg_model_param_data(m), tg_model_numel(m) * tg_dtype_size(dtype));
    tg_trainer_free(trainer);
    ok(tg_set_num_threads(1), "threads");
    return h;
}

Test(reproducible, digits_trainer)
{
    tg_table *table = read_digits();
    for (tg_dtype dt = TG_F32; dt <= TG_F64; dt++) {
        double acc[3];
        uint64_t first = train_with_trainer(1, table, dt, &acc[0]);
        uint64_t again = train_with_trainer(1, table, dt, &acc[1]);
        uint64_t two = train_with_trainer(2, table, dt, &acc[2]);
        cr_assert_eq(first, again, "%s: two runs on 1 thread: %016llx vs %016llx",
                     tg_dtype_name(dt), (unsigned long long)first, (unsigned long long)again);
        cr_assert_eq(first, two, "%s: 1 thread vs 2 threads: %016llx vs %016llx",
                     tg_dtype_name(dt), (unsigned long long)first, (unsigned long long)two);
        cr_assert(acc[0] == acc[1] && acc[0] == acc[2]);
        cr_assert_gt(acc[0], 0.9, "%s: test accuracy %g", tg_dtype_name(dt), acc[0]);
        fprintf(stderr, "reproducible: tg_trainer on digits %s, %d epochs: parameters XXH3-64 "
                "%016llx on 1 and 2 threads, twice (test accuracy %.4f)\n",
                tg_dtype_name(dt), EPOCHS, (unsigned long long)first, acc[0]);
    }
    tg_table_free(table);
}

Test(reproducible, digits_f32)
{
    check(TG_F32);
}

Test(reproducible, digits_f64)
{
    check(TG_F64);
}

/* breast_cancer.c: benign or malignant, from 30 measurements of cell nuclei: binary
 * classification by an MLP 30 -> 16 (tanh) -> 1 that outputs a logit z, trained with binary
 * cross-entropy on logits (exact for any z, no sigmoid-then-log) and Adam.
 *
 *   breast_cancer [DATA.csv]   defaults to examples/data/breast_cancer.csv (source tree) */
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SEED 42
#define EPOCHS 40
#define BATCH 32
#define HIDDEN 16
#define LR 0.003

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "breast_cancer: %s: %s\n", what, tg_last_error());
        exit(1);
    }
}

static double seconds(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "examples/data/breast_cancer.csv";
    double start = seconds();

    /* ---- data: read, split 80/20, standardize with the training split's statistics ---- */
    tg_table *table = NULL;
    check(tg_table_read_csv(path, &table), "reading the data");
    size_t target = tg_table_find(table, "benign");
    if (target == (size_t)-1)
        check(tg_last_status(), "finding the target column");
    tg_dataset all, train, test;
    check(tg_dataset_from_table(table, target, &all), "making the data set");
    tg_table_free(table);
    check(tg_dataset_split(&all, 0.2, SEED, &train, &test), "splitting");
    tg_dataset_free(&all);
    size_t d = train.d;
    double *mean = malloc(d * sizeof *mean), *std = malloc(d * sizeof *std);
    if (!mean || !std)
        check(TG_ENOMEM, "allocating statistics");
    /* The measurements range from 0.001 (smoothness) to 4000 (area): unscaled, the large
     * ones would dominate the first layer. */
    check(tg_dataset_stats(&train, mean, std), "computing statistics");
    tg_dataset_standardize(&train, mean, std); /* the test rows stay raw: see the evaluation */
    printf("breast_cancer: %zu training and %zu test cases of %zu features\n", train.n, test.n,
           d);

    /* ---- the model: one logit per case; sigmoid(z) is the probability of "benign" ---- */
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = d;
    spec.sizes[1] = HIDDEN;
    spec.sizes[2] = 1;
    spec.act[0] = TG_ACT_TANH;
    spec.act[1] = TG_ACT_IDENTITY;
    tg_rng rng;
    tg_rng_seed(&rng, SEED);
    tg_model *model = NULL;
    check(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &model), "building the model");
    check(tg_model_set_standardization(model, d, mean, std), "storing the statistics");
    /* Two classes from one logit: a prediction is class 1 when z > 0 (sigmoid(z) > 0.5). */
    check(tg_model_set_task(model, TG_TASK_CLASSIFY, 2), "storing the task");
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = LR;
    tg_optim *optim = NULL;
    check(tg_model_optim_new(&opt, model, &optim), "making the optimizer");

    /* ---- mini-batches ---- */
    /* Targets are wrapped as (rows, 1), the logits' shape: a flat (rows) target would
     * broadcast against (rows, 1) to a (rows, rows) loss. */
    float *xb = malloc(BATCH * d * sizeof *xb), *yb = malloc(BATCH * sizeof *yb);
    size_t *perm = malloc(train.n * sizeof *perm);
    if (!xb || !yb || !perm)
        check(TG_ENOMEM, "allocating batches");
    tg_tape *tape = tg_tape_new();
    if (!tape)
        check(tg_last_status(), "making the tape");

    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        tg_shuffle(perm, train.n, &rng);
        double loss_sum = 0;
        for (size_t b = 0; b < train.n; b += BATCH) {
            size_t count = train.n - b < BATCH ? train.n - b : BATCH;
            tg_dataset_gather(&train, perm, b, count, TG_F32, xb, yb);
            /* Wrapping is a small handle around our buffer, no copy; made per batch here
             * for brevity (digits.c shows how to make them once). */
            size_t xs[2] = {count, d}, ys[2] = {count, 1};
            tg_tensor *x = tg_tensor_wrap(TG_F32, 2, xs, xb);
            tg_tensor *y = tg_tensor_wrap(TG_F32, 2, ys, yb);

            tg_tensor *z = tg_model_forward(tape, model, x);
            tg_tensor *loss = tg_bce_logits(tape, z, y);
            check(tg_tape_status(tape), "recording the step");
            check(tg_backward(tape, loss), "backward");
            check(tg_optim_step(optim), "updating");
            loss_sum += tg_tensor_item(loss) * (double)count;
            tg_model_zero_grad(model);
            tg_tape_reset(tape);
            tg_tensor_free(x);
            tg_tensor_free(y);
        }
        if (epoch == 1 || epoch % 10 == 0)
            printf("epoch %2d  training loss %.4f\n", epoch, loss_sum / (double)train.n);
    }

    /* ---- evaluation: the raw test rows, standardized by the model's statistics; class 1
     * (z > 0, sigmoid(z) > 0.5) is "benign" ---- */
    double *classes = malloc(test.n * sizeof *classes);
    if (!classes)
        check(TG_ENOMEM, "allocating the predictions");
    check(tg_model_predict(model, test.x, test.n, d, classes, test.n), "predicting");
    size_t correct = 0, tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < test.n; i++) {
        bool predicted = classes[i] == 1, actual = test.y[i] > 0.5;
        correct += predicted == actual;
        tp += predicted && actual;
        fp += predicted && !actual;
        fn += !predicted && actual;
    }
    printf("test accuracy: %.4f (%zu of %zu; benign: %zu right, %zu missed, %zu false)\n",
           (double)correct / (double)test.n, correct, test.n, tp, fn, fp);
    printf("wall time: %.3f s\n", seconds() - start);

    tg_tape_free(tape);
    tg_optim_free(optim);
    tg_model_free(model);
    tg_dataset_free(&train);
    tg_dataset_free(&test);
    free(classes);
    free(xb);
    free(yb);
    free(perm);
    free(mean);
    free(std);
    return 0;
}

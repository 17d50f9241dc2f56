/* diabetes.c: regression. Predict disease progression one year on from ten baseline
 * variables (age, sex, body mass index, blood pressure, six blood serum measurements) with a
 * small MLP 10 -> 8 (tanh) -> 1 trained on mean squared error with Adam; report the test RMSE
 * in the target's own units and R^2, the share of the target's variance explained.
 *
 *   diabetes [DATA.csv]   defaults to examples/data/diabetes.csv (source tree) */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SEED 42
#define EPOCHS 60
#define BATCH 32
#define HIDDEN 8
#define LR 0.003
#define WEIGHT_DECAY 1e-1 /* 350 training rows: keep the weights modest */

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "diabetes: %s: %s\n", what, tg_last_error());
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
    const char *path = argc > 1 ? argv[1] : "examples/data/diabetes.csv";
    double start = seconds();

    /* ---- data: read, split 80/20, standardize with the training split's statistics ---- */
    tg_table *table = NULL;
    check(tg_table_read_csv(path, &table), "reading the data");
    size_t target = tg_table_find(table, "progression");
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
    check(tg_dataset_stats(&train, mean, std), "computing statistics");
    tg_dataset_standardize(&train, mean, std); /* the test rows stay raw: see the evaluation */

    /* The target (25..346) is scaled the same way, from the training split: the network
     * then predicts numbers near 0 with unit spread, which suits its initial weights and one
     * learning rate for all layers. Predictions are scaled back before they are scored. */
    double y_mean = 0, y_std = 0;
    for (size_t i = 0; i < train.n; i++)
        y_mean += train.y[i];
    y_mean /= (double)train.n;
    for (size_t i = 0; i < train.n; i++)
        y_std += (train.y[i] - y_mean) * (train.y[i] - y_mean);
    y_std = sqrt(y_std / (double)train.n);
    for (size_t i = 0; i < train.n; i++)
        train.y[i] = (train.y[i] - y_mean) / y_std;
    printf("diabetes: %zu training and %zu test patients, %zu features\n", train.n, test.n, d);

    /* ---- the model ---- */
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
    check(tg_model_set_task(model, TG_TASK_REGRESS, 0), "storing the task");
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = LR;
    opt.weight_decay = WEIGHT_DECAY;
    tg_optim *optim = NULL;
    check(tg_model_optim_new(&opt, model, &optim), "making the optimizer");

    /* ---- mini-batches: targets as (rows, 1), the predictions' shape ---- */
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
            size_t xs[2] = {count, d}, ys[2] = {count, 1};
            tg_tensor *x = tg_tensor_wrap(TG_F32, 2, xs, xb);
            tg_tensor *y = tg_tensor_wrap(TG_F32, 2, ys, yb);

            tg_tensor *pred = tg_model_forward(tape, model, x);
            tg_tensor *loss = tg_mse(tape, pred, y);
            check(tg_tape_status(tape), "recording the step");
            check(tg_backward(tape, loss), "backward");
            check(tg_optim_step(optim), "updating");
            loss_sum += tg_tensor_item(loss) * (double)count;
            tg_model_zero_grad(model);
            tg_tape_reset(tape);
            tg_tensor_free(x);
            tg_tensor_free(y);
        }
        if (epoch == 1 || epoch % 20 == 0)
            printf("epoch %2d  training MSE %.4f (in units of the target's variance)\n", epoch,
                   loss_sum / (double)train.n);
    }

    /* ---- evaluation in the target's units: the raw test rows, standardized by the model's
     * statistics, give predictions of the standardized target ---- */
    double *p = malloc(test.n * sizeof *p);
    if (!p)
        check(TG_ENOMEM, "allocating the predictions");
    check(tg_model_predict(model, test.x, test.n, d, p, test.n), "predicting");
    /* R^2 = 1 - SS_res / SS_tot, SS_tot about the test set's own mean: 0 is no better than
     * predicting that mean, 1 is perfect. */
    double test_mean = 0, ss_res = 0, ss_tot = 0;
    for (size_t i = 0; i < test.n; i++)
        test_mean += test.y[i];
    test_mean /= (double)test.n;
    for (size_t i = 0; i < test.n; i++) {
        double yhat = p[i] * y_std + y_mean;
        ss_res += (test.y[i] - yhat) * (test.y[i] - yhat);
        ss_tot += (test.y[i] - test_mean) * (test.y[i] - test_mean);
    }
    printf("test RMSE: %.2f (the target's spread: %.2f)\n", sqrt(ss_res / (double)test.n),
           sqrt(ss_tot / (double)test.n));
    printf("test R^2: %.4f\n", 1.0 - ss_res / ss_tot);
    printf("wall time: %.3f s\n", seconds() - start);

    tg_tape_free(tape);
    tg_optim_free(optim);
    tg_model_free(model);
    tg_dataset_free(&train);
    tg_dataset_free(&test);
    free(p);
    free(xb);
    free(yb);
    free(perm);
    free(mean);
    free(std);
    return 0;
}

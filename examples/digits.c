/* digits.c: handwritten digits (8x8 images, 64 pixel intensities) classified by an MLP
 * 64 -> 32 (tanh) -> 10 trained with categorical cross-entropy and Adam on mini-batches: the
 * whole supervised pipeline of the library, from a CSV file to a test accuracy.
 *
 *   digits [DATA.csv [MODEL]]   the data default to examples/data/digits.csv (run from the
 *                               source tree); with MODEL, the trained model is saved there,
 *                               with the standardization, so `tapegrad predict` can use it */
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SEED 42       /* one seed for the split, the initial weights and the shuffles */
#define EPOCHS 30
#define BATCH 32
#define HIDDEN 32
#define CLASSES 10
#define LR 0.005
#define WEIGHT_DECAY 1e-3 /* a little L2 keeps weights on rarely-inked pixels small */

/* Reports a failed library call with the library's own message and stops. A library never
 * exits; a small program may. */
static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "digits: %s: %s\n", what, tg_last_error());
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
    const char *path = argc > 1 ? argv[1] : "examples/data/digits.csv";
    double start = seconds();

    /* ---- data: read, split 80/20, standardize with the training split's statistics ---- */
    tg_table *table = NULL;
    check(tg_table_read_csv(path, &table), "reading the data");
    size_t target = tg_table_find(table, "digit");
    if (target == (size_t)-1)
        check(tg_last_status(), "finding the target column");
    tg_dataset all, train, test;
    check(tg_dataset_from_table(table, target, &all), "making the data set");
    check(tg_dataset_split(&all, 0.2, SEED, &train, &test), "splitting");
    tg_dataset_free(&all);
    size_t d = train.d;
    double *mean = malloc(d * sizeof *mean), *std = malloc(d * sizeof *std);
    if (!mean || !std)
        check(TG_ENOMEM, "allocating statistics");
    /* The statistics come from the training rows only: the test set stays unseen. Pixels
     * that never vary in training keep std 1 (they are only centred). The test rows stay raw:
     * tg_model_predict scales them with the statistics the model stores. */
    check(tg_dataset_stats(&train, mean, std), "computing statistics");
    tg_dataset_standardize(&train, mean, std);
    printf("digits: %zu training and %zu test images of %zu pixels\n", train.n, test.n, d);

    /* ---- the model: 64 -> 32 tanh -> 10 logits (the softmax lives in the loss) ---- */
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = d;
    spec.sizes[1] = HIDDEN;
    spec.sizes[2] = CLASSES;
    spec.act[0] = TG_ACT_TANH;
    spec.act[1] = TG_ACT_IDENTITY;
    spec.dtype = TG_F32;
    tg_rng rng;
    tg_rng_seed(&rng, SEED);
    tg_model *model = NULL;
    check(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &model), "building the model");
    /* The statistics travel with the model, so a saved model predicts on raw pixels. */
    check(tg_model_set_standardization(model, d, mean, std), "storing the statistics");
    check(tg_model_set_task(model, TG_TASK_CLASSIFY, CLASSES), "storing the task");
    const char **names = malloc(d * sizeof *names);
    if (!names)
        check(TG_ENOMEM, "allocating names");
    for (size_t j = 0, k = 0; j < tg_table_cols(table); j++)
        if (j != target)
            names[k++] = tg_table_col_name(table, j);
    check(tg_model_set_columns(model, names, "digit"), "storing the column names");
    free(names);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = LR;
    opt.weight_decay = WEIGHT_DECAY;
    tg_optim *optim = NULL;
    check(tg_model_optim_new(&opt, model, &optim), "making the optimizer");

    /* ---- mini-batches: one buffer, wrapped once, refilled in place every step ---- */
    /* A batch is BATCH rows, except the epoch's last, which has the remainder; both shapes are
     * wrapped once, so the loop allocates nothing. */
    float *xb = malloc(BATCH * d * sizeof *xb), *yb = malloc(BATCH * sizeof *yb);
    size_t *perm = malloc(train.n * sizeof *perm);
    if (!xb || !yb || !perm)
        check(TG_ENOMEM, "allocating batches");
    size_t rest = train.n % BATCH;
    size_t full_x[2] = {BATCH, d}, full_y[1] = {BATCH};
    size_t rest_x[2] = {rest, d}, rest_y[1] = {rest};
    tg_tensor *x_full = tg_tensor_wrap(TG_F32, 2, full_x, xb);
    tg_tensor *y_full = tg_tensor_wrap(TG_F32, 1, full_y, yb);
    tg_tensor *x_rest = rest ? tg_tensor_wrap(TG_F32, 2, rest_x, xb) : NULL;
    tg_tensor *y_rest = rest ? tg_tensor_wrap(TG_F32, 1, rest_y, yb) : NULL;
    if (!x_full || !y_full || (rest && (!x_rest || !y_rest)))
        check(tg_last_status(), "wrapping the batch");
    tg_tape *tape = tg_tape_new();
    if (!tape)
        check(tg_last_status(), "making the tape");

    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        tg_shuffle(perm, train.n, &rng); /* a new order every epoch */
        double loss_sum = 0;
        for (size_t b = 0; b < train.n; b += BATCH) {
            size_t count = train.n - b < BATCH ? train.n - b : BATCH;
            tg_dataset_gather(&train, perm, b, count, TG_F32, xb, yb);
            tg_tensor *x = count == BATCH ? x_full : x_rest;
            tg_tensor *y = count == BATCH ? y_full : y_rest;

            tg_tensor *logits = tg_model_forward(tape, model, x);
            tg_tensor *loss = tg_cross_entropy(tape, logits, y); /* labels 0..9 as numbers */
            check(tg_tape_status(tape), "recording the step"); /* one check for the graph */
            check(tg_backward(tape, loss), "backward");
            check(tg_optim_step(optim), "updating");
            loss_sum += tg_tensor_item(loss) * (double)count;
            tg_model_zero_grad(model); /* backward accumulates: clear for the next step */
            tg_tape_reset(tape);       /* rewind the tape; its memory is reused */
        }
        if (epoch == 1 || epoch % 5 == 0)
            printf("epoch %2d  training loss %.4f\n", epoch, loss_sum / (double)train.n);
    }

    /* ---- evaluation: the raw test rows in, one class a row out (the largest logit's) ---- */
    double *classes = malloc(test.n * sizeof *classes);
    if (!classes)
        check(TG_ENOMEM, "allocating the predictions");
    check(tg_model_predict(model, test.x, test.n, d, classes, test.n), "predicting");
    size_t correct = 0;
    for (size_t i = 0; i < test.n; i++)
        correct += classes[i] == test.y[i];
    double accuracy = (double)correct / (double)test.n;
    printf("test accuracy: %.4f (%zu of %zu)\n", accuracy, correct, test.n);
    printf("wall time: %.3f s (read, train %d epochs, evaluate)\n", seconds() - start, EPOCHS);

    if (argc > 2) {
        check(tg_model_save(model, argv[2]), "saving the model");
        printf("model saved to %s\n", argv[2]);
    }

    tg_tape_free(tape);
    tg_tensor_free(x_full);
    tg_tensor_free(y_full);
    tg_tensor_free(x_rest);
    tg_tensor_free(y_rest);
    tg_optim_free(optim);
    tg_model_free(model);
    tg_dataset_free(&train);
    tg_dataset_free(&test);
    tg_table_free(table);
    free(classes);
    free(xb);
    free(yb);
    free(perm);
    free(mean);
    free(std);
    return 0;
}

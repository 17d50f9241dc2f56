/* xor.c: the smallest problem a network needs a hidden layer for. No straight line puts
 * (0,1) and (1,0) on one side and (0,0) and (1,1) on the other, so a model without a hidden
 * layer (logistic regression) is stuck at chance. Two tanh units in between can represent
 * xor, but gradient descent from a random start often stalls with two (a well-known local
 * minimum); three make it reliable. Both models are trained the same way (binary
 * cross-entropy on logits, Adam, the four points as one batch), and the program checks that
 * the one with a hidden layer gets all four right (exit status 1 if not). */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SEED 7
#define STEPS 400
#define LR 0.1

static const double X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
static const double Y[4] = {0, 1, 1, 0};

static void check(tg_status st, const char *what)
{
    if (st != TG_OK) {
        fprintf(stderr, "xor: %s: %s\n", what, tg_last_error());
        exit(1);
    }
}

/* Trains an MLP of the given spec on the four points and writes sigmoid(z) for each into
 * prob; returns the final loss. */
static double train(const tg_mlp_spec *spec, double prob[4])
{
    const size_t xs[2] = {4, 2}, ys[2] = {4, 1};
    tg_tensor *x = tg_tensor_from_f64(TG_F64, 2, xs, &X[0][0]);
    tg_tensor *y = tg_tensor_from_f64(TG_F64, 2, ys, Y);
    tg_rng rng;
    tg_rng_seed(&rng, SEED);
    tg_model *model = NULL;
    check(tg_model_new(spec, TG_INIT_XAVIER_UNIFORM, &rng, &model), "building the model");
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = LR;
    tg_optim *optim = NULL;
    check(tg_model_optim_new(&opt, model, &optim), "making the optimizer");

    tg_tape *tape = tg_tape_new();
    double loss_value = 0;
    for (int step = 0; step < STEPS; step++) {
        tg_tensor *z = tg_model_forward(tape, model, x);
        tg_tensor *loss = tg_bce_logits(tape, z, y);
        check(tg_tape_status(tape), "recording");
        check(tg_backward(tape, loss), "backward");
        check(tg_optim_step(optim), "updating");
        loss_value = tg_tensor_item(loss);
        if (step == STEPS - 1) /* the last forward pass gives the predictions */
            for (int i = 0; i < 4; i++)
                prob[i] = 1.0 / (1.0 + exp(-tg_tensor_get(z, (size_t)i)));
        tg_model_zero_grad(model);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    tg_optim_free(optim);
    tg_model_free(model);
    tg_tensor_free(x);
    tg_tensor_free(y);
    return loss_value;
}

int main(void)
{
    /* Without a hidden layer: z = x1 w1 + x2 w2 + b. */
    tg_mlp_spec linear = TG_MLP_SPEC_INIT;
    linear.n_layers = 1;
    linear.sizes[0] = 2;
    linear.sizes[1] = 1;
    linear.dtype = TG_F64;
    /* With one: 2 -> 3 (tanh) -> 1. */
    tg_mlp_spec hidden = TG_MLP_SPEC_INIT;
    hidden.n_layers = 2;
    hidden.sizes[0] = 2;
    hidden.sizes[1] = 3;
    hidden.sizes[2] = 1;
    hidden.act[0] = TG_ACT_TANH;
    hidden.dtype = TG_F64;

    double p[4];
    double loss = train(&linear, p);
    printf("no hidden layer (2 -> 1): loss %.4f after %d steps (chance is ln 2 = %.4f)\n", loss,
           STEPS, log(2.0));
    for (int i = 0; i < 4; i++)
        printf("  xor(%g, %g) = %g  predicted %.3f\n", X[i][0], X[i][1], Y[i], p[i]);

    loss = train(&hidden, p);
    printf("hidden layer (2 -> 3 tanh -> 1): loss %.4f after %d steps\n", loss, STEPS);
    int right = 0;
    for (int i = 0; i < 4; i++) {
        int label = p[i] > 0.5;
        right += label == (int)Y[i];
        printf("  xor(%g, %g) = %g  predicted %.3f -> %d %s\n", X[i][0], X[i][1], Y[i], p[i],
               label, label == (int)Y[i] ? "ok" : "WRONG");
    }
    printf("%d of 4 right\n", right);
    return right == 4 ? 0 : 1;
}

/* backprop_222.c: the classic worked example of backpropagation, reproduced by the library.
 *
 * A 2-2-2 network with sigmoid units and no biases, E = 1/2 (t1-o1)^2 + 1/2 (t2-o2)^2, one
 * step of gradient descent with learning rate 0.5. The forward pass is recorded on a tape as
 * matrix products (x @ W1, h @ W2), backward fills dE/dw for all eight weights, and the
 * chain-rule factors the tutorial derives by hand are read off the intermediate gradients.
 *
 * Wiring: z1 = w1 x1 + w2 x2, z2 = w3 x1 + w4 x2, h = sigmoid(z);
 *         z3 = w5 h1 + w6 h2, z4 = w7 h1 + w8 h2, o = sigmoid(z).
 * So W1 = [[w1, w3], [w2, w4]] and W2 = [[w5, w7], [w6, w8]] (row i: input i).
 *
 * Every printed value has 10 decimals; the tutorial's 8 are its rounding. */
#include <tapegrad.h>

#include <stdio.h>

typedef struct net {
    tg_tensor *W1, *W2; /* parameters, (2,2) each */
    tg_tensor *x, *t;   /* input and target, (1,2) each */
} net;

typedef struct pass {
    tg_tensor *z1, *h, *z2, *o, *E; /* recorded on the tape */
} pass;

static int forward(tg_tape *tape, const net *n, pass *p)
{
    p->z1 = tg_matmul(tape, n->x, n->W1);
    p->h = tg_sigmoid(tape, p->z1);
    p->z2 = tg_matmul(tape, p->h, n->W2);
    p->o = tg_sigmoid(tape, p->z2);
    tg_tensor *err = tg_sub(tape, n->t, p->o);
    p->E = tg_scale(tape, tg_sum(tape, tg_square(tape, err), TG_ALL_AXES, false), 0.5);
    if (!p->E) {
        fprintf(stderr, "backprop_222: %s\n", tg_tape_error(tape));
        return 1;
    }
    return 0;
}

static double at(const tg_tensor *t, size_t i) { return tg_tensor_get(t, i); }
static double grad_at(const tg_tensor *t, size_t i) { return tg_tensor_grad_get(t, i); }

/* The weight w1..w8 as an element of W1 or W2 (see the wiring above). */
static void weight_slot(const net *n, int w, tg_tensor **m, size_t *i)
{
    static const size_t slot[8] = {0, 2, 1, 3, 0, 2, 1, 3};
    *m = w < 4 ? n->W1 : n->W2;
    *i = slot[w];
}

static void print_forward(const char *title, const pass *p, bool with_z)
{
    printf("%s\n", title);
    if (with_z)
        printf("  z1 = %.10f  z2 = %.10f\n", at(p->z1, 0), at(p->z1, 1));
    printf("  h1 = %.10f  h2 = %.10f\n", at(p->h, 0), at(p->h, 1));
    printf("  o1 = %.10f  o2 = %.10f\n", at(p->o, 0), at(p->o, 1));
    printf("  E  = %.10f\n", at(p->E, 0));
}

int main(void)
{
    const double x[2] = {0.1, 0.2}, t[2] = {0.4, 0.6};
    const double W1[4] = {0.3, 0.4, 0.25, 0.35}; /* w1 w3 / w2 w4 */
    const double W2[4] = {0.45, 0.7, 0.4, 0.6};  /* w5 w7 / w6 w8 */
    const double lr = 0.5;
    const size_t row[2] = {1, 2}, square[2] = {2, 2};

    net n = {tg_tensor_from_f64(TG_F64, 2, square, W1), tg_tensor_from_f64(TG_F64, 2, square, W2),
             tg_tensor_from_f64(TG_F64, 2, row, x), tg_tensor_from_f64(TG_F64, 2, row, t)};
    tg_tape *tape = tg_tape_new();
    int rc = 1;
    if (!n.W1 || !n.W2 || !n.x || !n.t || !tape) {
        fprintf(stderr, "backprop_222: %s\n", tg_last_error());
        goto done;
    }
    tg_tensor_set_requires_grad(n.W1, true);
    tg_tensor_set_requires_grad(n.W2, true);

    /* 1. loss */
    pass p;
    if (forward(tape, &n, &p))
        goto done;
    print_forward("forward pass", &p, false);

    /* 2. gradient, by backpropagation */
    if (tg_backward(tape, p.E) != TG_OK) {
        fprintf(stderr, "backprop_222: %s\n", tg_last_error());
        goto done;
    }
    printf("gradients\n");
    for (int w = 0; w < 8; w++) {
        tg_tensor *m;
        size_t i;
        weight_slot(&n, w, &m, &i);
        printf("  dE/dw%d = %.10f\n", w + 1, grad_at(m, i));
    }
    /* dE/dw5 = dE/do1 * do1/dz3 * dz3/dw5, each factor an intermediate gradient or value. */
    double dE_do1 = grad_at(p.o, 0), dE_dz3 = grad_at(p.z2, 0);
    printf("  chain for w5: dE/do1 * do1/dz3 * dz3/dw5 = %.10f * %.10f * %.10f\n", dE_do1,
           dE_dz3 / dE_do1, at(p.h, 0));
    /* dE/dw1 = dE/dh1 * dh1/dz1 * dz1/dw1, where dE/dh1 sums over both outputs. */
    double dE_dh1 = grad_at(p.h, 0), dE_dz1 = grad_at(p.z1, 0);
    printf("  chain for w1: dE/dh1 * dh1/dz1 * dz1/dw1 = %.10f * %.10f * %.10f\n", dE_dh1,
           dE_dz1 / dE_dh1, at(n.x, 0));

    /* 3. weight update: w -= lr * dE/dw */
    printf("updated weights\n");
    for (int w = 0; w < 8; w++) {
        tg_tensor *m;
        size_t i;
        weight_slot(&n, w, &m, &i);
        tg_tensor_set(m, i, at(m, i) - lr * grad_at(m, i));
        printf("  w%d = %.10f\n", w + 1, at(m, i));
    }

    /* 4. repeat: the next step records a fresh graph into the same memory */
    tg_tape_reset(tape);
    if (forward(tape, &n, &p))
        goto done;
    print_forward("forward pass after the update", &p, true);
    rc = 0;
done:
    tg_tape_free(tape);
    tg_tensor_free(n.W1);
    tg_tensor_free(n.W2);
    tg_tensor_free(n.x);
    tg_tensor_free(n.t);
    return rc;
}

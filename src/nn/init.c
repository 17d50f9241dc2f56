/* init.c: activations (names and application as ops) and weight initializers. Initializers
 * draw from the caller's seeded tg_rng in row-major order, one draw per element, so a seed
 * gives the same weights on every machine. */
#include "internal.h"

#include <math.h>

static const char *const ACT_NAMES[] = {
    [TG_ACT_IDENTITY] = "identity",
    [TG_ACT_SIGMOID] = "sigmoid",
    [TG_ACT_TANH] = "tanh",
    [TG_ACT_RELU] = "relu",
};
#define N_ACTS (sizeof ACT_NAMES / sizeof ACT_NAMES[0])

const char *tg_activation_name(tg_activation act)
{
    return (unsigned)act < N_ACTS ? ACT_NAMES[act] : "?";
}

tg_status tg_activation_parse(const char *name, tg_activation *out)
{
    if (!name || !out)
        return tg__error(TG_EINVAL, "activation_parse: %s is NULL", name ? "out" : "name");
    for (size_t i = 0; i < N_ACTS; i++) {
        if (strcmp(name, ACT_NAMES[i]) == 0) {
            *out = (tg_activation)i;
            return TG_OK;
        }
    }
    return tg__error(TG_EINVAL,
                     "activation_parse: unknown activation '%s' (expected identity, sigmoid, "
                     "tanh or relu)",
                     name);
}

tg_tensor *tg_activate(tg_tape *tape, tg_tensor *x, tg_activation act)
{
    if (!tape) {
        tg__error(TG_EINVAL, "activate: tape is NULL");
        return NULL;
    }
    switch (act) {
    case TG_ACT_IDENTITY:
        /* Nothing to record; a NULL x (an earlier error) stays NULL like any op's. */
        if (!x && tape->status == TG_OK)
            tg_tape__fail(tape, TG_EINVAL, "activate: input is NULL (node %zu)", tape->n_nodes);
        return tape->status == TG_OK ? x : NULL;
    case TG_ACT_SIGMOID: return tg_sigmoid(tape, x);
    case TG_ACT_TANH: return tg_tanh(tape, x);
    case TG_ACT_RELU: return tg_relu(tape, x);
    }
    if (tape->status == TG_OK)
        tg_tape__fail(tape, TG_EINVAL, "activate: unknown activation %d (node %zu)", (int)act,
                      tape->n_nodes);
    return NULL;
}

/* ---- initializers ------------------------------------------------------------------------ */

tg_status tg_init_weight(tg_tensor *w, tg_init init, tg_rng *rng)
{
    if (!w || !rng)
        return tg__error(TG_EINVAL, "init_weight: %s is NULL", w ? "rng" : "weight");
    if (!(w->flags & TG_TF_LEAF) || w->rank != 2) {
        char s[96];
        return tg__error(TG_EINVAL, "init_weight: expected a 2-D (in, out) leaf, got %s %s",
                         (w->flags & TG_TF_LEAF) ? "a leaf of shape" : "a tape tensor of shape",
                         tg_shape_format(s, sizeof s, w->rank, w->shape));
    }
    double fan_in = (double)w->shape[0], fan_out = (double)w->shape[1];
    bool normal;
    double scale; /* uniform: the bound a; normal: the standard deviation */
    switch (init) {
    case TG_INIT_XAVIER_UNIFORM: normal = false, scale = sqrt(6.0 / (fan_in + fan_out)); break;
    case TG_INIT_XAVIER_NORMAL: normal = true, scale = sqrt(2.0 / (fan_in + fan_out)); break;
    case TG_INIT_HE_UNIFORM: normal = false, scale = sqrt(6.0 / fan_in); break;
    case TG_INIT_HE_NORMAL: normal = true, scale = sqrt(2.0 / fan_in); break;
    default:
        return tg__error(TG_EINVAL, "init_weight: unknown initializer %d", (int)init);
    }
    /* An empty weight has nothing to draw (and fan_in 0 would make the scale infinite). */
    for (size_t i = 0; i < w->numel; i++) {
        /* U(-a, a) as a * (2u - 1): one draw per element, exact in binary floating point. */
        double v = normal ? scale * tg_rng_normal(rng) : scale * (2.0 * tg_rng_uniform(rng) - 1.0);
        if (w->dtype == TG_F32)
            ((float *)w->data)[i] = (float)v;
        else
            ((double *)w->data)[i] = v;
    }
    return TG_OK;
}

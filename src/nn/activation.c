/* activation.c: the hidden-layer activations of an MLP: their names, and their application
 * as ops. */
#include "core/core.h"

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
        if (!x && tg_tape_status(tape) == TG_OK)
            tg_tape_fail(tape, TG_EINVAL, "activate: input is NULL");
        return tg_tape_status(tape) == TG_OK ? x : NULL;
    case TG_ACT_SIGMOID: return tg_sigmoid(tape, x);
    case TG_ACT_TANH: return tg_tanh(tape, x);
    case TG_ACT_RELU: return tg_relu(tape, x);
    }
    if (tg_tape_status(tape) == TG_OK)
        tg_tape_fail(tape, TG_EINVAL, "activate: unknown activation %d", (int)act);
    return NULL;
}

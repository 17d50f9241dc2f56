/* init.c: weight initializers. They draw from the caller's seeded tg_rng in row-major order,
 * one draw per element, so a seed gives the same weights on every machine. */
#include "core/core.h"

#include <math.h>

tg_status tg_init_weight(tg_tensor *w, tg_init init, tg_rng *rng)
{
    if (!w || !rng)
        return tg__error(TG_EINVAL, "init_weight: %s is NULL", w ? "rng" : "weight");
    const bool leaf = tg_tensor_is_leaf(w);
    if (!leaf || tg_tensor_rank(w) != 2) {
        char s[96];
        return tg__error(TG_EINVAL, "init_weight: expected a 2-D (in, out) leaf, got %s %s",
                         leaf ? "a leaf of shape" : "a tape tensor of shape",
                         tg_shape_format(s, sizeof s, tg_tensor_rank(w), tg_tensor_shape(w)));
    }
    double fan_in = (double)tg_tensor_dim(w, 0), fan_out = (double)tg_tensor_dim(w, 1);
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
    void *data = tg_tensor_data(w);
    const bool f32 = tg_tensor_dtype(w) == TG_F32;
    for (size_t i = 0, n = tg_tensor_numel(w); i < n; i++) {
        /* U(-a, a) as a * (2u - 1): one draw per element, exact in binary floating point. */
        double v = normal ? scale * tg_rng_normal(rng) : scale * (2.0 * tg_rng_uniform(rng) - 1.0);
        if (f32)
            ((float *)data)[i] = (float)v;
        else
            ((double *)data)[i] = v;
    }
    return TG_OK;
}

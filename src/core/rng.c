/* rng.c: the project RNG. xoshiro256** (Blackman and Vigna) seeded through splitmix64 gives
 * the same 64-bit stream everywhere; normals come from Marsaglia's polar method on top of a
 * logarithm built from IEEE-exact operations only, so the same seed gives the same doubles on
 * every machine and compiler (this file is compiled without floating-point contraction). */
#include "core/core.h"

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t tg_rng_next(tg_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tg_rng_uniform(tg_rng *rng)
{
    return (double)(tg_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t tg_rng_below(tg_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial copy of [0, n) so every value is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = tg_rng_next(rng);
    } while (r >= limit);
    return r % n;
}

/* ln(x) for finite x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (frexp and ldexp are
 * exact), then ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its odd series to s^29,
 * whose next term is below 2^-60 relative. Only +, -, *, / are used: the result is the same
 * on every IEEE machine. */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e); /* m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m = ldexp(m, 1);
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double sum = 0.0;
    for (int k = 29; k >= 3; k -= 2)
        sum = (sum + 1.0 / k) * s2;
    double ln_m = 2.0 * s * (1.0 + sum);
    return ln_m + (double)e * 0.69314718055994530942;
}

double tg_rng_normal(tg_rng *rng)
{
    for (;;) {
        double u = 2.0 * tg_rng_uniform(rng) - 1.0;
        double v = 2.0 * tg_rng_uniform(rng) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * det_log(s) / s);
    }
}

/* detmath.h: elementary functions of the library's own, built from +, -, *, / and bit moves
 * only, so they give the same bits on every IEEE machine and every instruction set (and
 * vectorize in the loops that call them). */
#ifndef TAPEGRAD_CORE_DETMATH_H
#define TAPEGRAD_CORE_DETMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* tanh, the op's forward (f32 rounds this). Not libm's: glibc's tanh goes through expm1 and
 * then a division, a long dependency chain that a graph of 0-d tanh nodes waits on at every
 * node; this one's chain is shorter and it vectorizes (README, "Benchmarks", has the figures).
 *   tanh a = e / (e + 2) = 1 - 2 / (e + 2),  e = expm1(2a), a = |x|:
 * the first form below atanh(1/2) (where 1 - q would cancel), the second above (where it is
 * the more accurate). expm1(u) = 2^k (1 + p) - 1 with u = k ln2 + r, |r| <= ln2/2 (Cody-Waite:
 * k ln2_hi is exact for k <= 64, and c carries the rounding of r = r_hi + r_lo into p), and
 * p = expm1(r) by its Taylor series to r^13 (next term < 2^-60 relative), evaluated by
 * Estrin's scheme, whose depth is 4 multiply-adds instead of Horner's 12. For a >= 22,
 * tanh a rounds to 1, and so does the formula at a = 22, where m holds larger a (keeping 2^k
 * in range). Accuracy is that of glibc's tanh: tests/test_ops.c holds it to 2.5 ulp against
 * correctly rounded values. */
static inline double tg__tanh(double x)
{
    const double a = fabs(x);
    const double m = a < 22.0 ? a : 22.0, u = m + m; /* NaN too: its result is replaced below */
    /* k = nearest integer to u / ln2 (computed as m * (2 / ln2), the same product one
     * multiply sooner): adding 1.5 * 2^52 leaves it in the low mantissa bits */
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep1 + shifter, k = kt - shifter;
    const double r_hi = u - k * 0x1.62e42fee00000p-1, r_lo = -(k * 0x1.a39ef35793c76p-33);
    const double r = r_hi + r_lo, c = (r_hi - r) + r_lo;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    /* q = sum of r^(n-2) / n! for n = 2..13, in pairs */
    const double q01 = 1.0 / 2 + r * (1.0 / 6), q23 = 1.0 / 24 + r * (1.0 / 120),
                 q45 = 1.0 / 720 + r * (1.0 / 5040), q67 = 1.0 / 40320 + r * (1.0 / 362880),
                 q89 = 1.0 / 3628800 + r * (1.0 / 39916800),
                 q1011 = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
    const double q = (q01 + r2 * q23) + r4 * (q45 + r2 * q67) + r8 * (q89 + r2 * q1011);
    const double p = r + (r2 * q + (c + c * r));
    /* 2^k from k's bits in kt (0 <= k <= 64) */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    bits = (bits << 52) + ((uint64_t)1023 << 52);
    double two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    /* e and d = e + 2 each rounded once, from the same exact 2^k p */
    const double tp = two_k * p, e = tp + (two_k - 1.0), d = tp + (two_k + 1.0);
    /* one division, selected around it rather than branched, so that loops vectorize */
    const bool small = a < 0.5493061443340549;
    const double ratio = (small ? e : 2.0) / d;
    const double t = small ? ratio : 1.0 - ratio; /* exactly 1 at m = 22 */
    return a == a ? copysign(t, x) : x;
}

#endif

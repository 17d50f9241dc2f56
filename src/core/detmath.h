/* detmath.h: elementary functions of the library's own, built from +, -, *, / and bit moves
 * only, so they give the same bits on every IEEE machine and every instruction set (and
 * vectorize in the loops that call them). */
#ifndef TAPEGRAD_CORE_DETMATH_H
#define TAPEGRAD_CORE_DETMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Inlined wherever called, however large the caller: a call per element would keep the
 * caller's loop scalar. */
#if defined(__GNUC__)
#define TG_DETMATH_INLINE static inline __attribute__((always_inline))
#else
#define TG_DETMATH_INLINE static inline
#endif

/* q = sum of r^(n-2) / n! for n = 2..13, so that expm1(r) = r + r^2 q to within 2^-60 relative
 * for |r| <= ln2/2, in pairs by Estrin's scheme (depth 4 multiply-adds instead of Horner's 12).
 * What tg__tanh, tg__sigmoid and tg__exp share after their Cody-Waite reductions. */
TG_DETMATH_INLINE double tg__expm1_q(double r)
{
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double q01 = 1.0 / 2 + r * (1.0 / 6), q23 = 1.0 / 24 + r * (1.0 / 120),
                 q45 = 1.0 / 720 + r * (1.0 / 5040), q67 = 1.0 / 40320 + r * (1.0 / 362880),
                 q89 = 1.0 / 3628800 + r * (1.0 / 39916800),
                 q1011 = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
    return (q01 + r2 * q23) + r4 * (q45 + r2 * q67) + r8 * (q89 + r2 * q1011);
}

/* expm1(r + c) for a reduced argument |r| <= ln2/2 and c the rounding error of r (|c| tiny):
 * r + r^2 q + c (1 + r). */
TG_DETMATH_INLINE double tg__expm1_series(double r, double c)
{
    return r + (r * r * tg__expm1_q(r) + (c + c * r));
}

/* tanh, the op's forward (f32 rounds this). Not libm's: glibc's tanh goes through expm1 and
 * then a division, a long dependency chain that a graph of 0-d tanh nodes waits on at every
 * node; this one's chain is shorter and it vectorizes (docs/performance.md has the figures).
 *   tanh a = e / (e + 2) = 1 - 2 / (e + 2),  e = expm1(2a), a = |x|:
 * the first form below atanh(1/2) (where 1 - q would cancel), the second above (where it is
 * the more accurate). expm1(u) = 2^k (1 + p) - 1 with u = k ln2 + r, |r| <= ln2/2 (Cody-Waite:
 * k ln2_hi is exact for k <= 64, and c carries the rounding of r = r_hi + r_lo into p), and
 * p = expm1(r) by its Taylor series to r^13 (next term < 2^-60 relative), evaluated by
 * Estrin's scheme, whose depth is 4 multiply-adds instead of Horner's 12. For a >= 22,
 * tanh a rounds to 1, and so does the formula at a = 22, where m holds larger a (keeping 2^k
 * in range). Accuracy is that of glibc's tanh: tests/test_ops.c holds it to 2.5 ulp against
 * correctly rounded values. */
TG_DETMATH_INLINE double tg__tanh(double x)
{
    const double a = fabs(x);
    const double m = a < 22.0 ? a : 22.0, u = m + m; /* NaN too: its result is replaced below */
    /* k = nearest integer to u / ln2 (computed as m * (2 / ln2), the same product one
     * multiply sooner): adding 1.5 * 2^52 leaves it in the low mantissa bits */
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep1 + shifter, k = kt - shifter;
    const double r_hi = u - k * 0x1.62e42fee00000p-1, r_lo = -(k * 0x1.a39ef35793c76p-33);
    const double r = r_hi + r_lo, c = (r_hi - r) + r_lo;
    const double p = tg__expm1_series(r, c);
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

/* sigmoid, the op's forward (f32 rounds this). Not through libm's exp, a call per element
 * that keeps the loop scalar: e = exp(-a), a = |x|, as 2^-k (1 + p) with -a = -k ln2 + r,
 * |r| <= ln2/2 (Cody-Waite as in tg__tanh: k ln2_hi is exact for k <= 1077, c carries the
 * rounding of r = r_hi + r_lo into p) and p = expm1(r) by the same Taylor series to r^13 in
 * Estrin's scheme; then sigmoid = 1 / (1 + e) for x >= 0 and e / (1 + e) below, where 1 - s
 * would cancel, so that nothing overflows and the tail keeps its relative accuracy down to the
 * subnormals. 2^-k is applied as two powers of two, 2^-(k - k/2) after 2^-(k/2), so that results
 * below 2^-1022 round once into the subnormals as exp's do; beyond a = 746 e is 0, and
 * sigmoid(-a) too. Only +, -, *, / and bit moves: the same bits on every machine, and the loop
 * vectorizes. Accuracy, over 2^24 points evenly spaced in [-40, 40] and 2^22 in each of
 * [-750, -40] and [40, 750] against long double expl (confirmed on 2,000 points against mpmath
 * at 200 bits): at most 2.34 ulp (x = -3.4386: e / (1 + e) rounds twice after exp), mean 0.37,
 * the same maximum as the formula through glibc's exp that it replaces; rounded to f32 it was
 * correctly rounded at every point. */
TG_DETMATH_INLINE double tg__sigmoid(double x)
{
    const double a = fabs(x);
    const double m = a < 746.0 ? a : 746.0; /* NaN too: its result is replaced below */
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep0 + shifter, k = kt - shifter;
    const double r_hi = k * 0x1.62e42fee00000p-1 - m, r_lo = k * 0x1.a39ef35793c76p-33;
    const double r = r_hi + r_lo, c = (r_hi - r) + r_lo;
    const double p = tg__expm1_series(r, c);
    /* k (0 <= k <= 1077) from the low bits of kt, split in two halves */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    const uint64_t kk = bits & 0xfff, k1 = kk >> 1, k2 = kk - k1;
    const uint64_t b1 = (1023 - k1) << 52, b2 = (1023 - k2) << 52;
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    const double e = ((1.0 + p) * s1) * s2;
    /* one division, its numerator selected rather than branched, so that loops vectorize */
    const double s = (x >= 0 ? 1.0 : e) / (1.0 + e);
    return a == a ? s : x;
}

/* exp, the op's forward and softmax's (f32 rounds this). Not libm's: a call per element keeps
 * the loops of exp, softmax and logsumexp scalar, and glibc picks another exp on CPUs with FMA,
 * so its bits depend on the machine. x = k ln2 + r, |r| <= ln2/2 (Cody-Waite as in tg__tanh:
 * k ln2_hi is exact for |k| <= 1076, c carries the rounding of r = r_hi + r_lo), e^x = 2^k (1 +
 * p), p = expm1(r + c) = r + (r^2 q + c (1 + r)); 1 + p is summed as (1 + r) + (its rounding
 * error + the rest), so that only the last addition rounds at the scale of the result. 2^k is
 * applied as two powers of two, 2^ceil(k/2) after 2^floor(k/2), so that results below 2^-1022
 * round once into the subnormals and those above DBL_MAX become +inf; x is clamped to [-746,
 * 710], beyond which e^x is 0 or +inf. Accuracy against long double expl, over 4e7 points evenly
 * spaced in [-745.5, 709.5] and in [-30, 30], 1.5e8 random points in [-708, 709.7] and as many
 * in [-709.09, -708.39] (the top binade of the subnormals): at most 0.72 ulp for normal results
 * (0.711 at x = 0x1.4c5e1783b738p+8; glibc's exp: 0.51), 0.81 in the subnormals (0.805 at
 * x = -0x1.625ed5f4b0d2fp+9: there 1 + p's own rounding, up to a quarter of the result's ulp,
 * adds to the last one); rounded to f32, the same as expl's value rounded to f32 at every float
 * in [-104, 104] (glibc's expf differs at 170,648 of them). Only +, -, *, / and bit moves: the
 * same bits on every machine, and the loops vectorize. */
TG_DETMATH_INLINE double tg__exp(double x)
{
    const double m = x < -746.0 ? -746.0 : (x < 710.0 ? x : 710.0); /* NaN: replaced below */
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep0 + shifter, k = kt - shifter;
    const double r_hi = m - k * 0x1.62e42fee00000p-1, r_lo = -(k * 0x1.a39ef35793c76p-33);
    const double r = r_hi + r_lo, c = (r_hi - r) + r_lo;
    const double one_r = 1.0 + r, one_r_err = (1.0 - one_r) + r; /* exact: |r| < 1 */
    const double one_p = one_r + (one_r_err + (r * r * tg__expm1_q(r) + (c + c * r)));
    /* k (-1076 <= k <= 1024) from the low bits of kt, as k + 2048 (unsigned, so that the
     * shifts vectorize without AVX-512), split into floor(k/2) and ceil(k/2) */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    const uint64_t kk = (bits + 2048) & 0xfff, k1 = kk >> 1, k2 = kk - k1;
    const uint64_t b1 = (k1 - 1024 + 1023) << 52, b2 = (k2 - 1024 + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    const double e = (one_p * s1) * s2;
    return x == x ? e : x;
}

/* log(x) + c, for c a tiny correction (0, or log1p's rounding error of 1 + x): what tg__log and
 * tg__log1p share. x = 2^k m with m in [sqrt(1/2), sqrt(2)) (subnormal x scaled by 2^54
 * first), f = m - 1 (exact), and with s = f / (2 + f),
 *   log(1 + f) = 2 atanh(s) = 2s + s R,  R = sum over j >= 1 of 2 s^(2j) / (2j + 1),
 * which, since 2s = f - f s and f s = hfsq - s hfsq for hfsq = f^2 / 2, is written
 *   log(1 + f) = f - (hfsq - s (hfsq + R))
 * so that f, exact, is added last. |s| <= 0.1716, so R's series to j = 11 (in pairs by Estrin's
 * scheme) leaves out less than 2^-60 relative; k ln2 goes in as k ln2_hi (exact) and k ln2_lo
 * beside the small terms. */
TG_DETMATH_INLINE double tg__log_plus(double x, double c)
{
    const bool subnormal = x < 0x1p-1022;
    const double xs = subnormal ? x * 0x1p54 : x;
    uint64_t ix;
    memcpy(&ix, &xs, sizeof ix);
    /* k + 1024 from the bits of x / sqrt(1/2) (offset so that it stays unsigned and the shifts
     * vectorize without AVX-512; x positive and normal here, the other cases are replaced
     * below), m's bits with k taken out of the exponent, and k as a double by way of the low
     * bits of 2^52 (no integer conversion, which AVX2 lacks for 64 bits) */
    const uint64_t kb = (ix - UINT64_C(0x3fe6a09e667f3bcd) + (UINT64_C(1024) << 52)) >> 52;
    const uint64_t mb = ix - (kb << 52) + (UINT64_C(1024) << 52);
    const uint64_t kbits = UINT64_C(0x4330000000000000) | kb;
    double m, kd;
    memcpy(&m, &mb, sizeof m);
    memcpy(&kd, &kbits, sizeof kd);
    const double k = (kd - 0x1p52) - (subnormal ? 1024.0 + 54.0 : 1024.0);
    const double f = m - 1.0; /* exact: m in [1/2, 2] */
    const double s = f / (2.0 + f), z = s * s, z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    const double p01 = 2.0 / 3 + z * (2.0 / 5), p23 = 2.0 / 7 + z * (2.0 / 9),
                 p45 = 2.0 / 11 + z * (2.0 / 13), p67 = 2.0 / 15 + z * (2.0 / 17),
                 p89 = 2.0 / 19 + z * (2.0 / 21), p10 = 2.0 / 23;
    const double R = z * ((p01 + z2 * p23) + z4 * (p45 + z2 * p67) + z8 * (p89 + z2 * p10));
    const double hfsq = 0.5 * f * f;
    const double r = k * 0x1.62e42fee00000p-1 -
                     ((hfsq - (s * (hfsq + R) + (k * 0x1.a39ef35793c76p-33 + c))) - f);
    return x > 0 ? (x < INFINITY ? r : x) : (x == 0 ? -INFINITY : (x != x ? x : NAN));
}

/* log, the op's forward and logsumexp's (f32 rounds this), for the same reasons as tg__exp:
 * tg__log_plus(x, 0). -inf at 0, NaN below, +inf at +inf. Against long double logl, over 4e7
 * points spread over [0.5, 2], [0.9, 1.1], [1e-300, 1e4] and every binade, and 1e8 random points
 * in [0.69, 0.7072]: at most 0.89 ulp (0.884 at x = 0x1.69213ce9d9bbfp-1, just below sqrt(1/2),
 * where |f| is largest; glibc's: 0.52); rounded to f32, correctly rounded at all but 5 of the
 * 2.1e9 positive finite floats (x = 0x1.827a74p-7 is one; glibc's logf misses 416,908). */
TG_DETMATH_INLINE double tg__log(double x)
{
    return tg__log_plus(x, 0.0);
}

/* log1p, the op's forward and softplus's and log_sigmoid's: u = 1 + x rounds, and
 * c = (x - (u - 1)) / u is that rounding relative to u, so log(1 + x) = log(u) + c to within
 * c^2; where u is exactly 1, log1p(x) rounds to x itself (-0 included). Against long double
 * log1pl, over 4e7 points in (0, 1] (softplus's), (-1, 0] and every binade, and 1e8 random
 * points in each of [-0.3, -0.2928] and [0.4, 0.4143] (1 + x near sqrt(1/2) and sqrt 2): at
 * most 0.89 ulp (0.886 at x = -0x1.2de1158fbf15ap-2; glibc's: about 0.5); rounded to f32, the
 * same as log1pl's value rounded at every 8th float of (-1, FLT_MAX] (glibc's log1pf differs
 * at 1.4 million of those 4e8). */
TG_DETMATH_INLINE double tg__log1p(double x)
{
    const double u = 1.0 + x, c = (x - (u - 1.0)) / u;
    const double r = tg__log_plus(u, u > 0 && u < INFINITY ? c : 0.0);
    return u == 1.0 ? x : r;
}

#endif

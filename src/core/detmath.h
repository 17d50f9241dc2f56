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

/* ln2 = TG_LN2_HI + TG_LN2_LO within 2^-85 relative, TG_LN2_HI with 32 significant bits, so that
 * k TG_LN2_HI is exact for the |k| < 2^21 of every Cody-Waite reduction below */
#define TG_LN2_HI 0x1.62e42fee00000p-1
#define TG_LN2_LO 0x1.a39ef35793c76p-33

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

/* expm1(r + c) - r for a reduced argument |r| <= ln2/2 and c the rounding error of r (|c|
 * tiny): r^2 q + c (1 + r), what is added to r, or to 1 + r, after the reduction. */
TG_DETMATH_INLINE double tg__expm1_tail(double r, double c)
{
    return r * r * tg__expm1_q(r) + (c + c * r);
}

/* expm1(r + c) = r + tg__expm1_tail(r, c). */
TG_DETMATH_INLINE double tg__expm1_series(double r, double c)
{
    return r + tg__expm1_tail(r, c);
}

/* 1 + r + rest for |r| < 1 and a small rest, summed as (1 + r) + (its rounding error + rest),
 * so that only the last addition rounds at the scale of the result: e^r's 1 + p in tg__exp_times
 * and tg__exp_neg_square. */
TG_DETMATH_INLINE double tg__exp_one_p(double r, double rest)
{
    const double one_r = 1.0 + r, one_r_err = (1.0 - one_r) + r; /* exact: |r| < 1 */
    return one_r + (one_r_err + rest);
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
    const double r_hi = u - k * TG_LN2_HI, r_lo = -(k * TG_LN2_LO);
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
    const double r_hi = k * TG_LN2_HI - m, r_lo = k * TG_LN2_LO;
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

/* What tg__exp_times (so tg__exp), tg__expm1 and tg__exp_neg_square share: the reduction of m
 * in [-749, 711] to m = k ln2 + r, |r| <= ln2/2 (Cody-Waite: k ln2_hi is exact for |k| <= 1081,
 * and *c is the rounding error of r = r_hi + r_lo), returning k in the low bits of
 * kt = k + 1.5 * 2^52; and the scaling of e^r's 1 + p by 2^k, as two powers of two,
 * 2^floor(k/2) then 2^ceil(k/2), so that results below 2^-1022 round once into the subnormals
 * and those above DBL_MAX become +inf. */
TG_DETMATH_INLINE double tg__exp_reduce(double m, double *r, double *c)
{
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep0 + shifter, k = kt - shifter;
    const double r_hi = m - k * TG_LN2_HI, r_lo = -(k * TG_LN2_LO);
    *r = r_hi + r_lo;
    *c = (r_hi - *r) + r_lo;
    return kt;
}
TG_DETMATH_INLINE double tg__exp_scale(double one_p, double kt)
{
    /* k (-1081 <= k <= 1026) from the low bits of kt, as k + 2048 (unsigned, so that the
     * shifts vectorize without AVX-512), split into floor(k/2) and ceil(k/2) */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    const uint64_t kk = (bits + 2048) & 0xfff, k1 = kk >> 1, k2 = kk - k1;
    const uint64_t b1 = (k1 - 1024 + 1023) << 52, b2 = (k2 - 1024 + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return (one_p * s1) * s2;
}

/* f e^x for 0 < f <= 1, rounded once at the scale of the result (f joins 1 + p before the
 * scaling by 2^k): e^x / 2 for sinh and cosh, finite up to x = 710.4758 where e^x alone is
 * not. As tg__exp otherwise (f = 1 is tg__exp, bit for bit); x is clamped to [-746, 711]. */
TG_DETMATH_INLINE double tg__exp_times(double x, double f)
{
    const double m = x < -746.0 ? -746.0 : (x < 711.0 ? x : 711.0); /* NaN: replaced below */
    double r, c;
    const double kt = tg__exp_reduce(m, &r, &c);
    const double e = tg__exp_scale(tg__exp_one_p(r, tg__expm1_tail(r, c)) * f, kt);
    return x == x ? e : x;
}

/* exp, the op's forward and softmax's (f32 rounds this). Not libm's: a call per element keeps
 * the loops of exp, softmax and logsumexp scalar, and glibc picks another exp on CPUs with FMA,
 * so its bits depend on the machine. x = k ln2 + r, |r| <= ln2/2 (Cody-Waite as in tg__tanh:
 * k ln2_hi is exact for |k| <= 1076, c carries the rounding of r = r_hi + r_lo), e^x = 2^k (1 +
 * p), p = expm1(r + c) = r + (r^2 q + c (1 + r)); 1 + p is summed as (1 + r) + (its rounding
 * error + the rest), so that only the last addition rounds at the scale of the result. 2^k is
 * applied as two powers of two, 2^ceil(k/2) after 2^floor(k/2), so that results below 2^-1022
 * round once into the subnormals and those above DBL_MAX become +inf; x is clamped to [-746,
 * 711], beyond which e^x is 0 or +inf. Accuracy against long double expl, over 4e7 points evenly
 * spaced in [-745.5, 709.5] and in [-30, 30], 1.5e8 random points in [-708, 709.7] and as many
 * in [-709.09, -708.39] (the top binade of the subnormals): at most 0.72 ulp for normal results
 * (0.711 at x = 0x1.4c5e1783b738p+8; glibc's exp: 0.51), 0.81 in the subnormals (0.805 at
 * x = -0x1.625ed5f4b0d2fp+9: there 1 + p's own rounding, up to a quarter of the result's ulp,
 * adds to the last one); rounded to f32, the same as expl's value rounded to f32 at every float
 * in [-104, 104] (glibc's expf differs at 170,648 of them). Only +, -, *, / and bit moves: the
 * same bits on every machine, and the loops vectorize. */
TG_DETMATH_INLINE double tg__exp(double x)
{
    return tg__exp_times(x, 1.0);
}

/* x = 2^k m with m in [sqrt(1/2), sqrt(2)), for x positive and finite (subnormal x scaled by
 * 2^54 first; other x give some m, which callers replace): returns m, and k as a double. What
 * tg__log_plus and tg__log_dd share. */
TG_DETMATH_INLINE double tg__log_split(double x, double *k)
{
    const bool subnormal = x < 0x1p-1022;
    const double xs = subnormal ? x * 0x1p54 : x;
    uint64_t ix;
    memcpy(&ix, &xs, sizeof ix);
    /* k + 1024 from the bits of x / sqrt(1/2) (offset so that it stays unsigned and the shifts
     * vectorize without AVX-512), m's bits with k taken out of the exponent, and k as a double
     * by way of the low bits of 2^52 (no integer conversion, which AVX2 lacks for 64 bits) */
    const uint64_t kb = (ix - UINT64_C(0x3fe6a09e667f3bcd) + (UINT64_C(1024) << 52)) >> 52;
    const uint64_t mb = ix - (kb << 52) + (UINT64_C(1024) << 52);
    const uint64_t kbits = UINT64_C(0x4330000000000000) | kb;
    double m, kd;
    memcpy(&m, &mb, sizeof m);
    memcpy(&kd, &kbits, sizeof kd);
    *k = (kd - 0x1p52) - (subnormal ? 1024.0 + 54.0 : 1024.0);
    return m;
}

/* log(x) + c, for c a tiny correction (0, or log1p's rounding error of 1 + x): what tg__log and
 * tg__log1p share. x = 2^k m (tg__log_split), f = m - 1 (exact), and with s = f / (2 + f),
 *   log(1 + f) = 2 atanh(s) = 2s + s R,  R = sum over j >= 1 of 2 s^(2j) / (2j + 1),
 * which, since 2s = f - f s and f s = hfsq - s hfsq for hfsq = f^2 / 2, is written
 *   log(1 + f) = f - (hfsq - s (hfsq + R))
 * so that f, exact, is added last. |s| <= 0.1716, so R's series to j = 11 (in pairs by Estrin's
 * scheme) leaves out less than 2^-60 relative; k ln2 goes in as k ln2_hi (exact) and k ln2_lo
 * beside the small terms. */
TG_DETMATH_INLINE double tg__log_plus(double x, double c)
{
    double k;
    const double m = tg__log_split(x, &k);
    const double f = m - 1.0; /* exact: m in [1/2, 2] */
    const double s = f / (2.0 + f), z = s * s, z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    const double p01 = 2.0 / 3 + z * (2.0 / 5), p23 = 2.0 / 7 + z * (2.0 / 9),
                 p45 = 2.0 / 11 + z * (2.0 / 13), p67 = 2.0 / 15 + z * (2.0 / 17),
                 p89 = 2.0 / 19 + z * (2.0 / 21), p10 = 2.0 / 23;
    const double R = z * ((p01 + z2 * p23) + z4 * (p45 + z2 * p67) + z8 * (p89 + z2 * p10));
    const double hfsq = 0.5 * f * f;
    const double r = k * TG_LN2_HI - ((hfsq - (s * (hfsq + R) + (k * TG_LN2_LO + c))) - f);
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

/* expm1, the op's forward: x = k ln2 + r as in tg__exp, and e^x - 1 = (2^k - 1) + 2^k r + 2^k t
 * for p = expm1(r + c) = r + t, with the first sum kept exactly (Fast2Sum: |2^k - 1| >= |2^k r|
 * for k != 0), so that the cancellation near k = +-1 costs nothing; at k = 0, r + t; +-0 is
 * itself. x is clamped to [-40, 60] (below, e^x - 1 rounds to -1); beyond 60 it is tg__exp(x).
 * The largest error found against long double expm1l, over 4e6 random points in each of
 * [-40, 40], [-1, 1], [40, 709.78] and every binade of (0, 1], and 3e7 in [-2, 2]: 1.14 ulp
 * (1.131 at x = 0x1.62aa9944ddef8p-2; glibc's: 0.83). */
TG_DETMATH_INLINE double tg__expm1(double x)
{
    const double m = x > -40.0 ? (x < 60.0 ? x : 60.0) : -40.0; /* NaN: replaced below */
    double r, c;
    const double kt = tg__exp_reduce(m, &r, &c);
    const double t = tg__expm1_tail(r, c);
    /* 2^k (-58 <= k <= 87) from the low bits of kt */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    const uint64_t b = ((bits + 1023) & 0x7ff) << 52;
    double two_k;
    memcpy(&two_k, &b, sizeof two_k);
    const double A = two_k - 1.0, B = two_k * r, s = A + B, s_err = (A - s) + B;
    const double e = two_k == 1.0 ? r + t : s + (s_err + two_k * t);
    return x < 60.0 ? (x == 0 ? x : e) : tg__exp(x); /* -0 stays -0; NaN: tg__exp */
}

/* sinh and cosh, the ops' forwards and each other's gradients: for |x| < 22, with E = expm1|x|
 * and e = e^|x|, sinh = (2E - E^2 / (E + 1)) / 2 below 1 (the correction small beside 2E) and
 * (E + E / (E + 1)) / 2 above, cosh = (e + 1/e) / 2; from 22, where e^-|x| no longer counts,
 * e^|x| / 2 (tg__exp_times, finite up to 710.4758; cosh takes it for all x). The largest errors
 * found against long double, over 4e6 random points in each of [-30, 30], every binade of (0, 2]
 * and [20, 710.47], and 3e7 in [-3, 3] and [-25, 25]: sinh 1.88 ulp (glibc's: 1.86 on the first),
 * cosh 1.13 (glibc's: 1.76). */
TG_DETMATH_INLINE double tg__sinh(double x)
{
    const double a = fabs(x);
    const double E = tg__expm1(a < 22.0 ? a : 22.0);
    const double small = a < 1.0 ? 0.5 * (2.0 * E - E * E / (E + 1.0)) : 0.5 * (E + E / (E + 1.0));
    const double r = a < 22.0 ? small : tg__exp_times(a, 0.5);
    return x == x ? copysign(r, x) : x;
}
TG_DETMATH_INLINE double tg__cosh(double x)
{
    /* h = e^|x| / 2, and (e + 1/e) / 2 = h + (1/4) / h with the same roundings, halving being
     * exact; from 22 on, (1/4) / h is under half an ulp of h and leaves it as it is */
    const double h = tg__exp_times(fabs(x), 0.5);
    return h + 0.25 / h; /* NaN, inf: from h */
}

/* asinh, acosh and atanh, the ops' forwards, each as one log1p (tg__log1p) of an argument that
 * does not cancel, for a = |x|:
 *   asinh: a + a^2 / (1 + sqrt(1 + a^2)) below 2; 2a + 1 / (sqrt(a^2 + 1) + a) - 1 (the - 1
 *          exact) up to 2^28; beyond, log1p(a - 1) + ln2 = log(2a) without its overflow;
 *   acosh: t + sqrt(2t + t^2), t = x - 1 (exact) below 2; 2x - 1 / (x + sqrt(x^2 - 1)) - 1 up
 *          to 2^28; beyond, as asinh; NaN below 1;
 *   atanh: log1p(w) / 2 with w = 2a + 2a^2 / (1 - a) below 1/2 and 2a / (1 - a) above; +-inf
 *          at +-1, NaN beyond.
 * glibc's formulas, with the library's log1p: the largest errors found against long double,
 * over 4e6 random points in each of a range around 1 and every binade and 3e7 in the ranges
 * where they peak: asinh 1.77 ulp, acosh 2.17 (near 1), atanh 1.73; glibc's 1.68, 2.19 and 1.71
 * on the first. Each input is clamped into every formula's range before the one formula that
 * applies is selected, so that loops vectorize (the clamps written as they are because GCC
 * vectorizes those). */
TG_DETMATH_INLINE double tg__asinh(double x)
{
    const double a = fabs(x);
    const double as = a < 2.0 ? a : 2.0, am = a > 2.0 ? (a < 0x1p28 ? a : 0x1p28) : 2.0;
    const double w_small = as + as * as / (1.0 + sqrt(1.0 + as * as));
    const double w_mid = (2.0 * am + 1.0 / (sqrt(am * am + 1.0) + am)) - 1.0;
    const double w = a < 2.0 ? w_small : (a < 0x1p28 ? w_mid : a - 1.0);
    const double r = tg__log1p(w) + (a < 0x1p28 ? 0.0 : 0x1.62e42fefa39efp-1);
    return x == x ? copysign(r, x) : x;
}
TG_DETMATH_INLINE double tg__acosh(double x)
{
    const double xs = x > 1.0 ? (x < 2.0 ? x : 2.0) : 1.0;
    const double xm = x > 2.0 ? (x < 0x1p28 ? x : 0x1p28) : 2.0;
    const double t = xs - 1.0;
    const double w_small = t + sqrt(2.0 * t + t * t);
    const double w_mid = (2.0 * xm - 1.0 / (xm + sqrt(xm * xm - 1.0))) - 1.0;
    const double w = x < 2.0 ? w_small : (x < 0x1p28 ? w_mid : x - 1.0);
    const double r = tg__log1p(w) + (x < 0x1p28 ? 0.0 : 0x1.62e42fefa39efp-1);
    return x >= 1.0 ? r : (x == x ? NAN : x);
}
TG_DETMATH_INLINE double tg__atanh(double x)
{
    const double a = fabs(x);
    const double w = a < 0.5 ? 2.0 * a + 2.0 * a * a / (1.0 - a) : 2.0 * a / (1.0 - a);
    const double r = copysign(0.5 * tg__log1p(w), x);
    return a <= 1.0 ? r : (x == x ? NAN : x);
}
/* sqrt(x^2 + 1) without x^2's overflow beyond 1e154 (asinh's gradient is 1 over it): above 1,
 * h = |x| sqrt(1 + (1/x)^2) to within 2 ulp, then |x| + 1 / (h + |x|), the small correction
 * added last (sqrt(x^2 + 1) - |x| = 1 / (sqrt(x^2 + 1) + |x|)). Against long double, over 4e6
 * random points and 3e7 in [1, 4]: at most 0.98 ulp found (glibc's hypot(x, 1): 0.56). */
TG_DETMATH_INLINE double tg__hypot1(double x)
{
    const double a = fabs(x), ab = a > 1.0 ? a : 1.0, ai = 1.0 / ab;
    const double h = ab * sqrt(1.0 + ai * ai);
    return a > 1.0 ? ab + 1.0 / (h + ab) : sqrt(1.0 + a * a);
}

/* The polynomial c[0] + c[1] x + ... + c[n-1] x^(n-1) by Horner's rule, unrolled so that the
 * loops calling it vectorize. (Shallower schemes shorten the dependency chain these loops wait
 * on, but cost accuracy: in erfc, Estrin's 1.5 ulp more, two half-length Horner chains 0.8.) */
TG_DETMATH_INLINE double tg__horner(const double *c, int n, double x)
{
    double p = c[n - 1];
    _Pragma("GCC unroll 32") for (int j = n - 2; j >= 0; j--) p = p * x + c[j];
    return p;
}

/* a + b = s + *e exactly (Knuth's TwoSum: no condition on the magnitudes) */
TG_DETMATH_INLINE double tg__two_sum(double a, double b, double *e)
{
    const double s = a + b, bb = s - a;
    *e = (a - (s - bb)) + (b - bb);
    return s;
}

/* a b = p + *e exactly, without fma (Dekker's product, Veltkamp's split into 26-bit halves), for
 * |a|, |b| below 2^995 (the split overflows beyond) and a b not in the subnormals */
TG_DETMATH_INLINE double tg__two_prod(double a, double b, double *e)
{
    const double sa = a * 134217729.0, sb = b * 134217729.0; /* 2^27 + 1 */
    const double ah = sa - (sa - a), al = a - ah, bh = sb - (sb - b), bl = b - bh;
    const double p = a * b;
    *e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    return p;
}

/* atan(c_i) + atan(t + tl), or pi - that (from_pi), for |t| <= 7/16 and a small tl: tg__atan's
 * and tg__atan2's end. atan(t) = t - t^3 q(t^2), and atan(c_i), pi - atan(c_i) as two doubles
 * each, whose low part joins before t, added last. */
TG_DETMATH_INLINE double tg__atan_finish(uint64_t i, double t, double tl, bool from_pi)
{
    static const double q[12] = {
        0x1.5555555555555p-2, -0x1.99999999998c5p-3, 0x1.2492492485503p-3, -0x1.c71c71bd2b8bcp-4,
        0x1.745d154c84f7ap-4, -0x1.3b1375ce5bdc6p-4, 0x1.110c9ce7b0572p-4, -0x1.e170800a46210p-5,
        0x1.ab59b417b2d3fp-5, -0x1.7001816fd063fp-5, 0x1.0f62bba6a2558p-5, -0x1.e4167464d3de8p-7,
    };
    /* atan(c) and pi - atan(c) for c = 0, 1/2, 1, 3/2, infinity: hi + lo */
    /* clang-format off */
    static const double hi[10] = {
        0.0,                  0x1.dac670561bb4fp-2, 0x1.921fb54442d18p-1, 0x1.f730bd281f69bp-1,
        0x1.921fb54442d18p+0, 0x1.921fb54442d18p+1, 0x1.56c6e7397f5aep+1, 0x1.2d97c7f3321d2p+1,
        0x1.145385fa3af71p+1, 0x1.921fb54442d18p+0};
    static const double lo[10] = {
        0.0,                   0x1.a2b7f222f65e2p-56, 0x1.1a62633145c07p-55, 0x1.007887af0cbbdp-56,
        0x1.1a62633145c07p-54, 0x1.1a62633145c07p-53, 0x1.660b64ece6f4bp-53, 0x1.a79394c9e8a0ap-54,
        0x1.fa53523b6428fp-53, 0x1.1a62633145c07p-54};
    /* clang-format on */
    const uint64_t k = i + (from_pi ? 5 : 0);
    const double s = from_pi ? -1.0 : 1.0, st = s * t, z = t * t;
    return hi[k] + (st - (st * z * tg__horner(q, 12, z) - (lo[k] + s * tl)));
}

/* fdlibm's reduction of a = ay / ax (ay, ax >= 0) by intervals, to atan(a) = atan(c) + atan(t),
 * t = (a - c) / (1 + c a), c = 0, 1/2, 1, 3/2 and infinity (t = -1/a) below 7/16, 11/16, 19/16,
 * 39/16 and above, where |t| <= 7/16: returns the interval i, picked by a as the caller has it
 * (atan's uncapped |x|: GCC leaves the loop scalar where the comparisons read the capped one),
 * and t as *num / *den formed from ay and ax, the numerator exact but for c = 3/2, where 1.5 ax
 * may round (exact for ax = 1; atan2 adds its low part). The interval's constants come from small
 * tables by an index of 64 bits, so that loops vectorize (gathers). tg__atan's and tg__atan2's
 * start. */
TG_DETMATH_INLINE uint64_t tg__atan_reduce(double a, double ay, double ax, double *num, double *den)
{
    /* per interval: t = (ay na + ax nb) / (ay da + ax db) */
    static const double na[5] = {1.0, 2.0, 1.0, 1.0, 0.0}, nb[5] = {0.0, -1.0, -1.0, -1.5, -1.0};
    static const double da[5] = {0.0, 1.0, 1.0, 1.5, 1.0}, db[5] = {1.0, 2.0, 1.0, 1.0, 0.0};
    const uint64_t i = (uint64_t)(a >= 0.4375) + (a >= 0.6875) + (a >= 1.1875) + (a >= 2.4375);
    *num = ay * na[i] + ax * nb[i];
    *den = ay * da[i] + ax * db[i];
    return i;
}

/* atan, the op's forward (f32 rounds this): tg__atan_reduce on a = |x| (and 1), then
 * atan(t) = t - t^3 q(t^2), q of degree 11 (interpolated, tools/fit_detmath.py, to within 1e-17
 * relative), with atan(c) as two doubles whose low part joins before t, added last
 * (tg__atan_finish). a is capped at 2^60, beyond which atan rounds to pi/2, so that no lane
 * forms 0 * inf. Against long double atanl, over 4e6 random points in each of seven ranges
 * spanning [0, 1e20] and the intervals' edges: at most 0.86 ulp (0.854 at
 * x = 0x1.60852239b2067p-1; glibc's: 0.52). */
TG_DETMATH_INLINE double tg__atan(double x)
{
    const double a = fabs(x), am = a < 0x1p60 ? a : 0x1p60; /* NaN: replaced below */
    double num, den;
    const uint64_t i = tg__atan_reduce(a, am, 1.0, &num, &den);
    /* computed before the select: inside it, GCC leaves the loop scalar */
    const double r = tg__atan_finish(i, num / den, 0.0, false);
    return x == x ? copysign(r, x) : x;
}

/* atan2(y, x), the angle of the point (x, y), the op's forward (f32 rounds this): as tg__atan
 * on a = |y| / |x|, with t formed from |y| and |x| rather than from a, so that the numerator
 * stays exact (1.5 |x| is taken as two doubles; for c = 3/2 beyond a = 2 it can round, by up to
 * 1/8 ulp of the result), and with the division's rounding error tl
 * carried (t den exactly, Dekker's product), so that near the axes, where atan2 is t itself,
 * it rounds once; the left half-plane as pi - atan(c) - atan(t + tl). Infinite coordinates are
 * replaced by the finite ones that give the same angle, and |x|, |y| scaled by 2^-200 when the
 * larger is beyond 2^900, by 2^200 when it is below 2^-900 or the smaller is (then the larger
 * up to 2^700), so that nothing overflows, Dekker's split included, and t den stays clear of the
 * subnormals. C99's values on the axes and at the infinities (atan2(+-0, -0) = +-pi,
 * atan2(+-inf, -inf) = +-3pi/4, ...); NaN for NaN. Against long double atan2l, over 2e7 random
 * pairs in each of five patterns (all quadrants, ratios near the intervals' edges, exponents from
 * -1000 to 1000), and 1.5e9 with a just above 11/16, where the errors peak: at most 0.814 ulp (at
 * y = 0x1.a289b01a1445p-1, x = 0x1.302cef3c31859p+0; glibc's: 0.52); rounded to f32, the same as
 * atan2l's value rounded at 2e8 random pairs of floats. */
TG_DETMATH_INLINE double tg__atan2(double y, double x)
{
    static const double nc[5] = {0.0, 0.0, 0.0, -1.0, 0.0}; /* 1.5 |x|'s low part, for c = 3/2 */
    const double ax0 = fabs(x), ay0 = fabs(y), m = ax0 > ay0 ? ax0 : ay0,
                 mn = ax0 > ay0 ? ay0 : ax0;
    const bool x_inf = ax0 == INFINITY, y_inf = ay0 == INFINITY;
    /* up also where only the smaller is tiny (m up to 2^700, or the ratio is below 2^-1600 and
     * atan2 is 0, pi/2 or pi in f64 however t goes): near the axes the numerator is the smaller
     * coordinate, and t den in the subnormals (or near) would leave tl wrong by up to 2^-1075 /
     * den, millions of ulps of t. (No select of a select of constants: GCC leaves such loops
     * scalar.) */
    const bool up = m < 0x1p-900 || (mn < 0x1p-900 && m < 0x1p700);
    const double scale = (m > 0x1p900 ? 0x1p-200 : 1.0) * (up ? 0x1p200 : 1.0);
    const double ax = x_inf ? 1.0 : ax0 * scale * (y_inf ? 0.0 : 1.0);
    const double ay = y_inf ? 1.0 : ay0 * scale * (x_inf ? 0.0 : 1.0);
    double num0, den;
    const uint64_t i = tg__atan_reduce(ay / ax, ay, ax, &num0, &den); /* NaN at the origin: 0 */
    const double h = ax + 0.5 * ax, hl = (ax - h) + 0.5 * ax;         /* 1.5 ax = h + hl */
    const double num = num0 + nc[i] * hl;
    double e;
    const double t = num / den, p = tg__two_prod(t, den, &e), tl = ((num - p) - e) / den;
    const bool origin = ay == 0;
    const double v = tg__atan_finish(i, origin ? 0.0 : t, origin ? 0.0 : tl,
                                     copysign(1.0, x) < 0); /* signbit(x): scalar */
    return x == x && y == y ? copysign(v, y) : x + y;
}

/* asin and acos, the ops' forwards (f32 rounds these), from one polynomial:
 *   asin t = t + t z R(z),  z = t^2 <= 1/4,  R of degree 12 interpolated on [0, 1/4]
 *   (tools/fit_detmath.py) to within 1.2e-16 relative,
 * at t = |x| up to 1/2, and beyond at s = sqrt(z), z = (1 - |x|) / 2 (exact), through
 *   asin |x| = pi/2 - 2 asin s,  acos x = 2 asin s (x > 0),  pi - 2 asin s (x < 0),
 * with s = sh + sl to about 2^-105 (sh = sqrt(z) rounded, sl from z - sh^2 taken exactly) and
 * pi/2 - 2 sh and pi - 2 sh summed with their rounding errors kept (TwoSum), so that the result
 * rounds once, plus the tail's own error; acos x = pi/2 - asin x up to |x| = 1/2 likewise. Each
 * branch is computed and one selected, so that loops vectorize; NaN beyond [-1, 1]. *asin_out
 * and the return: asin x and acos x. Against long double, over 10^7 random points in each of
 * eleven ranges of [-1, 1] (near +-1/2 and +-1 among them), and 1.6e9 more in [1/2, 0.6] of
 * either sign, where the errors peak: at most 0.674 ulp for asin (at x = 0x1.03b3f4828dfd7p-1),
 * 0.671 for acos (at x = 0x1.1eaf90d055ecap-1; glibc's: 0.52). */
TG_DETMATH_INLINE double tg__asin_acos(double x, double *asin_out)
{
    static const double R[13] = {
        0x1.5555555555556p-3, 0x1.3333333332ecap-4, 0x1.6db6db6e31f13p-5, 0x1.f1c71c1db0623p-6,
        0x1.6e8bb1c8209a2p-6, 0x1.1c4d35cf95421p-6, 0x1.c9cf07674736ap-7, 0x1.782651caa6547p-7,
        0x1.52420b04b37bep-7, 0x1.65a9c4dfcf8b2p-8, 0x1.1d189408314eep-6, -0x1.e6aaa8a0a04ccp-7,
        0x1.d72b2bc8155f8p-6,
    };
    const double pio2_hi = 0x1.921fb54442d18p0, pio2_lo = 0x1.1a62633145c07p-54;
    const double pi_hi = 0x1.921fb54442d18p1, pi_lo = 0x1.1a62633145c07p-53;
    const double a = fabs(x);
    const bool small = a <= 0.5;
    const double z = small ? x * x : 0.5 * (1.0 - a), sh = sqrt(z);
    double e;
    const double sq = tg__two_prod(sh, sh, &e);
    const double sl = z > 0 ? ((z - sq) - e) / (sh + sh) : 0.0;        /* sqrt(z) = sh + sl */
    const double t = small ? x : sh, p = t * z * tg__horner(R, 13, z); /* asin t = t + p */
    /* beyond 1/2: pi/2 - 2 asin s for asin, 2 asin s or pi - 2 asin s for acos */
    const double far_asin_hi = tg__two_sum(pio2_hi, -(sh + sh), &e);
    const double far_asin = far_asin_hi + (e + (pio2_lo - 2.0 * (sl + p)));
    const double sign = x > 0 ? 1.0 : -1.0, base_hi = x > 0 ? 0.0 : pi_hi,
                 base_lo = x > 0 ? 0.0 : pi_lo;
    const double far_acos_hi = tg__two_sum(base_hi, sign * (sh + sh), &e);
    const double far_acos = far_acos_hi + (e + (base_lo + sign * 2.0 * (sl + p)));
    /* up to 1/2: asin x = x + p, acos x = pi/2 - (x + p) */
    const double near_acos_hi = tg__two_sum(pio2_hi, -x, &e);
    const double near_acos = near_acos_hi + ((e + pio2_lo) - p);
    *asin_out = small ? x + p : copysign(far_asin, x);
    return small ? near_acos : far_acos;
}
TG_DETMATH_INLINE double tg__asin(double x)
{
    double s;
    tg__asin_acos(x, &s);
    return s;
}
TG_DETMATH_INLINE double tg__acos(double x)
{
    double s;
    return tg__asin_acos(x, &s);
}

/* ---- sin, cos, tan ---------------------------------------------------------------------------
 * x = k pi/2 + r, |r| <= pi/4 (a hair more where k, rounded from x 2/pi, is off by one), then
 * sin r and cos r by polynomials and the quadrant k mod 4 picks and signs one of them (tan: their
 * quotient). r is kept as a sum rh + rl of two doubles, since near a multiple of pi/2 it cancels
 * to a small fraction of x and needs more bits of pi/2 than x has.
 *
 * The inline reduction is Cody-Waite's for |x| <= TG_TRIG_INLINE_MAX = 2^20 (|k| < 2^20): pi/2 as
 * P1 + P2 + P3 + P4, the first three of 33 bits so that k Pi is exact; x - k P1 is exact
 * (Sterbenz), the next two subtractions keep their rounding errors (TwoSum), and the sum carries
 * 152 bits of pi/2, so that r is exact to about 2^-136 absolute where it is never below 2^-60
 * or so. Larger finite x take tg__rem_pio2 (detmath.c, out of line: Payne and Hanek's
 * reduction with 2/pi to 1280 bits): the element functions tg__sin etc. below hold only up to
 * 2^20, so that loops calling them vectorize, and their callers send a range holding anything
 * larger, or inf or NaN, to the tg__*_any functions instead (a scalar loop). */
#define TG_TRIG_INLINE_MAX 0x1p20

/* x = k pi/2 + rh + rl for |x| <= TG_TRIG_INLINE_MAX, returning k in the low bits of
 * kt = k + 1.5 * 2^52 (as tg__exp_reduce). */
TG_DETMATH_INLINE double tg__trig_reduce(double x, double *rh, double *rl)
{
    const double P1 = 0x1.921fb544p0, P2 = 0x1.0b4611a6p-34, P3 = 0x1.3198a2ep-69,
                 P4 = 0x1.b839a252049c1p-104, shifter = 0x1.8p52;
    const double kt = x * 0x1.45f306dc9c883p-1 + shifter, k = kt - shifter;
    double e2, e3;
    const double t2 = tg__two_sum(x - k * P1, -(k * P2), &e2);
    const double t3 = tg__two_sum(t2, -(k * P3), &e3);
    const double lo = (e2 + e3) - k * P4;
    *rh = t3 + lo;
    *rl = lo - (*rh - t3);
    return kt;
}

/* sin(rh + rl) and cos(rh + rl) for |rh| <= pi/4 (1 + 5e-5), |rl| <= ulp(rh), each as a leading
 * term and a small tail (*tail) whose sum is the value: polynomials in z = rh^2, interpolated on
 * that interval (tools/fit_detmath.py; S and C each to within 6e-17 of itself),
 *   sin t = t + t^3 S(t^2),  cos t = 1 - t^2/2 + t^4 C(t^2),
 * with rl entering through the first term of its Taylor expansion (rl cos rh, -rl sin rh). In cos,
 * z = rh^2 is taken exactly (its low part joins the tail: rounded, it would cost cos up to 0.25
 * ulp, and tan, the quotient of the two, up to 1), and 1 - z/2 is split into w = 1 - z/2 rounded
 * and its rounding error, which joins the tail too. */
TG_DETMATH_INLINE double tg__sin_kernel(double rh, double rl, double *tail)
{
    static const double S[7] = {
        -0x1.5555555555555p-3,  0x1.1111111111110p-7,   -0x1.a01a01a019937p-13,
        0x1.71de3a54607a5p-19,  -0x1.ae64541295cdfp-26, 0x1.61217ee5cca1bp-33,
        -0x1.ab17bdcbd3414p-41,
    };
    const double z = rh * rh;
    *tail = rh * z * tg__horner(S, 7, z) + rl * (1.0 - 0.5 * z);
    return rh;
}
TG_DETMATH_INLINE double tg__cos_kernel(double rh, double rl, double *tail)
{
    static const double C[6] = {
        0x1.5555555555555p-5,   -0x1.6c16c16c16967p-10, 0x1.a01a019f4e9b4p-16,
        -0x1.27e4fa17bf139p-22, 0x1.1eeb68cd22f56p-29,  -0x1.907d8f29fe831p-37,
    };
    double zl;
    const double z = tg__two_prod(rh, rh, &zl), hz = 0.5 * z, w = 1.0 - hz;
    *tail = ((1.0 - w) - hz) + (z * z * tg__horner(C, 6, z) - (rh * rl + 0.5 * zl));
    return w;
}

/* sin, cos or tan (which 0, 1, 2) of k pi/2 + rh + rl, with k mod 4 in the low bits of q.
 * tan is n / d (sin r / cos r, or -cos r / sin r for odd k) from the two-part values, corrected
 * once by the quotient's residual, n - t0 d with t0 d exact: the quotient of the rounded sin and
 * cos would add their errors to the division's, up to 2.2 ulp. */
TG_DETMATH_INLINE double tg__trig_finish(uint64_t q, double rh, double rl, int which)
{
    double st, ct;
    const double sh = tg__sin_kernel(rh, rl, &st), ch = tg__cos_kernel(rh, rl, &ct);
    if (which == 2) {
        const bool odd = q & 1;
        const double nh = odd ? -ch : sh, nl = odd ? -ct : st;
        const double dh = odd ? sh : ch, dl = odd ? st : ct, d = dh + dl;
        const double t0 = (nh + nl) / d;
        double e;
        const double p = tg__two_prod(t0, dh, &e);
        return t0 + (((nh - p) - e) + (nl - t0 * dl)) / d;
    }
    const uint64_t qw = q + (uint64_t)which; /* cos x = sin(x + pi/2) */
    const double v = qw & 1 ? ch + ct : sh + st;
    return qw & 2 ? -v : v;
}

/* sin, cos or tan of x for |x| <= TG_TRIG_INLINE_MAX (anything, but no trap, beyond). Below
 * 2^-26, sin x and tan x round to x (which keeps -0). */
TG_DETMATH_INLINE double tg__trig(double x, int which)
{
    double rh, rl;
    const double kt = tg__trig_reduce(x, &rh, &rl);
    uint64_t q;
    memcpy(&q, &kt, sizeof q);
    const double v = tg__trig_finish(q, rh, rl, which);
    return which != 1 && fabs(x) < 0x1p-26 ? x : v;
}
TG_DETMATH_INLINE double tg__sin(double x)
{
    return tg__trig(x, 0);
}
TG_DETMATH_INLINE double tg__cos(double x)
{
    return tg__trig(x, 1);
}
TG_DETMATH_INLINE double tg__tan(double x)
{
    return tg__trig(x, 2);
}

/* The reduction beyond TG_TRIG_INLINE_MAX, out of line (detmath.c): x = k pi/2 + rh + rl,
 * |rh| <= pi/4 (1 + 5e-5), returning k mod 4, for finite |x| > TG_TRIG_INLINE_MAX (tg__trig_any
 * takes tg__trig_reduce below). */
unsigned tg__rem_pio2(double x, double *rh, double *rl);

/* sin, cos, tan for any x (NaN for inf and NaN), the same bits as tg__sin etc. up to
 * TG_TRIG_INLINE_MAX: what a loop takes when its range holds anything larger. */
TG_DETMATH_INLINE double tg__trig_any(double x, int which)
{
    if (fabs(x) <= TG_TRIG_INLINE_MAX)
        return tg__trig(x, which);
    if (!isfinite(x))
        return x - x;
    double rh, rl;
    const unsigned q = tg__rem_pio2(x, &rh, &rl);
    return tg__trig_finish(q, rh, rl, which);
}
TG_DETMATH_INLINE double tg__sin_any(double x)
{
    return tg__trig_any(x, 0);
}
TG_DETMATH_INLINE double tg__cos_any(double x)
{
    return tg__trig_any(x, 1);
}
TG_DETMATH_INLINE double tg__tan_any(double x)
{
    return tg__trig_any(x, 2);
}

/* f e^(h + l) for h in [-749, 711] and |l| <= 2^-40 (the low part of a sum of two doubles), for
 * |f| <= 2^1000, rounded once at the scale of the result: tg__exp's steps on h, where l joins the
 * reduced argument's correction, c entering as c (1 + r) and l as l (1 + p) (l is up to 2^-40 where
 * c is 2^-60: the second order of c is negligible, l's first order in r is not). What
 * tg__exp_neg_square and tg__pow share. */
TG_DETMATH_INLINE double tg__exp_dd(double h, double l, double f)
{
    double r, c;
    const double kt = tg__exp_reduce(h, &r, &c);
    const double p_tail = r * r * tg__expm1_q(r);
    const double one_p = tg__exp_one_p(r, p_tail + ((c + c * r) + l * (1.0 + (r + p_tail))));
    return tg__exp_scale(one_p * f, kt);
}

/* f e^(-a^2) (half false) or f e^(-a^2 / 2) (half true), for |f| <= 2^1000, rounded once at
 * the scale of the result (f joins 1 + p before the scaling by 2^k), so that the tails of erf,
 * erfc and gelu keep their accuracy down into the subnormals: what erf's gradient, erfc and
 * gelu are made of. a^2 rounds (relative error up to 2^-53, so that e^(-a^2) would be off by up
 * to a^2 / 2 ulp: 370 ulp near a = 27), so it is taken exactly, as h + l with h = a^2 rounded
 * (Dekker's product, a split into two 26-bit halves by Veltkamp's method), and e^-(h + l) is
 * tg__exp_dd(-h, -l) (l is up to 2^-44).
 * |a| beyond 27.3 (38.7 for half) is taken as 27.3 (38.7), where e^(-a^2) is below 2^-1075
 * (e^(-a^2/2) below 2^-1080, so that gelu's x / sqrt(2 pi) e^(-x^2/2), which reaches 2^-1075
 * only at |x| = 38.68, keeps its subnormal digits), so that no clamp inside exp is needed:
 * callers see to what that gives (erfc and gelu round to 0 there). NaN gives NaN. Against long
 * double, with f = 1, over 4e6 random points in each of [0, 27.3], [0, 38.6], [0, 3] and [0, 4]:
 * at most 0.85 ulp. */
TG_DETMATH_INLINE double tg__exp_neg_square(double a, bool half, double f)
{
    const double s = half ? 0.5 : 1.0, cap = half ? 38.7 : 27.3;
    const double m = fabs(a) < cap ? fabs(a) : cap; /* NaN: replaced below */
    double l;
    const double h = tg__two_prod(m, m, &l);            /* m^2 = h + l */
    const double e = tg__exp_dd(-(s * h), -(s * l), f); /* -(s h) in [-748.9, 0] */
    return a == a ? e : a;
}

/* tg__log_dd's table (detmath.c, from tools/fit_detmath.py): for c = 1 + i/128, i = -37 .. 53,
 * at [i + 37]: 1/c rounded to a double, and minus its log as the sum of two doubles. */
extern const double tg__log_table[91][3];

/* log(x) = hi + *lo within about 2^-68 relative, for x positive and finite (what tg__pow needs:
 * y log x, up to 746 in magnitude, feeds exp, so log's relative error counts 746 times).
 * x = 2^k m (tg__log_split), m within 2^-8 of c = 1 + i/128, and with z = m/c - 1, taken exactly
 * as zh + zl = m invc - 1 (Dekker's product; 1 subtracts exactly from it):
 *   log x = k ln2 - log(invc) + log1p(z),  |z| <= 2^-7.49,
 *   log1p(z) = z - z^2/2 + z^3 P(z),  P(z) = 1/3 - z/4 + ... + z^6/9 (the next term is below
 *   2^-70 of z).
 * zh - zh^2/2 is kept as two doubles, and the terms of zl beside it; the sum of k ln2_hi,
 * -log(invc)'s high part and that takes TwoSum's errors, the low parts join them. Where x is within
 * 2^-8 of 1, c is 1 and z = m - 1 exactly, so that nothing cancels. */
TG_DETMATH_INLINE double tg__log_dd(double x, double *lo)
{
    double k;
    const double m = tg__log_split(x, &k);
    /* i + 37 in [0, 90], from the low bits of (m - 1) 128 + 1.5 2^52 (m - 1 is exact) */
    const double it = (m - 1.0) * 128.0 + 0x1.8p52;
    uint64_t ib;
    memcpy(&ib, &it, sizeof ib);
    const uint64_t j = (ib + 37) & 0x7f;
    double pe, sqe;
    const double p = tg__two_prod(m, tg__log_table[j][0], &pe); /* m invc = p + pe, p in [1/2, 2] */
    const double d = p - 1.0, zh = d + pe, zl = (d - zh) + pe;
    const double sq = tg__two_prod(zh, zh, &sqe), qh = 0.5 * sq; /* zh^2 = sq + sqe */
    const double s = zh - qh, s_err = (zh - s) - qh;             /* Fast2Sum: |qh| < |zh| */
    static const double P[7] = {1.0 / 3, -1.0 / 4, 1.0 / 5, -1.0 / 6, 1.0 / 7, -1.0 / 8, 1.0 / 9};
    /* z^2/2 = qh + sqe/2 + zh zl (+ zl^2/2), z^3/3 = zh^3/3 + zh^2 zl (+ ...) */
    const double tail = (zl - 0.5 * sqe - zh * zl + sq * zl) + zh * sq * tg__horner(P, 7, zh);
    double e1, e2;
    const double s1 = tg__two_sum(k * TG_LN2_HI, tg__log_table[j][1], &e1);
    const double s2 = tg__two_sum(s1, s, &e2);
    const double rest = (e1 + e2) + (s_err + tail + (k * TG_LN2_LO + tg__log_table[j][2]));
    const double hi = s2 + rest;
    *lo = (s2 - hi) + rest; /* Fast2Sum: rest is below s2's ulp, or s2 is 0 */
    return hi;
}

/* x^y, the forward of pow and pow_tensor (f32 rounds this) and their gradients, by C99's rules
 * (Annex F.10.4.4) at the edges: x^+-0 = 1 and 1^y = 1 even for NaN; (+-0)^y and (+-inf)^y are
 * 0 or inf, negative only for x negative and y an odd integer; x < 0 with y not an integer is NaN;
 * (-1)^+-inf = 1. Otherwise |x|^y = e^(y log|x|), with log|x| as two doubles (tg__log_dd) and
 * y log|x| = zh + zl exactly but for y's product with log's low part (Dekker's product), then
 * tg__exp_dd(zh, zl) (0 below zh = -746, +inf above 711), negated for x < 0 and y odd. Whether y is
 * an integer and odd: from y + 2^52 - 2^52, as adding 2^52 rounds to an integer, with no conversion
 * to an integer type (which keeps the loops vectorized). Not libm's: a call per element keeps pow's
 * loops scalar, and glibc's pow takes another path on CPUs with FMA. */
TG_DETMATH_INLINE double tg__pow(double x, double y)
{
    const double ax = fabs(x), ay = fabs(y), hy = 0.5 * ay;
    /* every double from 2^52 up is an integer, and the odd ones stop at 2^53 (& and |, not && and
     * ||: with y the same for every element, the short circuits left GCC's loop scalar) */
    const bool y_int = (ay >= 0x1p52) | ((ay + 0x1p52) - 0x1p52 == ay);
    const bool y_odd = y_int & (ay < 0x1p53) & ((hy + 0x1p52) - 0x1p52 != hy);
    /* |x| finite and positive (the others take 1 here, and their own values below) */
    const bool finite = (ax > 0) & (ax < INFINITY);
    double ll, pe;
    const double lh = tg__log_dd(finite ? ax : 1.0, &ll);
    /* Dekker's product is exact up to |y| = 2^995; where y log|x| is within exp's range, |y| is
     * below 2^63 (|log|x|| >= 2^-53 for |x| != 1, and |x| = 1 gives 1 here) */
    const double zh = tg__two_prod(y, lh, &pe), zl = pe + y * ll;
    const bool in_range = (zh > -746.0) & (zh < 711.0);
    const double e =
        ax == 1 ? 1.0
                : tg__exp_dd(in_range ? zh : (zh > 0 ? 711.0 : -746.0), in_range ? zl : 0.0, 1.0);
    /* x < 0: e negated for y odd, NaN for y not an integer; x = +-0 or +-inf: +inf where |x| < 1
     * and y < 0 or |x| > 1 and y > 0, else +0, negative for x negative and y odd. Made of bits:
     * with y the same for every element, selects between constants on y left GCC's loop scalar,
     * and kept as bools they made it 8 times as long. */
    const uint64_t odd_sign = (uint64_t)y_odd << 63, nan_bits = (uint64_t)!y_int * UINT64_C(0x7ff8)
                                                                << 48;
    const uint64_t inf_at_zero = (uint64_t)(y < 0) * UINT64_C(0x7ff) << 52,
                   inf_at_inf = (uint64_t)(y > 0) * UINT64_C(0x7ff) << 52;
    uint64_t eb, xb;
    memcpy(&eb, &e, sizeof eb);
    memcpy(&xb, &x, sizeof xb);
    const uint64_t edge = (ax == 0 ? inf_at_zero : inf_at_inf) | (xb & odd_sign);
    const uint64_t rb = finite ? (x < 0 ? (eb ^ odd_sign) | nan_bits : eb) : edge;
    double r;
    memcpy(&r, &rb, sizeof r);
    return y == 0 || x == 1 ? 1.0 : (x != x || y != y ? x + y : r);
}

/* erfcx(z) = e^(z^2) erfc(z), the scaled complementary error function, for z >= 0 (erfcx(27.3)
 * beyond 27.3, and erfcx(2) for NaN, which callers replace): where erfc(z) = e^(-z^2) erfcx(z)
 * keeps its relative accuracy, out to the subnormals. Two pieces, each evaluated and one
 * selected, so that loops vectorize:
 *   [0, 2): a polynomial of degree 22 in z - 1;
 *   [2, 27.3]: w E(u), w = 1 / (z + 2), u = (z - 2) w, E(u) = (z + 2) erfcx(z) a polynomial of
 *   degree 18 in u - u_c (u in [0, 0.8635], u_c its midpoint), smooth where erfcx is not
 *   polynomial-like (erfcx(z) ~ 1 / (z sqrt pi)).
 * Each interpolates erfcx at Chebyshev nodes to within 1e-19 relative (tools/fit_detmath.py has
 * the fit, with mpmath); the rest of the error is the evaluation's, up to 3.3 ulp (3.23 at
 * z = 2.0696, just above the switch). */
TG_DETMATH_INLINE double tg__erfcx(double z)
{
    static const double near[23] = {
        0x1.b5d8780f956b2p-2,   -0x1.17c4e3f17c052p-2,  0x1.3c27283c32cc5p-3,
        -0x1.44837f8906d71p-4,  0x1.33cad0ef5e88fp-5,   -0x1.10fcf1b5687bdp-6,
        0x1.c8cb958c948d2p-8,   -0x1.6af2654874d78p-9,  0x1.135262e299669p-10,
        -0x1.9082247f17ec8p-12, 0x1.184fc3e5c3802p-13,  -0x1.7ab1ad26e0badp-15,
        0x1.ef08ab0da996ep-17,  -0x1.39c798dbee884p-18, 0x1.8278505039f6ap-20,
        -0x1.ceed66dd1ba23p-22, 0x1.0e7af8c88c693p-23,  -0x1.37908b2ffee60p-25,
        0x1.5ad36066bca63p-27,  -0x1.573e14f41b820p-29, 0x1.7130ab2ca6e16p-31,
        -0x1.30de105b51b0fp-32, 0x1.34ca0b1b503fep-34,
    };
    static const double far[19] = {
        0x1.8bffafbd87f4cp-1,   -0x1.e31d94624c548p-2,  0x1.b7a3202312780p-3,
        -0x1.db7de84903042p-5,  -0x1.52165dec0ed27p-9,  0x1.252e6207b2f97p-7,
        -0x1.9d2e22cc6ef08p-10, -0x1.8e7151d32bf44p-10, 0x1.0fedfe21bc71dp-11,
        0x1.7192b157d8bd6p-12,  -0x1.2ce2d352367f7p-13, -0x1.d1370c379835cp-14,
        0x1.2c665dbad4510p-15,  0x1.624a354962881p-15,  -0x1.79ac45b4fbf44p-18,
        -0x1.1698d94fbcb43p-16, -0x1.ac54072077847p-20, 0x1.4b88d618a6678p-18,
        0x1.9d1f2083c5599p-20,
    };
    const double zn = z < 2.0 ? z : 2.0;
    const double erfcx_near = tg__horner(near, 23, zn - 1.0);
    const double zf = z > 2.0 ? (z < 27.3 ? z : 27.3) : 2.0; /* NaN: 2 */
    const double w = 1.0 / (zf + 2.0), v = (zf - 2.0) * w - 0x1.ba1a362baf9e2p-2;
    const double erfcx_far = w * tg__horner(far, 19, v);
    return z < 2.0 ? erfcx_near : erfcx_far;
}

/* erf, the op's forward (f32 rounds this). Not libm's, a call per element that keeps the loop
 * scalar: for |x| < 0.85 its Taylor series x + x q(x^2), q = erf(x)/x - 1 to x^36 (the next term
 * under 2^-60 relative), where x, exact, is added last; beyond, sign(x) (1 - erfc|x|) with
 * erfc|x| = e^(-x^2) erfcx|x| (tg__exp_neg_square, tg__erfcx) under 0.23, whose error shrinks by
 * a factor of 4 or more in 1 - erfc. Both are evaluated and one selected, so that loops
 * vectorize. Accuracy against long double erfl, over 4e6 random points in each of [-6, 6],
 * [-1.1, 1.1], [0.8, 0.9] and [0, 0.001]: at most 0.97 ulp (0.963 at x = 0x1.a17242d91c695p-1;
 * glibc's erf: 1.13 on the same points); but the series' error peaks just below the switch,
 * where 8e7 more random points in [0.83, 0.85] (against quad precision erfq) reach 1.02 ulp
 * (1.017 at x = 0x1.b01a41be08003p-1); rounded to f32, the same as erfl's value rounded at all
 * 1.09e9 floats in [0, 6] (glibc's erff differs at 63 million). */
TG_DETMATH_INLINE double tg__erf(double x)
{
    static const double q[19] = {
        0x1.06eba8214db69p-3,   -0x1.812746b0379e7p-2,  0x1.ce2f21a042be2p-4,
        -0x1.b82ce31288b51p-6,  0x1.565bcd0e6a53fp-8,   -0x1.c02db40040b86p-11,
        0x1.f9a326f9b89b7p-14,  -0x1.f4d25c3e0c2ebp-17, 0x1.b9e6c9dc651a3p-20,
        -0x1.5f742ec43e71ap-23, 0x1.fcc5720624c1cp-27,  -0x1.51d7181c5d36dp-30,
        0x1.9e6ad5e55a730p-34,  -0x1.d8453cb0c46eap-38, 0x1.f683ae4a97007p-42,
        -0x1.f56f071a885cfp-46, 0x1.d70b3537f4765p-50,  -0x1.a2007af3447f6p-54,
        0x1.5f7919bc67b8cp-58,
    };
    const double a = fabs(x);
    const double small = x + x * tg__horner(q, 19, x * x);
    const double large = copysign(1.0 - tg__exp_neg_square(a, false, tg__erfcx(a)), x);
    const double r = a < 0.85 ? small : large;
    return x == x ? r : x;
}

/* gelu(x) = x Phi(x), Phi the standard normal distribution function, and its derivative
 * gelu'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi): the op's forward and VJP (f32
 * rounds these). With T = erfc(|x| / sqrt 2) = e^(-x^2/2) erfcx(|x| / sqrt 2), Phi(x) is T / 2
 * below 0 and 1 - T / 2 above: erfc keeps its relative accuracy in the lower tail, where
 * 1 + erf(x / sqrt 2) would cancel; x^2 / 2 is taken exactly (tg__exp_neg_square), where the
 * rounding of x / sqrt 2 would cost 2 (x / sqrt 2)^2 ulp (x erfc(-x / sqrt 2) / 2 through the C
 * library: 1,700 ulp near x = -37); erfcx, which varies slowly, takes the rounded x / sqrt 2. So
 *   gelu(x)  = e^(-x^2/2) x erfcx / 2 below 0, and x minus that above;
 *   gelu'(x) = e^(-x^2/2) (erfcx / 2 + x / sqrt(2 pi)) below 0,
 *              1 + e^(-x^2/2) (x / sqrt(2 pi) - erfcx / 2) above,
 * x inside each product with e^(-x^2/2), rounded once, so that the lower tail keeps its digits
 * down into the subnormals (Phi alone underflows first; gelu'(-38.6) is still -9 times the
 * smallest subnormal). Beyond |x| = 38.7 the exponential, even times x / sqrt(2 pi), is below
 * 2^-1075 and x leaves the products: gelu(-inf) = 0 and gelu(inf) = inf, with gradients 0
 * and 1. Against long double erfcl, over 4e6 random points in each of [-38.6, 38.6], [-38.6,
 * -10], [-10, 10], [-3, 3], [-3, -1], [-1, 1] and [-0.1, 0.1], and 1e7 more in each of a dozen
 * intervals where the errors peak, against quad precision erfcq: gelu within 5.5 ulp (5.38 at
 * x = -2.8316, where erfcx's argument is just above its switch at 2; the C library's erfc gave
 * 2.5 in [-1, 1], 14 near -3, 1,700 near -37), gelu' within 6 (5.64 at x = -0.9334) outside
 * [-0.93, -0.5], around its zero at x = -0.7518 (where a relative error loses its meaning: 24
 * ulp at -0.806; the C library's formula had the same); rounded to f32, gelu is the exact value
 * rounded at all but 2 of the 2.2e9 floats in [-38.6, 38.6] (the C library's erfcf in f32
 * arithmetic missed 152 million). */
TG_DETMATH_INLINE double tg__gelu(double x)
{
    const double a = fabs(x), xs = a < 38.7 ? x : copysign(0.0, x); /* gelu(-40) = -0 */
    const double t = tg__exp_neg_square(a, true, 0.5 * xs * tg__erfcx(a * 0.70710678118654752440));
    const double r = x > 0 ? x - t : t; /* t at x = -0: gelu(-0) = -0 */
    return x == x ? r : x;
}
TG_DETMATH_INLINE double tg__gelu_slope(double x)
{
    const double a = fabs(x), xs = a < 38.7 ? x : 0.0;
    const double half_erfcx = 0.5 * tg__erfcx(a * 0.70710678118654752440),
                 x_pdf = xs * 0.39894228040143267794; /* 1 / sqrt(2 pi) */
    const double r = x < 0 ? tg__exp_neg_square(a, true, half_erfcx + x_pdf)
                           : 1.0 + tg__exp_neg_square(a, true, x_pdf - half_erfcx);
    return x == x ? r : x;
}

#endif

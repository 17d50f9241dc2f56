/* detmath.c: the out-of-line part of detmath.h, the reduction of sin, cos and tan's argument
 * beyond TG_TRIG_INLINE_MAX (Payne and Hanek's: only the bits of 2/pi that matter at x's
 * exponent), in integers, so that it gives the same bits on every machine. */
#include "core/detmath.h"

/* 2/pi = 0.a2f9836e 4e441529 ... (hex), its first 1280 bits after the point in 32-bit words
 * (tools/fit_detmath.py): enough for the largest double, whose exponent skips all but the
 * last 8 words used. */
static const uint32_t two_over_pi[40] = {
    0xa2f9836e, 0x4e441529, 0xfc2757d1, 0xf534ddc0, 0xdb629599, 0x3c439041, 0xfe5163ab, 0xdebbc561,
    0xb7246e3a, 0x424dd2e0, 0x06492eea, 0x09d1921c, 0xfe1deb1c, 0xb129a73e, 0xe88235f5, 0x2ebb4484,
    0xe99c7026, 0xb45f7e41, 0x3991d639, 0x835339f4, 0x9c845f8b, 0xbdf9283b, 0x1ff897ff, 0xde05980f,
    0xef2f118b, 0x5a0a6d1f, 0x6d367ecf, 0x27cb09b7, 0x4f463f66, 0x9e5fea2d, 0x7527bac7, 0xebe5f17b,
    0x3d0739f7, 0x8a5292ea, 0x6bfb5fb1, 0x1f8d5d08, 0x56033046, 0xfc7b6bab, 0xf0cfbc20, 0x9af4361d,
};

/* Bits [b, b + 64) of the little-endian number p (32-bit words, two words past b + 64 readable) */
static uint64_t bits_at(const uint32_t *p, int b)
{
    const int w = b / 32, off = b % 32;
    const uint64_t lo = (uint64_t)p[w] | (uint64_t)p[w + 1] << 32;
    return off ? lo >> off | (uint64_t)p[w + 2] << (64 - off) : lo;
}

/* |x| 2/pi = 4n + q + f with f in [-1/2, 1/2) to 128 bits, for |x| > TG_TRIG_INLINE_MAX finite:
 * returns q and f as the 128-bit two's complement fh:fl of f 2^128. |x| = m 2^e (m < 2^53), so
 *   |x| 2/pi = m 2^e sum_j w_j 2^(-32(j+1)),
 * where the words with 32(j+1) <= e - 2 add multiples of 4 and drop out; the next 8 give
 * P = m (w_j0 ... w_j0+7), whose point lies s = 32(j0 + 8) - e bits up (223 <= s <= 288), and
 * whose error from the words left out, below m units of P, is below 2^-170. */
static unsigned scaled_fraction(double x, uint64_t *fh, uint64_t *fl)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    const int e = (int)(bits >> 52 & 0x7ff) - 1075; /* |x| >= 2^20: normal */
    const uint64_t m = (bits & 0xfffffffffffffull) | 1ull << 52, mh = m >> 32, ml = m & 0xffffffff;
    const int j0 = e - 2 >= 32 ? (e - 2) / 32 : 0, s = 32 * (j0 + 8) - e;
    /* P by 32-bit limbs: each of acc[] takes at most four terms below 2^32 before the carries */
    uint64_t acc[12] = {0};
    for (int i = 0; i < 8; i++) {
        const uint64_t w = two_over_pi[j0 + 7 - i], a = ml * w, b = mh * w;
        acc[i] += a & 0xffffffff;
        acc[i + 1] += (a >> 32) + (b & 0xffffffff);
        acc[i + 2] += b >> 32;
    }
    uint32_t p[12];
    for (int i = 0; i < 12; i++) {
        if (i + 1 < 12)
            acc[i + 1] += acc[i] >> 32;
        p[i] = (uint32_t)acc[i];
    }
    *fh = bits_at(p, s - 64);
    *fl = bits_at(p, s - 128);
    return (unsigned)(bits_at(p, s) + (*fh >> 63)) & 3; /* f >= 1/2 rounds q up, f - 1 < 0 */
}

unsigned tg__rem_pio2(double x, double *rh, double *rl)
{
    uint64_t h, l;
    unsigned q = scaled_fraction(x, &h, &l);
    const bool negative = h >> 63;
    if (negative) { /* the magnitude, 2^128 - (h:l) */
        h = ~h + (l == 0);
        l = ~l + 1;
    }
    /* f = |h:l| 2^-128 as fhi + flo: normalized to a leading 1 at bit 127, its top 53 bits and
     * the next 64 (rounded to 53). |f| >= 2^-62 or so (the closest a double comes to a multiple
     * of pi/2), so the 128 bits keep f to 2^-66 relative at worst. */
    double fhi = 0, flo = 0;
    if (h | l) {
        const int z = h ? __builtin_clzll(h) : 64 + __builtin_clzll(l);
        if (z >= 64)
            h = l << (z - 64), l = 0;
        else if (z > 0)
            h = h << z | l >> (64 - z), l <<= z;
        fhi = ldexp((double)(h >> 11), -53 - z);
        flo = ldexp((double)((h & 0x7ff) << 53 | l >> 11), -117 - z);
    }
    /* r = f pi/2 as a sum of two doubles: fhi (pi/2)_hi exactly (fma is correctly rounded, so the
     * same everywhere), the smaller products added to its error */
    const double ph = 0x1.921fb54442d18p0, pl = 0x1.1a62633145c07p-54;
    const double p = fhi * ph, err = fma(fhi, ph, -p), tail = err + (fhi * pl + flo * ph);
    double hi = p + tail, lo = tail - (hi - p);
    if (negative)
        hi = -hi, lo = -lo;
    if (x < 0) { /* -|x| 2/pi = 4(-n - 1) + (4 - q) - f */
        q = (4 - q) & 3;
        hi = -hi, lo = -lo;
    }
    *rh = hi;
    *rl = lo;
    return q;
}

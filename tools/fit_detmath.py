#!/usr/bin/env python3
"""The coefficients of tg__erfcx, tg__erf, tg__atan, tg__asin_acos and the trig kernels (detmath.h),
and the bits of pi/2 and 2/pi that tg__trig_reduce and tg__rem_pio2 (src/core/detmath.c) use,
printed as C initializers. Needs python3-mpmath (1.3.0 was used):  python3 tools/fit_detmath.py

erfcx(z) = e^(z^2) erfc(z) for z >= 0 as two polynomials, each interpolating at the Chebyshev
nodes of its interval (close to the best uniform approximation), solved in the monomial basis
at 50 digits:

  near: z in [0, 2], a polynomial of degree 22 in s = z - 1;
  far:  z in [2, 27.3], E(u) = (z + 2) erfcx(z) as a polynomial of degree 18 in v = u - u_c,
        u = (z - 2) / (z + 2) in [0, 0.8635] and u_c its midpoint (rounded to a double).

Beyond 27.3, erfc(z) < 2^-1075 rounds to 0. erf's Taylor series for |x| < 0.85:
erf(x) = x + x q(x^2), q(z) = (2/sqrt(pi)) sum_n (-z)^n / (n! (2n + 1)) - 1 to n = 18.
atan for |t| <= 7/16 (what tg__atan reduces to): atan(t) = t - t^3 q(t^2), q of degree 11
interpolated as above; and atan(1/2), atan(1), atan(3/2), pi/2, and pi less each (atan2's left
half-plane) as sums of two doubles. asin t = t + t^3 R(t^2) for t <= 1/2, R of degree 12.
sin and cos for |t| <= pi/4 (1 + 5e-5): sin t = t + t^3 S(t^2), S of degree 6, and
cos t = 1 - t^2/2 + t^4 C(t^2), C of degree 5, interpolated in z = t^2 as above; pi/2 as
P1 + P2 + P3 (33 bits each, chopped) + P4 (rounded); 2/pi's first 1280 bits in 32-bit words.
tg__log_dd's table: for i = -37 .. 53 (m in [sqrt(1/2), sqrt 2) rounded to the nearest
c = 1 + i/128), 1/c rounded to a double, and -log of that double as the sum of two doubles."""
from mpmath import (mp, mpf, erfc, exp, cos, sin, pi, sqrt, asin, atan, factorial, floor, matrix,
                    lu_solve, log)

mp.dps = 50
Z_SPLIT, Z_MAX, C = mpf(2), mpf("27.3"), mpf(2)


def erfcx(z):
    return erfc(z) * exp(z * z)


def interpolate(f, lo, hi, degree):
    """The monomial coefficients of the polynomial of `degree` through f at the Chebyshev
    nodes of [lo, hi]."""
    n = degree + 1
    xs = [lo + (cos(pi * (k + mpf(1) / 2) / n) + 1) * (hi - lo) / 2 for k in range(n)]
    a = lu_solve(matrix([[x**j for j in range(n)] for x in xs]), matrix([f(x) for x in xs]))
    return [a[j] for j in range(n)]


def print_array(name, coefs):
    print("static const double %s[%d] = {" % (name, len(coefs)))
    for c in coefs:
        print("    %s," % float(c).hex())
    print("};")


near = interpolate(lambda s: erfcx(s + 1), -1, Z_SPLIT - 1, 22)
u_lo, u_hi = (Z_SPLIT - C) / (Z_SPLIT + C), (Z_MAX - C) / (Z_MAX + C)
u_c = mpf(float((u_lo + u_hi) / 2))


def far_of_v(v):
    u = v + u_c
    z = C * (1 + u) / (1 - u)
    return erfcx(z) * (z + C)


far = interpolate(far_of_v, u_lo - u_c, u_hi - u_c, 18)
print("/* u_c = %s */" % float(u_c).hex())
print_array("near", near)
print_array("far", far)

taylor = [2 / sqrt(pi) * (-1) ** n / (factorial(n) * (2 * n + 1)) for n in range(19)]
taylor[0] -= 1
print_array("q", taylor)


def atan_q(z):
    if z == 0:
        return mpf(1) / 3
    t = sqrt(z)
    return (t - atan(t)) / (t * z)


print_array("q", interpolate(atan_q, mpf(0), (mpf(7) / 16) ** 2, 11))
for name, v in [("atan(1/2)", atan(mpf(1) / 2)), ("atan(1)", atan(mpf(1))),
                ("atan(3/2)", atan(mpf(3) / 2)), ("pi/2", pi / 2), ("pi", pi),
                ("pi - atan(1/2)", pi - atan(mpf(1) / 2)), ("3pi/4", 3 * pi / 4),
                ("pi - atan(3/2)", pi - atan(mpf(3) / 2))]:
    hi = float(v)
    print("/* %s = %s + %s */" % (name, hi.hex(), float(v - hi).hex()))


def sin_s(z):
    if z == 0:
        return mpf(-1) / 6
    t = sqrt(z)
    return (sin(t) - t) / (t * z)


def cos_c(z):
    if z == 0:
        return mpf(1) / 24
    t = sqrt(z)
    return (cos(t) - 1 + z / 2) / (z * z)


def asin_r(z):
    if z == 0:
        return mpf(1) / 6
    t = sqrt(z)
    return (asin(t) - t) / (t * z)


print_array("R", interpolate(asin_r, mpf(0), mpf(1) / 4, 12))
z_max = (pi / 4) ** 2 * mpf("1.0001")
print_array("S", interpolate(sin_s, mpf(0), z_max, 6))
print_array("C", interpolate(cos_c, mpf(0), z_max, 5))


def chop(v, bits):
    """v with its significand cut to `bits` bits (toward zero)"""
    e = int(floor(mp.log(abs(v), 2)))
    return mpf(int(floor(v * mpf(2) ** (bits - 1 - e)))) * mpf(2) ** (e - bits + 1)


mp.dps = 500
p1 = chop(pi / 2, 33)
p2 = chop(pi / 2 - p1, 33)
p3 = chop(pi / 2 - p1 - p2, 33)
p4 = float(pi / 2 - p1 - p2 - p3)
print("/* P1..P4 = %s */" % ", ".join(float(v).hex() for v in (p1, p2, p3, p4)))
f, words = 2 / pi, []
for _ in range(40):
    f *= 2**32
    words.append(int(floor(f)))
    f -= words[-1]
print("static const uint32_t two_over_pi[40] = {%s};" % ", ".join("0x%08x" % w for w in words))

mp.dps = 100
print("const double tg__log_table[%d][3] = {" % (53 + 37 + 1))
for i in range(-37, 54):
    invc = float(1 / (1 + mpf(i) / 128))
    logc = -log(mpf(invc))
    hi = float(logc)
    print("    {%s, %s, %s}," % (invc.hex(), hi.hex(), float(logc - hi).hex()))
print("};")

#!/usr/bin/env python3
"""Reference values and gradients of composite tgx programs, computed independently of
tapegrad: each program is written again below as an mpmath function (30 significant digits),
and its gradient is mpmath.diff's high-precision numerical derivative of that function.
Regenerate tests/data/composite_refs.inc with:

    python3 tests/data/composite_refs.py > tests/data/composite_refs.inc

(mpmath 1.3.0). Inputs keep away from kinks, ties and domain edges, so the derivatives exist
and the finite differences converge."""
from mpmath import mp, mpf

mp.dps = 30
M = mp


def gelu(x):
    return x * (1 + M.erf(x / M.sqrt(2))) / 2


def silu(x):
    return x / (1 + M.exp(-x))


def softplus(x):
    return M.log(1 + M.exp(x))


def sig(x):
    return 1 / (1 + M.exp(-x))


def where(c, a, b):
    return a if c else b


def vdot(a, b):
    return sum(x * y for x, y in zip(a, b))


def logsumexp(v):
    return M.log(sum(M.exp(x) for x in v))


# (program, inputs as (name, shape, values), function of the flattened inputs by name)
CASES = [
    ("sin(x)*cos(y)", [("x", [], [1]), ("y", [], [2])],
     lambda x, y: M.sin(x) * M.cos(y)),
    ("tan(x) + atan(y) * asin(z)", [("x", [], [0.7]), ("y", [], [-1.3]), ("z", [], [0.4])],
     lambda x, y, z: M.tan(x) + M.atan(y) * M.asin(z)),
    ("acos(x) / (1 + sinh(y)^2)", [("x", [], [-0.35]), ("y", [], [0.8])],
     lambda x, y: M.acos(x) / (1 + M.sinh(y) ** 2)),
    ("cosh(x) - asinh(x*y) + acosh(y)", [("x", [], [0.6]), ("y", [], [1.9])],
     lambda x, y: M.cosh(x) - M.asinh(x * y) + M.acosh(y)),
    ("atanh(x) * expm1(y) + log1p(x*y)", [("x", [], [0.45]), ("y", [], [-0.7])],
     lambda x, y: M.atanh(x) * M.expm1(y) + M.log1p(x * y)),
    ("erf(x) * softplus(y) + gelu(x) - silu(y)", [("x", [], [0.3]), ("y", [], [-1.2])],
     lambda x, y: M.erf(x) * softplus(y) + gelu(x) - silu(y)),
    ("softplus(x) - x", [("x", [], [35])], lambda x: softplus(x) - x),
    ("atan2(y, x) * x", [("x", [], [-1.1]), ("y", [], [0.5])], lambda x, y: M.atan2(y, x) * x),
    ("x ^ y + y ^ 2", [("x", [], [1.7]), ("y", [], [-0.6])],
     lambda x, y: M.power(x, y) + y ** 2),
    ("sum(maximum(v, 0.5) * minimum(v, w))", [("v", [4], [0.1, 0.9, -0.4, 2.0]),
                                              ("w", [4], [0.3, 0.2, 1.0, 1.5])],
     lambda v0, v1, v2, v3, w0, w1, w2, w3: sum(
         max(a, mpf(0.5)) * min(a, b) for a, b in zip([v0, v1, v2, v3], [w0, w1, w2, w3]))),
    ("sum(where(v > 0, v^2, -v))", [("v", [4], [0.3, -1.2, 2.5, -0.1])],
     lambda *v: sum(where(a > 0, a ** 2, -a) for a in v)),
    ("sum(where(v > 0, log(where(v > 0, v, 1)), 0))", [("v", [3], [0.4, -2.0, 1.5])],
     lambda *v: sum(where(a > 0, M.log(a), 0) for a in v)),
    ("prod(v) + prod(w)", [("v", [3], [1.5, -0.5, 2.0]), ("w", [3], [0.7, 0, 1.3])],
     lambda v0, v1, v2, w0, w1, w2: v0 * v1 * v2 + w0 * w1 * w2),
    ("min(v) * max(v)", [("v", [4], [0.3, -1.2, 2.5, 0.9])],
     lambda *v: min(v) * max(v)),
    ("sum(v[1:3]) * v[0] + v[-1]", [("v", [4], [0.5, 1.5, -2.0, 3.0])],
     lambda v0, v1, v2, v3: (v1 + v2) * v0 + v3),
    ("sum(A[:, 0] * A[1, 0:2]) + sum(A[::2, 1:])", [("A", [2, 3], [1, 2, 3, 4, 5, 6])],
     lambda a, b, c, d, e, f: a * d + d * e + (b + c)),
    ("sum(concat([v, w, v], 0) ^ 2 * [1, 2, 3, 4, 5, 6, 7])",
     [("v", [2], [0.5, -1.0]), ("w", [3], [2.0, 0.25, -0.75])],
     lambda v0, v1, w0, w1, w2: vdot([v0 ** 2, v1 ** 2, w0 ** 2, w1 ** 2, w2 ** 2, v0 ** 2,
                                      v1 ** 2], [1, 2, 3, 4, 5, 6, 7])),
    ("sum(stack([v, w], 1) @ [1, -2])", [("v", [3], [0.5, 1.0, 2.0]), ("w", [3], [3.0, -1.0, 0.5])],
     lambda v0, v1, v2, w0, w1, w2: (v0 - 2 * w0) + (v1 - 2 * w1) + (v2 - 2 * w2)),
    ("sum(take(v, [0, 2, 2, -1], 0) * [1, 2, 3, 4])", [("v", [4], [0.5, 1.5, -2.0, 3.0])],
     lambda v0, v1, v2, v3: v0 + 2 * v2 + 3 * v2 + 4 * v3),
    ("sum(take(E, [1, 1, 0], 0) * [[1, 2], [3, 4], [5, 6]])", [("E", [2, 2], [0.1, 0.2, 0.3, 0.4])],
     lambda a, b, c, d: c * 1 + d * 2 + c * 3 + d * 4 + a * 5 + b * 6),
    ("sum(permute(A, [1, 0]) @ v)", [("A", [2, 3], [1, 2, 3, 4, 5, 6]), ("v", [2], [0.5, -1.5])],
     lambda a, b, c, d, e, f, v0, v1: (a + b + c) * v0 + (d + e + f) * v1),
    ("v @ A @ w", [("v", [2], [0.5, -1.5]), ("A", [2, 3], [1, 2, 3, 4, 5, 6]),
                   ("w", [3], [0.2, 0.1, -0.3])],
     lambda v0, v1, a, b, c, d, e, f, w0, w1, w2: vdot(
         [v0 * a + v1 * d, v0 * b + v1 * e, v0 * c + v1 * f], [w0, w1, w2])),
    ("sum(sign(v) * floor(w) + ceil(w) * v)", [("v", [3], [0.5, -1.5, 2.0]),
                                               ("w", [3], [1.3, -0.6, 2.7])],
     lambda v0, v1, v2, w0, w1, w2: sum(M.sign(a) * M.floor(b) + M.ceil(b) * a
                                        for a, b in zip([v0, v1, v2], [w0, w1, w2]))),
    ("logsumexp(sin(v) * 3)", [("v", [3], [0.2, 1.1, -0.7])],
     lambda *v: logsumexp([3 * M.sin(a) for a in v])),
    ("sum((v > 0.5) * v^2 + (v <= 0.5) * exp(v))", [("v", [4], [0.1, 0.9, -0.4, 2.0])],
     lambda *v: sum((a ** 2 if a > 0.5 else 0) + (M.exp(a) if a <= 0.5 else 0) for a in v)),
    ("mu = mean(v); s = sqrt(mean((v - mu)^2)); sum(-0.5 * ((v - mu) / s)^2 - log(s))",
     [("v", [4], [0.3, 1.9, -0.8, 1.1])],
     lambda *v: (lambda mu: (lambda s: sum(-0.5 * ((a - mu) / s) ** 2 - M.log(s) for a in v))(
         M.sqrt(sum((a - mu) ** 2 for a in v) / 4)))(sum(v) / 4)),
    ("phi = t @ [[1, 1, 1], [0, 1, 1], [0, 0, 1]]; "
     "(sum([1, 0.8, 0.5] * cos(phi)) - 0.6)^2 + (sum([1, 0.8, 0.5] * sin(phi)) - 1.5)^2",
     [("t", [3], [0.3, 0.3, 0.3])],
     lambda t0, t1, t2: (lambda p: (sum(l * M.cos(q) for l, q in zip([1, 0.8, 0.5], p)) - 0.6) ** 2
                         + (sum(l * M.sin(q) for l, q in zip([1, 0.8, 0.5], p)) - 1.5) ** 2)(
         [t0, t0 + t1, t0 + t1 + t2])),
    ("sigmoid(sum(A @ v)) * tanh(A[0, 1])", [("A", [2, 2], [0.5, -0.3, 0.8, 0.1]),
                                              ("v", [2], [1.2, -0.4])],
     lambda a, b, c, d, v0, v1: sig(a * v0 + b * v1 + c * v0 + d * v1) * M.tanh(b)),
    ("sum(abs(v - w) ^ 1.5) + sum(clamp(v * w, -1, 1))", [("v", [3], [0.5, -1.5, 2.0]),
                                                         ("w", [3], [1.2, 0.3, -0.2])],
     lambda v0, v1, v2, w0, w1, w2: sum(abs(a - b) ** 1.5 + max(-1, min(1, a * b))
                                        for a, b in zip([v0, v1, v2], [w0, w1, w2]))),
    ("x = stack([a, b], 0); sum(x * x[1])", [("a", [], [0.7]), ("b", [], [-1.3])],
     lambda a, b: a * b + b * b),
    ("sum(T[1, :, 0:2] * T[0, 1:, -1])", [("T", [2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])],
     lambda *t: t[6] * t[5] + t[7] * t[5] + t[9] * t[5] + t[10] * t[5]),
    ("sum(minimum(maximum(v, -1), 1) * atan2(v, w))", [("v", [3], [0.5, -1.5, 2.0]),
                                                      ("w", [3], [-0.7, 0.3, 1.1])],
     lambda v0, v1, v2, w0, w1, w2: sum(min(max(a, -1), 1) * M.atan2(a, b)
                                        for a, b in zip([v0, v1, v2], [w0, w1, w2]))),
]


def flat(inputs):
    return [mpf(v) for _, _, vals in inputs for v in vals]


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


print("/* Generated by tests/data/composite_refs.py (mpmath %s, %d digits); do not edit. */" %
      (__import__("mpmath").__version__, mp.dps))
for prog, inputs, f in CASES:
    xs = flat(inputs)
    value = f(*xs)
    grads = []
    for i in range(len(xs)):
        order = [0] * len(xs)
        order[i] = 1
        grads.append(M.diff(f, xs, tuple(order)))
    print("{%s, %s, %d, {" % (cstr(prog), M.nstr(value, 20), len(inputs)))
    k = 0
    for name, shape, vals in inputs:
        g = grads[k:k + len(vals)]
        k += len(vals)
        print("    {%s, %d, {%s}, {%s}, {%s}}," % (
            cstr(name), len(shape), ", ".join(str(d) for d in shape) or "0",
            ", ".join(repr(float(v)) for v in vals),
            ", ".join(M.nstr(x, 20) for x in g)))
    print("}},")

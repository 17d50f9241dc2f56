#!/usr/bin/env python3
"""The descent of examples/inverse_kinematics.c written independently in plain Python, with the
gradient derived by hand, for tests/test_examples.c: prints the angles and the hand at steps 0,
50 and 400. A 3-link planar arm, phi_k = theta_1 + ... + theta_k, hand = sum L_k (cos, sin)(phi_k),
loss = |hand - target|^2 + MU * sum of squared excursions beyond the joint limits."""
import math

L = [1.0, 0.8, 0.5]
LO, HI = [-2.5, -2.5, -1.0], [2.5, 2.5, 1.0]
TARGET = [-0.5, 0.4]
LR, MU = 0.1, 10.0

theta = [0.3, 0.3, 0.3]
for step in range(401):
    phi = [sum(theta[: k + 1]) for k in range(3)]
    x = sum(L[k] * math.cos(phi[k]) for k in range(3))
    y = sum(L[k] * math.sin(phi[k]) for k in range(3))
    dx, dy = x - TARGET[0], y - TARGET[1]
    dphi = [2 * dx * -L[k] * math.sin(phi[k]) + 2 * dy * L[k] * math.cos(phi[k]) for k in range(3)]
    grad = [sum(dphi[i:]) for i in range(3)]
    for i in range(3):
        if theta[i] > HI[i]:
            grad[i] += 2 * MU * (theta[i] - HI[i])
        if theta[i] < LO[i]:
            grad[i] += 2 * MU * (theta[i] - LO[i])
    if step in (0, 50, 400):
        print(step, " ".join("%.4f" % t for t in theta), "%.4f %.4f" % (x, y))
    if step == 400:
        break
    theta = [theta[i] - LR * grad[i] for i in range(3)]

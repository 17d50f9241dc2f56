/* test_backprop_222.c: runs the worked example examples/backprop_222 and checks every number
 * it prints against the classic 2-2-2 backpropagation tutorial (8 decimals, so 1e-8).
 * The example is found through TG_EXAMPLES_DIR, which the build sets for every test. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* popen, pclose */
#endif

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/helpers.h"

#define TOL 1e-8

enum { BEFORE, GRADIENTS, UPDATED, AFTER, N_SECTIONS };

typedef struct result {
    /* forward passes: [BEFORE] and [AFTER] */
    double h[2][2], o[2][2], E[2], z[2];
    bool has_h[2], has_o[2], has_E[2], has_z;
    double dw[8];
    bool has_dw[8];
    double chain5[3], chain1[3];
    bool has_chain5, has_chain1;
    double w[8];
    bool has_w[8];
    bool seen[N_SECTIONS];
} result;

static void parse_line(result *r, int section, const char *line)
{
    double a, b, c;
    int k;
    int f = section == AFTER ? 1 : 0;
    if (sscanf(line, " h1 = %lf h2 = %lf", &a, &b) == 2) {
        cr_assert(section == BEFORE || section == AFTER, "h outside a forward pass: %s", line);
        cr_assert_not(r->has_h[f], "h printed twice: %s", line);
        r->h[f][0] = a;
        r->h[f][1] = b;
        r->has_h[f] = true;
    } else if (sscanf(line, " o1 = %lf o2 = %lf", &a, &b) == 2) {
        cr_assert(section == BEFORE || section == AFTER, "o outside a forward pass: %s", line);
        cr_assert_not(r->has_o[f], "o printed twice: %s", line);
        r->o[f][0] = a;
        r->o[f][1] = b;
        r->has_o[f] = true;
    } else if (sscanf(line, " E = %lf", &a) == 1) {
        cr_assert(section == BEFORE || section == AFTER, "E outside a forward pass: %s", line);
        cr_assert_not(r->has_E[f], "E printed twice: %s", line);
        r->E[f] = a;
        r->has_E[f] = true;
    } else if (sscanf(line, " z1 = %lf z2 = %lf", &a, &b) == 2) {
        cr_assert_eq(section, AFTER, "z outside the second forward pass: %s", line);
        r->z[0] = a;
        r->z[1] = b;
        r->has_z = true;
    } else if (sscanf(line, " dE/dw%d = %lf", &k, &a) == 2) {
        cr_assert_eq(section, GRADIENTS, "%s", line);
        cr_assert(k >= 1 && k <= 8 && !r->has_dw[k - 1], "bad or repeated gradient: %s", line);
        r->dw[k - 1] = a;
        r->has_dw[k - 1] = true;
    } else if (strstr(line, "chain for w5:") || strstr(line, "chain for w1:")) {
        cr_assert_eq(section, GRADIENTS, "%s", line);
        const char *eq = strrchr(line, '=');
        cr_assert(eq && sscanf(eq, "= %lf * %lf * %lf", &a, &b, &c) == 3,
                  "cannot read the factors: %s", line);
        double *dst = strstr(line, "w5:") ? r->chain5 : r->chain1;
        dst[0] = a;
        dst[1] = b;
        dst[2] = c;
        *(strstr(line, "w5:") ? &r->has_chain5 : &r->has_chain1) = true;
    } else if (sscanf(line, " w%d = %lf", &k, &a) == 2) {
        cr_assert_eq(section, UPDATED, "%s", line);
        cr_assert(k >= 1 && k <= 8 && !r->has_w[k - 1], "bad or repeated weight: %s", line);
        r->w[k - 1] = a;
        r->has_w[k - 1] = true;
    } else {
        cr_assert_fail("unexpected line in section %d: '%s'", section, line);
    }
}

/* Runs the example and parses its output; asserts it exits 0. */
static void run_example(result *r)
{
    const char *dir = getenv("TG_EXAMPLES_DIR");
    cr_assert(dir && *dir,
              "TG_EXAMPLES_DIR is not set: it must name the directory holding the built example "
              "programs (ctest sets it; by hand: TG_EXAMPLES_DIR=build/examples)");
    char path[4096];
    snprintf(path, sizeof path, "%s/backprop_222", dir);
    cr_assert_eq(access(path, X_OK), 0, "%s is missing or not executable (build the examples)",
                 path);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s'", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s failed", cmd);
    memset(r, 0, sizeof *r);
    int section = -1;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (line[0] != ' ') {
            if (strcmp(line, "forward pass") == 0)
                section = BEFORE;
            else if (strcmp(line, "gradients") == 0)
                section = GRADIENTS;
            else if (strcmp(line, "updated weights") == 0)
                section = UPDATED;
            else if (strcmp(line, "forward pass after the update") == 0)
                section = AFTER;
            else
                cr_assert_fail("unexpected heading '%s'", line);
            cr_assert_not(r->seen[section], "heading repeated: '%s'", line);
            cr_assert(section == 0 || r->seen[section - 1], "heading out of order: '%s'", line);
            r->seen[section] = true;
            continue;
        }
        cr_assert_geq(section, 0, "a value before any heading: '%s'", line);
        parse_line(r, section, line);
    }
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "backprop_222 did not exit 0 (wait status %d)", status);
    for (int s = 0; s < N_SECTIONS; s++)
        cr_assert(r->seen[s], "section %d missing from the output", s);
}

Test(backprop_222, forward_pass)
{
    result r;
    run_example(&r);
    cr_assert(r.has_h[0] && r.has_o[0] && r.has_E[0]);
    ts_assert_close(r.h[0][0], 0.51998934, TOL, 0, "h1");
    ts_assert_close(r.h[0][1], 0.52747230, TOL, 0, "h2");
    ts_assert_close(r.o[0][0], 0.60944600, TOL, 0, "o1");
    ts_assert_close(r.o[0][1], 0.66384491, TOL, 0, "o2");
    ts_assert_close(r.E[0], 0.02397190, TOL, 0, "E");
}

Test(backprop_222, gradients)
{
    static const double want[8] = {0.00080888, 0.00161775, 0.00071009, 0.00142017,
                                   0.02592286, 0.02629590, 0.00740844, 0.00751506};
    result r;
    run_example(&r);
    for (int k = 0; k < 8; k++) {
        char what[16];
        snprintf(what, sizeof what, "dE/dw%d", k + 1);
        cr_assert(r.has_dw[k], "%s missing", what);
        ts_assert_close(r.dw[k], want[k], TOL, 0, "%s", what);
    }
}

Test(backprop_222, chain_rule_factors)
{
    result r;
    run_example(&r);
    cr_assert(r.has_chain5 && r.has_chain1, "chain lines missing");
    ts_assert_close(r.chain5[0], 0.20944600, TOL, 0, "dE/do1");
    ts_assert_close(r.chain5[1], 0.23802157, TOL, 0, "do1/dz3");
    ts_assert_close(r.chain5[2], 0.51998934, TOL, 0, "dz3/dw5");
    ts_assert_close(r.chain1[0], 0.03240681, TOL, 0, "dE/dh1");
    ts_assert_close(r.chain1[1], 0.24960043, TOL, 0, "dh1/dz1");
    ts_assert_close(r.chain1[2], 0.1, TOL, 0, "dz1/dw1");
    /* The factors multiply to the gradients (10 printed decimals: relative 1e-8). */
    double p5 = r.chain5[0] * r.chain5[1] * r.chain5[2];
    double p1 = r.chain1[0] * r.chain1[1] * r.chain1[2];
    ts_assert_close(p5, r.dw[4], 0, 1e-8, "w5: the product of the factors against the gradient");
    ts_assert_close(p1, r.dw[0], 1e-10, 1e-8,
                    "w1: the product of the factors against the gradient");
}

Test(backprop_222, updated_weights)
{
    static const double want[8] = {0.29959556, 0.24919112, 0.39964496, 0.34928991,
                                   0.43703857, 0.38685205, 0.69629578, 0.59624247};
    /* The example's starting weights (its W1 and W2, see the wiring comment there). */
    static const double before[8] = {0.30, 0.25, 0.40, 0.35, 0.45, 0.40, 0.70, 0.60};
    result r;
    run_example(&r);
    for (int k = 0; k < 8; k++) {
        char what[16];
        snprintf(what, sizeof what, "w%d", k + 1);
        cr_assert(r.has_w[k], "%s missing", what);
        ts_assert_close(r.w[k], want[k], TOL, 0, "%s", what);
        /* One step of gradient descent with learning rate 0.5, up to the printed rounding. */
        ts_assert_close(r.w[k], before[k] - 0.5 * r.dw[k], 1e-9, 0, "%s against %.2f - 0.5 * %.10f",
                        what, before[k], r.dw[k]);
    }
}

Test(backprop_222, forward_pass_after_update)
{
    result r;
    run_example(&r);
    cr_assert(r.has_z && r.has_h[1] && r.has_o[1] && r.has_E[1]);
    ts_assert_close(r.z[0], 0.07979778, TOL, 0, "z1");
    ts_assert_close(r.z[1], 0.10982248, TOL, 0, "z2");
    ts_assert_close(r.h[1][0], 0.51993887, TOL, 0, "h1");
    ts_assert_close(r.h[1][1], 0.52742806, TOL, 0, "h2");
    ts_assert_close(r.o[1][0], 0.60617688, TOL, 0, "o1");
    ts_assert_close(r.o[1][1], 0.66295848, TOL, 0, "o2");
    ts_assert_close(r.E[1], 0.02323634, TOL, 0, "E");
    cr_assert_lt(r.E[1], r.E[0], "one step of gradient descent lowers the error");
}

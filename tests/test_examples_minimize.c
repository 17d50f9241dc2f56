/* test_examples_minimize.c: the examples of tapegrad/minimize.h run as a user would.
 * newton: Newton, L-BFGS and gradient descent all reach Rosenbrock's minimum (1, 1), Newton in
 * the fewest iterations, gradient descent in by far the most. standard_errors: the printed
 * coefficients are the logistic regression's optimum and the printed standard errors are
 * sqrt(diag(H^-1)) for the closed-form Hessian H = X^T diag(p (1 - p)) X, both recomputed here
 * in plain C from the CSV (read by this file, not by the library). Needs TG_EXAMPLES_DIR and
 * TG_SOURCE_DIR (ctest sets both). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/proc.h"

static tp_run run_example(const char *name, const char *arg)
{
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/%s", tp_env("TG_EXAMPLES_DIR"), name);
    tp_run r = tp_run_argv((const char *const[]){bin, arg, NULL}, NULL);
    fprintf(stderr, "---- %s\n%s%s", name, r.out, r.err);
    return r;
}

/* The numbers after the row label `label` at the start of a line (" label  1  2 ..."). */
static size_t row_numbers(const char *out, const char *label, double *v, size_t max)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s ", label);
    const char *at = strstr(out, key);
    cr_assert_not_null(at, "no row '%s' in the output", label);
    at += strlen(key);
    size_t k = 0;
    while (k < max) {
        char *end;
        double d = strtod(at, &end);
        if (end == at)
            break;
        v[k++] = d;
        at = end;
    }
    return k;
}

Test(examples_minimize, newton_lbfgs_gd_side_by_side)
{
    tp_run r = run_example("newton", NULL);
    tp_expect_status(&r, 0);
    ts_assert_lacks(r.out, "not converged");
    /* iterations, evaluations, gradients, Hessians, f, |x - (1, 1)| */
    double nt[6], lb[6], gd[6];
    cr_assert_eq(row_numbers(r.out, "newton", nt, 6), 6);
    cr_assert_eq(row_numbers(r.out, "lbfgs", lb, 6), 6);
    cr_assert_eq(row_numbers(r.out, "gd", gd, 6), 6);
    for (int i = 0; i < 3; i++) {
        const double *row = i == 0 ? nt : i == 1 ? lb : gd;
        cr_assert_leq(row[5], 1e-6, "row %d ends within 1e-6 of (1, 1)", i);
        cr_assert_geq(row[1], row[0], "an evaluation per iteration at least");
    }
    cr_assert_lt(nt[0], lb[0], "Newton takes fewer iterations than L-BFGS");
    cr_assert_lt(lb[0] * 100, gd[0], "gradient descent takes far more");
    cr_assert_eq(nt[3], nt[0], "a Hessian per Newton iteration");
    cr_assert_eq(lb[3], 0);
    cr_assert_eq(gd[3], 0);
    tp_run_free(&r);
}

#define D 4
#define P (D + 1)

/* The CSV, read here: the columns FEATURES and benign of every row. */
static size_t read_csv(const char *path, double **xs, double **ys)
{
    static const char *const FEATURES[D] = {"mean_radius", "mean_texture", "mean_smoothness",
                                            "mean_symmetry"};
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char line[1 << 14];
    cr_assert_not_null(fgets(line, sizeof line, f));
    int col[P], ncol = 0;
    for (int j = 0; j < P; j++)
        col[j] = -1;
    for (char *tok = strtok(line, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), ncol++)
        for (int j = 0; j < P; j++)
            if (strcmp(tok, j < D ? FEATURES[j] : "benign") == 0)
                col[j] = ncol;
    for (int j = 0; j < P; j++)
        cr_assert_geq(col[j], 0, "column %d found", j);
    size_t n = 0, cap = 1024;
    double *x = malloc(cap * P * sizeof *x), *y = malloc(cap * sizeof *y);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        cr_assert_lt(n, cap);
        double cells[64];
        int c = 0;
        for (char *s = line; c < 64;) {
            cells[c++] = strtod(s, &s);
            if (*s != ',')
                break;
            s++;
        }
        x[n * P] = 1;
        for (int j = 0; j < D; j++)
            x[n * P + 1 + j] = cells[col[j]];
        y[n] = cells[col[D]];
        n++;
    }
    fclose(f);
    *xs = x;
    *ys = y;
    return n;
}

/* Gauss-Jordan with partial pivoting: a (P x P) replaced by its inverse. */
static void invert(double a[P][P])
{
    double inv[P][P] = {{0}};
    for (int i = 0; i < P; i++)
        inv[i][i] = 1;
    for (int c = 0; c < P; c++) {
        int piv = c;
        for (int r = c + 1; r < P; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        for (int k = 0; k < P; k++) {
            double t = a[c][k];
            a[c][k] = a[piv][k];
            a[piv][k] = t;
            t = inv[c][k];
            inv[c][k] = inv[piv][k];
            inv[piv][k] = t;
        }
        double d = a[c][c];
        cr_assert_gt(fabs(d), 0);
        for (int k = 0; k < P; k++) {
            a[c][k] /= d;
            inv[c][k] /= d;
        }
        for (int r = 0; r < P; r++) {
            if (r == c)
                continue;
            double m = a[r][c];
            for (int k = 0; k < P; k++) {
                a[r][k] -= m * a[c][k];
                inv[r][k] -= m * inv[c][k];
            }
        }
    }
    memcpy(a, inv, sizeof inv);
}

Test(examples_minimize, standard_errors_match_the_closed_form)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/data/breast_cancer.csv", tp_env("TG_SOURCE_DIR"));
    tp_run r = run_example("standard_errors", path);
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "newton: converged");
    static const char *const labels[P] = {"coef intercept", "coef mean_radius", "coef mean_texture",
                                          "coef mean_smoothness", "coef mean_symmetry"};
    double w[P], se[P];
    for (int j = 0; j < P; j++) {
        double v[3];
        cr_assert_eq(row_numbers(r.out, labels[j], v, 3), 3, "%s: estimate, SE, z", labels[j]);
        w[j] = v[0];
        se[j] = v[1];
    }

    double *x, *y;
    size_t n = read_csv(path, &x, &y);
    cr_assert_eq(n, 569);
    for (int j = 1; j < P; j++) { /* as the example says: population standard deviation */
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
            mean += x[i * P + j];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
            var += (x[i * P + j] - mean) * (x[i * P + j] - mean);
        double sd = sqrt(var / (double)n);
        for (size_t i = 0; i < n; i++)
            x[i * P + j] = (x[i * P + j] - mean) / sd;
    }
    /* gradient X^T (p - y) and Hessian X^T diag(p (1 - p)) X at the printed coefficients */
    double g[P] = {0}, H[P][P] = {{0}};
    for (size_t i = 0; i < n; i++) {
        double z = 0;
        for (int j = 0; j < P; j++)
            z += x[i * P + j] * w[j];
        double p = 1 / (1 + exp(-z));
        for (int j = 0; j < P; j++) {
            g[j] += x[i * P + j] * (p - y[i]);
            for (int k = 0; k < P; k++)
                H[j][k] += x[i * P + j] * p * (1 - p) * x[i * P + k];
        }
    }
    /* The coefficients are printed to 1e-10: the gradient there is that small times |H|. */
    for (int j = 0; j < P; j++)
        cr_assert_leq(fabs(g[j]), 1e-6, "the printed point is the optimum: g[%d] = %g", j, g[j]);
    invert(H);
    for (int j = 0; j < P; j++)
        ts_assert_close(se[j], sqrt(H[j][j]), 1e-9, 1e-7, "%s: SE", labels[j]);
    free(x);
    free(y);
    tp_run_free(&r);
}

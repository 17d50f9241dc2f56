/* standard_errors.c: curvature on real data. A logistic regression of the diagnosis (benign
 * or malignant) on four standardized measurements of breast_cancer.csv, fitted by Newton's
 * method on the negative log-likelihood, then the Hessian of that loss at the optimum
 * (tg_hessian): the observed Fisher information. Its inverse estimates the coefficients'
 * covariance, so the standard errors are sqrt(diag(H^-1)), and z = coefficient / SE are the
 * Wald statistics a statistics package prints for the same model.
 *
 * The loss is sum_i softplus(z_i) - y_i z_i with z = X w (X with a leading column of ones for
 * the intercept), whose Hessian has the closed form X^T diag(p (1 - p)) X, p = sigmoid(z):
 * tests/test_examples_minimize.c recomputes that from the CSV and the printed coefficients.
 * Each feature is standardized with its mean and population standard deviation over all rows.
 *
 *   standard_errors [DATA.csv]   defaults to examples/data/breast_cancer.csv (source tree) */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FEATURES[] = {"mean_radius", "mean_texture", "mean_smoothness",
                                       "mean_symmetry"};
#define D (sizeof FEATURES / sizeof *FEATURES)
#define P (D + 1) /* coefficients: the intercept, then one per feature */

typedef struct problem {
    tg_tensor *X, *y; /* (n, P) with a column of ones, and (n) of 0/1: leaves, no grad */
} problem;

/* sum(softplus(X w) - y * (X w)): the negative log-likelihood, differentiable twice */
static tg_tensor *nll(tg_tape *t, tg_tensor *const *w, size_t n, void *ud)
{
    (void)n;
    const problem *pb = ud;
    tg_tensor *z = tg_matmul(t, pb->X, w[0]);
    return tg_sum(t, tg_sub(t, tg_softplus(t, z), tg_mul(t, pb->y, z)), TG_ALL_AXES, false);
}

static int fail(const char *what)
{
    fprintf(stderr, "standard_errors: %s: %s\n", what, tg_last_error());
    return 1;
}

/* Inverts the symmetric positive definite A (P x P) into inv by Cholesky: false if it is not
 * positive definite. */
static bool spd_inverse(const double *A, double *inv)
{
    double L[P * P] = {0};
    for (size_t j = 0; j < P; j++) {
        double s = A[j * P + j];
        for (size_t k = 0; k < j; k++)
            s -= L[j * P + k] * L[j * P + k];
        if (!(s > 0))
            return false;
        L[j * P + j] = sqrt(s);
        for (size_t i = j + 1; i < P; i++) {
            double v = A[i * P + j];
            for (size_t k = 0; k < j; k++)
                v -= L[i * P + k] * L[j * P + k];
            L[i * P + j] = v / L[j * P + j];
        }
    }
    for (size_t c = 0; c < P; c++) { /* column c of A^-1: L L^T x = e_c */
        double x[P];
        for (size_t i = 0; i < P; i++) {
            double v = i == c;
            for (size_t k = 0; k < i; k++)
                v -= L[i * P + k] * x[k];
            x[i] = v / L[i * P + i];
        }
        for (size_t i = P; i-- > 0;) {
            double v = x[i];
            for (size_t k = i + 1; k < P; k++)
                v -= L[k * P + i] * x[k];
            x[i] = v / L[i * P + i];
        }
        for (size_t i = 0; i < P; i++)
            inv[i * P + c] = x[i];
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "examples/data/breast_cancer.csv";
    tg_table *table = NULL;
    if (tg_table_read_csv(path, &table) != TG_OK)
        return fail("reading the data");
    size_t n = tg_table_rows(table), cols[D + 1];
    for (size_t j = 0; j <= D; j++) {
        cols[j] = tg_table_find(table, j < D ? FEATURES[j] : "benign");
        if (cols[j] == (size_t)-1) {
            tg_table_free(table);
            return fail("finding a column");
        }
    }
    double *x = malloc(n * P * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y) {
        fprintf(stderr, "standard_errors: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const double *row = tg_table_row(table, i);
        x[i * P] = 1;
        for (size_t j = 0; j < D; j++)
            x[i * P + 1 + j] = row[cols[j]];
        y[i] = row[cols[D]];
    }
    tg_table_free(table);
    for (size_t j = 1; j < P; j++) { /* standardize: mean 0, population variance 1 */
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
    problem pb = {tg_tensor_from_f64(TG_F64, 2, (const size_t[]){n, P}, x),
                  tg_tensor_from_f64(TG_F64, 1, (const size_t[]){n}, y)};
    tg_tensor *w = tg_tensor_zeros(TG_F64, 1, (const size_t[]){P});
    free(x);
    free(y);
    int rc = 1;
    tg_tape *tape = NULL;
    tg_tensor *H = NULL;
    if (!pb.X || !pb.y || !w) {
        fail("making the tensors");
        goto done;
    }

    /* ---- the fit: Newton from w = 0 ---- */
    tg_minimize_options opt = TG_MINIMIZE_OPTIONS_INIT;
    opt.method = TG_MINIMIZE_NEWTON;
    opt.tol = 1e-9;
    tg_minimize_result res;
    if (tg_minimize(nll, &pb, &w, 1, &opt, &res) != TG_OK) {
        fail("fitting");
        goto done;
    }
    printf("standard_errors: logistic regression of benign on %zu features, %zu rows\n", D, n);
    printf("newton: %s after %d iterations (%d evaluations), -log L = %.10g, |grad| = %.3g\n",
           res.converged ? "converged" : "NOT converged", res.iterations, res.evaluations,
           res.value, res.grad_norm);

    /* ---- the curvature at the optimum: H = d2(-log L)/dw2, one recording, tg_hessian ---- */
    tape = tg_tape_new();
    tg_status st = tape && tg_tensor_set_requires_grad(w, true) == TG_OK ? TG_OK : TG_ENOMEM;
    tg_tensor *f = st == TG_OK ? nll(tape, &w, 1, &pb) : NULL;
    if (!f || tg_hessian(tape, f, &w, 1, &H) != TG_OK) {
        fail("the Hessian");
        goto done;
    }
    double h[P * P], cov[P * P];
    if (tg_tensor_to_f64(H, h) != TG_OK || !spd_inverse(h, cov)) {
        fprintf(stderr, "standard_errors: the Hessian is not positive definite\n");
        goto done;
    }
    printf("%-21s %16s %16s %9s\n", "coefficient", "estimate", "std. error", "z");
    for (size_t j = 0; j < P; j++) {
        double est = tg_tensor_get(w, j), se = sqrt(cov[j * P + j]);
        printf("coef %-16s %16.10f %16.10f %9.3f\n", j ? FEATURES[j - 1] : "intercept", est, se,
               est / se);
    }
    rc = res.converged ? 0 : 1;
done:
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(pb.X);
    tg_tensor_free(pb.y);
    return rc;
}

/* test_examples.c: runs the example programs as a user would and holds them to what they
 * promise: digits >= 97% and breast_cancer >= 95% test accuracy, diabetes R^2 >= 0.4, xor's
 * four predictions right, gradient_descent's path and verdicts, custom_ode's endpoint, gradient
 * check and fit, inverse_kinematics' path. Wall time is printed by the examples, never asserted.
 * Needs TG_EXAMPLES_DIR and TG_SOURCE_DIR (ctest sets both). */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/helpers.h"

typedef struct run {
    char out[1 << 16]; /* stdout and stderr, interleaved */
    int status;        /* exit status, or -1 when the program did not exit normally */
} run;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "%s is not set: run this test through ctest, which sets it", name);
    cr_assert_null(strchr(v, '\''), "%s contains a quote: %s", name, v);
    return v;
}

/* Runs examples/<name> with `arg` (a data file under examples/data, "" for none, or an
 * absolute path) and `extra` (another argument, or NULL), and captures what it prints. */
static void run_example2(run *r, const char *name, const char *arg, const char *extra)
{
    char cmd[8192];
    const char *bin = env("TG_EXAMPLES_DIR");
    if (!*arg)
        snprintf(cmd, sizeof cmd, "'%s/%s' 2>&1", bin, name);
    else if (arg[0] == '/')
        snprintf(cmd, sizeof cmd, "'%s/%s' '%s' 2>&1", bin, name, arg);
    else
        snprintf(cmd, sizeof cmd, "'%s/%s' '%s/examples/data/%s' %s%s%s 2>&1", bin, name,
                 env("TG_SOURCE_DIR"), arg, extra ? "'" : "", extra ? extra : "",
                 extra ? "'" : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t n = fread(r->out, 1, sizeof r->out - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    /* Shown in the test log, so a failure (or a sanitizer report) can be read there. */
    fprintf(stderr, "---- %s\n%s", cmd, r->out);
    ts_assert_lacks(r->out, "Sanitizer");      /* a sanitizer report */
    ts_assert_lacks(r->out, "runtime error:"); /* undefined behaviour */
}

static void run_example(run *r, const char *name, const char *arg)
{
    run_example2(r, name, arg, NULL);
}

/* The number after `label` in the output. */
static double number_after(const run *r, const char *label)
{
    const char *at = strstr(r->out, label);
    cr_assert_not_null(at, "no '%s' in the output", label);
    char *end;
    double v = strtod(at + strlen(label), &end);
    cr_assert(end != at + strlen(label), "no number after '%s'", label);
    return v;
}

/* What `predict` does with a saved model: raw rows, standardized with the statistics the
 * model file carries, then the forward pass. Returns the accuracy over every row. */
static double accuracy_from_raw(tg_model *model, const tg_table *table)
{
    size_t n_std, d = tg_model_spec(model)->sizes[0];
    const double *mean, *std;
    cr_assert_eq(tg_model_standardization(model, &n_std, &mean, &std), TG_OK);
    cr_assert_eq(n_std, d, "the model file carries the standardization");
    size_t target = tg_table_find(table, tg_model_target_name(model));
    cr_assert_neq(target, (size_t)-1, "%s", tg_last_error());
    size_t rows = tg_table_rows(table), shape[2] = {rows, d};
    tg_tensor *x = tg_tensor_zeros(TG_F32, 2, shape);
    float *xp = tg_tensor_data(x);
    for (size_t i = 0; i < rows; i++) {
        const double *row = tg_table_row(table, i);
        for (size_t j = 0, k = 0; j < tg_table_cols(table); j++)
            if (j != target) {
                cr_assert_str_eq(tg_model_feature_name(model, k), tg_table_col_name(table, j));
                xp[i * d + k] = (float)((row[j] - mean[k]) / std[k]);
                k++;
            }
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *z = tg_model_forward(tape, model, x);
    cr_assert_not_null(z, "%s", tg_last_error());
    size_t classes = tg_tensor_dim(z, 1), correct = 0;
    for (size_t i = 0; i < rows; i++) {
        size_t best = 0;
        for (size_t c = 1; c < classes; c++)
            if (tg_tensor_get(z, i * classes + c) > tg_tensor_get(z, i * classes + best))
                best = c;
        correct += best == (size_t)tg_table_row(table, i)[target];
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    return (double)correct / (double)rows;
}

Test(examples, digits, .timeout = 240)
{
    static run r;
    char dir[] = "/tmp/tg_examples_XXXXXX", model_path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(model_path, sizeof model_path, "%s/digits.tgm", dir);
    run_example2(&r, "digits", "digits.csv", model_path);
    cr_assert_eq(r.status, 0, "digits exited with %d", r.status);
    double acc = number_after(&r, "test accuracy:");
    cr_assert_geq(acc, 0.97, "digits: test accuracy %.4f below 0.97", acc);
    ts_assert_has(r.out, "wall time:"); /* digits says how long it took */

    /* The saved model predicts from raw pixels, with the metadata it was saved with. */
    tg_model *model = NULL;
    tg_status st = tg_model_load(model_path, &model);
    unlink(model_path);
    rmdir(dir);
    cr_assert_eq(st, TG_OK, "%s", tg_last_error());
    size_t classes = 0;
    cr_assert_eq(tg_model_task(model, &classes), TG_TASK_CLASSIFY);
    cr_assert_eq(classes, 10);
    cr_assert_str_eq(tg_model_target_name(model), "digit");
    char data[4096];
    snprintf(data, sizeof data, "%s/examples/data/digits.csv", env("TG_SOURCE_DIR"));
    tg_table *table = NULL;
    cr_assert_eq(tg_table_read_csv(data, &table), TG_OK, "%s", tg_last_error());
    double all = accuracy_from_raw(model, table);
    cr_assert_geq(all, 0.97, "the loaded model: accuracy %.4f over all rows", all);
    tg_table_free(table);
    tg_model_free(model);
}

Test(examples, breast_cancer, .timeout = 240)
{
    static run r;
    run_example(&r, "breast_cancer", "breast_cancer.csv");
    cr_assert_eq(r.status, 0, "breast_cancer exited with %d", r.status);
    double acc = number_after(&r, "test accuracy:");
    cr_assert_geq(acc, 0.95, "breast_cancer: test accuracy %.4f below 0.95", acc);
}

Test(examples, diabetes, .timeout = 240)
{
    static run r;
    run_example(&r, "diabetes", "diabetes.csv");
    cr_assert_eq(r.status, 0, "diabetes exited with %d", r.status);
    double r2 = number_after(&r, "test R^2:");
    double rmse = number_after(&r, "test RMSE:");
    cr_assert_geq(r2, 0.4, "diabetes: R^2 %.4f below 0.4", r2);
    /* Sanity of the units: the target spans 25..346; an RMSE outside this is a bug. */
    cr_assert(rmse > 10 && rmse < 100, "diabetes: RMSE %.2f", rmse);
}

Test(examples, xor)
{
    static run r;
    run_example(&r, "xor", "");
    cr_assert_eq(r.status, 0, "xor exited with %d", r.status);
    /* The four predictions of the model with a hidden layer, each on the right side of 0.5. */
    const char *at = strstr(r.out, "\nhidden layer (");
    cr_assert_not_null(at);
    int found = 0;
    for (const char *line = at; (line = strstr(line, "  xor(")) != NULL; line++) {
        double a, b, t, p;
        int label;
        cr_assert_eq(sscanf(line, "  xor(%lf, %lf) = %lf predicted %lf -> %d", &a, &b, &t, &p,
                            &label),
                     5, "cannot read '%.40s'", line);
        cr_assert_eq(t, (double)((int)a ^ (int)b), "xor(%g, %g) printed as %g", a, b, t);
        cr_assert_eq(p > 0.5, t == 1.0, "xor(%g, %g): predicted %.3f", a, b, p);
        cr_assert_eq(label, (int)t);
        found++;
    }
    cr_assert_eq(found, 4, "%d predictions printed", found);
    ts_assert_has(r.out, "4 of 4 right");
    /* And the model without one is at chance: every probability 0.5 to the printed digits
     * is too strict to promise, but its loss must not beat ln 2 by much. */
    double linear_loss = number_after(&r, "no hidden layer (2 -> 1): loss");
    cr_assert_geq(linear_loss, 0.69, "a linear model cannot fit xor (loss %.4f)", linear_loss);
}

Test(examples, gradient_descent)
{
    static run r;
    run_example(&r, "gradient_descent", "");
    cr_assert_eq(r.status, 0, "gradient_descent exited with %d", r.status);
    ts_assert_has(r.out, "lr = 0.01: slow");
    ts_assert_has(r.out, "lr = 0.1: converges");
    ts_assert_has(r.out, "lr = 0.9: oscillates but converges");
    ts_assert_has(r.out, "lr = 1.1: diverges");

    /* The path: step s for rate lr is 3 (1 - 2 lr)^s, since dF/dw = 2w. Each table row is
     * "s w(0.01) w(0.1) w(0.9) w(1.1)". */
    static const double rates[4] = {0.01, 0.1, 0.9, 1.1};
    const char *line = strstr(r.out, "\n   0 ");
    cr_assert_not_null(line, "no path table");
    int rows = 0;
    for (int s = 0; s <= 20; s++) {
        int step;
        double w[4];
        cr_assert_eq(sscanf(line + 1, "%d %lf %lf %lf %lf", &step, &w[0], &w[1], &w[2], &w[3]),
                     5, "cannot read row %d: '%.60s'", s, line + 1);
        cr_assert_eq(step, s);
        for (int k = 0; k < 4; k++) {
            double want = 3.0 * pow(1.0 - 2.0 * rates[k], s);
            ts_assert_close(w[k], want, 1e-6, 1e-6, "step %d, lr %g: w", s, rates[k]);
        }
        rows++;
        line = strchr(line + 1, '\n');
        cr_assert_not_null(line);
    }
    cr_assert_eq(rows, 21);
}

/* custom_ode: the RK4 endpoint against an independent solution of the ODE, its hand-written
 * VJP through tg_gradcheck, and the fit recovering the parameters the observation came from. */
Test(examples, custom_ode)
{
    static run r;
    run_example(&r, "custom_ode", "");
    cr_assert_eq(r.status, 0, "custom_ode exited with %d", r.status);
    /* theta(2), omega(2) for theta'' = -2 sin(theta) - 0.3 theta', theta(0) = 1, theta'(0) = 0,
     * by mpmath 1.3.0's Taylor-series integrator at 30 digits:
     *   python3 -c "import mpmath as mp; mp.mp.dps = 30; print(mp.odefun(lambda t, y:
     *     [y[1], -2*mp.sin(y[0]) - mp.mpf('0.3')*y[1]], 0, [mp.mpf(1), mp.mpf(0)])(2))"
     * RK4 with h = 0.05 is within 1e-6 of it. */
    ts_assert_close(number_after(&r, "theta = "), -0.615429396485697, 1e-6, 0, "theta(2)");
    ts_assert_close(number_after(&r, "omega = "), -0.453809985402427, 1e-6, 0, "omega(2)");
    ts_assert_has(r.out, "gradcheck of the RK4 adjoint: ok");
    double err = number_after(&r, "max error ");
    cr_assert_lt(err, 1e-7, "gradcheck max error %g", err);
    const char *fit = strstr(r.out, "fitted: ");
    cr_assert_not_null(fit, "no fit printed");
    double k, c;
    cr_assert_eq(sscanf(fit, "fitted: k = %lf, c = %lf", &k, &c), 2, "cannot read '%.60s'", fit);
    ts_assert_close(k, 2.0, 1e-4, 0, "fitted k");
    ts_assert_close(c, 0.3, 1e-4, 0, "fitted c");
}

/* The path is compared with the same descent written independently in plain Python, its
 * gradient derived by hand (dloss/dtheta_i = sum over k >= i of dloss/dphi_k, plus the
 * penalty's 2 MU (theta - limit) outside a limit):
 *   python3 tests/data/inverse_kinematics.py
 * which prints rows 0, 50 and 400 as below. */
Test(examples, inverse_kinematics)
{
    static run r;
    run_example(&r, "inverse_kinematics", "");
    cr_assert_eq(r.status, 0, "inverse_kinematics exited with %d", r.status);
    static const struct {
        const char *row;
        double theta[3], hand[2];
    } rows[] = {
        {"\n    0 ", {0.3, 0.3, 0.3}, {1.9264, 1.1389}},
        {"\n   50 ", {0.9912, 2.1685, 1.0011}, {-0.5142, 0.3963}},
        {"\n  400 ", {0.9646, 2.1780, 1.0000}, {-0.5000, 0.4000}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *line = strstr(r.out, rows[i].row);
        cr_assert_not_null(line, "no row%s", rows[i].row);
        int step;
        double v[5];
        cr_assert_eq(sscanf(line + 1, "%d %lf %lf %lf %lf %lf", &step, &v[0], &v[1], &v[2],
                            &v[3], &v[4]),
                     6, "cannot read '%.60s'", line + 1);
        for (int k = 0; k < 5; k++) {
            double want = k < 3 ? rows[i].theta[k] : rows[i].hand[k - 3];
            ts_assert_close(v[k], want, 0, 1.5e-4, "step %d, column %d", step, k);
        }
    }
    double dist = number_after(&r, "final distance to the target:");
    cr_expect_lt(dist, 1e-6, "the hand ends %g from the target", dist);
    ts_assert_has(r.out, "joints within their limits: yes");
}

Test(examples, bad_data_path_is_a_clear_error)
{
    static run r;
    run_example(&r, "digits", "/nonexistent/digits.csv");
    cr_assert_eq(r.status, 1, "exit status %d", r.status);
    ts_assert_has(r.out, "/nonexistent/digits.csv: cannot open: No such file");
}

Test(examples, wrong_target_column_is_a_clear_error)
{
    /* breast_cancer looks for the column "benign"; the diabetes file has none. */
    static run r;
    run_example(&r, "breast_cancer", "diabetes.csv");
    cr_assert_eq(r.status, 1, "exit status %d", r.status);
    ts_assert_has(r.out, "no column 'benign'; the columns are: age, sex, bmi");
}

/* cmd_predict.c: `tapegrad predict`, a model saved by `tapegrad train --save` applied to the
 * rows of a CSV file: features found by name and standardized as in training, one prediction
 * a line (or JSON), and the accuracy or RMSE when the file has the target too. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PREDICT_USAGE[] =
    "usage: tapegrad predict MODEL DATA.csv [--json]\n"
    "\n"
    "Applies a model saved by 'tapegrad train --save' to the rows of a CSV file: the feature\n"
    "columns are found by name, standardized with the statistics stored in the model, and\n"
    "the predictions printed one per line (the class, or the value in the target's units).\n"
    "When the file has the target column too, the accuracy (or RMSE) goes to stderr.\n"
    "\n"
    "  --json              print one JSON object instead: {\"task\", \"rows\",\n"
    "                      \"predictions\": [...], \"accuracy\"|\"rmse\" (with the target)}\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 success; 1 unreadable model or data, missing columns; 2 bad usage.\n";

/* Column of the table for each of the model's d features (by name when the model has names,
 * else the first d columns when there are exactly d), and of the target (-1: absent). */
static int map_columns(const tg_model *m, const tg_table *table, const char *data, size_t d,
                       size_t *cols, size_t *target)
{
    *target = (size_t)-1;
    size_t nc = tg_table_cols(table);
    if (!tg_model_feature_name(m, 0)) {
        if (nc != d) {
            complain("predict",
                     "the model has no column names, so %s must have exactly its "
                     "%zu feature columns; it has %zu",
                     data, d, nc);
            return EXIT_FAIL;
        }
        for (size_t j = 0; j < d; j++)
            cols[j] = j;
        return EXIT_OK;
    }
    size_t missing = 0;
    const char *first = NULL;
    for (size_t j = 0; j < d; j++) {
        cols[j] = (size_t)-1;
        for (size_t c = 0; c < nc && cols[j] == (size_t)-1; c++)
            if (strcmp(tg_table_col_name(table, c), tg_model_feature_name(m, j)) == 0)
                cols[j] = c;
        if (cols[j] == (size_t)-1 && missing++ == 0)
            first = tg_model_feature_name(m, j);
    }
    if (missing) {
        complain("predict", "%s lacks the model's feature column '%s'%s", data, first,
                 missing > 1 ? " and others" : "");
        if (missing > 1)
            fprintf(stderr, "(%zu of the model's %zu features are missing)\n", missing, d);
        return EXIT_FAIL;
    }
    const char *tn = tg_model_target_name(m);
    for (size_t c = 0; tn && c < nc; c++)
        if (strcmp(tg_table_col_name(table, c), tn) == 0)
            *target = c;
    return EXIT_OK;
}

/* Rows per forward pass: memory stays bounded for any file. */
#define PREDICT_CHUNK 1024

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(PREDICT_USAGE, stdout);
            return EXIT_OK;
        }
        if (strcmp(arg, "--json") == 0) {
            json = true;
        } else if (looks_like_option(arg) && strcmp(arg, "-") != 0) {
            return usage_error("predict", "unknown option '%s'", arg);
        } else if (!model_path) {
            model_path = arg;
        } else if (!data) {
            data = arg;
        } else {
            return usage_error("predict", "unexpected argument '%s'", arg);
        }
    }
    if (!data)
        return usage_error("predict", "expected a model and a data file");

    int rc = EXIT_FAIL;
    tg_model *m = NULL;
    tg_table *table = NULL;
    tg_tape *tape = NULL;
    size_t *cols = NULL;
    double *pred = NULL;
    void *xb = NULL;
    if (tg_model_load(model_path, &m) != TG_OK) {
        complain("predict", "%s", tg_last_error());
        goto done;
    }
    if (tg_table_read_csv(data, &table) != TG_OK) {
        complain("predict", "%s", tg_last_error());
        goto done;
    }
    const tg_mlp_spec *spec = tg_model_spec(m);
    size_t d = spec->sizes[0], n_out = spec->sizes[spec->n_layers], rows = tg_table_rows(table);
    size_t n_classes = 0;
    tg_task task = tg_model_task(m, &n_classes);
    size_t target;
    cols = malloc(d * sizeof *cols);
    pred = malloc((rows ? rows : 1) * sizeof *pred);
    size_t es = tg_dtype_size(spec->dtype);
    xb = malloc(PREDICT_CHUNK * d * es);
    tape = tg_tape_new();
    if (!cols || !pred || !xb || !tape) {
        complain("predict", "out of memory");
        goto done;
    }
    if (map_columns(m, table, data, d, cols, &target) != EXIT_OK)
        goto done;
    size_t n_std = 0;
    const double *mean = NULL, *std = NULL;
    tg_model_standardization(m, &n_std, &mean, &std);
    tg_tape_set_grad_enabled(tape, false);

    double ss = 0;
    size_t correct = 0;
    for (size_t start = 0; start < rows; start += PREDICT_CHUNK) {
        size_t count = rows - start < PREDICT_CHUNK ? rows - start : PREDICT_CHUNK;
        for (size_t i = 0; i < count; i++) {
            const double *row = tg_table_row(table, start + i);
            for (size_t j = 0; j < d; j++) {
                double v = row[cols[j]];
                if (n_std == d)
                    v = (v - mean[j]) / std[j];
                if (spec->dtype == TG_F32) {
                    ((float *)xb)[i * d + j] = (float)v;
                    if (isinf((float)v) && isfinite(v)) {
                        const char *name = tg_model_feature_name(m, j);
                        complain("predict", "data row %zu, feature '%s': %g does not fit the "
                                 "model's f32", start + i + 1, name ? name : "?", v);
                        goto done;
                    }
                } else
                    ((double *)xb)[i * d + j] = v;
            }
        }
        const size_t shape[2] = {count, d};
        tg_tensor *x = tg_tensor_wrap(spec->dtype, 2, shape, xb);
        tg_tensor *z = x ? tg_model_forward(tape, m, x) : NULL;
        if (!z) {
            complain("predict", "%s", tg_last_error());
            tg_tensor_free(x);
            goto done;
        }
        for (size_t i = 0; i < count * n_out; i++) {
            double out = tg_tensor_get(z, i);
            if (!isfinite(out)) { /* an argmax over NaN would pick class 0 silently */
                complain("predict", "data row %zu: the model's output is %g (a diverged model, "
                         "or features far outside the training data)", start + i / n_out + 1,
                         out);
                tg_tensor_free(x);
                goto done;
            }
        }
        for (size_t i = 0; i < count; i++) {
            double yhat;
            if (task == TG_TASK_CLASSIFY) {
                size_t best = 0;
                for (size_t k = 1; k < n_out; k++)
                    if (tg_tensor_get(z, i * n_out + k) > tg_tensor_get(z, i * n_out + best))
                        best = k;
                yhat = (double)best;
            } else {
                yhat = tg_tensor_get(z, i * n_out);
            }
            pred[start + i] = yhat;
            if (target != (size_t)-1) {
                double y = tg_table_row(table, start + i)[target];
                correct += yhat == y;
                ss += (yhat - y) * (yhat - y);
            }
        }
        tg_tape_reset(tape);
        tg_tensor_free(x);
    }

    bool classify = task == TG_TASK_CLASSIFY;
    double score = rows == 0  ? NAN
                   : classify ? (double)correct / (double)rows
                              : sqrt(ss / (double)rows);
    if (json) {
        printf("{\"task\": \"%s\", \"rows\": %zu, \"predictions\": [",
               classify ? "classify" : "regress", rows);
        for (size_t i = 0; i < rows; i++) {
            fputs(i ? ", " : "", stdout);
            if (classify)
                printf("%.0f", pred[i]);
            else
                json_number(stdout, pred[i]);
        }
        putchar(']');
        if (target != (size_t)-1) {
            printf(", \"%s\": ", classify ? "accuracy" : "rmse");
            json_number(stdout, score);
        }
        puts("}");
    } else {
        for (size_t i = 0; i < rows; i++) {
            char buf[64];
            if (classify)
                snprintf(buf, sizeof buf, "%.0f", pred[i]);
            else
                format_short(buf, sizeof buf, pred[i], spec->dtype);
            puts(buf);
        }
        if (target != (size_t)-1 && classify)
            fprintf(stderr, "accuracy %.4f (%zu of %zu rows right)\n", score, correct, rows);
        else if (target != (size_t)-1)
            fprintf(stderr, "RMSE %.6g over %zu rows\n", score, rows);
    }
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
done:
    tg_tape_free(tape);
    tg_table_free(table);
    tg_model_free(m);
    free(cols);
    free(pred);
    free(xb);
    return rc;
}

/* cmd_predict.c: `tapegrad predict`, a model saved by `tapegrad train --save` applied to the
 * rows of a CSV file: features found by name and standardized as in training, one prediction
 * a line (or JSON), and the accuracy or RMSE when the file has the target too. The
 * standardization, the forward pass and the reading of the outputs are tg_model_predict's. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PREDICT_USAGE[] =
    "usage: tapegrad predict MODEL DATA.csv [--json]\n"
    "\n"
    "Applies a model saved by 'tapegrad train --save' to the rows of a CSV file ('-' reads\n"
    "standard input): the feature columns are found by name, standardized with the statistics\n"
    "stored in the model, and the predictions printed one per line (the class, or the value\n"
    "in the target's units). When the file has the target column too, the accuracy (or RMSE)\n"
    "goes to stderr; for a classifier the target must then be one of its classes.\n"
    "\n"
    "  --json              print one JSON object instead: {\"task\", \"rows\",\n"
    "                      \"predictions\": [...], \"accuracy\"|\"rmse\" (with the target)}\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 success; 1 unreadable model or data, missing columns, a target that is\n"
    "not a class of the model; 2 bad usage.\n";

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

/* A classifier is scored against class numbers: EXIT_FAIL naming the first data row whose
 * target (column `target`, named tn) is not one of the model's n_classes, as train refuses
 * such a target; EXIT_OK when every row's is one. */
static int check_classes(const tg_table *table, size_t target, const char *tn, size_t n_classes,
                         const char *data)
{
    for (size_t i = 0, rows = tg_table_rows(table); i < rows; i++) {
        const double y = tg_table_row(table, i)[target];
        if (!(y >= 0 && y < (double)n_classes && y == floor(y))) {
            complain("predict",
                     "%s: the target '%s' of data row %zu is %g, not one of the model's classes "
                     "(0 to %zu)",
                     data, tn, i + 1, y, n_classes - 1);
            return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}

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
    if (strcmp(model_path, "-") == 0) /* standard input is the data's to take */
        return usage_error("predict", "the model must be a file: '-' (standard input) is for the "
                                      "data");

    int rc = EXIT_FAIL;
    tg_model *m = NULL;
    tg_table *table = NULL;
    size_t *cols = NULL;
    double *pred = NULL, *x = NULL;
    if (tg_model_load(model_path, &m) != TG_OK) {
        complain("predict", "%s", tg_last_error());
        goto done;
    }
    if (tg_table_read_csv(data_path(data), &table) != TG_OK) {
        complain("predict", "%s", tg_last_error());
        goto done;
    }
    const tg_mlp_spec *spec = tg_model_spec(m);
    size_t d = spec->sizes[0], rows = tg_table_rows(table);
    size_t width = tg_model_predict_width(m);
    size_t n_classes = 0, target;
    const tg_task task = tg_model_task(m, &n_classes);
    cols = malloc(d * sizeof *cols);
    /* The table holds rows * cols doubles already; the features and predictions add at most
     * as much again. */
    x = malloc((rows ? rows : 1) * d * sizeof *x);
    pred = malloc((rows ? rows : 1) * (width ? width : 1) * sizeof *pred);
    if (!cols || !x || !pred) {
        complain("predict", "out of memory");
        goto done;
    }
    if (map_columns(m, table, data, d, cols, &target) != EXIT_OK)
        goto done;
    if (width != 1)
        target = (size_t)-1; /* one target column cannot score several outputs */
    if (target != (size_t)-1 && task == TG_TASK_CLASSIFY &&
        check_classes(table, target, tg_model_target_name(m), n_classes, data) != EXIT_OK)
        goto done;
    for (size_t i = 0; i < rows; i++) {
        const double *row = tg_table_row(table, i);
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = row[cols[j]];
    }
    /* Standardization, the forward pass and the reading of the outputs are the library's. */
    if (tg_model_predict(m, x, rows, d, pred, rows * width) != TG_OK) {
        complain("predict", "%s: %s", data, tg_last_error());
        goto done;
    }

    double ss = 0;
    size_t correct = 0;
    for (size_t i = 0; target != (size_t)-1 && i < rows; i++) {
        double y = tg_table_row(table, i)[target];
        correct += pred[i] == y;
        ss += (pred[i] - y) * (pred[i] - y);
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
            if (classify) {
                printf("%.0f", pred[i]);
                continue;
            }
            fputs(width > 1 ? "[" : "", stdout);
            for (size_t k = 0; k < width; k++) {
                fputs(k ? ", " : "", stdout);
                json_number(stdout, pred[i * width + k]);
            }
            fputs(width > 1 ? "]" : "", stdout);
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
            for (size_t k = 0; k < width; k++) {
                if (classify)
                    snprintf(buf, sizeof buf, "%.0f", pred[i]);
                else
                    format_short(buf, sizeof buf, pred[i * width + k], spec->dtype);
                fputs(k ? "," : "", stdout);
                fputs(buf, stdout);
            }
            putchar('\n');
        }
        if (target != (size_t)-1 && classify)
            fprintf(stderr, "accuracy %.4f (%zu of %zu rows right)\n", score, correct, rows);
        else if (target != (size_t)-1)
            fprintf(stderr, "RMSE %.6g over %zu rows\n", score, rows);
    }
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
done:
    tg_table_free(table);
    tg_model_free(m);
    free(cols);
    free(pred);
    free(x);
    return rc;
}

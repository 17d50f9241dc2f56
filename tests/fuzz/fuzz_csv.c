/* fuzz_csv.c: libFuzzer harness for the CSV reader (tests/fuzz/run.sh builds and runs it).
 * Each input is parsed as CSV text; a table that parses is then taken through the data-set
 * pipeline a training program uses (target column by name, split, statistics,
 * standardization, shuffled gathering to f32 and f64), and every accessor is read back and
 * checked against the reader's promises: every value finite, every name non-empty and
 * unique. Everything is freed, so LeakSanitizer sees any leak on any path. */
#include <tapegrad.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* A broken promise is a finding: crash loudly so libFuzzer keeps the input. */
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            __builtin_trap();                                                                  \
    } while (0)

static void pipeline(const tg_table *t)
{
    size_t rows = tg_table_rows(t), cols = tg_table_cols(t);
    CHECK(rows >= 1 && cols >= 1);
    for (size_t j = 0; j < cols; j++) {
        const char *name = tg_table_col_name(t, j);
        CHECK(name && name[0]);
        CHECK(tg_table_find(t, name) == j); /* unique names */
    }
    CHECK(tg_table_col_name(t, cols) == NULL);
    CHECK(tg_table_row(t, rows) == NULL);
    for (size_t i = 0; i < rows; i++) {
        const double *r = tg_table_row(t, i);
        for (size_t j = 0; j < cols; j++)
            CHECK(isfinite(r[j]));
    }
    if (cols < 2)
        return;
    tg_dataset all, train, test;
    if (tg_dataset_from_table(t, cols - 1, &all) != TG_OK)
        return;
    CHECK(all.n == rows && all.d == cols - 1);
    if (tg_dataset_split(&all, 0.25, rows, &train, &test) == TG_OK) {
        CHECK(train.n + test.n == rows);
        double *mean = malloc(train.d * sizeof *mean), *std = malloc(train.d * sizeof *std);
        if (mean && std && train.n > 0 && tg_dataset_stats(&train, mean, std) == TG_OK) {
            for (size_t j = 0; j < train.d; j++)
                CHECK(!(std[j] < 0));
            tg_dataset_standardize(&train, mean, std);
            tg_dataset_standardize(&test, mean, std);
        }
        free(mean);
        free(std);
        size_t n = train.n, batch = n < 8 ? n : 8;
        size_t *perm = malloc((n ? n : 1) * sizeof *perm);
        float *xf = malloc((batch * train.d + 1) * sizeof *xf);
        double *xd = malloc((batch * train.d + 1) * sizeof *xd);
        double *yd = malloc((batch + 1) * sizeof *yd);
        if (perm && xf && xd && yd && n > 0) {
            tg_rng rng;
            tg_rng_seed(&rng, n);
            tg_shuffle(perm, n, &rng);
            tg_dataset_gather(&train, perm, 0, batch, TG_F32, xf, NULL);
            tg_dataset_gather(&train, perm, n - batch, batch, TG_F64, xd, yd);
            tg_dataset_gather(&test, NULL, 0, test.n < batch ? test.n : batch, TG_F64, xd, yd);
        }
        free(perm);
        free(xf);
        free(xd);
        free(yd);
        tg_dataset_free(&train);
        tg_dataset_free(&test);
    }
    tg_dataset_free(&all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_install_hook();
    fuzz_reset_budget();
    /* Exactly `size` bytes on the heap, so ASan catches a read one past the end. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    tg_table *t = NULL;
    tg_status st = tg_table_parse_csv(text, size, "fuzz.csv", &t);
    if (st == TG_OK) {
        CHECK(t != NULL);
        pipeline(t);
    } else {
        CHECK(t == NULL);
        CHECK(st == TG_EFORMAT || st == TG_ENOMEM);
        CHECK(tg_last_status() == st);
        CHECK(strncmp(tg_last_error(), "fuzz.csv", 8) == 0); /* every error names the file */
    }
    tg_table_free(t);
    free(text);
    return 0;
}

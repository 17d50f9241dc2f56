/* dataset.c: supervised data sets in memory: features and targets cut from a table, seeded
 * train/test splits, standardization statistics, and the shuffling and gathering that turn a
 * data set into mini-batches of the model's dtype. */
#include "core/core.h"

#include <math.h>

/* Allocates ds->x (n*d) and ds->y (n); an empty array stays NULL (nothing to free). */
static tg_status ds_alloc(tg_dataset *ds, size_t n, size_t d, const char *who)
{
    memset(ds, 0, sizeof *ds);
    if (d && n > SIZE_MAX / sizeof(double) / d)
        return tg__error(TG_ENOMEM, "%s: %zu rows of %zu features is too many", who, n, d);
    size_t nx = n * d;
    double *x = nx > 0 ? tg__malloc(nx * sizeof *x) : NULL;
    double *y = n > 0 ? tg__malloc(n * sizeof *y) : NULL;
    if ((nx > 0 && !x) || (n > 0 && !y)) {
        tg__free(x, n * d * sizeof *x);
        tg__free(y, n * sizeof *y);
        return tg__error(TG_ENOMEM, "%s: out of memory for %zu rows of %zu features", who, n,
                         d);
    }
    *ds = (tg_dataset){n, d, x, y};
    return TG_OK;
}

void tg_dataset_free(tg_dataset *ds)
{
    if (!ds)
        return;
    tg__free(ds->x, ds->n * ds->d * sizeof *ds->x);
    tg__free(ds->y, ds->n * sizeof *ds->y);
    memset(ds, 0, sizeof *ds);
}

tg_status tg_dataset_from_table(const tg_table *table, size_t target_col, tg_dataset *out)
{
    if (!out)
        return tg__error(TG_EINVAL, "dataset_from_table: out is NULL");
    memset(out, 0, sizeof *out);
    if (!table)
        return tg__error(TG_EINVAL, "dataset_from_table: table is NULL");
    size_t rows = tg_table_rows(table), cols = tg_table_cols(table);
    if (target_col >= cols)
        return tg__error(TG_EINVAL, "dataset_from_table: target column %zu, the table has %zu",
                         target_col, cols);
    if (cols < 2)
        return tg__error(TG_EINVAL,
                         "dataset_from_table: the table has only the target column; no features");
    tg_status st = ds_alloc(out, rows, cols - 1, "dataset_from_table");
    if (st != TG_OK)
        return st;
    for (size_t i = 0; i < rows; i++) {
        const double *row = tg_table_row(table, i);
        double *x = out->x + i * out->d;
        memcpy(x, row, target_col * sizeof *x);
        memcpy(x + target_col, row + target_col + 1, (cols - 1 - target_col) * sizeof *x);
        out->y[i] = row[target_col];
    }
    return TG_OK;
}

/* Copies the rows perm[0..n) of src into dst (already allocated, same d). */
static void copy_rows(const tg_dataset *src, const size_t *perm, tg_dataset *dst)
{
    for (size_t i = 0; i < dst->n; i++) {
        if (src->d)
            memcpy(dst->x + i * src->d, src->x + perm[i] * src->d, src->d * sizeof *dst->x);
        dst->y[i] = src->y[perm[i]];
    }
}

tg_status tg_dataset_split(const tg_dataset *ds, double test_fraction, uint64_t seed,
                           tg_dataset *train, tg_dataset *test)
{
    if (!train || !test || train == test)
        return tg__error(TG_EINVAL, "dataset_split: train and test must be two distinct "
                                    "data sets");
    if (train == ds || test == ds)
        return tg__error(TG_EINVAL, "dataset_split: the output may not be the input");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!ds || ds->n == 0 || !ds->y || (ds->d && !ds->x))
        return tg__error(TG_EINVAL, "dataset_split: %s", ds ? "the data set is empty"
                                                            : "data set is NULL");
    if (!(test_fraction >= 0.0 && test_fraction < 1.0))
        return tg__error(TG_EINVAL, "dataset_split: test_fraction %g is not in [0, 1)",
                         test_fraction);
    size_t n = ds->n;
    size_t n_test = (size_t)floor((double)n * test_fraction + 0.5);
    if (n_test >= n)
        return tg__error(TG_EINVAL,
                         "dataset_split: a test fraction of %g of %zu rows leaves no "
                         "training rows",
                         test_fraction, n);

    if (n > SIZE_MAX / sizeof(size_t))
        return tg__error(TG_ENOMEM, "dataset_split: %zu rows is too many", n);
    size_t *perm = tg__malloc(n * sizeof *perm);
    if (!perm)
        return tg__error(TG_ENOMEM, "dataset_split: out of memory for %zu rows", n);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_shuffle(perm, n, &rng);

    tg_status st = ds_alloc(train, n - n_test, ds->d, "dataset_split");
    if (st == TG_OK)
        st = ds_alloc(test, n_test, ds->d, "dataset_split");
    if (st == TG_OK) {
        copy_rows(ds, perm, train);
        copy_rows(ds, perm + train->n, test);
    } else {
        tg_dataset_free(train);
        tg_dataset_free(test);
    }
    tg__free(perm, n * sizeof *perm);
    return st;
}

/* Two passes over values shifted by the first row: stable, and exact for a constant feature
 * (every shifted value is 0), which therefore gets std 1 rather than a rounding residue
 * that standardization would blow up into noise. */
tg_status tg_dataset_stats(const tg_dataset *ds, double *mean, double *std)
{
    if (!ds || !mean || !std)
        return tg__error(TG_EINVAL, "dataset_stats: %s is NULL",
                         !ds ? "data set" : !mean ? "mean" : "std");
    if (ds->n == 0 || (ds->d && !ds->x))
        return tg__error(TG_EINVAL, "dataset_stats: the data set is empty");
    size_t n = ds->n, d = ds->d;
    /* Each column is scaled by a power of two (exactly) so that its largest magnitude is
     * below 1: sums of n such values cannot overflow, whatever the values (+-1e308 included),
     * and the mean and deviation, scaled back, are at most that magnitude. Deviations are
     * taken from the first row's value, against cancellation when the spread is small beside
     * the values. */
    int *exp2 = tg__malloc(d * sizeof *exp2 + 1);
    if (!exp2)
        return tg__error(TG_ENOMEM, "dataset_stats: out of memory");
    for (size_t j = 0; j < d; j++) {
        double big = 0;
        for (size_t i = 0; i < n; i++) {
            double v = fabs(ds->x[i * d + j]);
            if (!isfinite(v)) {
                tg__free(exp2, d * sizeof *exp2 + 1);
                return tg__error(TG_EINVAL, "dataset_stats: feature %zu, row %zu: %g", j, i,
                                 ds->x[i * d + j]);
            }
            big = v > big ? v : big;
        }
        frexp(big, &exp2[j]); /* big < 2^exp2 */
        mean[j] = std[j] = 0.0;
    }
#define SCALED(i, j) ldexp(ds->x[(i) * d + (j)], -exp2[j])
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += SCALED(i, j) - SCALED(0, j);
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n; /* the shifted mean, for now */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double dev = SCALED(i, j) - SCALED(0, j) - mean[j];
            std[j] += dev * dev;
        }
    for (size_t j = 0; j < d; j++) {
        mean[j] = ldexp(mean[j] + SCALED(0, j), exp2[j]);
        std[j] = ldexp(sqrt(std[j] / (double)n), exp2[j]);
        if (std[j] == 0.0)
            std[j] = 1.0;
    }
#undef SCALED
    tg__free(exp2, d * sizeof *exp2 + 1);
    return TG_OK;
}

void tg_dataset_standardize(tg_dataset *ds, const double *mean, const double *std)
{
    if (!ds || !mean || !std || (ds->n > 0 && ds->d > 0 && !ds->x)) {
        tg__error(TG_EINVAL, "dataset_standardize: NULL argument");
        return;
    }
    size_t d = ds->d;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < d; j++) {
            /* A zero std (never from tg_dataset_stats) would make every value inf or NaN:
             * centre only. */
            double s = std[j] != 0.0 ? std[j] : 1.0, v = ds->x[i * d + j] - mean[j];
            /* x - mean overflows only for values near the largest double of both signs */
            ds->x[i * d + j] = isinf(v) ? ds->x[i * d + j] / s - mean[j] / s : v / s;
        }
}

/* Fisher-Yates, from the back: each of the n! orders is equally likely, given an unbiased
 * tg_rng_below. */
void tg_shuffle(size_t *perm, size_t n, tg_rng *rng)
{
    if (!perm || (!rng && n > 1)) {
        tg__error(TG_EINVAL, "shuffle: %s is NULL", perm ? "rng" : "perm");
        return;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)tg_rng_below(rng, (uint64_t)i);
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}

void tg_dataset_gather(const tg_dataset *ds, const size_t *perm, size_t start, size_t count,
                       tg_dtype dtype, void *x, void *y)
{
    if (!ds || (dtype != TG_F32 && dtype != TG_F64)) {
        tg__error(TG_EINVAL, "dataset_gather: %s", ds ? "unknown dtype" : "data set is NULL");
        return;
    }
    size_t d = ds->d;
    bool bad = false;
    for (size_t i = 0; i < count; i++) {
        /* A position past the data set (perm holds ds->n entries) or a row out of range becomes
         * NaN (with an error) rather than a read past the end of perm or of the data: anomaly
         * mode or the loss then shows it. */
        const size_t pos = start + i;
        const bool in_perm = pos >= start && pos < ds->n;
        const size_t r = !in_perm ? SIZE_MAX : perm ? perm[pos] : pos;
        bool ok = r < ds->n;
        bad |= !ok;
        const double *src = ok && d ? ds->x + r * d : NULL;
        double t = ok ? ds->y[r] : NAN;
        if (x && d) {
            if (dtype == TG_F64) {
                double *dst = (double *)x + i * d;
                if (ok)
                    memcpy(dst, src, d * sizeof *dst);
                else
                    for (size_t j = 0; j < d; j++)
                        dst[j] = NAN;
            } else {
                float *dst = (float *)x + i * d;
                if (ok)
                    for (size_t j = 0; j < d; j++)
                        dst[j] = (float)src[j];
                else
                    for (size_t j = 0; j < d; j++)
                        dst[j] = NAN;
            }
        }
        if (y && dtype == TG_F64)
            ((double *)y)[i] = t;
        else if (y)
            ((float *)y)[i] = (float)t;
    }
    if (bad)
        tg__error(TG_EINVAL,
                  "dataset_gather: rows %zu to %zu reach past the data set's %zu, or perm holds "
                  "a row out of range",
                  start, start + count - 1, ds->n);
}

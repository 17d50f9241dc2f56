/* tapegrad/data.h: tabular data in memory: a CSV reader for numeric data with a header row,
 * train/test splits, standardization, and seeded shuffling and batching. Values are doubles;
 * batches are converted to the model's dtype when they are made. */
#ifndef TAPEGRAD_DATA_H
#define TAPEGRAD_DATA_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A table: rows x cols doubles, row-major, with column names. */
typedef struct tg_table tg_table;

/* Reads a CSV file: a header row of names, then rows of numbers (decimal or exponent form,
 * optional surrounding spaces, "\n" or "\r\n" line ends). TG_EIO when the file cannot be
 * read (with the OS reason); TG_EFORMAT naming the place ("PATH: ..." for the file as a
 * whole, "PATH:LINE: ..." for a row, "PATH:LINE:COLUMN: ..." for a field) for an empty file, a
 * missing header, a ragged row, a field that is not a finite number (NaN/Inf included, and
 * 1e400, beyond a double; 1e-400, below the smallest, reads as 0), an empty field, a header with no data rows, an empty or duplicate column name, a NUL byte or
 * a carriage return (bare "\r" line ends) in the header, a first row that is all numbers
 * (no header). Blank lines are skipped; a UTF-8 byte order mark is ignored; header names may
 * be double-quoted ("" for a quote). A file over the size limit is refused (TG_EFORMAT): 1 GiB,
 * or the environment variable TG_CSV_MAX_BYTES, more or less, when it holds a positive number
 * of bytes in decimal digits (any other value is ignored). *out is the caller's
 * (tg_table_free). */
TG_API tg_status tg_table_read_csv(const char *path, tg_table **out);
/* The same from text in memory; `name` is used in messages in place of the path. */
TG_API tg_status tg_table_parse_csv(const char *text, size_t len, const char *name,
                                    tg_table **out);
TG_API void tg_table_free(tg_table *table);
TG_API size_t tg_table_rows(const tg_table *table);
TG_API size_t tg_table_cols(const tg_table *table);
TG_API const char *tg_table_col_name(const tg_table *table, size_t col);
/* The column with this name, or (size_t)-1 with TG_EINVAL naming the columns there are. */
TG_API size_t tg_table_find(const tg_table *table, const char *name);
TG_API const double *tg_table_row(const tg_table *table, size_t row);

/* A supervised data set: features (n x d) and targets (n), as doubles. */
typedef struct tg_dataset {
    size_t n, d;
    double *x; /* n * d, row-major */
    double *y; /* n */
} tg_dataset;

/* Splits a table into features (every column but `target_col`, in order) and targets. The
 * arrays are the caller's (tg_dataset_free). */
TG_API tg_status tg_dataset_from_table(const tg_table *table, size_t target_col,
                                       tg_dataset *out);
TG_API void tg_dataset_free(tg_dataset *ds);
/* A seeded shuffle of the rows, then the last round(n * test_fraction) rows go to `test`
 * and the rest to `train`. test_fraction in [0, 1). Both are the caller's. */
TG_API tg_status tg_dataset_split(const tg_dataset *ds, double test_fraction, uint64_t seed,
                                  tg_dataset *train, tg_dataset *test);
/* Per-feature mean and standard deviation (population; a constant feature gets std 1).
 * mean and std hold d doubles each. */
TG_API tg_status tg_dataset_stats(const tg_dataset *ds, double *mean, double *std);
/* x = (x - mean) / std in place (a zero std only centres). */
TG_API void tg_dataset_standardize(tg_dataset *ds, const double *mean, const double *std);

/* A permutation of 0..n-1 from the seeded RNG (Fisher-Yates); perm holds n entries. */
TG_API void tg_shuffle(size_t *perm, size_t n, tg_rng *rng);
/* Copies rows perm[start .. start+count) of ds into x (count x d) and y (count) of `dtype`
 * (caller memory, e.g. to wrap with tg_tensor_wrap). perm, a permutation of the ds->n rows
 * (tg_shuffle), is read at positions below ds->n only; perm NULL means rows start.. in order
 * (evaluation); x or y NULL skips that part. A position at or past ds->n (a last batch that
 * runs past the end) or a row index out of range fills its values with NaN and sets
 * TG_EINVAL (tg_last_error), never reads out of bounds. */
TG_API void tg_dataset_gather(const tg_dataset *ds, const size_t *perm, size_t start,
                              size_t count, tg_dtype dtype, void *x, void *y);

#ifdef __cplusplus
}
#endif

#endif

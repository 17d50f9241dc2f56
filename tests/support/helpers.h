/* helpers.h: what most tests need: leaves made from literal values, closeness of numbers and
 * of a tensor's values or gradient, and substring checks on messages and output.
 *
 * Every ts_assert_* fails the calling Criterion test (and stops it) when its check does not
 * hold; the failure is reported at the line of the call, with the values involved. The
 * ts_leaf family fails the test when the leaf cannot be made. */
#ifndef TAPEGRAD_TESTS_SUPPORT_HELPERS_H
#define TAPEGRAD_TESTS_SUPPORT_HELPERS_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Literal shapes and values in expressions: ts_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(...)),
 * and how many values a TS_VALS list holds. */
#define TS_SHAPE(...) ((const size_t[]){__VA_ARGS__})
#define TS_VALS(...) ((const double[]){__VA_ARGS__})
#define TS_COUNT(...) (sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

/* ---- leaves ------------------------------------------------------------------------------- */

/* A leaf of dtype dt and shape shape[0..rank) holding v (numel doubles, converted to dt), which
 * requires grad when requires_grad. Asserts that it was made and the flag set. Caller frees. */
tg_tensor *ts_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool requires_grad);

/* ts_leaf of shape () holding v. */
tg_tensor *ts_scalar(tg_dtype dt, double v, bool requires_grad);

/* ts_leaf of shape (n). */
tg_tensor *ts_vec(tg_dtype dt, size_t n, const double *v, bool requires_grad);

/* ts_leaf of shape (rows, cols), v row-major. */
tg_tensor *ts_mat(tg_dtype dt, size_t rows, size_t cols, const double *v, bool requires_grad);

/* ---- ops --------------------------------------------------------------------------------- */

/* Records op on a (and b, for an op of two inputs; ignored otherwise) with attrs (NULL: all
 * zero) through tg_apply, the one entry point the tests use to apply an op chosen from the
 * table. Returns what tg_apply returns (NULL on error, kept on the tape); an op of more than
 * two inputs (where) gets tg_apply's error for two, never a read past a and b. */
tg_tensor *ts_apply(tg_tape *tape, tg_op op, tg_tensor *a, tg_tensor *b, const tg_attrs *attrs);

/* ---- closeness -------------------------------------------------------------------------------
 * got is close to want when |got - want| <= max(abs_tol, rel_tol * |want|): abs_tol bounds
 * the error near zero, rel_tol elsewhere. A NaN is close only to a NaN, an infinity only to
 * itself. Tolerances of 0 ask for equality. */

bool ts_close(double got, double want, double abs_tol, double rel_tol);

/* Asserts ts_close(got, want, ...). The printf-style what names the number in the message. */
#define ts_assert_close(got, want, abs_tol, rel_tol, ...)                                          \
    ts__assert_close(__FILE__, __LINE__, (got), (want), (abs_tol), (rel_tol), __VA_ARGS__)

/* Asserts that tensor t is not NULL and has n elements, each close to want[i] (its values read
 * as doubles). The message names the element and the dtype. */
#define ts_assert_values(t, want, n, abs_tol, rel_tol, ...)                                        \
    ts__assert_tensor(__FILE__, __LINE__, false, (t), (want), (n), (abs_tol), (rel_tol),           \
                      __VA_ARGS__)

/* Asserts the same of t's gradient, which must exist. */
#define ts_assert_grad(t, want, n, abs_tol, rel_tol, ...)                                          \
    ts__assert_tensor(__FILE__, __LINE__, true, (t), (want), (n), (abs_tol), (rel_tol), __VA_ARGS__)

/* ---- substrings ------------------------------------------------------------------------------ */

/* Asserts that text (an error message, a program's output) contains needle; a NULL text
 * fails. */
#define ts_assert_has(text, needle) ts__assert_has(__FILE__, __LINE__, true, (text), (needle))

/* Asserts that text does not contain needle; a NULL text fails. */
#define ts_assert_lacks(text, needle) ts__assert_has(__FILE__, __LINE__, false, (text), (needle))

/* ---- bytes ---------------------------------------------------------------------------------- */

/* The n-byte (n <= 8) little-endian unsigned integer at p: fields of the file formats. */
uint64_t ts_get_le(const unsigned char *p, int n);

/* Writes v as n little-endian bytes at p. */
void ts_put_le(unsigned char *p, uint64_t v, int n);

/* ---- files --------------------------------------------------------------------------------- */

/* The names in directory dir other than "." and "..", as one string "a b c" in directory order
 * (at most size bytes with the NUL); the count is returned. Fails the test if dir cannot be
 * read. For checking that a save left nothing but its file behind. */
size_t ts_dir_names(const char *dir, char *names, size_t size);

/* ---- behind the macros ---------------------------------------------------------------------- */

#if defined(__GNUC__)
#define TS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TS__PRINTF(f, a)
#endif

void ts__assert_close(const char *file, int line, double got, double want, double abs_tol,
                      double rel_tol, const char *what, ...) TS__PRINTF(7, 8);
void ts__assert_tensor(const char *file, int line, bool grad, const tg_tensor *t,
                       const double *want, size_t n, double abs_tol, double rel_tol,
                       const char *what, ...) TS__PRINTF(9, 10);
void ts__assert_has(const char *file, int line, bool has, const char *text, const char *needle);

/* Fails the calling test, reporting file:line and the printf-style message; does not return. */
_Noreturn void ts__fail(const char *file, int line, const char *fmt, ...) TS__PRINTF(3, 4);

#endif

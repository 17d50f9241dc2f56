/* helpers.c: see helpers.h. Failures go to Criterion as an assertion at the caller's file and
 * line (criterion_send_assert), then the test stops (criterion_abort_test), as cr_assert
 * would do at that line. */
#include "helpers.h"

#include <criterion/abort.h>
#include <criterion/criterion.h>
#include <criterion/event.h>
#include <criterion/stats.h>

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reporting ------------------------------------------------------------------------------ */

void ts__fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (msg) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    struct criterion_assert_stats stats = {
        .message = msg ? msg : "(no memory for the message)",
        .passed = false,
        .line = (unsigned)line,
        .file = file,
    };
    criterion_send_assert(&stats);
    free(msg);
    criterion_abort_test();
}

/* ---- leaves --------------------------------------------------------------------------------- */

tg_tensor *ts_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool requires_grad)
{
    tg_tensor *t = tg_tensor_from_f64(dt, rank, shape, v);
    cr_assert_not_null(t, "making a leaf: %s", tg_last_error());
    cr_assert_eq(tg_tensor_set_requires_grad(t, requires_grad), TG_OK, "%s", tg_last_error());
    return t;
}

tg_tensor *ts_scalar(tg_dtype dt, double v, bool requires_grad)
{
    return ts_leaf(dt, 0, NULL, &v, requires_grad);
}

tg_tensor *ts_vec(tg_dtype dt, size_t n, const double *v, bool requires_grad)
{
    return ts_leaf(dt, 1, &n, v, requires_grad);
}

tg_tensor *ts_mat(tg_dtype dt, size_t rows, size_t cols, const double *v, bool requires_grad)
{
    const size_t shape[2] = {rows, cols};
    return ts_leaf(dt, 2, shape, v, requires_grad);
}

/* ---- closeness ------------------------------------------------------------------------------ */

bool ts_close(double got, double want, double abs_tol, double rel_tol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= fmax(abs_tol, rel_tol * fabs(want));
}

/* The end of the message for a pair that is not close. */
typedef struct tail {
    char text[160];
} tail;

static tail off_by(double got, double want, double abs_tol, double rel_tol)
{
    tail t;
    snprintf(t.text, sizeof t.text, "got %.17g, want %.17g (off by %.3g, allowed %.3g)", got, want,
             fabs(got - want), fmax(abs_tol, rel_tol * fabs(want)));
    return t;
}

void ts__assert_close(const char *file, int line, double got, double want, double abs_tol,
                      double rel_tol, const char *what, ...)
{
    if (ts_close(got, want, abs_tol, rel_tol))
        return;
    char name[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(name, sizeof name, what, ap);
    va_end(ap);
    ts__fail(file, line, "%s: %s", name, off_by(got, want, abs_tol, rel_tol).text);
}

void ts__assert_tensor(const char *file, int line, bool grad, const tg_tensor *t,
                       const double *want, size_t n, double abs_tol, double rel_tol,
                       const char *what, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(name, sizeof name, what, ap);
    va_end(ap);
    if (!t)
        ts__fail(file, line, "%s: the tensor is NULL (%s)", name, tg_last_error());
    if (tg_tensor_numel(t) != n)
        ts__fail(file, line, "%s: %zu elements, want %zu", name, tg_tensor_numel(t), n);
    if (grad && !tg_tensor_grad_data((tg_tensor *)t))
        ts__fail(file, line, "%s: no gradient", name);
    for (size_t i = 0; i < n; i++) {
        double got = grad ? tg_tensor_grad_get(t, i) : tg_tensor_get(t, i);
        if (ts_close(got, want[i], abs_tol, rel_tol))
            continue;
        ts__fail(file, line, "%s: %s[%zu] (%s): %s", name, grad ? "grad" : "value", i,
                 tg_dtype_name(tg_tensor_dtype(t)), off_by(got, want[i], abs_tol, rel_tol).text);
    }
}

/* ---- substrings ------------------------------------------------------------------------------ */

void ts__assert_has(const char *file, int line, bool has, const char *text, const char *needle)
{
    if (!text)
        ts__fail(file, line, "the text is NULL (looking for: %s)", needle);
    if ((strstr(text, needle) != NULL) != has)
        ts__fail(file, line, "the text %s: %s\n---- the text:\n%s", has ? "lacks" : "has", needle,
                 text);
}

/* ---- bytes ---------------------------------------------------------------------------------- */

uint64_t ts_get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void ts_put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

tg_tensor *ts_apply(tg_tape *tape, tg_op op, tg_tensor *a, tg_tensor *b, const tg_attrs *attrs)
{
    static const tg_attrs none = {0};
    tg_tensor *in[2] = {a, b};
    int arity = tg_op_arity(op);
    if (arity > 2) /* where: a third input is not given (and not read) */
        return tg_apply(tape, op, in, 2, attrs ? attrs : &none);
    return tg_apply(tape, op, in, arity > 0 ? (size_t)arity : 0, attrs ? attrs : &none);
}

size_t ts_dir_names(const char *dir, char *names, size_t size)
{
    DIR *d = opendir(dir);
    if (!d)
        ts__fail(__FILE__, __LINE__, "cannot read directory %s", dir);
    size_t count = 0, len = 0;
    names[0] = '\0';
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (len < size)
            len += (size_t)snprintf(names + len, size - len, "%s%s", count ? " " : "", e->d_name);
        count++;
    }
    closedir(d);
    return count;
}

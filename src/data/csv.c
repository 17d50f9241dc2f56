/* csv.c: the reader behind tg_table_*: a header row of column names, then rows of finite
 * numbers. The input is untrusted, so every field is checked against a strict number grammar
 * before strtod sees it, and every error names the file, the line and the column. */
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct tg_table {
    size_t rows, cols;
    double *data;     /* rows * cols, row-major; data_cap elements allocated */
    size_t data_cap;
    char **names;     /* cols pointers into `text`; names_cap allocated */
    size_t names_cap;
    char *text;       /* the names, each NUL-terminated; text_size bytes */
    size_t text_size;
};

void tg_table_free(tg_table *t)
{
    if (!t)
        return;
    tg__free(t->data, t->data_cap * sizeof *t->data);
    tg__free(t->names, t->names_cap * sizeof *t->names);
    tg__free(t->text, t->text_size);
    tg__free(t, sizeof *t);
}

/* ---- scanning --------------------------------------------------------------------------- */

typedef struct csv {
    const char *p, *end; /* the text not yet split into lines */
    const char *name;    /* for messages */
    size_t line;         /* 1-based number of the current line */
    const char *ls, *le; /* the current line, without its "\n" or "\r\n" */
    char *scratch;       /* a NUL-terminated copy of one field, for strtod */
    size_t scratch_cap;
} csv;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Moves to the next line that is not blank (blank lines are skipped, as most CSV readers
 * do, so a trailing empty line or two is harmless). False at the end of the text. */
static bool next_line(csv *c)
{
    while (c->p < c->end) {
        const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
        c->ls = c->p;
        c->le = nl ? nl : c->end;
        c->p = nl ? nl + 1 : c->end;
        c->line++;
        if (c->le > c->ls && c->le[-1] == '\r')
            c->le--;
        const char *q = c->ls;
        while (q < c->le && is_blank(*q))
            q++;
        if (q < c->le)
            return true;
    }
    return false;
}

static size_t column_of(const csv *c, const char *at)
{
    return (size_t)(at - c->ls) + 1;
}

/* A field as it may be shown in a message: at most size - 4 bytes of it (44 in the 48-byte
 * buffers here), then "..." if it was cut; non-printable bytes as '?'. */
static void show_field(char *buf, size_t size, const char *s, size_t n)
{
    size_t max = size - 4; /* room for "..." and the NUL */
    size_t k = n < max ? n : max;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (k < n)
        memcpy(buf + k, "...", 4);
    else
        buf[k] = '\0';
}

/* The number grammar: [+-] (digits [. [digits]] | . digits) [(e|E) [+-] digits]. Stricter
 * than strtod, which would also take "nan", "inf", hex floats and leading garbage. */
static bool is_number(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return i == n;
}

/* "nan", "inf" or "infinity" in any case, with an optional sign: worth a clearer message. */
static bool is_nonfinite_word(const char *s, size_t n)
{
    static const char *const words[] = {"nan", "inf", "infinity"};
    if (n > 0 && (s[0] == '+' || s[0] == '-'))
        s++, n--;
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t len = strlen(words[w]);
        if (n != len)
            continue;
        size_t i = 0;
        while (i < n && (s[i] | 0x20) == words[w][i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* Parses the trimmed field [s, s+n) of the current line into *out. */
static tg_status parse_number(csv *c, const char *s, size_t n, double *out)
{
    char shown[48];
    if (n == 0)
        return tg__error(TG_EFORMAT, "%s:%zu:%zu: expected a number, found an empty field",
                         c->name, c->line, column_of(c, s));
    if (!is_number(s, n)) {
        show_field(shown, sizeof shown, s, n);
        return tg__error(TG_EFORMAT, "%s:%zu:%zu: expected a %snumber, found '%s'", c->name,
                         c->line, column_of(c, s), is_nonfinite_word(s, n) ? "finite " : "",
                         shown);
    }
    /* strtod needs a terminated string; the text is neither terminated nor ours. */
    if (n + 1 > c->scratch_cap) {
        size_t cap = n + 1 > 64 ? n + 1 : 64;
        char *p = tg__realloc(c->scratch, c->scratch_cap, cap);
        if (!p)
            return tg__error(TG_ENOMEM, "%s:%zu: out of memory for a %zu-byte field", c->name,
                             c->line, n);
        c->scratch = p;
        c->scratch_cap = cap;
    }
    memcpy(c->scratch, s, n);
    c->scratch[n] = '\0';
    char *endp;
    double v = strtod(c->scratch, &endp);
    /* The grammar above makes strtod consume everything; a locale whose decimal point is
     * not '.' would not, and is reported rather than silently misread. */
    if (endp != c->scratch + n) {
        show_field(shown, sizeof shown, s, n);
        return tg__error(TG_EFORMAT,
                         "%s:%zu:%zu: cannot convert '%s' (is the C locale's '.' the decimal "
                         "point?)",
                         c->name, c->line, column_of(c, s), shown);
    }
    if (!isfinite(v)) {
        show_field(shown, sizeof shown, s, n);
        return tg__error(TG_EFORMAT, "%s:%zu:%zu: number out of range, found '%s'", c->name,
                         c->line, column_of(c, s), shown);
    }
    *out = v;
    return TG_OK;
}

/* ---- the header --------------------------------------------------------------------------- */

/* Orders name pointers by their strings (for the duplicate check). */
static int cmp_names(const void *a, const void *b)
{
    int r = strcmp(*(char *const *)a, *(char *const *)b);
    if (r != 0)
        return r;
    /* Equal names: keep text order, so the later one is found second. */
    const char *pa = *(char *const *)a, *pb = *(char *const *)b;
    return (pa > pb) - (pa < pb);
}

static size_t name_index(const tg_table *t, const char *p)
{
    size_t lo = 0, hi = t->cols; /* names[] point into text in increasing order */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->names[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Duplicate names would make tg_table_find ambiguous: reject them. Sorting keeps this fast
 * for a hostile header with a million columns. */
static tg_status check_duplicates(csv *c, tg_table *t)
{
    if (t->cols < 2)
        return TG_OK;
    char **sorted = tg__malloc(t->cols * sizeof *sorted);
    if (!sorted)
        return tg__error(TG_ENOMEM, "%s: out of memory for %zu column names", c->name,
                         t->cols);
    memcpy(sorted, t->names, t->cols * sizeof *sorted);
    qsort(sorted, t->cols, sizeof *sorted, cmp_names);
    tg_status st = TG_OK;
    for (size_t i = 1; i < t->cols; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            char shown[48];
            show_field(shown, sizeof shown, sorted[i], strlen(sorted[i]));
            st = tg__error(TG_EFORMAT, "%s:%zu: duplicate column name '%s' (columns %zu and %zu)",
                           c->name, c->line, shown, name_index(t, sorted[i - 1]) + 1,
                           name_index(t, sorted[i]) + 1);
            break;
        }
    }
    tg__free(sorted, t->cols * sizeof *sorted);
    return st;
}

/* Splits the header line into names: plain fields (surrounding blanks trimmed) or simple
 * double-quoted ones ("" inside stands for one quote; no line breaks inside). */
static tg_status parse_header(csv *c, tg_table *t)
{
    size_t len = (size_t)(c->le - c->ls);
    /* Names are kept NUL-terminated: a NUL byte inside one would silently cut it short (and
     * could make two different names equal, or one empty). */
    const char *nul = memchr(c->ls, '\0', len);
    if (nul)
        return tg__error(TG_EFORMAT, "%s:%zu:%zu: NUL byte in the header", c->name, c->line,
                         column_of(c, nul));
    /* A carriage return left inside the line (its last one is the "\r\n" end) means bare "\r"
     * line ends: the whole file would be this one line, reported as a header without rows. */
    const char *cr = memchr(c->ls, '\r', len);
    if (cr)
        return tg__error(TG_EFORMAT,
                         "%s:%zu:%zu: a carriage return inside the header line (line ends must "
                         "be \"\\n\" or \"\\r\\n\")",
                         c->name, c->line, column_of(c, cr));
    /* Unquoting only shrinks fields, and each name gains one NUL for the separator or line
     * end it replaces: len + 1 bytes always suffice. */
    t->text_size = len + 1;
    t->text = tg__malloc(t->text_size);
    if (!t->text)
        return tg__error(TG_ENOMEM, "%s: out of memory for a %zu-byte header", c->name, len);
    char *w = t->text;
    size_t numeric = 0;
    const char *q = c->ls;
    for (;;) {
        while (q < c->le && is_blank(*q))
            q++;
        const char *start = q;
        char *name = w;
        if (q < c->le && *q == '"') {
            q++;
            for (;;) {
                if (q == c->le)
                    return tg__error(TG_EFORMAT, "%s:%zu:%zu: unterminated quoted column name",
                                     c->name, c->line, column_of(c, start));
                if (*q == '"') {
                    if (q + 1 < c->le && q[1] == '"') {
                        *w++ = '"';
                        q += 2;
                        continue;
                    }
                    q++;
                    break;
                }
                *w++ = *q++;
            }
            while (q < c->le && is_blank(*q))
                q++;
            if (q < c->le && *q != ',')
                return tg__error(TG_EFORMAT,
                                 "%s:%zu:%zu: expected ',' after a quoted column name, found "
                                 "'%c'",
                                 c->name, c->line, column_of(c, q),
                                 (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f ? *q
                                                                                        : '?');
        } else {
            const char *comma = memchr(q, ',', (size_t)(c->le - q));
            const char *fe = comma ? comma : c->le;
            while (fe > q && is_blank(fe[-1]))
                fe--;
            memcpy(w, q, (size_t)(fe - q));
            w += fe - q;
            if (is_number(q, (size_t)(fe - q)))
                numeric++;
            q = comma ? comma : c->le;
        }
        if (w == name)
            return tg__error(TG_EFORMAT, "%s:%zu:%zu: empty column name", c->name, c->line,
                             column_of(c, start));
        *w++ = '\0';
        if (t->cols == t->names_cap &&
            tg__grow((void **)&t->names, &t->names_cap, t->cols + 1, sizeof *t->names,
                     "csv header") != TG_OK)
            return tg__error(TG_ENOMEM, "%s: out of memory for %zu column names", c->name,
                             t->cols + 1);
        t->names[t->cols++] = name;
        if (q == c->le)
            break;
        q++; /* the comma */
    }
    if (numeric == t->cols)
        return tg__error(TG_EFORMAT,
                         "%s:%zu: the first row is all numbers; expected a header row of "
                         "column names",
                         c->name, c->line);
    return check_duplicates(c, t);
}

/* ---- data rows ---------------------------------------------------------------------------- */

static tg_status parse_row(csv *c, tg_table *t)
{
    /* Count first, so a ragged row is reported as such rather than by its first bad field. */
    size_t fields = 1;
    for (const char *q = c->ls; (q = memchr(q, ',', (size_t)(c->le - q))) != NULL; q++)
        fields++;
    if (fields != t->cols)
        return tg__error(TG_EFORMAT, "%s:%zu: row has %zu field%s, the header has %zu", c->name,
                         c->line, fields, fields == 1 ? "" : "s", t->cols);
    if (t->rows > SIZE_MAX / t->cols - 1)
        return tg__error(TG_ENOMEM, "%s:%zu: too many rows", c->name, c->line);
    size_t need = (t->rows + 1) * t->cols;
    if (need > t->data_cap && tg__grow((void **)&t->data, &t->data_cap, need, sizeof *t->data,
                                       "csv rows") != TG_OK)
        return tg__error(TG_ENOMEM, "%s:%zu: out of memory for %zu rows of %zu columns",
                         c->name, c->line, t->rows + 1, t->cols);
    double *row = t->data + t->rows * t->cols;
    const char *q = c->ls;
    for (size_t j = 0; j < t->cols; j++) {
        const char *comma = memchr(q, ',', (size_t)(c->le - q));
        const char *fe = comma ? comma : c->le;
        while (q < fe && is_blank(*q))
            q++;
        const char *e = fe;
        while (e > q && is_blank(e[-1]))
            e--;
        tg_status st = parse_number(c, q, (size_t)(e - q), &row[j]);
        if (st != TG_OK)
            return st;
        q = fe + 1;
    }
    t->rows++;
    return TG_OK;
}

tg_status tg_table_parse_csv(const char *text, size_t len, const char *name, tg_table **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "table_parse_csv: out is NULL");
    *out = NULL;
    if (!name)
        name = "(csv text)";
    if (!text && len > 0)
        return tg__error(TG_EINVAL, "%s: text is NULL", name);

    csv c = {text, text + len, name, 0, NULL, NULL, NULL, 0};
    /* A UTF-8 byte order mark (spreadsheets write one) is not part of the first name. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        c.p += 3;
    if (!next_line(&c))
        return tg__error(TG_EFORMAT, "%s: empty file", name);

    tg_table *t = tg__calloc(1, sizeof *t);
    if (!t)
        return tg__error(TG_ENOMEM, "%s: out of memory", name);
    tg_status st = parse_header(&c, t);
    size_t header_line = c.line;
    while (st == TG_OK && next_line(&c))
        st = parse_row(&c, t);
    if (st == TG_OK && t->rows == 0)
        st = tg__error(TG_EFORMAT, "%s:%zu: a header but no data rows", name, header_line);
    tg__free(c.scratch, c.scratch_cap);
    if (st != TG_OK) {
        tg_table_free(t);
        return st;
    }
    *out = t;
    return TG_OK;
}

/* The most a CSV file may hold: TG_CSV_MAX_BYTES when it is a positive integer, else 1 GiB.
 * (A stream such as /dev/zero never ends; a file of 1 GiB trains in about 3 GiB.) */
static size_t csv_max_bytes(void)
{
    const char *s = getenv("TG_CSV_MAX_BYTES");
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (s && *s >= '0' && *s <= '9' && *end == '\0' && errno == 0 && v > 0 && v <= SIZE_MAX)
        return (size_t)v;
    return (size_t)1 << 30;
}

tg_status tg_table_read_csv(const char *path, tg_table **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "table_read_csv: out is NULL");
    *out = NULL;
    if (!path)
        return tg__error(TG_EINVAL, "table_read_csv: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg__error(TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* Read in chunks rather than trusting a size from ftell: pipes and /proc files have
     * none, and a file may change size under us. */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const size_t max = csv_max_bytes();
    tg_status st = TG_OK;
    for (;;) {
        if (cap - len < 65536 &&
            tg__grow((void **)&buf, &cap, len + 65536, 1, "csv file") != TG_OK) {
            st = tg__error(TG_ENOMEM, "%s: out of memory after reading %zu bytes", path, len);
            break;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > max) { /* after every read, the last one included */
            st = tg__error(TG_EFORMAT,
                           "%s: more than %zu bytes, the limit (TG_CSV_MAX_BYTES sets it)",
                           path, max);
            break;
        }
        if (n == 0 || len < cap) {
            if (ferror(f))
                st = tg__error(TG_EIO, "%s: read error: %s", path, strerror(errno));
            else if (!feof(f))
                continue;
            break;
        }
    }
    fclose(f);
    if (st == TG_OK)
        st = tg_table_parse_csv(buf, len, path, out);
    tg__free(buf, cap);
    return st;
}

/* ---- accessors ------------------------------------------------------------------------------ */

size_t tg_table_rows(const tg_table *t)
{
    return t ? t->rows : 0;
}

size_t tg_table_cols(const tg_table *t)
{
    return t ? t->cols : 0;
}

const char *tg_table_col_name(const tg_table *t, size_t col)
{
    if (!t || col >= t->cols) {
        tg__error(TG_EINVAL, "table_col_name: column %zu of %zu", col, t ? t->cols : 0);
        return NULL;
    }
    return t->names[col];
}

size_t tg_table_find(const tg_table *t, const char *name)
{
    if (!t || !name) {
        tg__error(TG_EINVAL, "table_find: %s is NULL", t ? "name" : "table");
        return (size_t)-1;
    }
    for (size_t j = 0; j < t->cols; j++)
        if (strcmp(t->names[j], name) == 0)
            return j;
    /* Name what is there, as much as fits in a message. */
    char list[320];
    size_t used = 0;
    list[0] = '\0';
    for (size_t j = 0; j < t->cols; j++) {
        /* A long name is cut (then "..."), so one never crowds out all the others. */
        size_t len = strlen(t->names[j]), n = len > 64 ? 64 : len;
        if (used + n + 32 > sizeof list) { /* room for this name or the tail below */
            snprintf(list + used, sizeof list - used, ", ... (%zu in all)", t->cols);
            break;
        }
        used += (size_t)snprintf(list + used, sizeof list - used, "%s", j ? ", " : "");
        /* Control bytes of a hostile header as '?' (an escape sequence would act on the
         * terminal); other bytes as they are, so UTF-8 names still read. */
        for (size_t k = 0; k < n; k++) {
            unsigned char ch = (unsigned char)t->names[j][k];
            list[used++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        if (n < len)
            used += (size_t)snprintf(list + used, sizeof list - used, "...");
        list[used] = '\0';
    }
    char shown[48];
    show_field(shown, sizeof shown, name, strlen(name));
    tg__error(TG_EINVAL, "no column '%s'; the columns are: %s", shown, list);
    return (size_t)-1;
}

const double *tg_table_row(const tg_table *t, size_t row)
{
    if (!t || row >= t->rows) {
        tg__error(TG_EINVAL, "table_row: row %zu of %zu", row, t ? t->rows : 0);
        return NULL;
    }
    return t->data + row * t->cols;
}

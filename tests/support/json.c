/* json.c: see json.h. */
#include "json.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void skip_ws(const char **s)
{
    while (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r')
        (*s)++;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at *s, decoded into a new buffer (the decoded text is never longer). */
static bool parse_string(const char **s, char **out)
{
    if (**s != '"')
        return false;
    const char *p = *s + 1;
    char *buf = malloc(strlen(p) + 1);
    cr_assert_not_null(buf);
    size_t n = 0;
    for (; *p != '"'; p++) {
        if (*p == '\0' || (unsigned char)*p < 0x20) {
            free(buf);
            return false;
        }
        if (*p != '\\') {
            buf[n++] = *p;
            continue;
        }
        const char *esc = strchr("\"\\/bfnrt", *++p);
        if (*p && esc) {
            buf[n++] = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            continue;
        }
        int c = *p == 'u' ? hex4(p + 1) : -1;
        if (c < 0) {
            free(buf);
            return false;
        }
        p += 4;
        /* UTF-8 of the code unit (surrogates are kept as they are: enough for comparing) */
        if (c < 0x80) {
            buf[n++] = (char)c;
        } else if (c < 0x800) {
            buf[n++] = (char)(0xc0 | (c >> 6));
            buf[n++] = (char)(0x80 | (c & 0x3f));
        } else {
            buf[n++] = (char)(0xe0 | (c >> 12));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (c & 0x3f));
        }
    }
    buf[n] = '\0';
    *out = buf;
    *s = p + 1;
    return true;
}

static bool parse_value(const char **s, tj *v)
{
    memset(v, 0, sizeof *v);
    skip_ws(s);
    if (**s == '{' || **s == '[') {
        bool obj = **s == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? TJ_OBJ : TJ_ARR;
        (*s)++;
        skip_ws(s);
        if (**s == close) {
            (*s)++;
            return true;
        }
        for (;;) {
            v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
            v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
            cr_assert(v->items && v->keys);
            v->keys[v->n] = NULL;
            memset(&v->items[v->n], 0, sizeof v->items[v->n]);
            v->n++; /* counted now, so that tj_free frees what a failure leaves behind */
            if (obj) {
                skip_ws(s);
                if (!parse_string(s, &v->keys[v->n - 1]))
                    return false;
                skip_ws(s);
                if (*(*s)++ != ':')
                    return false;
            }
            if (!parse_value(s, &v->items[v->n - 1]))
                return false;
            skip_ws(s);
            if (**s == ',') {
                (*s)++;
                continue;
            }
            if (**s != close)
                return false;
            (*s)++;
            return true;
        }
    }
    if (**s == '"') {
        v->type = TJ_STR;
        return parse_string(s, &v->str);
    }
    if (strncmp(*s, "true", 4) == 0 || strncmp(*s, "false", 5) == 0) {
        v->type = TJ_BOOL;
        v->num = **s == 't';
        *s += **s == 't' ? 4 : 5;
        return true;
    }
    if (strncmp(*s, "null", 4) == 0) {
        *s += 4;
        return true;
    }
    /* JSON numbers only: an optional '-', then a digit (no NaN, inf, '+' or hex) */
    const char *d = *s + (**s == '-');
    if (!(*d >= '0' && *d <= '9'))
        return false;
    char *end;
    v->type = TJ_NUM;
    v->num = strtod(*s, &end);
    *s = end;
    return true;
}

bool tj_parse(const char **s, tj *v)
{
    if (parse_value(s, v))
        return true;
    tj_free(v);
    return false;
}

tj tj_object(const char *text)
{
    tj v;
    const char *s = text;
    cr_assert(tj_parse(&s, &v), "not JSON:\n%s", text);
    cr_assert_eq(v.type, TJ_OBJ, "not an object:\n%s", text);
    skip_ws(&s);
    cr_assert_eq(*s, '\0', "more than one JSON value:\n%s", text);
    return v;
}

tj tj_line(const char *text)
{
    tj v;
    const char *s = text;
    cr_assert(tj_parse(&s, &v), "not JSON: %s", text);
    cr_assert_str_eq(s, "\n", "more than one JSON line: %s", text);
    return v;
}

size_t tj_lines(const char *text, tj *lines, size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            char *one = strndup(p, len);
            cr_assert_not_null(one);
            cr_assert_lt(n, max, "more than %zu lines:\n%s", max, text);
            const char *s = one;
            cr_assert(tj_parse(&s, &lines[n]) && lines[n].type == TJ_OBJ, "not a JSON object:\n%s",
                      one);
            skip_ws(&s);
            cr_assert_eq(*s, '\0', "more than one JSON value on a line:\n%s", one);
            free(one);
            n++;
        }
        p += len + (nl != NULL);
    }
    return n;
}

void tj_free(tj *v)
{
    for (size_t i = 0; i < v->n; i++) {
        tj_free(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

void tj_free_all(tj *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tj_free(&v[i]);
}

const tj *tj_get(const tj *obj, const char *key)
{
    cr_assert_not_null(obj);
    cr_assert_eq(obj->type, TJ_OBJ, "looking for \"%s\" in a JSON value that is no object", key);
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

double tj_num(const tj *v)
{
    cr_assert_not_null(v);
    cr_assert_eq(v->type, TJ_NUM, "not a number (type %d)", v->type);
    return v->num;
}

double tj_num_of(const tj *obj, const char *key)
{
    const tj *v = tj_get(obj, key);
    cr_assert(v && v->type == TJ_NUM, "no number \"%s\"", key);
    return v->num;
}

const char *tj_str_of(const tj *obj, const char *key)
{
    const tj *v = tj_get(obj, key);
    cr_assert(v && v->type == TJ_STR, "no string \"%s\"", key);
    return v->str;
}

static bool flat_elem(const tj *v, size_t *i, double *out)
{
    for (size_t k = 0; k < v->n; k++) {
        if (v->items[k].type == TJ_ARR) {
            if (flat_elem(&v->items[k], i, out))
                return true;
        } else if ((*i)-- == 0) {
            *out = tj_num(&v->items[k]);
            return true;
        }
    }
    return false;
}

double tj_elem(const tj *arr, size_t i)
{
    double out = NAN;
    size_t at = i;
    cr_assert_not_null(arr);
    cr_assert_eq(arr->type, TJ_ARR);
    cr_assert(flat_elem(arr, &at, &out), "no element %zu", i);
    return out;
}

void tj_expect_keys(const tj *obj, const char *const *keys)
{
    cr_assert_not_null(obj);
    cr_assert_eq(obj->type, TJ_OBJ);
    size_t n = 0;
    for (; keys[n]; n++) {
        cr_assert_lt(n, obj->n, "missing key \"%s\"", keys[n]);
        cr_assert_str_eq(obj->keys[n], keys[n]);
    }
    cr_assert_eq(n, obj->n, "%zu keys, want %zu", obj->n, n);
}

/* json.c: see json.h. The parsing is tools/common/json.c's; this file only asserts. */
#include "json.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What follows a value: whitespace, then the end. */
static bool only_space(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

bool tj_parse(const char **s, tj *v)
{
    return json_parse(s, v);
}

tj tj_object(const char *text)
{
    tj v;
    const char *s = text;
    cr_assert(json_parse(&s, &v), "not JSON:\n%s", text);
    cr_assert_eq(v.type, TJ_OBJ, "not an object:\n%s", text);
    cr_assert(only_space(s), "more than one JSON value:\n%s", text);
    return v;
}

tj tj_line(const char *text)
{
    tj v;
    const char *s = text;
    cr_assert(json_parse(&s, &v), "not JSON: %s", text);
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
            cr_assert(json_parse(&s, &lines[n]) && lines[n].type == TJ_OBJ,
                      "not a JSON object:\n%s", one);
            cr_assert(only_space(s), "more than one JSON value on a line:\n%s", one);
            free(one);
            n++;
        }
        p += len + (nl != NULL);
    }
    return n;
}

void tj_free(tj *v)
{
    json_free(v);
}

void tj_free_all(tj *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_free(&v[i]);
}

const tj *tj_get(const tj *obj, const char *key)
{
    cr_assert_not_null(obj);
    cr_assert_eq(obj->type, TJ_OBJ, "looking for \"%s\" in a JSON value that is no object", key);
    return json_get(obj, key);
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

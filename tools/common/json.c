/* json.c: the JSON reader of json.h, a recursive-descent parser over NUL-terminated text. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *s)
{
    return s + strspn(s, " \t\r\n");
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

/* A string at *s, decoded into a new buffer (the decoded text is never longer than the
 * quoted one). */
static bool parse_string(const char **s, char **out)
{
    if (**s != '"')
        return false;
    const char *p = *s + 1;
    size_t raw = 0; /* up to the closing quote or the end of the text */
    while (p[raw] && p[raw] != '"')
        raw += p[raw] == '\\' && p[raw + 1] ? 2 : 1;
    char *buf = malloc(raw + 1);
    if (!buf) {
        errno = ENOMEM;
        return false;
    }
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

static size_t digits(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* A number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(const char **s, double *out)
{
    const char *p = *s + (**s == '-');
    size_t n = digits(p);
    if (n == 0 || (p[0] == '0' && n > 1))
        return false;
    p += n;
    if (*p == '.') {
        if ((n = digits(p + 1)) == 0)
            return false;
        p += 1 + n;
    }
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1 + (p[1] == '+' || p[1] == '-');
        if ((n = digits(e)) == 0)
            return false;
        p = e + n;
    }
    /* strtod reads further only for what is no JSON ("0x1p3": hex after a 0) */
    char *end;
    *out = strtod(*s, &end);
    *s = p;
    return end == p;
}

/* One more element (and key slot) at the end of v, zeroed; false when memory runs out. */
static bool grow(json_value *v)
{
    json_value *items = realloc(v->items, (v->n + 1) * sizeof *items);
    if (items)
        v->items = items;
    char **keys = items ? realloc(v->keys, (v->n + 1) * sizeof *keys) : NULL;
    if (!keys) {
        errno = ENOMEM;
        return false;
    }
    v->keys = keys;
    v->keys[v->n] = NULL;
    memset(&v->items[v->n], 0, sizeof v->items[v->n]);
    v->n++; /* counted now, so that json_free frees what a failure leaves behind */
    return true;
}

static bool parse_value(const char **s, json_value *v)
{
    memset(v, 0, sizeof *v);
    *s = skip_ws(*s);
    if (**s == '{' || **s == '[') {
        bool obj = **s == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? JSON_OBJ : JSON_ARR;
        *s = skip_ws(*s + 1);
        if (**s == close) {
            (*s)++;
            return true;
        }
        for (;;) {
            if (!grow(v))
                return false;
            if (obj) {
                *s = skip_ws(*s);
                if (!parse_string(s, &v->keys[v->n - 1]))
                    return false;
                *s = skip_ws(*s);
                if (*(*s)++ != ':')
                    return false;
            }
            if (!parse_value(s, &v->items[v->n - 1]))
                return false;
            *s = skip_ws(*s);
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
        v->type = JSON_STR;
        return parse_string(s, &v->str);
    }
    if (strncmp(*s, "true", 4) == 0 || strncmp(*s, "false", 5) == 0) {
        v->type = JSON_BOOL;
        v->num = **s == 't';
        *s += **s == 't' ? 4 : 5;
        return true;
    }
    if (strncmp(*s, "null", 4) == 0) {
        *s += 4;
        return true;
    }
    v->type = JSON_NUM;
    return parse_number(s, &v->num);
}

bool json_parse(const char **s, json_value *v)
{
    if (parse_value(s, v))
        return true;
    int saved = errno;
    json_free(v);
    errno = saved;
    return false;
}

bool json_parse_all(const char *text, json_value *v)
{
    const char *s = text;
    if (!json_parse(&s, v))
        return false;
    if (*skip_ws(s) == '\0')
        return true;
    json_free(v);
    return false;
}

void json_free(json_value *v)
{
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

double json_get_num(const json_value *obj, const char *key)
{
    const json_value *v = json_get(obj, key);
    return v && v->type == JSON_NUM ? v->num : NAN;
}

const char *json_get_str(const json_value *obj, const char *key)
{
    const json_value *v = json_get(obj, key);
    return v && v->type == JSON_STR ? v->str : NULL;
}

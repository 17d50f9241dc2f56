/* json.h: the tests' side of the JSON reader in tools/common/json.h (strict: JSON numbers
 * only, no raw control characters in strings, escapes decoded): the same tree under the
 * names tj and TJ_*, and functions that fail the calling Criterion test when the text or a
 * value is not what they expect. */
#ifndef TAPEGRAD_TESTS_SUPPORT_JSON_H
#define TAPEGRAD_TESTS_SUPPORT_JSON_H

#include "common/json.h"

#include <stdbool.h>
#include <stddef.h>

/* A parsed value: type, num, str, items, keys, n (see common/json.h). */
typedef json_value tj;
typedef json_type tj_type;
#define TJ_NULL JSON_NULL
#define TJ_BOOL JSON_BOOL
#define TJ_NUM JSON_NUM
#define TJ_STR JSON_STR
#define TJ_ARR JSON_ARR
#define TJ_OBJ JSON_OBJ

/* Parses one value at *s (leading whitespace skipped), moving *s past it; false (and v
 * freed) on malformed text. */
bool tj_parse(const char **s, tj *v);

/* text is exactly one JSON object, then whitespace at most. */
tj tj_object(const char *text);

/* text is exactly one JSON value on one line, then a newline and nothing else. */
tj tj_line(const char *text);

/* Each non-empty line of text is one JSON object (one line, the object and nothing else):
 * parses them into lines[0..), at most max (more fail the test); returns the count. */
size_t tj_lines(const char *text, tj *lines, size_t max);

void tj_free(tj *v);
void tj_free_all(tj *v, size_t n);

/* Member `key` of object obj (which must be an object), or NULL when it has none. */
const tj *tj_get(const tj *obj, const char *key);

/* The number v (not NULL, a number). */
double tj_num(const tj *v);

/* The number or string member `key` of obj (present, of that type). */
double tj_num_of(const tj *obj, const char *key);
const char *tj_str_of(const tj *obj, const char *key);

/* Element i of a (possibly nested) array, flattened row-major. */
double tj_elem(const tj *arr, size_t i);

/* obj has exactly these keys (a NULL-terminated list, see TJ_KEYS), in this order. */
void tj_expect_keys(const tj *obj, const char *const *keys);

#define TJ_KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

#endif

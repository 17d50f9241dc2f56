/* json.h: a small strict JSON reader: text is parsed into a tree of values. Numbers must be
 * JSON numbers (no '+', NaN, inf, hex or leading zeros), strings may hold no raw control
 * characters and their escapes are decoded. The tests read the command's output with it;
 * `tapegrad bench` reads the JSON lines its child processes print. */
#ifndef TAPEGRAD_TOOLS_COMMON_JSON_H
#define TAPEGRAD_TOOLS_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } json_type;

/* A parsed value; everything it points to is its own (json_free). */
typedef struct json_value {
    json_type type;
    double num;               /* JSON_NUM; JSON_BOOL: 1 or 0 */
    char *str;                /* JSON_STR, decoded, NUL-terminated */
    struct json_value *items; /* JSON_ARR elements, JSON_OBJ values */
    char **keys;              /* JSON_OBJ keys, in order */
    size_t n;                 /* elements or members */
} json_value;

/* Parses one value at *s (leading whitespace skipped) into v, moving *s past it. False when
 * the text is not JSON or memory runs out (errno ENOMEM); v is then empty (nothing to free)
 * and *s somewhere inside the text. */
bool json_parse(const char **s, json_value *v);

/* text holds exactly one JSON value, with whitespace around it at most. */
bool json_parse_all(const char *text, json_value *v);

/* Frees what v holds and leaves it a JSON_NULL. */
void json_free(json_value *v);

/* Member `key` of obj: NULL when obj is no object or has no such member (the first one when
 * a key repeats). */
const json_value *json_get(const json_value *obj, const char *key);

/* The number member `key` of obj, or NaN when there is none (or it is of another type). */
double json_get_num(const json_value *obj, const char *key);

/* The string member `key` of obj, or NULL when there is none (or it is of another type). */
const char *json_get_str(const json_value *obj, const char *key);

#endif

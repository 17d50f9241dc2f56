/* file.c: read_stream and read_file (file.h). */
#include "file.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *read_stream_max(FILE *f, size_t *len, size_t max)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *more = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!more) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = more;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (n > max) {
            free(buf);
            errno = EFBIG;
            return NULL;
        }
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                if (!errno)
                    errno = EIO;
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *read_stream(FILE *f, size_t *len)
{
    return read_stream_max(f, len, SIZE_MAX);
}

char *read_file_max(const char *path, size_t *len, size_t max)
{
    if (strcmp(path, "-") == 0)
        return read_stream_max(stdin, len, max);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = read_stream_max(f, len, max);
    int saved = errno;
    fclose(f);
    errno = saved;
    return text;
}

char *read_file(const char *path, size_t *len)
{
    return read_file_max(path, len, SIZE_MAX);
}

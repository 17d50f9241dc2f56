/* file.h: reading a whole stream or file into memory, for the tools (a tgx program, a
 * child's captured output) and the tests (files the command wrote). */
#ifndef TAPEGRAD_TOOLS_COMMON_FILE_H
#define TAPEGRAD_TOOLS_COMMON_FILE_H

#include <stddef.h>
#include <stdio.h>

/* The whole of a stream from where it stands, or of a file ("-" is stdin), NUL-terminated,
 * malloc'd (the caller frees); its length without the NUL in *len (len may be NULL). NULL
 * with errno set when opening or reading fails or memory runs out. */
char *read_stream(FILE *f, size_t *len);
char *read_file(const char *path, size_t *len);
/* The same, refusing to read more than max bytes: NULL with errno EFBIG past it (a stream
 * such as /dev/zero never ends). */
char *read_stream_max(FILE *f, size_t *len, size_t max);
char *read_file_max(const char *path, size_t *len, size_t max);

#endif

/* bytes.h: the little-endian encoding shared by the binary file formats (nn/model_file.c,
 * train/checkpoint.c, io/tensor_file.c): a writer that counts or fills, and a bounded reader
 * whose every read first checks that the bytes are there and, when they are not, names what was
 * being read; strings and tensor records as the formats store them. Fields
 * are written byte by byte, so files are the same whatever the host's byte order. */
#ifndef TAPEGRAD_IO_BYTES_H
#define TAPEGRAD_IO_BYTES_H

#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes go to p (when not NULL) at len; with p NULL the writer only counts, so the same code
 * computes the size and then fills a buffer of exactly that size. */
typedef struct writer {
    unsigned char *p;
    size_t len;
} writer;

static inline void put_bytes(writer *w, const void *src, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

/* The low n bytes of v (n <= 8), least significant first. */
static inline void put_le(writer *w, uint64_t v, int n)
{
    unsigned char b[8];
    for (int i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, (size_t)n);
}

static inline void put_f64(writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(w, bits, 8);
}

/* n elements of 4 or 8 bytes, each little-endian whatever the host. */
static inline void put_elems(writer *w, const void *src, size_t n, size_t es)
{
    if (!w->p) {
        w->len += n * es;
        return;
    }
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        if (es == 4) {
            uint32_t u;
            memcpy(&u, s + 4 * i, 4);
            v = u;
        } else {
            memcpy(&v, s + 8 * i, 8);
        }
        put_le(w, v, (int)es);
    }
}

static inline void put_u32(writer *w, uint32_t v)
{
    put_le(w, v, 4);
}

static inline void put_u64(writer *w, uint64_t v)
{
    put_le(w, v, 8);
}

/* A string: u32 byte length, then the bytes (no terminator). */
static inline void put_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

/* A tensor record, as model files and tensor files store them: the name (str), u32 dtype,
 * u32 rank, u64 shape[rank], then the numel elements, row-major. */
static inline void put_tensor(writer *w, const char *name, const tg_tensor *t)
{
    put_str(w, name);
    put_u32(w, (uint32_t)tg_tensor_dtype(t));
    put_u32(w, (uint32_t)tg_tensor_rank(t));
    for (int d = 0; d < tg_tensor_rank(t); d++)
        put_u64(w, tg_tensor_shape(t)[d]);
    put_elems(w, tg_tensor_data_const(t), tg_tensor_numel(t), tg_dtype_size(tg_tensor_dtype(t)));
}

/* n elements of es (4 or 8) bytes, little-endian at src, into dst in the host's order. */
static inline void get_elems(void *dst, const unsigned char *src, size_t n, size_t es)
{
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (size_t b = es; b-- > 0;)
            v = (v << 8) | src[es * i + b];
        if (es == 4) {
            uint32_t u = (uint32_t)v;
            memcpy(d + 4 * i, &u, 4);
        } else {
            memcpy(d + 8 * i, &v, 8);
        }
    }
}

/* A bounded cursor over a file's bytes. */
typedef struct reader {
    const unsigned char *p;
    size_t end; /* bytes readable: the checksum's offset once the header is checked */
    size_t pos;
    const char *who; /* what the messages start with: "model_load: PATH", ... */
    bool body;       /* past the header: `end` is where the checksum starts */
} reader;

/* TG_EFORMAT with "WHO: message". */
static inline tg_status ferr(const reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline tg_status ferr(const reader *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg__error(TG_EFORMAT, "%s: %s", r->who, msg);
}

/* TG_OK when n bytes are left, else the truncation error naming what was being read. */
static inline tg_status need(reader *r, size_t n, const char *what)
{
    if (n <= r->end - r->pos)
        return TG_OK;
    return ferr(r, "truncated at byte %zu (expected %zu more bytes for %s%s)", r->end,
                n - (r->end - r->pos), what, r->body ? " before the checksum" : "");
}

/* The n-byte (n <= 8) little-endian number at b. */
static inline uint64_t le(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

/* Reads an n-byte little-endian number into *v and moves past it. */
static inline tg_status get_le(reader *r, uint64_t *v, int n, const char *what)
{
    tg_status st = need(r, (size_t)n, what);
    if (st == TG_OK) {
        *v = le(r->p + r->pos, n);
        r->pos += (size_t)n;
    }
    return st;
}

static inline tg_status get_u32(reader *r, uint32_t *v, const char *what)
{
    uint64_t u;
    tg_status st = get_le(r, &u, 4, what);
    if (st == TG_OK)
        *v = (uint32_t)u;
    return st;
}

static inline tg_status get_u64(reader *r, uint64_t *v, const char *what)
{
    return get_le(r, v, 8, what);
}

/* A u64 that must fit in size_t and be at most `max` (what it counts must fit the file). */
static inline tg_status get_size(reader *r, size_t *v, size_t max, const char *what)
{
    uint64_t u;
    tg_status st = get_u64(r, &u, what);
    if (st != TG_OK)
        return st;
    if (u > max || u > SIZE_MAX)
        return ferr(r, "%s is %llu, more than the %zu the file can hold", what,
                    (unsigned long long)u, max);
    *v = (size_t)u;
    return TG_OK;
}

/* A length-prefixed string of at most `max` bytes without NUL: *s points into the buffer. */
static inline tg_status get_str(reader *r, const unsigned char **s, size_t *len, size_t max,
                                const char *what)
{
    uint32_t n;
    tg_status st = get_u32(r, &n, what);
    if (st != TG_OK)
        return st;
    if (n > max)
        return ferr(r, "%s is %u bytes long (at most %zu)", what, n, max);
    if ((st = need(r, n, what)) != TG_OK)
        return st;
    if (memchr(r->p + r->pos, 0, n))
        return ferr(r, "%s contains a NUL byte", what);
    *s = r->p + r->pos;
    *len = n;
    r->pos += n;
    return TG_OK;
}

static inline tg_status get_f64(reader *r, double *v, const char *what)
{
    uint64_t bits;
    tg_status st = get_le(r, &bits, 8, what);
    if (st == TG_OK)
        memcpy(v, &bits, 8);
    return st;
}

/* ---- the frame every tapegrad file has (bytes.c) -------------------------------------------
 * An 8-byte magic, u32 format version, u32 flags (0: none defined), u64 file size (checksum
 * included), the body, and a u64 XXH3-64 checksum of every byte before it
 * (docs/model-format.md, docs/checkpoint-format.md). */

#define TG_IO_HEADER_BYTES 24u
#define TG_IO_CHECKSUM_BYTES 8u

typedef struct tg_io_format {
    const char *magic; /* 8 bytes, NULs included */
    uint32_t version;  /* the one version this build reads and writes */
    const char *what;  /* what a file with another magic is not: "a tapegrad model file" */
} tg_io_format;

/* Writes body(w, ctx) framed by the header and the checksum into a new buffer of exactly the
 * file's size. body is called twice, counting and then filling, and must write the same bytes
 * both times. *out is the caller's (tg__free(*out, *size)); TG_ENOMEM naming `who`. */
tg_status tg_io__encode(const tg_io_format *fmt, void (*body)(writer *w, const void *ctx),
                        const void *ctx, const char *who, void **out, size_t *size);

/* Checks the frame of the r->end bytes at r->p: the magic, version, flags, size field (against
 * r->end) and checksum, in that order; then leaves r at the body's first byte with r->end at
 * the checksum and r->body set. TG_EFORMAT with the messages of docs/model-format.md. */
tg_status tg_io__check_header(reader *r, const tg_io_format *fmt);

#endif

/* bytes.c: the frame shared by model files and checkpoints (bytes.h): the header written and
 * checked, and the checksum computed, in one place for both formats. */
#include "io/bytes.h"

#include <xxhash.h>

static void put_header(writer *w, const tg_io_format *fmt, uint64_t total)
{
    put_bytes(w, fmt->magic, 8);
    put_le(w, fmt->version, 4);
    put_le(w, 0, 4); /* flags */
    put_le(w, total, 8);
}

tg_status tg_io__encode(const tg_io_format *fmt, void (*body)(writer *w, const void *ctx),
                        const void *ctx, const char *who, void **out, size_t *size)
{
    writer count = {NULL, 0};
    put_header(&count, fmt, 0);
    body(&count, ctx);
    size_t total = count.len + TG_IO_CHECKSUM_BYTES;
    unsigned char *buf = tg__malloc(total);
    if (!buf)
        return tg__error(TG_ENOMEM, "%s: out of memory for %zu bytes", who, total);
    writer w = {buf, 0};
    put_header(&w, fmt, total);
    body(&w, ctx);
    TG_ASSERT(w.len == count.len);
    put_le(&w, XXH3_64bits(buf, count.len), 8);
    *out = buf;
    *size = total;
    return TG_OK;
}

tg_status tg_io__check_header(reader *r, const tg_io_format *fmt)
{
    size_t size = r->end;
    if (memcmp(r->p, fmt->magic, size < 8 ? size : 8) != 0)
        return ferr(r, "bad magic (not %s)", fmt->what);
    uint64_t version, flags, declared;
    tg_status st;
    if ((st = need(r, 8, "the magic")) != TG_OK)
        return st;
    r->pos = 8;
    if ((st = get_le(r, &version, 4, "the format version")) != TG_OK)
        return st;
    if (version != fmt->version)
        return ferr(r, "unknown format version %llu (this build reads version %u)",
                    (unsigned long long)version, fmt->version);
    if ((st = get_le(r, &flags, 4, "the flags")) != TG_OK)
        return st;
    if (flags != 0)
        return ferr(r, "unknown flags 0x%08llx (version %u defines none)",
                    (unsigned long long)flags, fmt->version);
    if ((st = get_le(r, &declared, 8, "the file size")) != TG_OK)
        return st;
    if (declared != size) {
        if (declared > size)
            return ferr(r, "truncated at byte %zu (the header says the file is %llu bytes)", size,
                        (unsigned long long)declared);
        return ferr(r, "%zu bytes, but the header says the file is %llu bytes (trailing data?)",
                    size, (unsigned long long)declared);
    }
    if (size < TG_IO_HEADER_BYTES + TG_IO_CHECKSUM_BYTES)
        return ferr(r, "truncated at byte %zu (expected %zu more bytes for the checksum)", size,
                    TG_IO_HEADER_BYTES + TG_IO_CHECKSUM_BYTES - size);
    uint64_t stored = le(r->p + size - TG_IO_CHECKSUM_BYTES, 8);
    uint64_t actual = XXH3_64bits(r->p, size - TG_IO_CHECKSUM_BYTES);
    if (stored != actual)
        return ferr(r, "checksum mismatch (file says 0x%016llx, content hashes to 0x%016llx)",
                    (unsigned long long)stored, (unsigned long long)actual);
    r->end = size - TG_IO_CHECKSUM_BYTES;
    r->body = true;
    return TG_OK;
}

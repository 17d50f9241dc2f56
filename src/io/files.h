/* files.h: whole files in and out for the binary formats (model files, checkpoints): reading
 * one, bounded in size, into a parser; writing one so that a crash or a full disk never leaves
 * half of it behind. */
#ifndef TAPEGRAD_IO_FILES_H
#define TAPEGRAD_IO_FILES_H

#include "core/core.h"

/* Parses the `size` bytes at buf (never NULL, even when size is 0); `who` starts every
 * message ("model_load: PATH", "checkpoint_load_buffer"). */
typedef tg_status (*tg_io_parse_fn)(const unsigned char *buf, size_t size, const char *who,
                                    void *ctx);

/* Reads the regular file at `path` (at most max_bytes) and returns parse(its bytes, "WHO: PATH",
 * ctx); the bytes are freed after. TG_EIO naming `who`, the path and the OS reason (cannot
 * open, stat or read it; not a regular file: a directory, a device, a FIFO, refused without
 * waiting for a writer), TG_EFORMAT for a file over max_bytes (not read), TG_ENOMEM. */
tg_status tg_io__load_file(const char *who, const char *path, uint64_t max_bytes,
                           tg_io_parse_fn parse, void *ctx);

/* parse(buf, size, who, ctx) for a caller's buffer; TG_EINVAL for buf NULL with size > 0. */
tg_status tg_io__load_buffer(const char *who, const void *buf, size_t size, tg_io_parse_fn parse,
                             void *ctx);

/* Writes size bytes to a new temporary file beside path ("PATH.tmp-" and six hex digits, or
 * "DIR/.tmp-" and six when path's name is too long for that; created exclusively, so no file
 * or symbolic link already there is ever written through),
 * fsyncs it, renames it over path and fsyncs the directory, so path holds the old file or the
 * complete new one, never a half-written one. The new file keeps the old one's permission
 * bits (else 0666 less the umask). When path is a symbolic link, the same is done to the
 * regular file it leads to, and the link stays. TG_EIO naming `who`, the path, the failed
 * step and the OS reason (the temporary file is removed); TG_EIO also, with nothing written,
 * when path is empty, or when it (or what its link leads to) exists and is not a regular file,
 * or is a link that leads nowhere; or TG_ENOMEM. */
tg_status tg_io__save_atomic(const char *who, const char *path, const void *buf, size_t size);

#endif

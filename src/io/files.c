/* files.c: reading whole files and saving them atomically (files.h), shared by model files
 * and checkpoints. */
#include "io/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

tg_status tg_io__load_buffer(const char *who, const void *buf, size_t size, tg_io_parse_fn parse,
                             void *ctx)
{
    if (!buf && size)
        return tg__error(TG_EINVAL, "%s: buf is NULL", who);
    static const unsigned char empty[1] = {0};
    return parse(buf ? buf : empty, size, who, ctx);
}

tg_status tg_io__load_file(const char *who, const char *path, uint64_t max_bytes,
                           tg_io_parse_fn parse, void *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg__error(TG_EIO, "%s: %s: cannot open: %s", who, path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int err = errno;
        fclose(f);
        return tg__error(TG_EIO, "%s: %s: cannot stat: %s", who, path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return tg__error(TG_EIO, "%s: %s: not a regular file", who, path);
    }
    /* The bound keeps a bogus path (a device, a huge file) cheap: it is refused unread. */
    if ((uint64_t)sb.st_size > max_bytes || (uint64_t)sb.st_size > SIZE_MAX) {
        fclose(f);
        return tg__error(TG_EFORMAT, "%s: %s: %lld bytes, more than the %llu-byte limit", who,
                         path, (long long)sb.st_size, (unsigned long long)max_bytes);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = tg__malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return tg__error(TG_ENOMEM, "%s: %s: out of memory for %zu bytes", who, path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    tg_status st;
    if (got != size) {
        st = err ? tg__error(TG_EIO, "%s: %s: read error: %s", who, path, strerror(err))
                 : tg__error(TG_EIO, "%s: %s: read %zu of %zu bytes (file changed?)", who, path,
                             got, size);
    } else {
        char what[600];
        snprintf(what, sizeof what, "%s: %s", who, path);
        st = parse(buf, size, what, ctx);
    }
    tg__free(buf, size ? size : 1);
    return st;
}

/* Makes a rename durable: fsync the directory holding `path` (best effort: some file
 * systems refuse it, and the data itself is already synced). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return;
        if (n == 0)
            n = 1; /* "/file": the root */
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

tg_status tg_io__save_atomic(const char *who, const char *path, const void *buf, size_t size)
{
    size_t plen = strlen(path);
    char *tmp = tg__malloc(plen + 5);
    if (!tmp)
        return tg__error(TG_ENOMEM, "%s: %s: out of memory", who, path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    /* Write PATH.tmp completely and durably, then rename it over PATH: a reader sees the old
     * file or the new one, never a half-written one. */
    const char *step = NULL;
    int err = 0;
    errno = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        step = "create", err = errno;
    } else {
        if (fwrite(buf, 1, size, f) != size || fflush(f) != 0)
            step = "write", err = errno ? errno : EIO;
        else if (fsync(fileno(f)) != 0)
            step = "sync", err = errno;
        if (fclose(f) != 0 && !step)
            step = "close", err = errno;
        if (!step && rename(tmp, path) != 0)
            step = "rename", err = errno;
        if (step)
            remove(tmp);
    }
    if (step)
        tg__error(TG_EIO, "%s: %s: cannot %s %s: %s", who, path, step,
                  strcmp(step, "rename") == 0 ? "the temporary file over it" : tmp, strerror(err));
    else
        sync_parent_dir(path);
    tg__free(tmp, plen + 5);
    return step ? TG_EIO : TG_OK;
}

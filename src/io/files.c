/* files.c: reading whole files and saving them atomically (files.h), shared by model files
 * and checkpoints. */
#define _DEFAULT_SOURCE /* realpath, lstat */
#include "io/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
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
    /* Non-blocking, so that opening a FIFO (which waits for a writer) returns at once and is
     * refused below like any other file that is not a regular one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return tg__error(TG_EIO, "%s: %s: cannot open: %s", who, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return tg__error(TG_EIO, "%s: %s: cannot stat: %s", who, path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tg__error(TG_EIO, "%s: %s: not a regular file", who, path);
    }
    /* The bound keeps a bogus path (a huge file) cheap: it is refused unread. */
    if ((uint64_t)sb.st_size > max_bytes || (uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return tg__error(TG_EFORMAT, "%s: %s: %lld bytes, more than the %llu-byte limit", who,
                         path, (long long)sb.st_size, (unsigned long long)max_bytes);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = tg__malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return tg__error(TG_ENOMEM, "%s: %s: out of memory for %zu bytes", who, path, size);
    }
    /* A regular file never blocks, so O_NONBLOCK changes nothing for the reads. */
    size_t got = 0;
    int err = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : 0;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
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

/* Creates a new temporary file beside path, "PATH.tmp-XXXXXX", exclusively: O_EXCL fails on
 * any existing name, a symbolic link planted there included, so the write can never land in
 * someone else's file. When path's own name is too long for that (within 11 bytes of the
 * file system's NAME_MAX), the temporary file is "DIR/.tmp-XXXXXX" instead. The mode is the
 * old file's when path exists (a 0600 model stays 0600), else what creating path would give
 * (0666 less the umask, applied by open). Returns the descriptor, or -1 with errno set; tmp
 * (plen + 12 bytes) receives the name. */
static int create_temp(const char *path, size_t plen, char *tmp)
{
    static _Atomic unsigned counter;
    struct stat old;
    const bool keep_mode = stat(path, &old) == 0 && S_ISREG(old.st_mode);
    const char *slash = strrchr(path, '/');
    size_t at = plen; /* where ".tmp-XXXXXX" goes */
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)clock() ^
                     (counter++ * 40503u) ^ ((unsigned)attempt << 20);
        memcpy(tmp, path, at);
        snprintf(tmp + at, 12, ".tmp-%06x", r & 0xffffffu);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0 && errno == ENAMETOOLONG && at == plen) {
            at = slash ? (size_t)(slash - path) + 1 : 0; /* in place of path's own name */
            continue;
        }
        if (fd >= 0 && keep_mode && fchmod(fd, old.st_mode & 07777) != 0) {
            int err = errno;
            close(fd);
            unlink(tmp);
            errno = err;
            return -1;
        }
        return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Writes all of buf to fd; false with errno set on failure. */
static bool write_all(int fd, const unsigned char *buf, size_t size)
{
    while (size) {
        ssize_t n = write(fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        buf += n;
        size -= (size_t)n;
    }
    return true;
}

/* What path names, for a save: TG_OK with *target the path to replace (path itself, or the
 * file a symbolic link leads to, which the caller frees with free()), or TG_EIO when path is
 * there but is no regular file: a rename over a device, a FIFO or a socket would replace the
 * node itself (as root, /dev/null with a model), and over a directory it fails later with a
 * less clear reason. A link is followed so that it survives, leading to the new file. */
static tg_status save_target(const char *who, const char *path, char **target)
{
    *target = NULL;
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return TG_OK; /* nothing there (or unreadable: create_temp will say why) */
    if (S_ISLNK(sb.st_mode)) {
        char *real = realpath(path, NULL);
        if (!real)
            return tg__error(TG_EIO, "%s: %s: a symbolic link that leads to no file (%s)", who,
                             path, strerror(errno));
        if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            tg_status st = tg__error(TG_EIO,
                                     "%s: %s: a symbolic link to %s, which is not a regular "
                                     "file: refusing to replace it",
                                     who, path, real);
            free(real);
            return st;
        }
        *target = real;
        return TG_OK;
    }
    if (!S_ISREG(sb.st_mode))
        return tg__error(TG_EIO, "%s: %s: not a regular file (%s): refusing to replace it", who,
                         path,
                         S_ISDIR(sb.st_mode)    ? "a directory"
                         : S_ISFIFO(sb.st_mode) ? "a FIFO"
                         : S_ISSOCK(sb.st_mode) ? "a socket"
                                                : "a device");
    return TG_OK;
}

/* tg_io__save_atomic to path, which is a regular file or nothing. */
static tg_status save_regular(const char *who, const char *path, const void *buf, size_t size)
{
    const size_t plen = strlen(path);
    char *tmp = tg__malloc(plen + 12);
    if (!tmp)
        return tg__error(TG_ENOMEM, "%s: %s: out of memory", who, path);

    /* Write a new temporary file completely and durably, then rename it over PATH: a reader
     * sees the old file or the new one, never a half-written one. */
    const char *step = NULL;
    int err = 0;
    int fd = create_temp(path, plen, tmp);
    if (fd < 0) {
        step = "create", err = errno;
        memcpy(tmp + strlen(tmp) - 6, "XXXXXX", 6); /* the name it tried, for the message */
    } else {
        if (!write_all(fd, buf, size))
            step = "write", err = errno;
        else if (fsync(fd) != 0)
            step = "sync", err = errno;
        if (close(fd) != 0 && !step)
            step = "close", err = errno;
        if (!step && rename(tmp, path) != 0)
            step = "rename", err = errno;
        if (step)
            unlink(tmp);
    }
    /* The reason before the temporary file's name, which is path's own again: a message is
     * cut at 512 bytes, and with a long path the reason would be what is lost. */
    const char *slash = strrchr(tmp, '/');
    if (step && strcmp(step, "rename") == 0)
        tg__error(TG_EIO, "%s: %s: cannot rename the temporary file over it: %s", who, path,
                  strerror(err));
    else if (step)
        tg__error(TG_EIO, "%s: %s: cannot %s the temporary file: %s (%s)", who, path, step,
                  strerror(err), slash ? slash + 1 : tmp);
    else
        sync_parent_dir(path);
    tg__free(tmp, plen + 12);
    return step ? TG_EIO : TG_OK;
}

tg_status tg_io__save_atomic(const char *who, const char *path, const void *buf, size_t size)
{
    /* An empty path names no file: rename would say so, but only after a whole temporary file
     * was written into the working directory (or, that directory unwritable, blame it). */
    if (!*path)
        return tg__error(TG_EIO, "%s: the path is empty: %s", who, strerror(ENOENT));
    char *resolved;
    tg_status st = save_target(who, path, &resolved);
    if (st != TG_OK)
        return st;
    st = save_regular(who, resolved ? resolved : path, buf, size);
    free(resolved);
    return st;
}

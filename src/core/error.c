/* error.c: status codes and the thread-local last-error message. Every failing entry point
 * writes its message here before returning, so tg_last_error() always explains the most
 * recent failure on this thread. */
#include "core/core.h"

#include <stdio.h>

static _Thread_local char last_message[512];
static _Thread_local tg_status last_status;

#define TG_STRING(x) #x
#define TG_VERSION_STRING(major, minor, patch)                                                     \
    TG_STRING(major) "." TG_STRING(minor) "." TG_STRING(patch)

const char *tg_version(void)
{
    return TG_VERSION_STRING(TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
}

tg_status tg__verror(tg_status status, const char *fmt, va_list ap)
{
    /* Formatted apart first: callers may pass tg_last_error() itself as an argument (to add
     * context to an error), and vsnprintf must not write the buffer it reads. */
    char buf[sizeof last_message];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(last_message, buf, sizeof buf);
    last_status = status;
    return status;
}

tg_status tg__error(tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg__verror(status, fmt, ap);
    va_end(ap);
    return status;
}

const char *tg_last_error(void)
{
    return last_status == TG_OK ? "no error" : last_message;
}

tg_status tg_last_status(void)
{
    return last_status;
}

void tg_clear_error(void)
{
    last_status = TG_OK;
    last_message[0] = '\0';
}

const char *tg_status_name(tg_status status)
{
    switch (status) {
    case TG_OK: return "TG_OK";
    case TG_ENOMEM: return "TG_ENOMEM";
    case TG_ESHAPE: return "TG_ESHAPE";
    case TG_EDTYPE: return "TG_EDTYPE";
    case TG_EINVAL: return "TG_EINVAL";
    case TG_EIO: return "TG_EIO";
    case TG_EFORMAT: return "TG_EFORMAT";
    case TG_ENOTSUP: return "TG_ENOTSUP";
    case TG_ESTALE: return "TG_ESTALE";
    case TG_ENUMERIC: return "TG_ENUMERIC";
    }
    return "TG_E?";
}

const char *tg_dtype_name(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return "f32";
    case TG_F64: return "f64";
    }
    return "?";
}

size_t tg_dtype_size(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return 4;
    case TG_F64: return 8;
    }
    return 0;
}

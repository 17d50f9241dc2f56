/* files.h: writing files so that a crash or a full disk never leaves half of one behind. */
#ifndef TAPEGRAD_IO_FILES_H
#define TAPEGRAD_IO_FILES_H

#include "core/core.h"

/* Writes size bytes to PATH.tmp, fsyncs it, renames it over path and fsyncs the directory, so
 * path holds the old file or the complete new one, never a half-written one. TG_EIO naming
 * `who`, the path, the failed step and the OS reason (the temporary file is removed), or
 * TG_ENOMEM. */
tg_status tg_io__save_atomic(const char *who, const char *path, const void *buf, size_t size);

#endif

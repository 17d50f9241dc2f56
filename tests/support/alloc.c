/* alloc.c: see alloc.h. */
#include "alloc.h"

#include <tapegrad.h>

#include <stdlib.h>
#include <string.h>

ts_alloc_books ts_alloc;

static void *hook(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ts_alloc_books *a = ud;
    a->calls++;
    if (nsize == 0) {
        if (ptr && a->reuse == 1) { /* kept for the next allocation that fits */
            a->reuse = 2;
            a->kept = ptr;
            a->kept_size = osize;
            ptr = NULL;
            a->frees++;
            a->live--;
            a->bytes -= (long long)osize;
        }
        if (ptr) {
            a->frees++;
            a->live--;
            a->bytes -= (long long)osize;
            free(ptr);
        }
        return NULL;
    }
    a->allocs++;
    bool fail = (a->fail_at && a->allocs - a->armed_at == a->fail_at) ||
                (a->max_size && nsize > a->max_size);
    if (fail) {
        a->failures++;
        return NULL;
    }
    void *p;
    if (!ptr && a->reuse == 2 && nsize <= a->kept_size) {
        p = a->kept;
        a->reuse = 0;
        a->kept = NULL;
    } else {
        p = realloc(ptr, nsize);
    }
    if (!p)
        return NULL;
    if (!ptr) {
        a->live++;
        a->bytes += (long long)nsize;
    } else {
        a->bytes += (long long)nsize - (long long)osize;
    }
    return p;
}

void ts_alloc_install(void)
{
    memset(&ts_alloc, 0, sizeof ts_alloc);
    tg_set_allocator(hook, &ts_alloc);
}

void ts_alloc_uninstall(void)
{
    tg_set_allocator(NULL, NULL);
    free(ts_alloc.kept); /* a block kept for reuse that nothing took */
    ts_alloc.kept = NULL;
    ts_alloc.reuse = 0;
}

bool ts_alloc_installed(void)
{
    return tg_get_allocator(NULL) == hook;
}

void ts_alloc_fail_at(size_t n)
{
    ts_alloc.fail_at = n;
    ts_alloc.armed_at = ts_alloc.allocs;
}

size_t ts_alloc_attempts(void)
{
    return ts_alloc.allocs - ts_alloc.armed_at;
}

void ts_alloc_reuse_next_free(void)
{
    if (!ts_alloc_installed())
        ts_alloc_install();
    ts_alloc.reuse = 1;
}

/* alloc.c: the single allocator hook (Lua's lua_Alloc shape). Tests swap it to count calls
 * and to make the Nth allocation fail, which is how every error path is proved leak-free. */
#define _DEFAULT_SOURCE /* madvise */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    TG_UNUSED(ud);
    TG_UNUSED(osize);
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static tg_alloc_fn alloc_fn = default_alloc;
static void *alloc_ud;

void tg_set_allocator(tg_alloc_fn fn, void *ud)
{
    alloc_fn = fn ? fn : default_alloc;
    alloc_ud = fn ? ud : NULL;
}

tg_alloc_fn tg_get_allocator(void **ud)
{
    if (ud)
        *ud = alloc_ud;
    return alloc_fn;
}

void *tg__malloc(size_t size)
{
    return alloc_fn(alloc_ud, NULL, 0, size ? size : 1);
}

void *tg__calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = tg__malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *tg__realloc(void *ptr, size_t osize, size_t nsize)
{
    return alloc_fn(alloc_ud, ptr, osize, nsize ? nsize : 1);
}

void tg__free(void *ptr, size_t size)
{
    if (ptr)
        alloc_fn(alloc_ud, ptr, size, 0);
}

char *tg__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = tg__malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

tg_status tg__grow(void **array, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap)
        return TG_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return tg__error(TG_ENOMEM, "%s: %zu entries is too many", what, need);
        ncap *= 2;
    }
    void *p = tg__realloc(*array, *cap * elem, ncap * elem);
    if (!p)
        return tg__error(TG_ENOMEM, "%s: out of memory growing to %zu entries", what, ncap);
    *array = p;
    *cap = ncap;
    return TG_OK;
}

void tg__advise_huge_pages(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t mask = (uintptr_t)TG_HUGE_PAGE - 1;
    const uintptr_t at = ((uintptr_t)p + mask) & ~mask, end = ((uintptr_t)p + bytes) & ~mask;
    if (bytes >= TG_HUGE_PAGE && end > at)
        (void)madvise((void *)at, end - at, MADV_HUGEPAGE);
#else
    TG_UNUSED(p);
    TG_UNUSED(bytes);
#endif
}

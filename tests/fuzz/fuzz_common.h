/* fuzz_common.h: what the libFuzzer harnesses share: an allocator hook that bounds the memory
 * one input may use, so inputs that ask for huge buffers take the TG_ENOMEM paths instead of
 * exhausting the fuzzer (and runs stay fast). */
#ifndef TAPEGRAD_FUZZ_COMMON_H
#define TAPEGRAD_FUZZ_COMMON_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stdlib.h>

#define FUZZ_MAX_SINGLE ((size_t)8 << 20) /* bytes in one allocation */
#define FUZZ_MAX_TOTAL ((size_t)32 << 20) /* bytes allocated over one input, freed or not */

static size_t fuzz_total;

static void *fuzz_hook(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > FUZZ_MAX_SINGLE || fuzz_total + nsize > FUZZ_MAX_TOTAL)
        return NULL;
    fuzz_total += nsize;
    return realloc(ptr, nsize);
}

static inline void fuzz_install_hook(void)
{
    static bool installed;
    if (!installed) {
        tg_set_allocator(fuzz_hook, NULL);
        installed = true;
    }
}

static inline void fuzz_reset_budget(void)
{
    fuzz_total = 0;
}

#endif

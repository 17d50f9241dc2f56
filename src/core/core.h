/* core.h: what every module of the library shares inside it: assertions and branch hints,
 * the thread's error (tg__error), and heap memory through the allocator hook. Never
 * installed; modules include it as "core/core.h". */
#ifndef TAPEGRAD_CORE_CORE_H
#define TAPEGRAD_CORE_CORE_H

#include "tapegrad.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* Programmer bugs inside the library only; user input never reaches one. */
#ifdef NDEBUG
#define TG_ASSERT(cond) ((void)0)
#else
#include <assert.h>
#define TG_ASSERT(cond) assert(cond)
#endif

#define TG_UNUSED(x) ((void)(x))
#define TG_LIKELY(x) __builtin_expect(!!(x), 1)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Whether st is one of tg_status's error codes (TG_ENUMERIC is the last), not TG_OK or a number
 * a caller's callback made up. */
static inline bool tg__is_error(tg_status st)
{
    return st < TG_OK && st >= TG_ENUMERIC;
}

/* The smallest magnitude f32 cannot hold: FLT_MAX plus half its last place (2^128 - 2^103,
 * exact in a double), where rounding to nearest goes to infinity. Anything smaller rounds to a
 * finite f32, at most FLT_MAX: 3.4028235e38, FLT_MAX written shortest, is above FLT_MAX as a
 * double, yet it is FLT_MAX in f32. */
#define TG_F32_OVERFLOW 0x1.ffffffp+127

/* Whether the double v is finite and becomes inf in f32 (from TG_F32_OVERFLOW on). */
static inline bool tg__f32_overflows(double v)
{
    return isfinite(v) && fabs(v) >= TG_F32_OVERFLOW;
}

/* Whether rounding the double v to f32 would change it without a word: it overflows, or it is
 * nonzero and becomes 0 (below 1.4e-45, half of f32's smallest subnormal and less). inf, NaN,
 * 0 and the subnormals are f32 values. */
static inline bool tg__f32_cannot_hold(double v)
{
    return tg__f32_overflows(v) || (v != 0 && (float)v == 0);
}

/* On a function of plain vectorizable loops: GCC compiles it once per instruction set listed
 * and picks the best the CPU has when the program loads (an ifunc), so the library stays
 * built for baseline x86-64 yet its hot loops run 4 or 8 doubles wide. The clones compute
 * the same bits: no -ffast-math, and multiply-adds stay uncontracted (-ffp-contract=off,
 * cmake/TapegradOptions.cmake). Empty for other compilers and architectures, and in sanitizer
 * builds: the resolver runs while the program is being relocated, before a sanitizer's runtime
 * is up, yet is instrumented (under ThreadSanitizer that crashes at load). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TG_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_SIMD_CLONES
#endif

/* ---- errors (error.c) ------------------------------------------------------------------- */

/* Sets this thread's error and returns `status`, so callers can `return tg__error(...)`. */
tg_status tg__error(tg_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
tg_status tg__verror(tg_status status, const char *fmt, va_list ap);

/* ---- allocation (alloc.c): every heap byte goes through the hook ------------------------ */

void *tg__malloc(size_t size);
void *tg__calloc(size_t count, size_t size); /* NULL on overflow too */
void *tg__realloc(void *ptr, size_t osize, size_t nsize);
void tg__free(void *ptr, size_t size);
/* Asks the kernel to back the whole 2 MiB pages inside [p, p + bytes) with transparent huge
 * pages (madvise; nothing where it is unsupported): for large buffers walked end to end, so
 * that they take one TLB entry and one page fault per 2 MiB instead of 512. */
#define TG_HUGE_PAGE ((size_t)2 << 20)
void tg__advise_huge_pages(void *p, size_t bytes);
/* A copy of s on the heap (length+1 bytes; free with tg__free(p, strlen(p)+1)). */
char *tg__strdup(const char *s);
/* Grows *array (of elem-byte elements, *cap of them) to hold at least `need`, doubling.
 * TG_ENOMEM (with a message naming `what`) when it cannot. */
tg_status tg__grow(void **array, size_t *cap, size_t need, size_t elem, const char *what);

/* Alignment of tensor data: a cache line, so SIMD loads never split lines and two threads
 * never share one at a buffer boundary. */
#define TG_DATA_ALIGN 64

#endif

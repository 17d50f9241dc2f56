/* gemm.c: C = beta*C + op(A)·op(B) on raw row-major pointers, for f32 and f64 (the body is
 * written once in gemm_impl.h). This is the portable reference path: loop orders chosen so
 * the innermost loop runs along contiguous memory and vectorizes. */
#include "internal.h"

#define T float
#define GEMM tg_gemm_f32
#include "gemm_impl.h"
#undef T
#undef GEMM

#define T double
#define GEMM tg_gemm_f64
#include "gemm_impl.h"
#undef T
#undef GEMM

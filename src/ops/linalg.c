/* linalg.c: linear algebra. matmul: y = a @ b, (M,K) @ (K,N) -> (M,N), or batched
 * (B,M,K) @ (B,K,N) -> (B,M,N);  da += dy @ b^T, db += a^T @ dy. Products run on the GEMM
 * kernel (kernels/gemm.h), which reads transposed operands in place. */
#include "ops/op_impl.h"

#include "kernels/gemm.h"

static tg_status matmul_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    int r = a->rank;
    const char *why = NULL;
    if (!((r == 2 && b->rank == 2) || (r == 3 && b->rank == 3)))
        why = "operands must both be 2-D, or both 3-D (batched)";
    else if (r == 3 && a->shape[0] != b->shape[0])
        why = "batch sizes";
    else if (a->shape[r - 1] != b->shape[r - 2])
        why = "inner dimensions";
    if (why) { /* formatting only on the error path: this rule runs for every matmul */
        char sa[96], sb[96];
        tg_ops__fmt_shape(sa, sizeof sa, a);
        tg_ops__fmt_shape(sb, sizeof sb, b);
        if (why[0] == 'o')
            snprintf(msg, size, "%s @ %s: %s", sa, sb, why);
        else if (why[0] == 'b')
            snprintf(msg, size, "%s @ %s: batch sizes %zu and %zu differ", sa, sb, a->shape[0],
                     b->shape[0]);
        else
            snprintf(msg, size, "%s @ %s: inner dimensions %zu and %zu differ", sa, sb,
                     a->shape[r - 1], b->shape[r - 2]);
        return TG_ESHAPE;
    }
    y->rank = (uint8_t)r;
    if (r == 3)
        y->shape[0] = a->shape[0];
    y->shape[r - 2] = a->shape[r - 2];
    y->shape[r - 1] = b->shape[r - 1];
    return TG_OK;
}

typedef struct mm_dims {
    size_t batch, M, K, N;
} mm_dims;

static mm_dims matmul_dims(const tg_tensor *y)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    int r = a->rank;
    return (mm_dims){r == 3 ? a->shape[0] : 1, a->shape[r - 2], a->shape[r - 1], b->shape[r - 1]};
}

static void gemm(tg_dtype dtype, bool ta, bool tb, size_t M, size_t N, size_t K, const void *A,
                 size_t lda, const void *B, size_t ldb, double beta, void *C, size_t ldc)
{
    if (dtype == TG_F32)
        tg_gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, (float)beta, C, ldc);
    else
        tg_gemm_f64(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* Products this small (the 2x2 layers of a tiny network) run here in plain loops: the call
 * into the GEMM kernel, with its dispatch and blocking, would cost more than the arithmetic.
 * Each sum runs in the order the kernel's reference path uses. */
#define MATMUL_TINY 512 /* M*K*N at most */

static bool matmul_tiny(mm_dims d)
{
    return d.M * d.K * d.N <= MATMUL_TINY; /* no overflow: each factor is a real dimension */
}

static void matmul_forward(tg_tensor *y)
{
    mm_dims d = matmul_dims(y);
    if (matmul_tiny(d)) {
        DISPATCH(y->dtype, {
            const T *A = y->in[0]->data, *B = y->in[1]->data;
            T *Y = y->data;
            for (size_t p = 0; p < d.batch; p++, A += d.M * d.K, B += d.K * d.N, Y += d.M * d.N)
                for (size_t i = 0; i < d.M; i++) /* (M,K) @ (K,N) */
                    for (size_t j = 0; j < d.N; j++) {
                        T acc = 0;
                        for (size_t k = 0; k < d.K; k++)
                            acc += A[i * d.K + k] * B[k * d.N + j];
                        Y[i * d.N + j] = acc;
                    }
        });
        return;
    }
    size_t es = tg__esize(y);
    const char *A = y->in[0]->data, *B = y->in[1]->data;
    char *Y = y->data;
    for (size_t p = 0; p < d.batch; p++) /* (M,K) @ (K,N) */
        gemm((tg_dtype)y->dtype, false, false, d.M, d.N, d.K, A + p * d.M * d.K * es, d.K,
             B + p * d.K * d.N * es, d.N, 0.0, Y + p * d.M * d.N * es, d.N);
}

static void matmul_vjp(tg_tape *tape, tg_tensor *y)
{
    mm_dims d = matmul_dims(y);
    size_t es = tg__esize(y);
    char *dA = tg_tape__grad_of(tape, y->in[0]);
    char *dB = tg_tape__grad_of(tape, y->in[1]);
    if (matmul_tiny(d)) {
        DISPATCH(y->dtype, {
            const T *A = y->in[0]->data, *B = y->in[1]->data, *DY = y->grad;
            T *DA = (T *)dA, *DB = (T *)dB;
            const size_t M = d.M, K = d.K, N = d.N;
            for (size_t p = 0; p < d.batch; p++, A += M * K, B += K * N, DY += M * N) {
                if (DA) { /* dA[i,k] += sum_j dY[i,j] B[k,j] */
                    for (size_t i = 0; i < M; i++)
                        for (size_t k = 0; k < K; k++) {
                            T acc = 0;
                            for (size_t j = 0; j < N; j++)
                                acc += DY[i * N + j] * B[k * N + j];
                            DA[i * K + k] += acc;
                        }
                    DA += M * K;
                }
                if (DB) /* dB[k,j] += A[i,k] dY[i,j], i in order */
                    for (size_t k = 0; k < K; k++) {
                        for (size_t i = 0; i < M; i++)
                            for (size_t j = 0; j < N; j++)
                                DB[k * N + j] += A[i * K + k] * DY[i * N + j];
                    }
                if (DB)
                    DB += K * N;
            }
        });
        return;
    }
    const char *A = y->in[0]->data, *B = y->in[1]->data, *dY = y->grad;
    for (size_t p = 0; p < d.batch; p++) {
        const char *a = A + p * d.M * d.K * es, *b = B + p * d.K * d.N * es;
        const char *dy = dY + p * d.M * d.N * es;
        if (dA) /* (M,N) @ (K,N)^T -> (M,K) */
            gemm((tg_dtype)y->dtype, false, true, d.M, d.K, d.N, dy, d.N, b, d.N, 1.0,
                 dA + p * d.M * d.K * es, d.K);
        if (dB) /* (M,K)^T @ (M,N) -> (K,N) */
            gemm((tg_dtype)y->dtype, true, false, d.K, d.N, d.M, a, d.K, dy, d.N, 1.0,
                 dB + p * d.K * d.N * es, d.N);
    }
}

const tg_op_desc tg_op__matmul = {
    .info = {.name = "matmul", .arity = 2, .attrs = TG_ATTR_NONE, .differentiable = true},
    .op = TG_OP_MATMUL,
    .shape = matmul_shape,
    .forward = matmul_forward,
    .vjp = matmul_vjp,
};

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, &tg_op__matmul, a, b, (tg_node_attr){.c = 0});
}

/* linalg.c: linear algebra. matmul: y = a @ b, (M,K) @ (K,N) -> (M,N), or batched
 * (B,M,K) @ (B,K,N) -> (B,M,N), with NumPy's rules for a 1-D operand (a vector) and for a 2-D
 * operand against a 3-D one (used for every batch);  da += dy @ b^T, db += a^T @ dy, summed
 * over the batch for an operand used by every batch. Products run on the GEMM kernel
 * (kernels/gemm.h), which reads transposed operands in place. */
#include "ops/op_impl.h"

#include "kernels/gemm.h"

/* The product as `batch` products (M,K) @ (K,N), operand p of A at A + p*sa and of B at
 * B + p*sb: a stride of 0 repeats a 2-D (or 1-D) operand against a batched one, whose gradient
 * then sums over the batch (every VJP product accumulates). A 1-D operand is a (1,K) row or a
 * (K,1) column; a batched A against an unbatched B is one product of (B*M, K) @ (K,N). */
typedef struct mm_dims {
    size_t batch, M, K, N, sa, sb;
} mm_dims;

/* The dims of a @ b, or false when the shapes do not multiply (why: the message's reason). */
static bool mm_plan(const tg_tensor *a, const tg_tensor *b, mm_dims *d, const char **why)
{
    const int ra = a->rank, rb = b->rank;
    if (ra < 1 || ra > 3 || rb < 1 || rb > 3) {
        *why = "operands must be 1-D, 2-D or 3-D (batched)";
        return false;
    }
    const size_t Ka = a->shape[ra - 1], Kb = b->shape[rb == 1 ? 0 : rb - 2];
    if (Ka != Kb) {
        *why = "inner dimensions";
        return false;
    }
    if (ra == 3 && rb == 3 && a->shape[0] != b->shape[0]) {
        *why = "batch sizes";
        return false;
    }
    d->M = ra == 1 ? 1 : a->shape[ra - 2];
    d->K = Ka;
    d->N = rb == 1 ? 1 : b->shape[rb - 1];
    d->batch = ra == 3 ? a->shape[0] : rb == 3 ? b->shape[0] : 1;
    d->sa = ra == 3 ? d->M * d->K : 0;
    d->sb = rb == 3 ? d->K * d->N : 0;
    if (ra == 3 && rb != 3) { /* (B,M,K) @ (K,N) is (B*M,K) @ (K,N): one product */
        d->M *= d->batch;
        d->batch = 1;
    }
    return true;
}

static tg_status matmul_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    const int ra = a->rank, rb = b->rank;
    if (TG_LIKELY(ra == rb && (ra == 2 || (ra == 3 && a->shape[0] == b->shape[0])) &&
                  a->shape[ra - 1] == b->shape[ra - 2])) { /* the common cases, first */
        y->rank = (uint8_t)ra;
        if (ra == 3)
            y->shape[0] = a->shape[0];
        y->shape[ra - 2] = a->shape[ra - 2];
        y->shape[ra - 1] = b->shape[ra - 1];
        return TG_OK;
    }
    mm_dims d;
    const char *why = NULL;
    if (!mm_plan(a, b, &d, &why)) { /* formatting only on the error path */
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
                     a->shape[ra - 1], b->shape[rb == 1 ? 0 : rb - 2]);
        return TG_ESHAPE;
    }
    /* batch (if either is 3-D), then M (if a is not 1-D), then N (if b is not 1-D) */
    int r = 0;
    if (ra == 3 || rb == 3)
        y->shape[r++] = ra == 3 ? a->shape[0] : b->shape[0];
    if (ra > 1)
        y->shape[r++] = a->shape[ra - 2];
    if (rb > 1)
        y->shape[r++] = b->shape[rb - 1];
    y->rank = (uint8_t)r;
    return TG_OK;
}

/* NumPy's other cases (1-D operands, 2-D against 3-D), out of line. */
static __attribute__((noinline)) mm_dims matmul_dims_numpy(const tg_tensor *a, const tg_tensor *b)
{
    mm_dims d;
    const char *why;
    bool ok = mm_plan(a, b, &d, &why); /* the shape rule passed */
    TG_ASSERT(ok);
    (void)ok;
    return d;
}

/* The product's dimensions: inline for the common cases (every step of a network runs them),
 * NumPy's others out of line. */
TG_INLINE mm_dims matmul_dims(const tg_tensor *y)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    const int r = a->rank;
    if (TG_LIKELY(r == b->rank && r >= 2)) { /* 2-D, or batched on both sides */
        const size_t M = a->shape[r - 2], K = a->shape[r - 1], N = b->shape[r - 1];
        return (mm_dims){r == 3 ? a->shape[0] : 1, M, K, N, M * K, K * N};
    }
    return matmul_dims_numpy(a, b);
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
 * Each sum runs in the order the kernel's reference path uses. The loops are kept scalar
 * (no_vec): for a few elements the vectorizer's run-time checks for overlap and trip count
 * cost more than the loops themselves.
 *
 * A tiny product of two matrices (a small network's layer at batch 1 or a few) goes straight
 * from the operands' shapes to its loops, with nothing around them; the forward is inlined into
 * tg_matmul. Everything else (batched and 1-D operands, larger products) takes mm_dims and a
 * loop over the batch, out of line, so that the tiny paths keep a small frame: at 2x2 the
 * bookkeeping around the loops, not the arithmetic, is what the step pays for. */
#define MATMUL_TINY 512 /* M*K*N at most */

static bool matmul_tiny(size_t M, size_t K, size_t N)
{
    return M * K * N <= MATMUL_TINY; /* no overflow: each factor is a real dimension */
}

/* The tiny products' loops stay scalar (op_impl.h). */
#define MM_NO_VEC TG_FEW_NO_VEC

/* y = a @ b for one (M,K) @ (K,N) product: y[i,j] = sum_k a[i,k] b[k,j], k in order from 0 */
TG_INLINE void mm_tiny_forward(tg_dtype dtype, const void *a, const void *b, void *y, size_t M,
                               size_t K, size_t N)
{
    DISPATCH(dtype, {
        const T *A = a, *B = b;
        T *Y = y;
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++) {
                T acc = 0;
                for (size_t k = 0; k < K; k++)
                    acc += A[i * K + k] * B[k * N + j];
                Y[i * N + j] = acc;
            }
    });
}

/* The VJP of one (M,K) @ (K,N) product, for each gradient that is not NULL:
 * da[i,k] += sum_j dy[i,j] b[k,j] (j in order), db[k,j] += a[i,k] dy[i,j] (i in order).
 * Two distinct buffers (a layer's input and its weight) are filled in one pass over (i,k,j),
 * which halves the loop overhead, most of the cost at 2x2. Otherwise each gradient takes a
 * pass of its own: a single one, or those of a @ a, one buffer, where da is complete before db
 * adds to it (as in the GEMM path). */
TG_INLINE void mm_tiny_vjp(tg_dtype dtype, const void *a, const void *b, const void *dy, void *da,
                           void *db, size_t M, size_t K, size_t N)
{
    DISPATCH(dtype, {
        const T *A = a, *B = b, *DY = dy;
        T *DA = da, *DB = db;
        if (DA && DB && DA != DB) {
            for (size_t i = 0; i < M; i++)
                for (size_t k = 0; k < K; k++) {
                    const T aik = A[i * K + k]; /* once: the compiler cannot tell DB from A */
                    T acc = 0;
                    for (size_t j = 0; j < N; j++) {
                        acc += DY[i * N + j] * B[k * N + j];
                        DB[k * N + j] += aik * DY[i * N + j];
                    }
                    DA[i * K + k] += acc;
                }
            return;
        }
        if (DA)
            for (size_t i = 0; i < M; i++)
                for (size_t k = 0; k < K; k++) {
                    T acc = 0;
                    for (size_t j = 0; j < N; j++)
                        acc += DY[i * N + j] * B[k * N + j];
                    DA[i * K + k] += acc;
                }
        if (DB)
            for (size_t i = 0; i < M; i++)
                for (size_t k = 0; k < K; k++) {
                    const T aik = A[i * K + k]; /* once: the compiler cannot tell DB from A */
                    for (size_t j = 0; j < N; j++)
                        DB[k * N + j] += aik * DY[i * N + j];
                }
    });
}

/* The forward of a batch, or of a product too large for the loops. */
static MM_NO_VEC __attribute__((noinline)) void matmul_forward_general(tg_tensor *y)
{
    const mm_dims d = matmul_dims(y);
    const tg_dtype dt = (tg_dtype)y->dtype;
    const size_t es = tg__esize(y);
    const char *A = y->in[0]->data, *B = y->in[1]->data;
    char *Y = y->data;
    for (size_t p = 0; p < d.batch; p++) { /* (M,K) @ (K,N) */
        const char *a = A + p * d.sa * es, *b = B + p * d.sb * es;
        char *yp = Y + p * d.M * d.N * es;
        if (matmul_tiny(d.M, d.K, d.N))
            mm_tiny_forward(dt, a, b, yp, d.M, d.K, d.N);
        else
            gemm(dt, false, false, d.M, d.N, d.K, a, d.K, b, d.N, 0.0, yp, d.N);
    }
}

/* Whether a @ b is a tiny product of two matrices, the case its forward and VJP take inline
 * from the shapes (M, K, N: its dimensions then). */
TG_INLINE bool matmul_tiny_2d(const tg_tensor *a, const tg_tensor *b, size_t *M, size_t *K,
                              size_t *N)
{
    if (TG_UNLIKELY(a->rank != 2 || b->rank != 2))
        return false;
    *M = a->shape[0], *K = a->shape[1], *N = b->shape[1];
    return matmul_tiny(*M, *K, *N);
}

TG_INLINE MM_NO_VEC void matmul_forward(tg_tensor *y)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    size_t M, K, N;
    if (matmul_tiny_2d(a, b, &M, &K, &N))
        mm_tiny_forward((tg_dtype)y->dtype, a->data, b->data, y->data, M, K, N);
    else
        matmul_forward_general(y);
}

/* The VJP of a batch, or of a product too large for the loops. On the GEMM kernel, a gradient
 * buffer touched first here (fresh) is written (beta 0: never read, not zeroed first); one
 * shared by every batch (stride 0) is written by the first and added to by the rest. */
static MM_NO_VEC __attribute__((noinline)) void matmul_vjp_general(tg_tape *tape, tg_tensor *y)
{
    const mm_dims d = matmul_dims(y);
    const tg_dtype dt = (tg_dtype)y->dtype;
    const size_t es = tg__esize(y);
    const bool tiny = matmul_tiny(d.M, d.K, d.N);
    bool fresh_a = false, fresh_b = false;
    char *dA =
        tiny ? tg_tape__grad_of(tape, y->in[0]) : tg_ops__grad_of_fresh(tape, y->in[0], &fresh_a);
    char *dB =
        tiny ? tg_tape__grad_of(tape, y->in[1]) : tg_ops__grad_of_fresh(tape, y->in[1], &fresh_b);
    const char *A = y->in[0]->data, *B = y->in[1]->data, *dY = y->grad;
    for (size_t p = 0; p < d.batch; p++) {
        const char *a = A + p * d.sa * es, *b = B + p * d.sb * es;
        const char *dy = dY + p * d.M * d.N * es;
        char *da = dA ? dA + p * d.sa * es : NULL; /* stride 0: every batch adds into it */
        char *db = dB ? dB + p * d.sb * es : NULL;
        if (tiny) {
            mm_tiny_vjp(dt, a, b, dy, da, db, d.M, d.K, d.N);
            continue;
        }
        if (da) /* (M,N) @ (K,N)^T -> (M,K) */
            gemm(dt, false, true, d.M, d.K, d.N, dy, d.N, b, d.N,
                 fresh_a && (p == 0 || d.sa) ? 0.0 : 1.0, da, d.K);
        if (db) /* (M,K)^T @ (M,N) -> (K,N) */
            gemm(dt, true, false, d.K, d.N, d.M, a, d.K, dy, d.N,
                 fresh_b && (p == 0 || d.sb) ? 0.0 : 1.0, db, d.N);
    }
}

static MM_NO_VEC void matmul_vjp(tg_tape *tape, tg_tensor *y)
{
    tg_tensor *a = y->in[0], *b = y->in[1];
    size_t M, K, N;
    if (matmul_tiny_2d(a, b, &M, &K, &N)) {
        void *da = tg_tape__grad_of(tape, a), *db = tg_tape__grad_of(tape, b);
        mm_tiny_vjp((tg_dtype)y->dtype, a->data, b->data, y->grad, da, db, M, K, N);
    } else {
        matmul_vjp_general(tape, y);
    }
}

/* ---- the differentiable VJP (tg_grad_graph) ---------------------------------------------------
 * The same products as ops. A 1-D operand becomes a matrix first ((K) -> (1,K) for a, (K,1)
 * for b) and dy gets back the axes the product dropped, so that four cases remain:
 *   (M,K) @ (K,N):     dA = dy @ B^T,                     dB = A^T @ dy
 *   (P,M,K) @ (P,K,N): the same per batch (B^T: the last two axes swapped)
 *   (M,K) @ (P,K,N):   dA = sum over the batch of dy @ B^T, dB = A^T @ dy (A^T for every batch)
 *   (P,M,K) @ (K,N):   dA = dy @ B^T (B^T for every batch),  dB = (P*M,K)^T @ (P*M,N)
 * and the gradients of 1-D operands are reshaped back. */

/* t with its last two axes swapped */
static tg_tensor *swap_last(tg_tape *tape, tg_tensor *t)
{
    static const int swap3[3] = {0, 2, 1};
    return t && t->rank == 3 ? tg_permute(tape, t, swap3) : tg_transpose(tape, t);
}

static tg_status matmul_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *a = y->in[0], *b = y->in[1];
    const size_t K = a->shape[a->rank - 1];
    const size_t row[2] = {1, K}, col[2] = {K, 1};
    tg_tensor *A = a->rank == 1 ? tg_reshape(tape, a, 2, row) : a;
    tg_tensor *B = b->rank == 1 ? tg_reshape(tape, b, 2, col) : b;
    tg_tensor *G = dy;
    if (!A || !B)
        return tg_tape_status(tape);
    const int pa = A->rank, pb = B->rank;
    const size_t M = A->shape[pa - 2], N = B->shape[pb - 1];
    const size_t P = pa == 3 ? A->shape[0] : pb == 3 ? B->shape[0] : 1;
    if (a->rank == 1 || b->rank == 1) { /* dy with the dropped axes back, as size 1 */
        const size_t full[3] = {P, M, N};
        const int batched = pa == 3 || pb == 3;
        G = tg_reshape(tape, dy, 2 + batched, full + 1 - batched);
    }
    if (a->requires_grad) {
        tg_tensor *dA = tg_matmul(tape, G, swap_last(tape, B));
        if (pa == 2 && pb == 3)
            dA = tg_sum(tape, dA, 0, false);
        dx[0] = a->rank == 1 ? tg_reshape(tape, dA, 1, a->shape) : dA;
    }
    if (b->requires_grad) {
        tg_tensor *dB;
        if (pa == 3 && pb == 2) {
            const size_t ak[2] = {P * M, K}, gn[2] = {P * M, N};
            dB = tg_matmul(tape, tg_transpose(tape, tg_reshape(tape, A, 2, ak)),
                           tg_reshape(tape, G, 2, gn));
        } else {
            dB = tg_matmul(tape, swap_last(tape, A), G);
        }
        dx[1] = b->rank == 1 ? tg_reshape(tape, dB, 1, b->shape) : dB;
    }
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__matmul = {
    .info = {.name = "matmul", .arity = 2, .attrs = TG_ATTR_NONE, .differentiable = true},
    .op = TG_OP_MATMUL,
    .shape = matmul_shape,
    .forward = matmul_forward,
    .vjp = matmul_vjp,
    .vjp_graph = matmul_vjp_graph,
};

/* MM_NO_VEC: the forward's tiny loops are inlined here. */
MM_NO_VEC tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, &tg_op__matmul, a, b, (tg_node_attr){.c = 0});
}

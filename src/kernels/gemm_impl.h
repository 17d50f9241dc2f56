/* gemm_impl.h: the GEMM body, included by gemm.c once per element type T as function GEMM.
 * A is (M,K), stored (K,M) when transA; B is (K,N), stored (N,K) when transB. */

void GEMM(bool transA, bool transB, size_t M, size_t N, size_t K, const T *A, size_t lda,
          const T *B, size_t ldb, T beta, T *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        T *c = C + i * ldc;
        if (beta == 0) {
            for (size_t j = 0; j < N; j++)
                c[j] = 0; /* not 0*C: C may hold garbage, even NaN */
        } else if (beta != 1) {
            for (size_t j = 0; j < N; j++)
                c[j] *= beta;
        }
        if (!transB) {
            /* c[i,:] += A[i,k] * B[k,:]: rows of B are contiguous */
            for (size_t k = 0; k < K; k++) {
                const T a = transA ? A[k * lda + i] : A[i * lda + k];
                const T *b = B + k * ldb;
                for (size_t j = 0; j < N; j++)
                    c[j] += a * b[j];
            }
        } else {
            /* c[i,j] += dot(A[i,:], B[j,:]): rows of the stored B are contiguous */
            for (size_t j = 0; j < N; j++) {
                const T *b = B + j * ldb;
                T acc = 0;
                if (!transA) {
                    const T *a = A + i * lda;
                    for (size_t k = 0; k < K; k++)
                        acc += a[k] * b[k];
                } else {
                    for (size_t k = 0; k < K; k++)
                        acc += A[k * lda + i] * b[k];
                }
                c[j] += acc;
            }
        }
    }
}

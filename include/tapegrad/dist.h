/* tapegrad/dist.h: data-parallel training across processes and machines on MPI. Every rank
 * holds the whole model; rank 0's parameters are broadcast once at the start, and after each
 * backward pass the gradient blocks of all ranks are averaged in place (one MPI_Allreduce over
 * the model's contiguous gradient block), so every rank takes the same optimizer step and the
 * parameters stay identical. tg_dist_check_params verifies that they did.
 *
 * MPI is optional at build time (CMake option TG_MPI). Built without it, every function here
 * that returns a status returns TG_ENOTSUP with a message saying so (tg_dist_available()
 * tells in advance); nothing else in the library changes.
 *
 * MPI is called only from the thread that calls these functions (the kernels' worker threads
 * never call it), so MPI_THREAD_FUNNELED is enough. MPI errors come back as TG_EIO with MPI's
 * own message: the library's communicator is a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN set, so it neither aborts nor changes the caller's error handler. Every
 * call is collective: all ranks must make the same calls in the same order.
 *
 * Whatever the other ranks pass, no call writes past a buffer: each one starts with a
 * fixed-size exchange of which call it is and how many elements of which type it will move
 * (an MPI_Allgather of a few words), and moves data only when every rank agrees. Otherwise
 * every rank returns TG_EINVAL naming the first rank that differs from rank 0 and both values
 * ("dist_broadcast: ranks disagree on the size: rank 0 has 24 bytes, rank 1 has 16 bytes
 * (nothing was sent)", or "the ranks are out of step: rank 0 called dist_check_params, rank 1
 * called dist_allreduce_grads"), and the caller can stop them all cleanly. A rank that passes
 * NULL for an argument other than dist still joins that exchange: it returns TG_EINVAL, the
 * others TG_EIO naming it, and all stay in step. (A NULL dist is TG_EINVAL on that rank
 * alone: there is no communicator to tell the others on.) */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A model (tapegrad/nn.h): opaque, freed with tg_model_free. */
typedef struct tg_model tg_model;
/* This process's place in the job: the library's duplicate of MPI_COMM_WORLD, its rank and
 * size. Opaque. Made by tg_dist_init, the caller's, freed with tg_dist_free (collective: every
 * rank frees its own). */
typedef struct tg_dist tg_dist;
/* A training run (tapegrad/train.h): opaque, freed with tg_trainer_free. */
typedef struct tg_trainer tg_trainer;

/* True when the library was built with MPI. */
TG_API bool tg_dist_available(void);

/* Joins the job: if the caller has already initialized MPI (MPI_Initialized), the library
 * uses it and leaves finalizing to the caller; otherwise it calls MPI_Init_thread itself
 * (MPI_THREAD_FUNNELED) and calls MPI_Finalize when the last tg_dist is freed (after which MPI
 * cannot be started again in this process: MPI's rule). Collective over MPI_COMM_WORLD.
 * *out is the caller's (tg_dist_free). TG_ENOTSUP (built without MPI), TG_EIO (MPI failed
 * to start, or was already finalized; or another rank ran out of memory: every rank makes the
 * same collective calls whatever happened on it, so none is left waiting), TG_ENOMEM. Not
 * thread-safe: call it from one thread. */
TG_API tg_status tg_dist_init(tg_dist **out);
/* Releases the communicator (collective) and, for the last handle when the library started
 * MPI, finalizes it. NULL is ignored. A caller that owns MPI frees its handles before its
 * MPI_Finalize; a handle freed after it only releases its memory (MPI has released the
 * communicator with everything else). */
TG_API void tg_dist_free(tg_dist *dist);

/* This process's rank, 0..size-1, and the number of ranks (0 and 1 for NULL). */
TG_API int tg_dist_rank(const tg_dist *dist);
TG_API int tg_dist_size(const tg_dist *dist);

/* Copies rank 0's parameters (the whole contiguous block: one MPI_Bcast) to every rank. The
 * models must have the same spec on every rank: otherwise every rank returns TG_EINVAL naming
 * the first rank whose spec differs and both specs ("rank 1's model (f32 4 -> 7 (tanh) -> 1
 * (identity)) differs from rank 0's (f32 5 -> 7 (tanh) -> 1 (identity)); nothing was sent":
 * checked first, so no rank receives bytes it cannot hold). */
TG_API tg_status tg_dist_broadcast_params(tg_dist *dist, tg_model *model);

/* Replaces every rank's gradient block with the average over the ranks (MPI_Allreduce of the
 * sum in place, in the model's dtype, then a multiply by 1/size), in one call for any model
 * below 2^30 elements (larger ones go in buckets of 2^30). Call it after backward and before
 * the optimizer step. TG_EINVAL for NULL arguments, or (on every rank, before anything is
 * sent) when the ranks' gradient blocks differ in size or dtype; TG_EIO for an MPI error. A
 * rank whose own step failed calls it with model NULL, which is how a trainer's gradient hook
 * hears of it (grad NULL: train.h): the other ranks then return TG_EIO naming that rank,
 * together, instead of waiting for its gradients. */
TG_API tg_status tg_dist_allreduce_grads(tg_dist *dist, tg_model *model);

/* Broadcasts `bytes` bytes at data from rank 0 to every rank (standardization statistics,
 * seeds, ...). Every rank must pass the same size: TG_EINVAL on every rank otherwise, before
 * anything is sent. */
TG_API tg_status tg_dist_broadcast(tg_dist *dist, void *data, size_t bytes);

/* Sums n doubles over the ranks, in place on every rank (losses, correct counts, ...). Every
 * rank must pass the same n: TG_EINVAL on every rank otherwise, before anything is sent. */
TG_API tg_status tg_dist_allreduce_sum(tg_dist *dist, double *data, size_t n);

/* Checks that every rank holds the same parameters: the XXH3-64 hash of each rank's
 * parameter bytes is gathered on every rank and compared. On a mismatch, every rank returns
 * TG_ENUMERIC with a message naming the ranks whose parameters differ from rank 0's and their
 * hashes. *hash (if not NULL) receives this rank's hash. */
TG_API tg_status tg_dist_check_params(tg_dist *dist, const tg_model *model, uint64_t *hash);

/* Checks that every rank's trainer (tapegrad/train.h) is one run's: call it on every rank
 * after tg_trainer_new and before the first training step. It gathers each rank's settings
 * record (fixed-width words, so the exchange itself cannot overflow) and compares, field by
 * field with rank 0's: the task, the number of features and classes, the hidden layers,
 * activation, initializer, dtype, the optimizer and every option of it (learning rate,
 * momentum, nesterov, betas, eps, weight decay), epochs, batch size, test split, seed,
 * clipping norm, the rows of each split; that each trainer's rank and world are its place in
 * this job; then the standardization statistics, feature by feature (rank 0's are broadcast);
 * then a hash of the standardized data. The first difference is TG_EINVAL on every rank,
 * naming the setting as `tapegrad train` spells it and both values: "train: ranks disagree on
 * --batch: rank 0 has 32, rank 1 has 16". TG_EIO for an MPI error, TG_ENOMEM. */
TG_API tg_status tg_dist_check_trainer(tg_dist *dist, const tg_trainer *trainer);

/* True while the ranks are in step on dist, as far as this rank knows: every call on it so far
 * came to its end on every rank, the ones that failed with a verdict each rank returned from
 * the same call (a rank failed before the exchange or passed NULL, the ranks are out of step or
 * disagree on a size, their parameters or settings differ). After such an error the ranks can
 * stop together and leave the job normally (tg_dist_free on each, which is collective), with no
 * rank left waiting. False once an MPI call on dist has failed on this rank (TG_EIO with MPI's
 * message: MPI does not report an error to every rank alike, so the others may be waiting in
 * that call, still in step as far as they know: end the job from this rank with tg_dist_abort;
 * every later collective call on dist then returns TG_EIO at once, not to pair with a call of
 * theirs; tg_dist_abort, tg_dist_free and the rank and size still work), for NULL, and built
 * without MPI. */
TG_API bool tg_dist_in_step(const tg_dist *dist);

/* Ends every process of the job with exit status `code` (MPI_Abort): for a rank that fails
 * alone where it has no collective call to tell the others at, or after an MPI error
 * (tg_dist_in_step false), when the other ranks would otherwise wait for it forever in their
 * next collective call. Returns only on failure: TG_EINVAL for NULL, TG_ENOTSUP built without
 * MPI, TG_EIO if MPI_Abort returned. */
TG_API tg_status tg_dist_abort(tg_dist *dist, int code);

/* Waits until every rank has arrived. */
TG_API tg_status tg_dist_barrier(tg_dist *dist);

#ifdef __cplusplus
}
#endif

#endif

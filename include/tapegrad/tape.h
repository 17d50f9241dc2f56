/* tapegrad/tape.h: the tape. Op constructors (tapegrad/ops.h) compute their value at once
 * and append one node each, in execution order; tg_backward walks the nodes in reverse and
 * applies each op's vector-Jacobian product. Intermediate values and gradients live in an
 * arena owned by the tape; tg_tape_reset rewinds it in O(1), keeping its memory, so a loop
 * that records the same graph every step allocates nothing after the first step.
 *
 * Errors on a tape are sticky: the first failing op constructor returns NULL and its error
 * is kept (tg_tape_status, tg_tape_error); every later op given NULL returns NULL quietly,
 * so a caller can build a whole graph and check once. tg_tape_reset clears the error.
 *
 * A tape is not thread-safe: record and differentiate on one thread at a time. Tapes on
 * different threads may record the same leaves at the same time: recording only reads a
 * leaf. What writes one (its values, tg_tensor_set_requires_grad, and tg_backward, which
 * adds into its grad) must not run meanwhile; tg_grad, which writes no leaf, takes gradients
 * of shared leaves on each thread's tape, and so do tg_grad_graph and the derivative products
 * and matrices of tapegrad/diff.h. The leaves a recording used must stay alive until
 * its last backward reads them, and as long as views of them (reshape, detach) are read (a
 * freed leaf that no backward or view reads is fine; one a backward would read
 * whose address another leaf has taken since is refused, TG_ESTALE). A backward reads the
 * leaves that are inputs of the nodes it visits (those requiring grad that its output was
 * computed from), and the leaves that views (reshape, detach) among those inputs share their
 * data with, whether or not the node's VJP needs their values. */
#ifndef TAPEGRAD_TAPE_H
#define TAPEGRAD_TAPE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A new empty tape; NULL (TG_ENOMEM) when out of memory. Free it with tg_tape_free. */
TG_API tg_tape *tg_tape_new(void);
/* Frees the tape and every tensor recorded on it. NULL is ignored. */
TG_API void tg_tape_free(tg_tape *tape);
/* Forgets every recorded node in O(1) and clears the tape's error; the arena keeps its
 * memory for the next recording. Tensors recorded before the reset become stale: passing one
 * to an op, or reading its data, fails with TG_ESTALE. Detection is certain for tensors of
 * the previous recording only: node headers are reused two resets later (that is what makes
 * re-recording the same graph cheap), so a handle two or more resets old may name a newer
 * node, live, and be accepted. Do not keep tape tensors across resets. */
TG_API void tg_tape_reset(tg_tape *tape);

/* TG_OK, or the first error recorded since the last reset. */
TG_API tg_status tg_tape_status(const tg_tape *tape);
/* The first error's message, or "no error". */
TG_API const char *tg_tape_error(const tg_tape *tape);

/* Records an error on the tape as a failing op constructor does, for functions built from ops
 * (losses, layers, your own) that check their own arguments: if the tape has no error yet,
 * it keeps this one, the message formatted from fmt with " (node N)" added, N being the index
 * the next node would have had; this thread's error is set either way. Returns `status`
 * (TG_EINVAL when tape is NULL). A status that is not an error code (TG_OK, or a number not
 * in tg_status) is kept as TG_EINVAL, its message saying so, and TG_EINVAL returned. */
TG_API tg_status tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number of recorded nodes, and node i in recording order (NULL when out of range). */
TG_API size_t tg_tape_size(const tg_tape *tape);
TG_API tg_tensor *tg_tape_node(const tg_tape *tape, size_t i);
/* Leaves used by the recorded nodes, in order of first use. tg_tape_leaf gives NULL when i is
 * out of range, and (TG_ESTALE) when that leaf was freed since the recording began (another
 * leaf at its address is not it), so that it hands out none that dangles. */
TG_API size_t tg_tape_leaf_count(const tg_tape *tape);
TG_API tg_tensor *tg_tape_leaf(const tg_tape *tape, size_t i);
/* Bytes of arena memory the tape holds (its capacity, not what is in use). */
TG_API size_t tg_tape_arena_capacity(const tg_tape *tape);

/* Gradient recording. While disabled, new nodes never require grad (like a no-grad scope);
 * returns the previous setting so scopes nest:
 *     bool was = tg_tape_set_grad_enabled(tape, false); ...; tg_tape_set_grad_enabled(tape, was); */
TG_API bool tg_tape_set_grad_enabled(tg_tape *tape, bool enabled);
TG_API bool tg_tape_grad_enabled(const tg_tape *tape);

/* Anomaly mode: every recorded op checks its output, and backward checks every gradient it
 * writes (and tg_backward_seed its seed), for NaN or Inf; the first one found is an error
 * (TG_ENUMERIC, kept on the tape) naming the op, its node index and its input shapes, and,
 * when an input of the op held NaN or Inf already (a leaf, or a node recorded while anomaly
 * mode was off), that input; or the seed; or a leaf's gradient that held NaN or Inf before the
 * backward began (leaf gradients add up across passes). A gradient recorded by tg_grad_graph
 * (and the Hessians, Jacobians and forward mode built on it) is checked as backward's are,
 * where each op passes it back to an input, not at the steps of the op's formula, which may
 * pass through Inf on the way to a finite gradient (1 / (1 + x^2) at x = 1e200); a replay skips
 * those steps too. Off by default (it costs a pass over every value). */
TG_API void tg_tape_set_anomaly(tg_tape *tape, bool enabled);

/* Reverse-mode differentiation of y, a 0-d (or single-element) tensor recorded on `tape`
 * (or a leaf): seeds dy = 1, walks the nodes from y back to the first, and ACCUMULATES (+=)
 * into the grad of every leaf that requires grad. Calling it twice accumulates twice; zero
 * leaf grads between steps (tg_tensor_zero_grad). Gradients of intermediate tensors are
 * replaced by each call. Errors: TG_EINVAL (y NULL, on another tape, not a single element,
 * or not requiring grad: when it was computed from a tensor that does, the message names the
 * node where the gradient stops, one recorded while gradient recording was off or by an op
 * without a gradient), TG_ESTALE (y recorded before a reset; or a leaf this backward reads
 * written since the recording used it, named with its shape and the node that used it: see
 * versions in tapegrad/tensor.h; or a leaf of the recording whose requires_grad changed since
 * it was used, which decided the recorded nodes' own), the tape's own error if it has one,
 * TG_ENOMEM, TG_ENUMERIC in anomaly mode. A refused call changes nothing.
 *
 * Values a backward reads are the recording's: a VJP reads its inputs again (the gradient of
 * x * w in w is x), so writing a leaf between recording and backward would mix old and new
 * values. Write leaves after the backward (an optimizer step), then tg_tape_reset and record
 * again; or, to differentiate one recording at new values, write them and tg_tape_replay. */
TG_API tg_status tg_backward(tg_tape *tape, tg_tensor *y);
/* The same for any y, with dy = seed (a tensor of y's shape and dtype: a leaf, or a tensor of
 * this tape, TG_EINVAL for one of another): the gradient of sum(seed * y). */
TG_API tg_status tg_backward_seed(tg_tape *tape, tg_tensor *y, const tg_tensor *seed);

/* Gradients of a single-element y with respect to xs[0..n) (leaves or tape tensors), without
 * touching any leaf's grad buffer. out[i] receives a new leaf of xs[i]'s shape and dtype
 * (zeros when y does not depend on xs[i], whether or not it requires grad); the caller frees
 * each with tg_tensor_free. Only tensors that require grad have their gradients tracked, so
 * an xs[i] that y depends on (y was computed from it, through any op) must require grad: a
 * leaf marked with tg_tensor_set_requires_grad before recording y, or a tape tensor computed
 * from one while gradient recording was on. Otherwise the call fails with TG_EINVAL naming
 * it (its index in xs, its name, its node or shape) and why its gradient was not tracked: a
 * leaf that does not require grad, or a tape tensor recorded with gradient recording off,
 * computed from no tensor that requires grad, or by an op without gradient (a comparison).
 * Finding what y depends on costs a pass over the nodes up to y, made only when some xs[i]
 * does not require grad. Other errors are tg_backward's. On error no out[i] is set (all are
 * NULL). */
TG_API tg_status tg_grad(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                         tg_tensor **out);

/* Replay (ADOL-C's taping): evaluates the current recording again at the leaves' current
 * values, without recording. Record a function once, then for each new point write the
 * leaves' values (tg_tensor_data, tg_tensor_set), call tg_tape_replay, and every tensor of
 * the recording holds the function's values at that point; tg_backward, tg_backward_seed,
 * tg_grad and tg_grad_graph then work on them (so do nodes tg_grad_graph recorded before the
 * replay: they are replayed too, so a recorded gradient is re-evaluated, and differentiated
 * again, at the new point). Tensor handles stay valid: a replay changes values, never nodes.
 *
 *     tg_tensor *E = f(tape, x);             // record once
 *     for (...) {
 *         tg_tensor_set(x, 0, next_x);       // a new point
 *         tg_tape_replay(tape);              // E's value at it
 *         tg_backward(tape, E);              // dE/dx at it (into x's grad: += as always)
 *     }
 *
 * A replay notes the leaves' versions (tapegrad/tensor.h) again: writing a leaf and then
 * calling backward without a replay fails (TG_ESTALE), with one it is what replay is for.
 *
 * Guarantees. Every value (and every gradient taken after) is, bit for bit, what a fresh
 * recording of the same calls at the same leaf values would give. Each node's forward runs
 * again in recording order; views (reshape, detach) share their input's data as recorded;
 * constants (tg_constant, tg_scalar) keep their recorded values; ops whose shape rule reads
 * values (take's indices) judge the new ones, and an index now out of range is an error;
 * custom ops call their forward again, and its failure is an error; anomaly mode checks the
 * replayed values as it checks recorded ones. Gradients of an earlier backward do not leak
 * into the next: a replay starts a new backward pass, so every node gradient (and tg_grad's)
 * starts from zero. Leaf grad buffers are the caller's and ACCUMULATE as with any backward:
 * zero them between points (tg_tensor_zero_grad). A replay allocates no node memory (nodes
 * keep their buffers) and returns the scratch a forward takes, so a loop of replays and
 * backward passes holds its memory steady.
 *
 * What the tape cannot see, and the caller must handle by recording again:
 * - structure chosen by C control flow on values: `if (tg_tensor_item(x) > 0) y = tg_exp(...)
 *   else ...` is replayed with the branch taken when recording, whatever the new values
 *   say. A choice made inside the graph (tg_where, tg_maximum, relu, clamp, take on a
 *   computed index) is an op, and is re-made at every replay;
 * - values read into C and fed back: a constant or scalar built from a computed value, an
 *   attribute (tg_scale's factor, clamp's bounds, a slice's bounds, a reshape's shape)
 *   computed from one, keep their recorded values. The library does this itself in a few
 *   differentiable VJPs (tg_grad_graph): max's and min's choice of the first maximum on a
 *   tie is recorded as a constant mask. A gradient graph through max or min recorded before a
 *   replay keeps the recording point's choice; call tg_grad_graph again after the replay for
 *   derivatives at the new point (take's gradient graph reads the index tensor itself, and
 *   follows new indices);
 * - a custom op's user pointer and callbacks are called again as recorded: what they point
 *   at must still be alive and mean the same thing;
 * - a leaf freed since the recording: the tape holds its address and cannot tell a freed
 *   tensor from a live one (using it is a use after free, as any use of a freed tensor; once
 *   another leaf has taken the address, the replay sees it and refuses, TG_ESTALE). Keep every
 *   leaf of the recording alive while replaying.
 *
 * What it refuses (and then changes nothing; the tape stays usable): a leaf whose dtype
 * (TG_EDTYPE), shape (TG_ESHAPE) or requires_grad (TG_ESTALE) differs from when the recording
 * first used it, named by its index in tg_tape_leaf order (and its name, if it has one); a
 * tape with an error (that error); a tape reset since its recording (TG_ESTALE: a reset
 * forgets every node, so there is nothing to replay); a tape that never recorded anything,
 * or NULL (TG_EINVAL). An error during the replay (take's index now out of range: TG_ESHAPE;
 * or not an integer: TG_EINVAL; a custom forward's failure; TG_ENUMERIC in anomaly mode) is
 * kept on the tape as a recording's would be, naming the op and node, and the values are then
 * partly replayed: tg_tape_reset and record again.
 *
 * The plan (recording the same graph after a reset reuses the node headers of two resets
 * ago) is not disturbed: a replay writes values only, never a header's structure, so a
 * recording that follows still finds its plan. Replay and re-recording mix freely: record,
 * replay any number of times, reset, record again. Nodes recorded after a replay (more of
 * the graph, or tg_grad_graph's) are part of the recording and the next replay runs them. */
TG_API tg_status tg_tape_replay(tg_tape *tape);

/* XXH3-64 over every node's (op, dtype, shape, axis attributes, input references): equal for
 * equally structured recordings, different when any of those differ. Constant operands such
 * as a scale factor and the values themselves do not enter it. The leaves enter as the
 * recording noted them, so it reads none (they may have been freed since). */
TG_API uint64_t tg_tape_fingerprint(const tg_tape *tape);

#ifdef __cplusplus
}
#endif

#endif

/* tape_impl.h: the struct behind tg_tape, and what the tape module offers the ops: errors
 * kept on the tape, arena memory, and gradient buffers for the backward walk. Never
 * installed. */
#ifndef TAPEGRAD_TAPE_IMPL_H
#define TAPEGRAD_TAPE_IMPL_H

#include "tensor/tensor_impl.h"

typedef struct tg_leaf_slot {
    tg_tensor *leaf;
    void *grad; /* tg_grad's private accumulator for this leaf (arena) */
    /* The leaf's version (tensor.h) when the recording first used it, or when it was last
     * replayed: backward refuses a leaf written since (tg_tape__check_versions). */
    uint64_t version;
    uint32_t grad_pass;
    /* The leaf's serial (tensor_impl.h): the leaf, where its address may have been taken by
     * another since (a leaf freed during the recording). */
    uint64_t serial;
    /* What plan reuse compares (record.h): the leaf's dtype and shape when registered, and
     * whether the same slot two recordings ago held the same leaf with the same ones. */
    bool planned;
    /* Another leaf of the recording had the same address, before or after this one: an input
     * pointer of a node then does not say which, so the plan cannot stand on this slot. */
    bool shared;
    uint8_t dtype, rank;
    /* The leaf's requires_grad when registered: the nodes recorded on it decided theirs from
     * it, so a replay (replay.c) refuses a leaf whose flag changed since. */
    uint8_t requires_grad;
    size_t shape[TG_MAX_RANK];
} tg_leaf_slot;

/* An entry of a tape's leaf index: leaf -> its slot in the current recording. The index is
 * the tape's own, open addressing on the leaf's address, at most half full; an entry counts
 * only in the recording of its generation, so a reset empties the index without touching it.
 * Nothing about the registration is written into the leaf, which tapes on other threads may
 * be using at the same time (each reads it, none writes it). */
typedef struct tg_leaf_ref {
    const tg_tensor *leaf; /* NULL: never used */
    uint64_t serial;       /* that slot's: the leaf registered at this address (see there) */
    uint32_t gen;          /* the recording it belongs to (base.gen) */
    uint32_t slot : 31;    /* in that recording's leaves (< TG_MAX_LEAVES) */
    uint32_t planned : 1;  /* that slot's, copied here for the recording's fast path */
} tg_leaf_ref;

struct tg_tape {
    /* What its tensors see: the generation, the pass count and the arena of values,
     * gradients and names (tensor/tensor_impl.h). First, so a tg_tape * is a tg_tape_base *. */
    tg_tape_base base;
    /* Node headers alternate between two arenas by generation parity, so the headers of the
     * previous recording stay intact (with their old generation) during the current one:
     * that is what makes stale tensors detectable. */
    tg_arena headers[2];
    tg_arena *rec_headers; /* headers[base.gen & 1]: the current recording's */
    tg_tensor **nodes;
    size_t n_nodes, cap_nodes;
    tg_leaf_slot *leaves;
    size_t n_leaves, cap_leaves;
    tg_leaf_ref *leaf_index; /* leaf_index_cap entries, a power of two >= 2 (n_leaves + 1) */
    size_t leaf_index_cap;
    unsigned leaf_index_shift; /* 64 - log2(leaf_index_cap): the hash's top bits index it */
    /* The plan (record.h): the other parity's leaf slots, swapped in at every reset, and how
     * many nodes and leaves the recording two resets ago (same parity) left in its header
     * arena and leaf slots. */
    tg_leaf_slot *old_leaves;
    size_t old_n_leaves, old_cap_leaves, old_n_nodes;
    size_t plan_nodes, plan_leaves;
    bool grad_enabled;
    bool anomaly;
    bool capture; /* tg_grad: leaf gradients go to leaves[].grad, not leaf->grad */
    /* A custom op's forward runs (custom.c): a replay it started would run that forward again,
     * and itself, without end; tg_tape_replay refuses. */
    bool in_custom_forward;
    /* The sum of leaves[].version over the current recording's slots (modulo 2^64), and
     * tg_tensor__leaves_freed when the recording started; when the previous one started
     * (old_) and when the plan's started (plan_: record.h). */
    uint64_t leaf_versions, leaves_freed, old_leaves_freed, plan_leaves_freed;
    /* tg_tensor__grad_flags_changed when the recording started (or was last replayed, which
     * compared every leaf's flag) */
    uint64_t grad_flags_changed;
    tg_status status;
    char error[256];
};

/* Recording a node, the common path of every op constructor, is tg_tape__record in
 * tape/record.h: inline, so each op's constructor gets it specialized for that op. */
/* Sets the tape's error (if it has none yet) and this thread's, naming op and node index. */
void tg_tape__fail(tg_tape *tape, tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* `size` bytes of the data arena, aligned for what they hold: from its current block only when
 * `here` (NULL when that has no room: tg_arena__alloc_here), else from wherever there is room. */
static inline __attribute__((always_inline)) void *tg_tape__data(tg_tape *tape, size_t size,
                                                                 bool here)
{
    /* Small buffers (1 to 63 bytes: 0-d constants) need not waste a cache line each; size 0
     * still gets a distinct non-NULL pointer. */
    size_t align = TG_DATA_ALIGN;
    if (TG_LIKELY(size - 1 < TG_DATA_ALIGN - 1))
        align = 16;
    else if (size == 0)
        size = 1, align = 16;
    return here ? tg_arena__alloc_here(&tape->base.data, size, align)
                : tg_arena__alloc(&tape->base.data, size, align);
}
/* Arena memory for op data (values, gradients, scratch), or NULL when out of memory. */
static inline __attribute__((always_inline)) void *tg_tape__alloc(tg_tape *tape, size_t size)
{
    return tg_tape__data(tape, size, false);
}
/* Scratch that ends with the call taking it (a forward's partial sums, a VJP's working space):
 * note the data arena's position before taking it, and go back there after, so that a loop
 * of replays and backward passes over one recording holds its memory. Only memory taken
 * since the mark is given back; whatever must outlive the call is taken before it. */
static inline tg_arena tg_tape__scratch_mark(const tg_tape *tape)
{
    return tape->base.data;
}
static inline void tg_tape__scratch_release(tg_tape *tape, const tg_arena *mark)
{
    if (mark->cur) {
        tape->base.data.cur = mark->cur;
        tape->base.data.ptr = mark->ptr;
        tape->base.data.end = mark->end;
    } else { /* the arena was empty: its start, where blocks made since are found again */
        tg_arena__rewind(&tape->base.data);
    }
}
/* The entry of leaf x in the tape's index, if x is registered in the current recording;
 * otherwise the entry where it would go (one of no recording's, or an older recording's). */
static inline tg_leaf_ref *tg_tape__leaf_ref(const tg_tape *tape, const tg_tensor *x)
{
    const size_t mask = tape->leaf_index_cap - 1;
    /* Fibonacci hashing: the product's top bits, which every bit of the address moves */
    size_t h =
        (size_t)(((uint64_t)(uintptr_t)x * UINT64_C(0x9E3779B97F4A7C15)) >> tape->leaf_index_shift);
    for (;; h = (h + 1) & mask) { /* the index is at most half full: this ends */
        tg_leaf_ref *r = &tape->leaf_index[h];
        if (r->leaf == x || r->gen != tape->base.gen || !r->leaf)
            return r;
    }
}
/* The index entry of leaf slot s (< n_leaves <= TG_MAX_LEAVES) of the current recording. */
static inline tg_leaf_ref tg_tape__leaf_entry(const tg_tape *tape, size_t s)
{
    return (tg_leaf_ref){tape->leaves[s].leaf, tape->leaves[s].serial, tape->base.gen,
                         (uint32_t)s & (TG_MAX_LEAVES - 1), tape->leaves[s].planned};
}
/* Entry r (from tg_tape__leaf_ref) is the one of address x in the current recording. By the
 * address alone, so x is not read (it may have been freed): a leaf made during the recording at
 * the address of one freed during it has the entry once registered (tg_tape__leaf_ready). */
static inline bool tg_tape__leaf_found(const tg_tape *tape, const tg_leaf_ref *r,
                                       const tg_tensor *x)
{
    return r->leaf == x && r->gen == tape->base.gen;
}
/* The slot of leaf x in the current recording's leaf list (tape->leaves), or SIZE_MAX when x
 * is not registered in it (by its address: tg_tape__leaf_found). */
static inline size_t tg_tape__leaf_slot(const tg_tape *tape, const tg_tensor *x)
{
    const tg_leaf_ref *r = tg_tape__leaf_ref(tape, x);
    return tg_tape__leaf_found(tape, r, x) ? r->slot : SIZE_MAX;
}
/* The first touch of a gradient buffer in a pass, out of line: leaves (allocating a leaf's
 * grad, or tg_grad's private accumulator), a node's buffer that the data arena's current block
 * cannot hold (from tg_tape__grad_touch), and out of memory. */
void *tg_tape__grad_first(tg_tape *tape, tg_tensor *x);
/* The first touch in a pass of the gradient of node x of rank > 0: its buffer, allocated once a
 * recording, zeroed. Out of line (the common case of tg_tape__grad_of stays small) but a copy
 * in each file, and making tail calls only, so that it needs no stack frame: a buffer the data
 * arena's current block cannot hold is left to tg_tape__grad_first. */
static __attribute__((noinline, unused)) void *tg_tape__grad_touch(tg_tape *tape, tg_tensor *x)
{
    const size_t bytes = tg__nbytes(x);
    void *g = x->grad;
    if (!g && !(g = x->grad = tg_tape__data(tape, bytes, true)))
        return tg_tape__grad_first(tape, x);
    x->grad_pass = tape->base.pass;
    switch (bytes) { /* small gradients: a store or two, not a call */
    case 4: return memset(g, 0, 4);
    case 8: return memset(g, 0, 8);
    case 16: return memset(g, 0, 16);
    case 32: return memset(g, 0, 32);
    default: return memset(g, 0, bytes);
    }
}
/* The gradient buffer of input x for the current backward pass (zeroed on first use), or
 * NULL when x needs no gradient, or on ENOMEM (then the tape's status says so). A node keeps
 * its buffer for the whole recording: later passes zero it again instead of allocating. */
static inline void *tg_tape__grad_of(tg_tape *tape, tg_tensor *x)
{
    if (!x->requires_grad)
        return NULL;
    if (TG_LIKELY(x->tape != NULL)) { /* a node (backward never reaches another tape's) */
        if (TG_LIKELY(x->grad_pass == tape->base.pass))
            return x->grad;
        if (x->rank == 0) { /* grad is inl.grad: 8 bytes, whatever the dtype */
            x->grad_pass = tape->base.pass;
            memset(x->grad, 0, sizeof x->inl.grad);
            return x->grad;
        }
        return tg_tape__grad_touch(tape, x);
    }
    if (TG_LIKELY(x->grad && !tape->capture))
        return x->grad; /* a leaf's own grad */
    return tg_tape__grad_first(tape, x);
}

/* The slow path of tg_tape__check_versions. When every leaf of the recording is alive (none
 * freed since it started), a leaf whose requires_grad changed is an error (TG_ESTALE, naming
 * it: tg_tape__grad_flag_changed). Then it walks from y the nodes backward will visit (those
 * requiring grad that y was computed from), and names the first leaf one of them reads (an
 * input, or the leaf an input that is a view shares its data with) written since it was
 * noted, or whose requires_grad changed (TG_ESTALE, this thread's error only). When some
 * leaf was freed it reads no other leaf, and refuses (TG_ESTALE) if any registered leaf's
 * flag changed since the recording started (tg_tensor__grad_flags_changed): it cannot tell
 * whether that leaf is this recording's. TG_OK otherwise (the leaves written since are not
 * read by this backward). TG_ENOMEM when its marks cannot be allocated. */
tg_status tg_tape__check_versions_slow(const tg_tape *tape, const tg_tensor *y, const char *who);
/* The error (TG_ESTALE, this thread's) for leaf slot s, whose leaf's requires_grad is not what
 * it was when the recording registered it, for the function `who`. */
tg_status tg_tape__grad_flag_changed(const tg_tape *tape, size_t s, const char *who);

/* No leaf that some tape had registered was freed since this recording began (the count
 * tg_tensor__leaves_freed has not moved): every leaf of the recording may be read. */
static inline bool tg_tape__leaves_alive(const tg_tape *tape)
{
    return __atomic_load_n(&tg_tensor__leaves_freed, __ATOMIC_ACQUIRE) == tape->leaves_freed;
}
/* No registered leaf's requires_grad changed since this recording began, or was last replayed
 * (tg_tensor__grad_flags_changed has not moved). */
static inline bool tg_tape__grad_flags_unchanged(const tg_tape *tape)
{
    return __atomic_load_n(&tg_tensor__grad_flags_changed, __ATOMIC_ACQUIRE) ==
           tape->grad_flags_changed;
}

/* What backward checks before it walks from y (a node of this recording): TG_OK, or TG_ESTALE
 * when a leaf used by the recording at or before y has been written since it was noted
 * (tensor.h, versions) and is read by this backward, or when a leaf of the recording requires
 * grad now and did not then, or the other way round (the nodes recorded on it decided their
 * own requires_grad, so the gradient would miss paths or reach a leaf that asked for none);
 * the error is set on this thread only. Versions only grow, so the leaves' versions are all
 * as noted exactly when their sum is the sum noted (leaf_versions): when no registered leaf
 * was freed since the recording started (so every leaf of the recording is alive), one pass
 * adding up their versions, and one compare of the process's count of flag changes
 * (tg_tensor__grad_flags_changed); the slow path, which compares the flags themselves, runs
 * only when some leaf was written, changed its flag or was freed. */
static inline tg_status tg_tape__check_versions(const tg_tape *tape, const tg_tensor *y,
                                                const char *who)
{
    if (TG_LIKELY(tg_tape__leaves_alive(tape))) {
        const tg_leaf_slot *slots = tape->leaves;
        uint64_t sum = 0;
        for (size_t i = 0, n = tape->n_leaves; i < n; i++)
            sum += slots[i].leaf->version; /* plain loads: no write may run during a backward */
        if (TG_LIKELY(sum == tape->leaf_versions && tg_tape__grad_flags_unchanged(tape)))
            return TG_OK;
    }
    return tg_tape__check_versions_slow(tape, y, who);
}

_Static_assert(offsetof(struct tg_tape, base) == 0, "a tape begins with its base");

#endif

/* replay.c: tg_tape_replay, ADOL-C's taping model. The recording is a Wengert list whose
 * headers already hold everything a forward needs (op, inputs, attributes, shape, a data
 * buffer of the right size), so evaluating it again at the leaves' current values is a
 * forward loop over the node array: no header, no allocation, no shape rule (but for ops
 * whose shape rule reads values, which must judge the new ones). What the loop cannot see,
 * values read into C and fed back as constants or attributes, or a branch in the caller's
 * code, is documented in tapegrad/tape.h. */
#include "tape/record.h"

#include <stdio.h>

/* "leaf 2 ('W1')", or "leaf 2" for one without a name. */
static const char *leaf_label(char *buf, size_t size, size_t i, const tg_tensor *x)
{
    if (x->name)
        snprintf(buf, size, "leaf %zu ('%s')", i, x->name);
    else
        snprintf(buf, size, "leaf %zu", i);
    return buf;
}

/* TG_OK when every leaf still has the dtype, shape and requires_grad it had when the
 * recording first used it; else the error (this thread's only: the tape is untouched). */
static tg_status check_leaves(const tg_tape *tape)
{
    for (size_t i = 0; i < tape->n_leaves; i++) {
        const tg_leaf_slot *slot = &tape->leaves[i];
        const tg_tensor *x = slot->leaf;
        char who[80];
        if (x->serial != slot->serial) /* freed, and its memory is a leaf again */
            return tg__error(TG_ESTALE,
                             "replay: leaf %zu was freed since the recording used it, and "
                             "another leaf has its address now; keep the recording's leaves "
                             "alive, or record again",
                             i);
        if (x->dtype != slot->dtype)
            return tg__error(TG_EDTYPE,
                             "replay: %s was %s when recorded and is %s now; record "
                             "again",
                             leaf_label(who, sizeof who, i, x),
                             tg_dtype_name((tg_dtype)slot->dtype),
                             tg_dtype_name((tg_dtype)x->dtype));
        if (!tg_tape__leaf_sig_equal(slot, x)) {
            char was[96], now[96];
            return tg__error(TG_ESHAPE,
                             "replay: %s had shape %s when recorded and has %s now; "
                             "record again",
                             leaf_label(who, sizeof who, i, x),
                             tg_shape_format(was, sizeof was, slot->rank, slot->shape),
                             tg_shape_format(now, sizeof now, x->rank, x->shape));
        }
        if (x->requires_grad != slot->requires_grad)
            return tg_tape__grad_flag_changed(tape, i, "replay");
    }
    return TG_OK;
}

/* An op whose shape rule reads input values (take's indices) judges the replayed ones: its
 * rule runs on a copy of the header (the rule may write attributes; the recording's header
 * must stay as the plan knows it), and the shape must come out as recorded, since the
 * consumers' buffers were sized for it. TG_OK, or the error, kept on the tape. */
static tg_status revalidate(tg_tape *tape, const tg_op_desc *d, const tg_tensor *y)
{
    tg_tensor copy = *y;
    char msg[200];
    tg_status st = d->shape(&copy, msg, sizeof msg);
    if (st == TG_OK &&
        (copy.rank != y->rank || memcmp(copy.shape, y->shape, y->rank * sizeof y->shape[0]) != 0)) {
        char was[96], now[96];
        snprintf(msg, sizeof msg, "the result's shape was %s when recorded and would be %s",
                 tg_shape_format(was, sizeof was, y->rank, y->shape),
                 tg_shape_format(now, sizeof now, copy.rank, copy.shape));
        st = TG_ESHAPE;
    }
    if (st != TG_OK)
        tg_tape__fail(tape, st, "replay: %s: %s (node %u)", tg_node__op_name(y), msg, y->index);
    return st;
}

tg_status tg_tape_replay(tg_tape *tape)
{
    if (!tape)
        return tg__error(TG_EINVAL, "replay: tape is NULL");
    if (tape->in_custom_forward)
        return tg__error(TG_EINVAL, "replay: called from a custom op's forward on its own tape, "
                                    "which the replay would run again without end");
    if (tape->status != TG_OK)
        return tg__error(tape->status, "replay: the tape has an error: %s", tape->error);
    if (tape->n_nodes == 0)
        return tape->base.gen == 0
                   ? tg__error(TG_EINVAL, "replay: nothing is recorded on the tape")
                   : tg__error(TG_ESTALE, "replay: the tape was reset since its last recording "
                                          "and holds no nodes; record again");
    /* read first: a flag changed while the leaves are compared counts as changed after */
    const uint64_t flags_changed =
        __atomic_load_n(&tg_tensor__grad_flags_changed, __ATOMIC_ACQUIRE);
    tg_status st = check_leaves(tape);
    if (st != TG_OK)
        return st;
    tape->grad_flags_changed = flags_changed; /* every leaf's flag is as recorded */
    /* The replay evaluates at the leaves' values as they are now: backward may use them. */
    tape->leaf_versions = 0;
    for (size_t i = 0; i < tape->n_leaves; i++) {
        tape->leaves[i].version = tg_tensor__version(tape->leaves[i].leaf);
        tape->leaf_versions += tape->leaves[i].version;
    }
    /* Gradients of nodes (and tg_grad's leaf accumulators) belong to a backward pass: a new
     * pass number makes every one of them stale, so the next walk starts from zeros, while
     * each node keeps its buffer. */
    if (++tape->base.pass == 0)
        tape->base.pass = 1;
    /* A forward may take scratch from the data arena (a long sum's partial sums) that it
     * drops before returning; nodes' values are written in place. So everything a replay
     * allocates is garbage once it ends, and the arena goes back to where it was: a loop of
     * replays holds its memory steady. */
    const tg_arena mark = tg_tape__scratch_mark(tape);
    const size_t n = tape->n_nodes;
    const bool anomaly = tape->anomaly;
    for (size_t i = 0; i < n; i++) {
        tg_tensor *y = tape->nodes[i];
        const tg_op_desc *d = tg_op__table[y->op];
        if (TG_UNLIKELY(d->checks_values) && (st = revalidate(tape, d, y)) != TG_OK)
            break;
        /* Views point at their input's data again; constants keep theirs. As when recording
         * (tg_tape__compute, tg_tape__record_n), a result without elements is not computed:
         * its forward's loops over the other axes may be 2^32 long. A custom op's forward is
         * the user's, and runs whatever the size. */
        if (TG_LIKELY(y->numel != 0) || d->view || y->op == TG_OP_CUSTOM)
            d->forward(y);
        if (TG_UNLIKELY(tape->status != TG_OK)) { /* a custom op's forward failed */
            st = tape->status;
            break;
        }
        if (TG_UNLIKELY(anomaly) && (st = tg_tape__anomaly_forward(tape, y)) != TG_OK)
            break;
    }
    if (tape->n_nodes == n) { /* (a callback that recorded on the tape keeps what it made) */
        tg_tape__scratch_release(tape, &mark);
    }
    return st;
}

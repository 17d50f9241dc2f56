/* tape.c: recording nodes, the backward walk, tg_grad, and the fingerprint.
 *
 * Recording order is a topological order, so backward is a reverse loop over an array: no
 * sort, no recursion, no visited set, and any depth works in constant stack. A node whose
 * gradient was never written in this pass (grad_pass != pass) is skipped at the cost of one
 * compare; nodes that do not require grad are never written. There is no op-specific code
 * here: each node's VJP comes from the op table. */
#include "tape/captured.h"
#include "tape/grad_inputs.h"
#include "tape/record.h"
#include "tape/scratch.h"

#include "core/workspace.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

tg_tape *tg_tape_new(void)
{
    tg_tape *tape = tg__calloc(1, sizeof *tape);
    if (!tape) {
        tg__error(TG_ENOMEM, "tape_new: out of memory");
        return NULL;
    }
    tg_arena__init(&tape->headers[0]);
    tg_arena__init(&tape->headers[1]);
    tape->rec_headers = &tape->headers[0];
    tg_arena__init(&tape->base.data);
    enum { INDEX_BITS = 5 }; /* 32 entries: 16 leaves before the index grows */
    tape->leaf_index = tg__calloc((size_t)1 << INDEX_BITS, sizeof *tape->leaf_index);
    if (!tape->leaf_index) {
        tg__free(tape, sizeof *tape);
        tg__error(TG_ENOMEM, "tape_new: out of memory");
        return NULL;
    }
    tape->leaf_index_cap = (size_t)1 << INDEX_BITS;
    tape->leaf_index_shift = 64 - INDEX_BITS;
    tape->grad_enabled = true;
    tape->leaves_freed = __atomic_load_n(&tg_tensor__leaves_freed, __ATOMIC_ACQUIRE);
    tape->grad_flags_changed = __atomic_load_n(&tg_tensor__grad_flags_changed, __ATOMIC_ACQUIRE);
    return tape;
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    /* The leaves are not touched: the caller may have freed them already. */
    tg_arena__free(&tape->headers[0]);
    tg_arena__free(&tape->headers[1]);
    tg_arena__free(&tape->base.data);
    tg__free(tape->nodes, tape->cap_nodes * sizeof *tape->nodes);
    tg__free(tape->leaves, tape->cap_leaves * sizeof *tape->leaves);
    tg__free(tape->old_leaves, tape->old_cap_leaves * sizeof *tape->old_leaves);
    tg__free(tape->leaf_index, tape->leaf_index_cap * sizeof *tape->leaf_index);
    tg__free(tape, sizeof *tape);
    tg__workspace_release(); /* this thread's kernel scratch, kept across resets */
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    /* A new generation empties the leaf index; after 2^32 of them its entries' generations
     * would match again, so then it is cleared. */
    if (++tape->base.gen == 0)
        memset(tape->leaf_index, 0, tape->leaf_index_cap * sizeof *tape->leaf_index);
    /* Each header arena serves every other recording. Give the one the next recording uses
     * the capacity the other one needed, now, so that a loop recording the same graph
     * allocates nothing from its second step on (if this fails, the arena grows as before). */
    tg_arena *next = tape->rec_headers = &tape->headers[tape->base.gen & 1];
    size_t need = tape->headers[(tape->base.gen & 1) ^ 1].capacity;
    if (next->capacity < need)
        (void)tg_arena__alloc(next, need, TG_DATA_ALIGN);
    tg_arena__rewind(next);
    tg_arena__rewind(&tape->base.data);
    /* The plan for the next recording is the one two resets ago, in the arena and leaf
     * slots it is about to reuse (record.h). */
    if (tape->old_cap_leaves < tape->cap_leaves) /* sized now, like the header arena */
        (void)tg__grow((void **)&tape->old_leaves, &tape->old_cap_leaves, tape->cap_leaves,
                       sizeof *tape->old_leaves, "tape leaves");
    tg_leaf_slot *leaves = tape->leaves;
    size_t cap_leaves = tape->cap_leaves;
    tape->leaves = tape->old_leaves;
    tape->cap_leaves = tape->old_cap_leaves;
    tape->old_leaves = leaves;
    tape->old_cap_leaves = cap_leaves;
    tape->plan_leaves = tape->old_n_leaves;
    tape->old_n_leaves = tape->n_leaves;
    tape->plan_nodes = tape->old_n_nodes;
    tape->old_n_nodes = tape->n_nodes;
    tape->n_nodes = 0;
    tape->n_leaves = 0;
    tape->leaf_versions = 0;
    tape->plan_leaves_freed = tape->old_leaves_freed;
    tape->old_leaves_freed = tape->leaves_freed;
    tape->leaves_freed = __atomic_load_n(&tg_tensor__leaves_freed, __ATOMIC_ACQUIRE);
    tape->grad_flags_changed = __atomic_load_n(&tg_tensor__grad_flags_changed, __ATOMIC_ACQUIRE);
    tape->status = TG_OK;
    tape->error[0] = '\0';
}

tg_status tg_tape_status(const tg_tape *tape)
{
    return tape ? tape->status : TG_EINVAL;
}

const char *tg_tape_error(const tg_tape *tape)
{
    if (!tape)
        return "tape is NULL";
    return tape->status == TG_OK ? "no error" : tape->error;
}

size_t tg_tape_size(const tg_tape *tape)
{
    return tape ? tape->n_nodes : 0;
}

tg_tensor *tg_tape_node(const tg_tape *tape, size_t i)
{
    return tape && i < tape->n_nodes ? tape->nodes[i] : NULL;
}

size_t tg_tape_leaf_count(const tg_tape *tape)
{
    return tape ? tape->n_leaves : 0;
}

tg_tensor *tg_tape_leaf(const tg_tape *tape, size_t i)
{
    if (!tape || i >= tape->n_leaves)
        return NULL;
    const tg_leaf_slot *slot = &tape->leaves[i];
    if (!tg_tape__leaves_alive(tape) && !tg_tensor__alive(slot->leaf, slot->serial)) {
        tg__error(TG_ESTALE, "tape_leaf: leaf %zu was freed since this recording began", i);
        return NULL;
    }
    return slot->leaf;
}

size_t tg_tape_arena_capacity(const tg_tape *tape)
{
    if (!tape)
        return 0;
    return tape->headers[0].capacity + tape->headers[1].capacity + tape->base.data.capacity;
}

bool tg_tape_set_grad_enabled(tg_tape *tape, bool enabled)
{
    if (!tape)
        return false;
    bool was = tape->grad_enabled;
    tape->grad_enabled = enabled;
    return was;
}

bool tg_tape_grad_enabled(const tg_tape *tape)
{
    return tape && tape->grad_enabled;
}

void tg_tape_set_anomaly(tg_tape *tape, bool enabled)
{
    if (tape)
        tape->anomaly = enabled;
}

int tg_tensor_op(const tg_tensor *t)
{
    return t && !(t->flags & TG_TF_LEAF) ? t->op : -1;
}

/* A variadic node's inputs and a custom node's name are in the data arena, which the next
 * recording writes over: a stale node's are not read (TG_ESTALE), its header's are. */
const char *tg_tensor_op_name(const tg_tensor *t)
{
    if (!t || (t->flags & TG_TF_LEAF) || tg_tensor__check_live(t, "tensor_op_name") != TG_OK)
        return NULL;
    return tg_node__op_name(t);
}

int tg_tensor_num_inputs(const tg_tensor *t)
{
    if (!t || (t->flags & TG_TF_LEAF) || tg_tensor__check_live(t, "tensor_num_inputs") != TG_OK)
        return 0;
    return tg_node__n_inputs(t);
}

tg_tensor *tg_tensor_input(const tg_tensor *t, int i)
{
    return i >= 0 && i < tg_tensor_num_inputs(t) ? tg_node__inputs(t)[i] : NULL;
}

size_t tg_tensor_index(const tg_tensor *t)
{
    return t && !(t->flags & TG_TF_LEAF) ? t->index : SIZE_MAX;
}

/* ---- errors ------------------------------------------------------------------------------ */

void tg_tape__fail(tg_tape *tape, tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg__verror(status, fmt, ap);
    va_end(ap);
    if (tape && tape->status == TG_OK) {
        tape->status = status;
        snprintf(tape->error, sizeof tape->error, "%s", tg_last_error());
    }
}

tg_status tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
{
    char msg[sizeof tape->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "(no message)", ap);
    va_end(ap);
    if (!tape)
        return tg__error(TG_EINVAL, "tape_fail: tape is NULL (the error was: %s)", msg);
    if (!tg__is_error(status)) { /* kept all the same: the caller meant to fail */
        tg_tape__fail(tape, TG_EINVAL,
                      "%s (node %zu; tape_fail was given status %d, which is no error code)", msg,
                      tape->n_nodes, (int)status);
        return TG_EINVAL;
    }
    tg_tape__fail(tape, status, "%s (node %zu)", msg, tape->n_nodes);
    return status;
}

void *tg_tape__scratch(tg_tape *tape, size_t bytes, const char *who)
{
    void *p = tg_tape__alloc(tape, bytes);
    if (!p)
        tg_tape__fail_oom(tape, who, bytes);
    return p;
}

/* ---- recording --------------------------------------------------------------------------- */

/* Doubles the leaf index, keeping the current recording's entries. It never grows past
 * 2 TG_MAX_LEAVES entries: being at most half full then keeps every slot number in range,
 * whatever the leaf list's capacity. */
static tg_status grow_leaf_index(tg_tape *tape)
{
    const size_t cap = 2 * tape->leaf_index_cap;
    if (cap > 2 * (size_t)TG_MAX_LEAVES)
        return TG_ENOMEM;
    tg_leaf_ref *index = tg__calloc(cap, sizeof *index);
    if (!index)
        return TG_ENOMEM;
    tg__free(tape->leaf_index, tape->leaf_index_cap * sizeof *tape->leaf_index);
    tape->leaf_index = index;
    tape->leaf_index_cap = cap;
    tape->leaf_index_shift--;
    for (size_t s = 0; s < tape->n_leaves; s++)
        *tg_tape__leaf_ref(tape, tape->leaves[s].leaf) = tg_tape__leaf_entry(tape, s);
    return TG_OK;
}

void tg_tape__fill_new_slot(tg_leaf_slot *slot, tg_tensor *x)
{
    slot->leaf = x;
    slot->planned = false;
    slot->dtype = x->dtype;
    slot->rank = x->rank;
    for (int i = 0; i < x->rank; i++)
        slot->shape[i] = x->shape[i];
    if (!__atomic_load_n(&x->registered, __ATOMIC_RELAXED))
        tg_tensor__register(x);
}

/* Registers leaf x on its first use in this recording (a slot, an index entry), making room
 * as needed; TG_OK when it is registered, TG_ENOMEM when there is no room. */
static tg_status use_leaf(tg_tape *tape, tg_tensor *x)
{
    if (tg_tape__leaf_ready(tape, x))
        return TG_OK;
    if (tape->n_leaves == TG_MAX_LEAVES) /* a slot number's range; far beyond any memory */
        return TG_ENOMEM;
    if (tape->n_leaves == tape->cap_leaves) {
        tg_status st = tg__grow((void **)&tape->leaves, &tape->cap_leaves, tape->n_leaves + 1,
                                sizeof *tape->leaves, "tape leaves");
        if (st != TG_OK)
            return st;
    }
    if (2 * (tape->n_leaves + 1) > tape->leaf_index_cap && grow_leaf_index(tape) != TG_OK)
        return TG_ENOMEM;
    bool added = tg_tape__add_leaf(tape, tg_tape__leaf_ref(tape, x), x);
    TG_ASSERT(added);
    (void)added;
    return TG_OK;
}

static tg_status check_input(tg_tape *tape, const char *op, int i, tg_tensor *x)
{
    if (!x) {
        tg_tape__fail(tape, TG_EINVAL, "%s: input %d is NULL (node %zu)", op, i, tape->n_nodes);
        return TG_EINVAL;
    }
    if (x->flags & TG_TF_LEAF) {
        tg_status st = use_leaf(tape, x);
        if (st != TG_OK)
            tg_tape__fail(tape, st, "%s: out of memory registering input %d (node %zu)", op, i,
                          tape->n_nodes);
        return st;
    }
    if (x->tape != tape) {
        tg_tape__fail(tape, TG_EINVAL, "%s: input %d (node %u) belongs to another tape (node %zu)",
                      op, i, x->index, tape->n_nodes);
        return TG_EINVAL;
    }
    if (x->gen != tape->base.gen) {
        tg_tape__fail(tape, TG_ESTALE,
                      "%s: input %d (node %u) was recorded before the tape was reset (node %zu)",
                      op, i, x->index, tape->n_nodes);
        return TG_ESTALE;
    }
    return TG_OK;
}

tg_status tg_tape__admit(tg_tape *tape, const tg_op_desc *d, tg_tensor *a, tg_tensor *b)
{
    const tg_op_info *info = &d->info;
    if (!tape)
        return tg__error(TG_EINVAL, "%s: tape is NULL", info->name);
    if (tape->status != TG_OK)
        return tape->status;
    tg_status st = check_input(tape, info->name, 0, a);
    if (st != TG_OK || info->arity != 2)
        return st;
    if ((st = check_input(tape, info->name, 1, b)) != TG_OK)
        return st;
    if (a->dtype != b->dtype) {
        tg_tape__fail(tape, TG_EDTYPE, "%s: dtypes %s and %s differ (node %zu)", info->name,
                      tg_dtype_name((tg_dtype)a->dtype), tg_dtype_name((tg_dtype)b->dtype),
                      tape->n_nodes);
        return TG_EDTYPE;
    }
    return TG_OK;
}

static bool all_finite(const void *p, tg_dtype dtype, size_t n)
{
    if (dtype == TG_F32) {
        const float *f = p;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(f[i]))
                return false;
    } else {
        const double *d = p;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(d[i]))
                return false;
    }
    return true;
}

static void describe_inputs(const tg_tensor *y, char *buf, size_t size)
{
    const int arity = tg_node__n_inputs(y);
    tg_tensor *const *in = tg_node__inputs(y);
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < arity && n < size; i++) {
        char s[96];
        tg_shape_format(s, sizeof s, in[i]->rank, in[i]->shape);
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", s);
    }
}

/* "node 3 (mul)", "the leaf 'w'" or "a leaf": input x of a node, for anomaly mode's messages. */
static const char *input_label(char *buf, size_t size, const tg_tensor *x)
{
    if (!(x->flags & TG_TF_LEAF))
        snprintf(buf, size, "node %u (%s)", x->index, tg_node__op_name(x));
    else if (x->name)
        snprintf(buf, size, "the leaf '%s'", x->name);
    else
        snprintf(buf, size, "a leaf");
    return buf;
}

void tg_tape__fail_shape(tg_tape *tape, const tg_tensor *y, tg_status st, const char *msg)
{
    tg_tape__fail(tape, st, "%s: %s (node %zu)", tg_node__op_name(y), msg, tape->n_nodes);
}

void tg_tape__fail_oom(tg_tape *tape, const char *who, size_t bytes)
{
    tg_tape__fail(tape, TG_ENOMEM, "%s: out of memory for %zu bytes (node %zu)", who, bytes,
                  tape->n_nodes);
}

tg_status tg_tape__finish_slow(tg_tape *tape, tg_tensor *y, bool overflow)
{
    const char *name = tg_op__table[y->op]->info.name;
    if (overflow) {
        char s[160];
        tg_tape__fail(tape, TG_ESHAPE, "%s: shape %s has too many elements (node %zu)", name,
                      tg_shape_format(s, sizeof s, y->rank, y->shape), tape->n_nodes);
        return TG_ESHAPE;
    }
    if (tape->n_nodes >= UINT32_MAX) {
        tg_tape__fail(tape, TG_ENOMEM, "%s: the tape is full (%zu nodes)", name, tape->n_nodes);
        return TG_ENOMEM;
    }
    if (tg__grow((void **)&tape->nodes, &tape->cap_nodes, tape->n_nodes + 1, sizeof *tape->nodes,
                 "tape nodes") != TG_OK) {
        tg_tape__fail(tape, TG_ENOMEM, "%s: out of memory growing the tape (node %zu)", name,
                      tape->n_nodes);
        return TG_ENOMEM;
    }
    return TG_OK;
}

/* The general path of recording: writes header y in full for op d on a (and b), runs the shape
 * rule, gives y its element count and data, and appends it. TG_OK, or the error (kept on the
 * tape). */
static tg_status record_general(tg_tape *tape, tg_tensor *y, const tg_op_desc *d, tg_tensor *a,
                                tg_tensor *b, tg_node_attr attr)
{
    tg_tape__init_node(tape, y, d->op, (tg_dtype)a->dtype, d->view);
    y->in[0] = a;
    y->in[1] = b;
    y->attr = attr;
    char msg[200]; /* written by the shape rule only when it fails */
    tg_status st = d->shape(y, msg, sizeof msg);
    if (TG_UNLIKELY(st != TG_OK)) {
        tg_tape__fail_shape(tape, y, st, msg);
        return st;
    }
    return tg_tape__finish_node(tape, y, d->view);
}

tg_tensor *tg_tape__record_slow(tg_tape *tape, const tg_op_desc *d, tg_tensor *a, tg_tensor *b,
                                tg_node_attr attr)
{
    const bool binary = d->info.arity == 2;
    if ((!tape || tape->status != TG_OK || !a || !tg_tape__input_ready(tape, a) ||
         (binary && (!b || !tg_tape__input_ready(tape, b) || a->dtype != b->dtype))) &&
        tg_tape__admit(tape, d, a, b) != TG_OK)
        return NULL;
    if (!binary)
        b = NULL;
    tg_tensor *y = tg_tape__new_header(tape);
    if (!y) {
        tg_tape__fail_oom(tape, d->info.name, sizeof *y);
        return NULL;
    }
    tg_tape__normalize_axis(d, a, &attr);
    if (tg_tape__input_planned(tape, a) && (!b || tg_tape__input_planned(tape, b)) &&
        tg_tape__plan_holds(tape, d, y, a, b, attr)) {
        void *data = NULL;
        const size_t bytes = tg__nbytes(y);
        if (y->rank != 0 && !d->view && !(data = tg_tape__alloc(tape, bytes))) {
            tg_tape__fail_oom(tape, d->info.name, bytes);
            return NULL;
        }
        tg_tape__plan_refresh(tape, d, y, attr, data);
    } else if (record_general(tape, y, d, a, b, attr) != TG_OK) {
        return NULL;
    }
    return tg_tape__run_forward(tape, d, y, a, b);
}

tg_tensor *tg_tape__record_n(tg_tape *tape, const tg_op_desc *d, tg_tensor *const *ins, size_t n,
                             tg_node_attr attr, const struct tg_custom_op *custom, void *user)
{
    const char *name = custom ? custom->name : d->info.name;
    if (!tape) {
        tg__error(TG_EINVAL, "%s: tape is NULL", name);
        return NULL;
    }
    if (tape->status != TG_OK)
        return NULL;
    if (n == 0 || n > UINT32_MAX || (d->info.arity != TG_VARIADIC && n != (size_t)d->info.arity)) {
        tg_tape__fail(tape, TG_EINVAL, "%s: takes %s inputs, got %zu (node %zu)", name,
                      d->info.arity == TG_VARIADIC ? "one or more" : "3", n, tape->n_nodes);
        return NULL;
    }
    if (!ins) {
        tg_tape__fail(tape, TG_EINVAL, "%s: the input list is NULL (node %zu)", name,
                      tape->n_nodes);
        return NULL;
    }
    bool requires_grad = false;
    for (size_t i = 0; i < n; i++) {
        if (check_input(tape, name, (int)i, ins[i]) != TG_OK)
            return NULL;
        if (ins[i]->dtype != ins[0]->dtype) {
            tg_tape__fail(tape, TG_EDTYPE, "%s: input %zu is %s, input 0 %s (node %zu)", name, i,
                          tg_dtype_name((tg_dtype)ins[i]->dtype),
                          tg_dtype_name((tg_dtype)ins[0]->dtype), tape->n_nodes);
            return NULL;
        }
        requires_grad |= ins[i]->requires_grad;
    }
    tg_node_ext *ext = tg_tape__alloc(tape, sizeof *ext + n * sizeof ext->in[0]);
    tg_tensor *y = tg_tape__new_header(tape);
    if (!ext || !y) {
        tg_tape__fail_oom(tape, name, sizeof *ext + n * sizeof ext->in[0]);
        return NULL;
    }
    ext->custom = custom;
    ext->user = user;
    ext->n = (uint32_t)n;
    memcpy(ext->in, ins, n * sizeof ext->in[0]);
    tg_tape__init_node(tape, y, d->op, (tg_dtype)ins[0]->dtype, d->view);
    y->in[0] = ins[0];
    y->in[1] = n > 1 ? ins[1] : NULL;
    y->attr = attr;
    y->attr.r.ext = ext;
    char msg[200]; /* written by the shape rule only when it fails */
    tg_status st = d->shape(y, msg, sizeof msg);
    if (st != TG_OK) {
        tg_tape__fail_shape(tape, y, st, msg);
        return NULL;
    }
    if (tg_tape__finish_node(tape, y, d->view) != TG_OK)
        return NULL;
    y->requires_grad = d->info.differentiable && tape->grad_enabled && requires_grad;
    if (y->numel != 0 || d->view || custom) /* as tg_tape__record; a custom op is the user's */
        d->forward(y);
    if (tape->status != TG_OK) /* a custom op's forward failed */
        return NULL;
    if (tape->anomaly && tg_tape__anomaly_forward(tape, y) != TG_OK)
        return NULL;
    return y;
}

tg_tensor *tg_tape__forward_checked(tg_tape *tape, const tg_op_desc *d, tg_tensor *y)
{
    tg_tape__compute(d, y);
    return tg_tape__anomaly_forward(tape, y) == TG_OK ? y : NULL;
}

tg_status tg_tape__anomaly_forward(tg_tape *tape, const tg_tensor *y)
{
    if ((y->flags & TG_TF_GRAD_STEP) || all_finite(y->data, (tg_dtype)y->dtype, y->numel))
        return TG_OK;
    char shapes[200];
    describe_inputs(y, shapes, sizeof shapes);
    /* An input that holds NaN or Inf already (a leaf, or a node recorded while anomaly mode was
     * off) is where the value came from: the op only passed it on. */
    const int arity = tg_node__n_inputs(y);
    tg_tensor *const *in = tg_node__inputs(y);
    for (int k = 0; k < arity; k++) {
        const tg_tensor *x = in[k];
        if (all_finite(x->data, (tg_dtype)x->dtype, x->numel))
            continue;
        char what[96];
        tg_tape__fail(tape, TG_ENUMERIC,
                      "anomaly: %s at node %u was given NaN or Inf: its input %d, %s, holds it "
                      "(input shapes %s)",
                      tg_node__op_name(y), y->index, k, input_label(what, sizeof what, x), shapes);
        return TG_ENUMERIC;
    }
    tg_tape__fail(tape, TG_ENUMERIC, "anomaly: %s produced NaN or Inf at node %u (input shapes %s)",
                  tg_node__op_name(y), y->index, shapes);
    return TG_ENUMERIC;
}

tg_status tg_tape__anomaly_graph_grads(tg_tape *tape, const tg_tensor *y, tg_tensor *const *dx)
{
    const int arity = tg_node__n_inputs(y);
    for (int k = 0; k < arity; k++) {
        const tg_tensor *g = dx[k];
        if (!g || all_finite(g->data, (tg_dtype)g->dtype, g->numel))
            continue;
        char shapes[200];
        describe_inputs(y, shapes, sizeof shapes);
        tg_tape__fail(tape, TG_ENUMERIC,
                      "anomaly: grad_graph: the recorded gradient of %s at node %u (input shapes "
                      "%s) holds NaN or Inf for its input %d",
                      tg_node__op_name(y), y->index, shapes, k);
        return TG_ENUMERIC;
    }
    return TG_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */

/* memset, without the call for the small gradients of graphs of 0-d tensors. */
static inline void zero_values(void *p, const tg_tensor *x)
{
    if (x->numel > 4)
        memset(p, 0, tg__nbytes(x));
    else if (x->dtype == TG_F64)
        for (size_t i = 0; i < x->numel; i++)
            ((double *)p)[i] = 0;
    else
        for (size_t i = 0; i < x->numel; i++)
            ((float *)p)[i] = 0;
}

void *tg_tape__grad_first(tg_tape *tape, tg_tensor *x)
{
    if (!(x->flags & TG_TF_LEAF)) {
        if (x->grad_pass != tape->base.pass) {
            if (!x->grad)
                x->grad = tg_tape__alloc(tape, tg__nbytes(x));
            if (!x->grad) {
                tg_tape__fail(tape, TG_ENOMEM,
                              "backward: out of memory for the gradient of node %u", x->index);
                return NULL;
            }
            zero_values(x->grad, x);
            x->grad_pass = tape->base.pass;
        }
        return x->grad;
    }
    if (tape->capture) {
        size_t s = tg_tape__leaf_slot(tape, x);
        TG_ASSERT(s != SIZE_MAX);
        tg_leaf_slot *slot = &tape->leaves[s];
        if (slot->grad_pass != tape->base.pass) {
            /* The slot keeps its buffer for the whole recording, as a node does, so that
             * tg_grad after every replay of one recording does not grow the arena. */
            if (!slot->grad || !tg_tape__leaf_sig_equal(slot, x))
                slot->grad = tg_tape__alloc(tape, tg__nbytes(x));
            if (!slot->grad) {
                tg_tape__fail(tape, TG_ENOMEM, "grad: out of memory for a leaf gradient");
                return NULL;
            }
            memset(slot->grad, 0, tg__nbytes(x));
            slot->grad_pass = tape->base.pass;
        }
        return slot->grad;
    }
    void *g = tg_tensor__alloc_grad(x);
    if (!g)
        tg_tape__fail(tape, TG_ENOMEM, "backward: out of memory for a leaf gradient (%zu bytes)",
                      tg__nbytes(x));
    return g;
}

/* d[i] += s[i] for i < n, one addition per element: a seed into the output's gradient. This
 * file is built without the ops' vectorizer flags, and -O2 left the plain loop scalar: 4-byte
 * loads and stores, which ran at 0.32 to 0.54 ns an element of 1024 x 1024 f32 on Zen 5
 * depending on where the two buffers lay (the data arena's layout, which any op's scratch can
 * move). 16-byte vectors, four at a time, ran at 0.35-0.37 wherever they lay. Where d and s
 * partly overlap (a seed may wrap any memory, a leaf's gradient may be a model's or the
 * allocator hook's), the plain loop, whose order defines the result. The same bits either way. */
#define DEFINE_ADD_SEED(T)                                                                         \
    static void add_seed_##T(T *d, const T *s, size_t n)                                           \
    {                                                                                              \
        typedef T vec __attribute__((vector_size(16)));                                            \
        enum { W = 4 * sizeof(vec) / sizeof(T) };                                                  \
        const uintptr_t d0 = (uintptr_t)d, s0 = (uintptr_t)s, bytes = n * sizeof(T);               \
        size_t i = 0;                                                                              \
        if (d0 == s0 || s0 + bytes <= d0 || d0 + bytes <= s0)                                      \
            for (; i + W <= n; i += W) {                                                           \
                vec a[4], b[4];                                                                    \
                memcpy(a, d + i, sizeof a);                                                        \
                memcpy(b, s + i, sizeof b);                                                        \
                for (int k = 0; k < 4; k++)                                                        \
                    a[k] += b[k];                                                                  \
                memcpy(d + i, a, sizeof a);                                                        \
            }                                                                                      \
        for (; i < n; i++)                                                                         \
            d[i] += s[i];                                                                          \
    }
DEFINE_ADD_SEED(float)
DEFINE_ADD_SEED(double)
#undef DEFINE_ADD_SEED

/* The gradient x received in the latest captured walk, or NULL when the walk did not reach
 * it: a node's own buffer, a leaf's slot's. (Also what a walk in progress has written: a
 * buffer of an earlier pass is not read.) */
static const void *captured_grad(const tg_tape *tape, const tg_tensor *x)
{
    if (!(x->flags & TG_TF_LEAF))
        return x->tape == tape && x->grad_pass == tape->base.pass ? x->grad : NULL;
    const size_t s = tg_tape__leaf_slot(tape, x);
    return s != SIZE_MAX && tape->leaves[s].grad_pass == tape->base.pass ? tape->leaves[s].grad
                                                                         : NULL;
}

/* Anomaly mode, before node y's VJP adds into its inputs' gradients: a leaf's own gradient
 * (not captured) adds up across backward passes, so one that holds NaN or Inf already got it
 * before this walk (a VJP of this walk that gave it one was stopped at), and the VJP about to
 * add to it must not be blamed. TG_OK, or TG_ENUMERIC kept on the tape. */
static tg_status anomaly_check_leaf_grads(tg_tape *tape, tg_tensor *y)
{
    if (tape->capture)
        return TG_OK; /* the slots start from zero in every walk */
    const int arity = tg_node__n_inputs(y);
    tg_tensor *const *in = tg_node__inputs(y);
    for (int i = 0; i < arity; i++) {
        const tg_tensor *x = in[i];
        if (!(x->flags & TG_TF_LEAF) || !x->requires_grad || !x->grad ||
            all_finite(x->grad, (tg_dtype)x->dtype, x->numel))
            continue;
        char what[96];
        tg_tape__fail(tape, TG_ENUMERIC,
                      "anomaly: backward: the gradient of %s, input %d of %s at node %u, held "
                      "NaN or Inf before this backward (leaf gradients add up across backward "
                      "passes; tg_tensor_zero_grad clears them)",
                      input_label(what, sizeof what, x), i, tg_node__op_name(y), y->index);
        return TG_ENUMERIC;
    }
    return TG_OK;
}

/* Anomaly mode, after node y's VJP: the first input whose gradient in this walk holds NaN or
 * Inf, which that VJP gave it. TG_OK, or TG_ENUMERIC kept on the tape. */
static tg_status anomaly_check_grads(tg_tape *tape, tg_tensor *y)
{
    const int arity = tg_node__n_inputs(y);
    tg_tensor *const *in = tg_node__inputs(y);
    for (int i = 0; i < arity; i++) {
        tg_tensor *x = in[i];
        if (!x->requires_grad)
            continue;
        const void *g =
            (x->flags & TG_TF_LEAF) && !tape->capture ? x->grad : captured_grad(tape, x);
        if (g && !all_finite(g, (tg_dtype)x->dtype, x->numel)) {
            char shapes[200];
            describe_inputs(y, shapes, sizeof shapes);
            tg_tape__fail(
                tape, TG_ENUMERIC,
                "anomaly: backward of %s at node %u (input shapes %s) produced NaN or Inf in "
                "the gradient of input %d",
                tg_node__op_name(y), y->index, shapes, i);
            return TG_ENUMERIC;
        }
    }
    return TG_OK;
}

/* Validates y (and seed) for a walk; TG_OK or the error, set on this thread only: a bad call
 * to backward does not poison the tape. */
static tg_status check_output(tg_tape *tape, const char *who, tg_tensor *y)
{
    if (!tape)
        return tg__error(TG_EINVAL, "%s: tape is NULL", who);
    if (!y)
        return tg__error(TG_EINVAL, "%s: output is NULL%s%s", who,
                         tape->status != TG_OK ? "; the tape has an error: " : "",
                         tape->status != TG_OK ? tape->error : "");
    if (tape->status != TG_OK)
        return tg__error(tape->status, "%s: the tape has an error: %s", who, tape->error);
    if (!(y->flags & TG_TF_LEAF)) {
        if (y->tape != tape)
            return tg__error(TG_EINVAL, "%s: the output (node %u) belongs to another tape", who,
                             y->index);
        if (y->gen != tape->base.gen)
            return tg__error(TG_ESTALE,
                             "%s: the output (node %u) was recorded before the tape was reset", who,
                             y->index);
    }
    if (!y->requires_grad)
        return tg_tape__output_untracked(tape, y, who);
    /* (A leaf y: the walk reads no recorded values.) */
    return (y->flags & TG_TF_LEAF) ? TG_OK : tg_tape__check_versions(tape, y, who);
}

/* What the walk does for an empty result: it passes back zeros, so its inputs get (zero)
 * gradients as from any other op, without the VJP's loops over axes that may be 2^32 long.
 * TG_OK, or the error (kept on the tape). */
static __attribute__((noinline)) tg_status pass_back_zeros(tg_tape *tape, tg_tensor *t)
{
    const int arity = tg_node__n_inputs(t);
    for (int k = 0; k < arity && tape->status == TG_OK; k++)
        (void)tg_tape__grad_of(tape, tg_node__inputs(t)[k]);
    return tape->status;
}

/* How many nodes ahead of the one it hands back the walk asks for a header (both its lines:
 * headers are 128 bytes, laid from cache-line-aligned blocks; for writing: a VJP writes its
 * inputs' gradients, which a 0-d node keeps in its second line). A node's inputs are mostly
 * the nodes just below it, so this brings in what the next VJPs read. On an Intel Xeon VM
 * (family 6 model 167, 2 MiB L2), W2's backward (300,000 0-d nodes, 38 MB of headers) ran at
 * 7.1-8.1 ns an op with it at 16, 48 or 96 against 8.9-10.4 without. On Zen 5 a trial at 16 to
 * 64 gave a little in one series and lost a little in the next (docs/performance.md, Zen 5,
 * a twelfth stop); this one is unmeasured there. */
#define TG_WALK_PREFETCH_AHEAD 48

/* The reverse loop of a walk, over nodes[0..end): each node with a gradient in this pass hands
 * it to its inputs through its VJP, checked after each with `anomaly`. Inline in walk's two
 * calls, each with `anomaly` constant, so that the common loop never tests it. */
static inline __attribute__((always_inline)) tg_status walk_nodes(tg_tape *tape, size_t end,
                                                                  bool anomaly)
{
    /* No VJP changes the pass or records a node: read once, not after every call. */
    const uint32_t pass = tape->base.pass;
    tg_tensor *const *nodes = tape->nodes;
    for (size_t i = end; i-- > 0;) {
        tg_tensor *t = nodes[i];
        if (i >= TG_WALK_PREFETCH_AHEAD) {
            const char *ahead = (const char *)nodes[i - TG_WALK_PREFETCH_AHEAD];
            __builtin_prefetch(ahead, 1);
            __builtin_prefetch(ahead + 64, 1);
        }
        if (t->grad_pass != pass)
            continue;
        if (TG_UNLIKELY(t->numel == 0)) {
            if (pass_back_zeros(tape, t) != TG_OK)
                return tape->status;
            continue;
        }
        if (anomaly && anomaly_check_leaf_grads(tape, t) != TG_OK)
            return tape->status;
        tg_op__table[t->op]->vjp(tape, t);
        if (TG_UNLIKELY(tape->status != TG_OK) ||
            (anomaly && anomaly_check_grads(tape, t) != TG_OK))
            return tape->status;
    }
    return TG_OK;
}

/* One reverse pass from y with dy = seed (NULL: 1, y having one element). A leaf y (not
 * captured: its own grad) takes the seed and ends the pass: it is not registered in the
 * recording, which a backward must leave as it was (its leaves, its fingerprint, what a replay
 * reads). */
static tg_status walk(tg_tape *tape, tg_tensor *y, const void *seed)
{
    if (++tape->base.pass == 0)
        tape->base.pass = 1;
    void *dy = tg_tape__grad_of(tape, y);
    if (!dy)
        return tape->status;
    const bool f32 = y->dtype == TG_F32;
    if (seed)
        f32 ? add_seed_float(dy, seed, y->numel) : add_seed_double(dy, seed, y->numel);
    else if (f32) /* one element (tg_backward, tg_grad), its seed 1 */
        *(float *)dy += 1;
    else
        *(double *)dy += 1;
    if (y->flags & TG_TF_LEAF)
        return TG_OK;
    const size_t end = (size_t)y->index + 1;
    return tape->anomaly ? walk_nodes(tape, end, true) : walk_nodes(tape, end, false);
}

tg_status tg_backward(tg_tape *tape, tg_tensor *y)
{
    tg_status st = check_output(tape, "backward", y);
    if (st != TG_OK)
        return st;
    if (y->numel != 1) {
        char s[96];
        return tg__error(TG_EINVAL,
                         "backward: the output has shape %s, not a single element; pass a seed "
                         "of that shape with tg_backward_seed",
                         tg_shape_format(s, sizeof s, y->rank, y->shape));
    }
    /* (A leaf y is not registered: a backward changes no recording, see walk.) */
    return walk(tape, y, NULL);
}

/* tg_backward_seed's checks of a seed for y on tape: TG_OK or the error, set on this thread
 * only. */
static tg_status check_seed(const tg_tape *tape, const tg_tensor *y, const tg_tensor *seed)
{
    tg_status st = tg_tensor__check_live(seed, "backward: seed");
    if (st != TG_OK)
        return st;
    if (!(seed->flags & TG_TF_LEAF) && seed->tape != tape)
        return tg__error(TG_EINVAL, "backward: the seed (node %u) belongs to another tape",
                         seed->index);
    if (seed->dtype != y->dtype)
        return tg__error(TG_EDTYPE, "backward: seed dtype %s differs from output dtype %s",
                         tg_dtype_name((tg_dtype)seed->dtype), tg_dtype_name((tg_dtype)y->dtype));
    if (seed->rank != y->rank || memcmp(seed->shape, y->shape, y->rank * sizeof(size_t))) {
        char s1[96], s2[96];
        return tg__error(TG_ESHAPE, "backward: seed shape %s differs from output shape %s",
                         tg_shape_format(s1, sizeof s1, seed->rank, seed->shape),
                         tg_shape_format(s2, sizeof s2, y->rank, y->shape));
    }
    return TG_OK;
}

/* The walk from y with a checked seed. Anomaly mode checks the gradients a walk writes: one
 * the seed brings in is the seed's, not the first VJP's that passes it on. */
static tg_status seeded_walk(tg_tape *tape, tg_tensor *y, const tg_tensor *seed)
{
    if (TG_UNLIKELY(tape->anomaly) && !all_finite(seed->data, (tg_dtype)seed->dtype, seed->numel)) {
        tg_tape__fail(tape, TG_ENUMERIC, "anomaly: backward: the seed holds NaN or Inf");
        return TG_ENUMERIC;
    }
    return walk(tape, y, seed->data);
}

tg_status tg_backward_seed(tg_tape *tape, tg_tensor *y, const tg_tensor *seed)
{
    tg_status st = check_output(tape, "backward", y);
    if (st != TG_OK)
        return st;
    if (!seed)
        return tg_backward(tape, y);
    if ((st = check_seed(tape, y, seed)) != TG_OK)
        return st;
    return seeded_walk(tape, y, seed);
}

/* The walk from y (a node) with dy = seed (checked; NULL: 1), the leaves' gradients kept in
 * their slots of the recording (tape->capture), not added into their own buffers. */
static tg_status captured_walk(tg_tape *tape, tg_tensor *y, const tg_tensor *seed)
{
    tape->capture = true;
    const tg_status st = seed ? seeded_walk(tape, y, seed) : walk(tape, y, NULL);
    tape->capture = false;
    return st;
}

tg_status tg_tape__captured_pass(tg_tape *tape, tg_tensor *y, const tg_tensor *seed,
                                 tg_tensor *const *xs, size_t n, const void **grads)
{
    for (size_t i = 0; i < n; i++)
        grads[i] = NULL;
    tg_status st = check_output(tape, "backward", y);
    if (st == TG_OK)
        st = seed ? check_seed(tape, y, seed) : tg__error(TG_EINVAL, "backward: the seed is NULL");
    if (st != TG_OK)
        return st;
    if (y->flags & TG_TF_LEAF) { /* not walked, as in tg_grad */
        for (size_t i = 0; i < n; i++)
            grads[i] = xs[i] == y ? seed->data : NULL;
        return TG_OK;
    }
    st = captured_walk(tape, y, seed);
    for (size_t i = 0; i < n && st == TG_OK; i++)
        grads[i] = captured_grad(tape, xs[i]);
    return st;
}

tg_status tg_grad(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n, tg_tensor **out)
{
    for (size_t i = 0; out && i < n; i++) /* first: no out[i] is set on any error */
        out[i] = NULL;
    if (n && (!xs || !out))
        return tg__error(TG_EINVAL, "grad: %s is NULL", xs ? "out" : "xs");
    tg_status st = check_output(tape, "grad", y);
    if (st != TG_OK)
        return st;
    if (y->numel != 1) {
        char s[96];
        return tg__error(TG_EINVAL, "grad: the output has shape %s, not a single element",
                         tg_shape_format(s, sizeof s, y->rank, y->shape));
    }
    for (size_t i = 0; i < n; i++) {
        if (!xs[i])
            return tg__error(TG_EINVAL, "grad: xs[%zu] is NULL", i);
        if ((st = tg_tape__check_usable(tape, xs[i], "grad", "xs", i)) != TG_OK)
            return st;
    }
    if ((st = tg_tape__check_grad_inputs(tape, y, xs, n, "grad")) != TG_OK)
        return st;
    /* A leaf y depends on itself alone: its gradient is 1, every other one 0, with no walk,
     * which would register y in the recording (its captured gradient needs a slot) and so
     * change the recording (its leaves, its fingerprint, what a replay reads). */
    const bool leaf_y = (y->flags & TG_TF_LEAF) != 0;
    if (!leaf_y && (st = captured_walk(tape, y, NULL)) != TG_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        tg_tensor *x = xs[i];
        /* no walk for a leaf y: 1 for y itself, 0 for the others (below) */
        const void *g = leaf_y ? NULL : captured_grad(tape, x);
        out[i] = g        ? tg_tensor_from_data((tg_dtype)x->dtype, x->rank, x->shape, g)
                 : x == y ? tg_tensor_ones((tg_dtype)x->dtype, x->rank, x->shape)
                          : tg_tensor_zeros((tg_dtype)x->dtype, x->rank, x->shape);
        if (!out[i]) {
            for (size_t j = 0; j < i; j++) {
                tg_tensor_free(out[j]);
                out[j] = NULL;
            }
            return tg__error(TG_ENOMEM, "grad: out of memory for the result");
        }
    }
    return TG_OK;
}

/* ---- fingerprint --------------------------------------------------------------------------- */

/* Input references: a node index, or a leaf slot with the top bit set. */
#define LEAF_REF (UINT64_C(1) << 63)
/* A node's record: op, dtype and rank; shape; inputs; structure attributes (at most two). */
#define REC_MAX (1 + TG_MAX_RANK + 3 + 2)

/* Appends to rec[k..] the attributes of y that shape the computation (axes, slices, axis
 * orders; not constants such as scale factors), and returns the new count. */
static size_t structure_attrs(const tg_op_desc *d, const tg_tensor *y, uint64_t *rec, size_t k)
{
    switch (d->info.attrs) {
    case TG_ATTR_NONE:
    case TG_ATTR_CONSTANT:
    case TG_ATTR_RANGE:
    case TG_ATTR_SHAPE: /* the node's shape holds it */ break;
    case TG_ATTR_AXIS:
    case TG_ATTR_REDUCE:
        rec[k++] = ((uint64_t)(uint32_t)y->attr.r.axis << 32) | (uint32_t)y->attr.r.keepdim;
        break;
    case TG_ATTR_SLICE:
        rec[k++] = (uint64_t)y->attr.slice.start;
        rec[k++] = ((uint64_t)(uint32_t)y->attr.slice.axis << 32) | (uint32_t)y->attr.slice.step;
        break;
    case TG_ATTR_INDEX:
        rec[k++] = (uint64_t)y->attr.select.index;
        rec[k++] = (uint32_t)y->attr.select.axis;
        break;
    case TG_ATTR_AXES: {
        uint64_t p = 0;
        for (int i = 0; i < TG_MAX_RANK; i++)
            p |= (uint64_t)y->attr.perm[i] << (8 * i);
        rec[k++] = p;
        break;
    }
    }
    return k;
}

uint64_t tg_tape_fingerprint(const tg_tape *tape)
{
    if (!tape)
        return 0;
    uint64_t h = 0;
    uint64_t rec[REC_MAX];
    for (size_t i = 0; i < tape->n_nodes; i++) {
        const tg_tensor *y = tape->nodes[i];
        size_t k = 0;
        rec[k++] = ((uint64_t)y->op << 16) | ((uint64_t)y->dtype << 8) | y->rank;
        for (int d = 0; d < y->rank; d++)
            rec[k++] = y->shape[d];
        const tg_op_desc *desc = tg_op__table[y->op];
        const int arity = tg_node__n_inputs(y);
        tg_tensor *const *in = tg_node__inputs(y);
        for (int j = 0; j < arity; j++) {
            /* a leaf input by its slot, found by its address alone (it may have been freed
             * since: this recording's nodes, allocated while it was alive, never share it) */
            const tg_tensor *x = in[j];
            const size_t s = tg_tape__leaf_slot(tape, x);
            rec[k++] = s != SIZE_MAX ? LEAF_REF | s : (uint64_t)x->index;
            if (k == REC_MAX - 2) { /* only variadic ops get here: hash in pieces */
                h = XXH3_64bits_withSeed(rec, k * sizeof rec[0], h);
                k = 0;
            }
        }
        k = structure_attrs(desc, y, rec, k);
        h = XXH3_64bits_withSeed(rec, k * sizeof rec[0], h);
        if (tg_op__nary(desc) && y->attr.r.ext->custom) {
            const char *name = y->attr.r.ext->custom->name;
            h = XXH3_64bits_withSeed(name, strlen(name), h);
        }
    }
    /* The leaves as the recording noted them (their slots): a leaf freed since is never read. */
    for (size_t i = 0; i < tape->n_leaves; i++) {
        const tg_leaf_slot *x = &tape->leaves[i];
        size_t k = 0;
        rec[k++] = ((uint64_t)x->requires_grad << 16) | ((uint64_t)x->dtype << 8) | x->rank;
        for (int d = 0; d < x->rank; d++)
            rec[k++] = x->shape[d];
        h = XXH3_64bits_withSeed(rec, k * sizeof rec[0], h);
    }
    return h;
}

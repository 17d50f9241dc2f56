/* tensor_impl.h: the struct behind tg_tensor, shared by leaves and tape tensors (node
 * headers), and what the tensor module offers the modules above it. Never installed. */
#ifndef TAPEGRAD_TENSOR_IMPL_H
#define TAPEGRAD_TENSOR_IMPL_H

#include "core/arena.h"

enum {
    TG_TF_LEAF = 1u << 0,          /* lives outside any tape */
    TG_TF_OWNS_DATA = 1u << 1,     /* leaf whose data was allocated with it (not wrapped) */
    TG_TF_VIEW = 1u << 2,          /* tape tensor sharing its input's data (reshape, detach) */
    TG_TF_BORROWED_GRAD = 1u << 3, /* leaf whose grad points into memory it does not own (a
                                    * model's gradient block): tg_tensor_free leaves it alone */
    TG_TF_PLANNED = 1u << 4,       /* tape tensor recorded from the plan: its shape is the one the
                                    * same node had in the previous recording (see record.h) */
    TG_TF_GRAD_STEP = 1u << 5,     /* a step inside an op's recorded gradient (tg_grad_graph), not
                                    * what the op passes back: anomaly mode does not check it */
};

/* The inputs of a node whose op takes more than two (where, concat, a custom op), kept in its
 * tape's data arena: in[] holds all n (the node's own in[0] and in[1] repeat the first two),
 * and a custom op's callbacks and user pointer ride along. */
typedef struct tg_node_ext {
    const struct tg_custom_op *custom; /* TG_OP_CUSTOM only */
    void *user;
    uint32_t n;
    tg_tensor *in[];
} tg_node_ext;

/* The attributes a node's op was recorded with (the public tg_attrs, packed into the node
 * header by tg_attr_kind). axis is normalized at record time: 0..rank-1, or TG_ALL_AXES. */
typedef union tg_node_attr {
    double c; /* TG_ATTR_CONSTANT */
    struct {
        double lo, hi;
    } range; /* TG_ATTR_RANGE */
    struct {
        int32_t axis;
        int32_t keepdim;
        tg_node_ext *ext; /* an op of more than two inputs (any attribute kind): its inputs */
    } r;                  /* TG_ATTR_AXIS, TG_ATTR_REDUCE */
    struct {
        const size_t *shape; /* valid only while recording: the node's shape holds it after */
        int32_t rank;
    } reshape; /* TG_ATTR_SHAPE */
    struct {
        int64_t start; /* normalized: the first element taken, 0..dim (the shape holds the count) */
        int32_t axis;
        int32_t step; /* > 0 */
    } slice;          /* TG_ATTR_SLICE */
    struct {
        int64_t index; /* normalized: 0..dim-1 */
        int32_t axis;
    } select; /* TG_ATTR_INDEX */
    uint8_t perm[TG_MAX_RANK]; /* TG_ATTR_AXES: output axis i is input axis perm[i] */
    const struct tg_attrs *pending; /* slice and index while recording: the caller's attributes,
                                     * which the shape rule normalizes into the fields above */
} tg_node_attr;

/* 128 bytes: two cache lines. (Every recorded op writes one of these, so its size is the
 * tape's memory traffic.) The first holds the node's structure, which a recording from the
 * plan (record.h) only reads: in a loop that records the same graph, it is written once and
 * never made dirty again. The second holds what every recording and every backward pass
 * writes (generation, flags, attributes, the backward pass of grad). A 0-d tape tensor has no
 * shape entries, so its value (unless it is a view) and its gradient live where they would
 * be, in inl, also in the second line: a 0-d node costs its header and nothing else, and
 * neither buffer is allocated from the arena. */
struct tg_tensor {
    void *data;
    void *grad;           /* leaf: heap buffer; tape tensor: arena buffer (or inl), kept for
                           * the whole recording, valid in pass grad_pass */
    tg_tape *tape;        /* owning tape; NULL for leaves */
    union {
        tg_tensor *in[2]; /* tape tensors: the inputs */
        struct {
            /* Leaves: whether some tape has registered it (tg_tensor_free counts it then:
             * see tg_tensor__leaves_freed). Tapes find their leaves through their own index
             * (tape_impl.h) and write nothing else into a leaf, which tapes on other threads
             * may be reading; this flag is read and set with relaxed atomics, only from 0
             * to 1. */
            uint32_t registered;
            /* Which leaf this is, never reused (tg_tensor__serials): a leaf freed during a
             * recording and a new one made at its address are told apart by it. */
            uint64_t serial;
        };
    };
    size_t numel;
    const char *name;
    uint32_t index;       /* node index on its tape */
    uint16_t op;
    uint8_t dtype;
    uint8_t rank;
    /* second cache line */
    union {
        struct {
            uint32_t gen;       /* the tape generation it was recorded in */
            uint32_t grad_pass; /* the backward pass `grad` belongs to */
        };
        /* Leaves, once registered: the list of registered leaves alive (tensor.c, under its
         * lock), here and in live_next below. */
        tg_tensor *live_prev;
    };
    uint8_t requires_grad;
    uint8_t flags;
    union {
        tg_node_attr attr; /* tape tensors */
        struct {
            /* Leaves: how many times their values were written through the API (tensor.h). A
             * recording notes it for every leaf it uses (tape_impl.h, tg_leaf_slot), backward
             * compares. Read and bumped with relaxed atomics (tg_tensor__version,
             * tg_tensor__bump), so that threads reading one leaf through tg_tensor_data at once
             * do not race. Bumps at the same time may lose one, but never bring the count back
             * to what a recording noted: no write may run while a recording reads the leaf. */
            uint64_t version;
            tg_tensor *live_next;
        };
    };
    union {
        size_t shape[TG_MAX_RANK];
        struct { /* 0-d tape tensors: data and grad point here (either dtype fits) */
            unsigned char value[8], grad[8];
        } inl;
    };
};

/* The most leaves one recording registers: a slot number's range (each leaf is a 128-byte
 * header and its data, so memory runs out long before). */
#define TG_MAX_LEAVES (1u << 31)

_Static_assert(sizeof(struct tg_tensor) <= 128, "node headers fit two cache lines");

static inline size_t tg__esize(const tg_tensor *t) { return t->dtype == TG_F64 ? 8 : 4; }
static inline size_t tg__nbytes(const tg_tensor *t) { return t->numel * tg__esize(t); }

/* How many leaves that some tape had registered (`registered` set) were freed, in the whole
 * process. A backward's quick version check reads every leaf its recording used, which is
 * safe only while none of them was freed: a tape notes this count when a recording starts
 * (tg_tape_reset) and takes the slow path, which reads only the leaves the backward itself
 * reads, when it moved (tape_impl.h). Only tg_tensor_free writes it. */
extern uint64_t tg_tensor__leaves_freed;
/* How many times the requires_grad of a leaf some tape had registered changed, in the whole
 * process. When leaves were freed, backward cannot read every leaf of its recording to compare
 * their flags with the recorded ones; this count tells it whether any flag changed since the
 * recording started (tape_impl.h). Only tg_tensor_set_requires_grad writes it. */
extern uint64_t tg_tensor__grad_flags_changed;

/* The number of leaves made so far, in the whole process: each new leaf takes the next as its
 * serial. */
extern uint64_t tg_tensor__serials;

/* Marks leaf x registered (`registered`, once, whichever tape and thread comes first) and puts
 * it in the list of registered leaves alive, which tg_tensor_free takes it out of before the
 * leaf's memory goes. With that list a backward whose recording used a leaf freed since can
 * still read the leaves of it that are alive (tape/guards.c). */
void tg_tensor__register(tg_tensor *x);
/* fn(leaf, ctx) for every registered leaf alive, in no particular order, until one returns other
 * than TG_OK (returned); no registered leaf is freed meanwhile, so fn may read it. */
tg_status tg_tensor__each_live(tg_status (*fn)(const tg_tensor *leaf, void *ctx), void *ctx);
/* Whether the registered leaf of that address and serial is alive (it is not read). */
bool tg_tensor__alive(const tg_tensor *leaf, uint64_t serial);

/* Leaf t's version, and one more write to it. */
static inline uint64_t tg_tensor__version(const tg_tensor *t)
{
    return __atomic_load_n(&t->version, __ATOMIC_RELAXED);
}
static inline void tg_tensor__bump(tg_tensor *t)
{
    __atomic_store_n(&t->version, tg_tensor__version(t) + 1, __ATOMIC_RELAXED);
}

/* Validates dtype/rank/shape and computes the element count: TG_OK, or an error naming
 * `who` (TG_EINVAL for rank or dtype, TG_ESHAPE for an element count that overflows). */
tg_status tg_tensor__check_shape(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                                 size_t *numel);
/* The allocation size of a grad or data buffer, rounded for alignment. */
void *tg_tensor__alloc_grad(tg_tensor *leaf);

/* ---- what a tape tensor needs of its tape ------------------------------------------------ */

/* struct tg_tape (tape/tape_impl.h) begins with this, so the tensor module can answer for a
 * tape tensor without knowing the tape: the tape's generation tells a live tensor from one
 * recorded before a reset, its backward pass count tells a gradient of the latest pass from
 * an older one, and the data arena holds the values, gradients and names of its tensors. */
typedef struct tg_tape_base {
    tg_arena data;
    uint32_t gen;  /* incremented by every reset */
    uint32_t pass; /* incremented by every backward walk */
} tg_tape_base;

/* The base of the tape that holds tape tensor t. */
static inline tg_tape_base *tg_tensor__home(const tg_tensor *t)
{
    return (tg_tape_base *)(void *)t->tape;
}

/* TG_OK, or TG_ESTALE naming `who` when t is a tape tensor recorded before its tape's last
 * reset: the check every entry point that takes a tensor makes. */
static inline tg_status tg_tensor__check_live(const tg_tensor *t, const char *who)
{
    if ((t->flags & TG_TF_LEAF) || t->gen == tg_tensor__home(t)->gen)
        return TG_OK;
    return tg__error(TG_ESTALE, "%s: node %u was recorded before its tape was reset", who,
                     t->index);
}

#endif

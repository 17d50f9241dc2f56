/* tensor.c: leaves (caller-owned tensors outside any tape), their grad buffers, and the
 * accessors shared by leaves and tape tensors. A leaf is one allocation: header, then its
 * data aligned to TG_DATA_ALIGN; a wrapped leaf points at caller memory instead. */
#include "tensor/tensor_impl.h"
#include "tensor/borrow.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

char *tg_shape_format(char *buf, size_t size, int rank, const size_t *shape)
{
    if (!buf || size == 0)
        return buf;
    if (rank > 0 && !shape) { /* nothing to read the axes from */
        snprintf(buf, size, "[?]");
        return buf;
    }
    if (rank < 0 || rank > TG_MAX_RANK) { /* no tensor's: its axes are not read */
        snprintf(buf, size, "[rank %d?]", rank);
        return buf;
    }
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%zu" : "%zu", shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

tg_status tg_tensor__check_shape(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                                 size_t *numel)
{
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg__error(TG_EINVAL, "%s: unknown dtype %d (expected TG_F32 or TG_F64)", who,
                         (int)dtype);
    if (rank < 0 || rank > TG_MAX_RANK)
        return tg__error(TG_EINVAL, "%s: rank %d is out of range 0..%d", who, rank, TG_MAX_RANK);
    if (rank > 0 && !shape)
        return tg__error(TG_EINVAL, "%s: shape is NULL for rank %d", who, rank);
    /* Elements and bytes must both fit in size_t (this runs for every recorded node, so the
     * check is a multiply-with-overflow, not a division). */
    size_t n = 1, bytes;
    bool overflow = false, empty = false;
    for (int i = 0; i < rank; i++) {
        overflow |= __builtin_mul_overflow(n, shape[i], &n);
        empty |= shape[i] == 0;
    }
    overflow |= __builtin_mul_overflow(n, tg_dtype_size(dtype), &bytes);
    if (empty) /* no elements, however long the other axes: nothing can overflow */
        n = 0, overflow = false;
    if (TG_UNLIKELY(overflow)) {
        char buf[160];
        return tg__error(TG_ESHAPE, "%s: shape %s has too many elements", who,
                         tg_shape_format(buf, sizeof buf, rank, shape));
    }
    *numel = n;
    return TG_OK;
}

static size_t leaf_header_size(void)
{
    return ((sizeof(tg_tensor) + TG_DATA_ALIGN - 1) / TG_DATA_ALIGN) * TG_DATA_ALIGN;
}

/* The allocation holds: padding for alignment, the header, the data. `raw` bookkeeping is
 * avoided by over-allocating TG_DATA_ALIGN and storing the offset in the byte before. */
static tg_tensor *leaf_alloc(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                             bool with_data)
{
    size_t numel;
    if (tg_tensor__check_shape(who, dtype, rank, shape, &numel) != TG_OK)
        return NULL;
    size_t bytes = with_data ? numel * tg_dtype_size(dtype) : 0;
    size_t total = TG_DATA_ALIGN + leaf_header_size();
    if (bytes > SIZE_MAX - total) {
        tg__error(TG_ESHAPE, "%s: tensor of %zu elements is too large", who, numel);
        return NULL;
    }
    total += bytes;
    unsigned char *raw = tg__malloc(total);
    if (!raw) {
        tg__error(TG_ENOMEM, "%s: out of memory for %zu bytes", who, total);
        return NULL;
    }
    uintptr_t base = ((uintptr_t)raw + TG_DATA_ALIGN) & ~(uintptr_t)(TG_DATA_ALIGN - 1);
    unsigned char *p = (unsigned char *)base; /* at least 1 byte past raw */
    p[-1] = (unsigned char)(p - raw);
    tg_tensor *t = (tg_tensor *)p;
    memset(t, 0, sizeof *t);
    t->dtype = (uint8_t)dtype;
    t->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    t->flags = TG_TF_LEAF | (with_data ? TG_TF_OWNS_DATA : 0);
    t->serial = __atomic_add_fetch(&tg_tensor__serials, 1, __ATOMIC_RELAXED);
    t->op = UINT16_MAX;
    t->index = UINT32_MAX;
    if (with_data)
        t->data = p + leaf_header_size();
    return t;
}

static size_t leaf_alloc_size(const tg_tensor *t)
{
    size_t bytes = (t->flags & TG_TF_OWNS_DATA) ? tg__nbytes(t) : 0;
    return TG_DATA_ALIGN + leaf_header_size() + bytes;
}

uint64_t tg_tensor__serials;
uint64_t tg_tensor__leaves_freed;
uint64_t tg_tensor__grad_flags_changed;

/* ---- the registered leaves alive --------------------------------------------------------------
 * A list through the leaves' live_prev and live_next (fields a leaf does not otherwise use),
 * under live_mu: tg_tensor__register puts a leaf in on its first registration, tg_tensor_free
 * takes it out before its memory goes. No allocation of its own: registering cannot fail. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static tg_tensor *live_head;

/* fork() copies only the calling thread: the lock is taken around it, so that the child never
 * inherits it held by a thread it does not have, nor the list half changed. */
static pthread_once_t live_once = PTHREAD_ONCE_INIT;
static void live_lock(void)
{
    pthread_mutex_lock(&live_mu);
}
static void live_unlock(void)
{
    pthread_mutex_unlock(&live_mu);
}
static void live_install(void)
{
    pthread_atfork(live_lock, live_unlock, live_unlock);
}

void tg_tensor__register(tg_tensor *x)
{
    pthread_once(&live_once, live_install);
    live_lock();
    if (!__atomic_load_n(&x->registered, __ATOMIC_RELAXED)) {
        x->live_prev = NULL;
        x->live_next = live_head;
        if (live_head)
            live_head->live_prev = x;
        live_head = x;
        __atomic_store_n(&x->registered, 1, __ATOMIC_RELAXED);
    }
    live_unlock();
}

bool tg_tensor__alive(const tg_tensor *leaf, uint64_t serial)
{
    bool found = false;
    live_lock();
    for (const tg_tensor *t = live_head; t && !found; t = t->live_next)
        found = t == leaf && t->serial == serial;
    live_unlock();
    return found;
}

tg_status tg_tensor__each_live(tg_status (*fn)(const tg_tensor *leaf, void *ctx), void *ctx)
{
    tg_status st = TG_OK;
    live_lock();
    for (const tg_tensor *t = live_head; t && st == TG_OK; t = t->live_next)
        st = fn(t, ctx);
    live_unlock();
    return st;
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || !(t->flags & TG_TF_LEAF))
        return;
    if (__atomic_load_n(&t->registered, __ATOMIC_RELAXED)) { /* a tape may still list it */
        live_lock();
        if (t->live_prev)
            t->live_prev->live_next = t->live_next;
        else
            live_head = t->live_next;
        if (t->live_next)
            t->live_next->live_prev = t->live_prev;
        live_unlock();
        __atomic_fetch_add(&tg_tensor__leaves_freed, 1, __ATOMIC_SEQ_CST);
    }
    if (t->grad && !(t->flags & TG_TF_BORROWED_GRAD))
        tg__free(t->grad, tg__nbytes(t) ? tg__nbytes(t) : 1);
    if (t->name)
        tg__free((void *)t->name, strlen(t->name) + 1);
    unsigned char *p = (unsigned char *)t;
    tg__free(p - p[-1], leaf_alloc_size(t));
}

void *tg_tensor__alloc_grad(tg_tensor *leaf)
{
    if (!leaf->grad) {
        size_t bytes = tg__nbytes(leaf);
        leaf->grad = tg__malloc(bytes ? bytes : 1);
        if (leaf->grad)
            memset(leaf->grad, 0, bytes);
    }
    return leaf->grad;
}

void tg_tensor__borrow_grad(tg_tensor *leaf, void *grad)
{
    if (leaf->grad && !(leaf->flags & TG_TF_BORROWED_GRAD))
        tg__free(leaf->grad, tg__nbytes(leaf) ? tg__nbytes(leaf) : 1);
    leaf->grad = grad;
    if (grad)
        leaf->flags |= TG_TF_BORROWED_GRAD;
    else
        leaf->flags &= (uint8_t)~TG_TF_BORROWED_GRAD;
}

static void fill(tg_tensor *t, double v)
{
    if (t->dtype == TG_F32) {
        float *d = t->data;
        for (size_t i = 0; i < t->numel; i++)
            d[i] = (float)v;
    } else {
        double *d = t->data;
        for (size_t i = 0; i < t->numel; i++)
            d[i] = v;
    }
}

/* Whether a value written into an f32 leaf is one f32 cannot hold: a finite double beyond its
 * range would become inf without a word (refused, as tg_scalar and tgx's values refuse it). */
static tg_status check_f32_value(const char *who, tg_dtype dtype, double value)
{
    if (dtype == TG_F32 && tg__f32_overflows(value))
        return tg__error(TG_EINVAL, "%s: the value %g does not fit f32 (magnitudes up to 3.4e38)",
                         who, value);
    return TG_OK;
}

/* A leaf of `value` everywhere; `who` is the public constructor, for its error messages. */
static tg_tensor *filled(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                         double value)
{
    if (check_f32_value(who, dtype, value) != TG_OK)
        return NULL;
    tg_tensor *t = leaf_alloc(who, dtype, rank, shape, true);
    if (t)
        fill(t, value);
    return t;
}

tg_tensor *tg_tensor_full(tg_dtype dtype, int rank, const size_t *shape, double value)
{
    return filled("tensor_full", dtype, rank, shape, value);
}

tg_tensor *tg_tensor_zeros(tg_dtype dtype, int rank, const size_t *shape)
{
    return filled("tensor_zeros", dtype, rank, shape, 0.0);
}

tg_tensor *tg_tensor_ones(tg_dtype dtype, int rank, const size_t *shape)
{
    return filled("tensor_ones", dtype, rank, shape, 1.0);
}

tg_tensor *tg_tensor_scalar(tg_dtype dtype, double value)
{
    return filled("tensor_scalar", dtype, 0, NULL, value);
}

tg_tensor *tg_tensor_from_data(tg_dtype dtype, int rank, const size_t *shape, const void *data)
{
    tg_tensor *t = leaf_alloc("tensor_from_data", dtype, rank, shape, true);
    if (!t)
        return NULL;
    if (!data && t->numel) {
        tg__error(TG_EINVAL, "tensor_from_data: data is NULL");
        tg_tensor_free(t);
        return NULL;
    }
    if (t->numel)
        memcpy(t->data, data, tg__nbytes(t));
    return t;
}

tg_tensor *tg_tensor_from_f64(tg_dtype dtype, int rank, const size_t *shape, const double *data)
{
    tg_tensor *t = leaf_alloc("tensor_from_f64", dtype, rank, shape, true);
    if (!t)
        return NULL;
    if (!data && t->numel) {
        tg__error(TG_EINVAL, "tensor_from_f64: data is NULL");
        tg_tensor_free(t);
        return NULL;
    }
    for (size_t i = 0; i < t->numel; i++) {
        if (dtype == TG_F32)
            ((float *)t->data)[i] = (float)data[i];
        else
            ((double *)t->data)[i] = data[i];
    }
    return t;
}

tg_tensor *tg_tensor_wrap(tg_dtype dtype, int rank, const size_t *shape, void *data)
{
    tg_tensor *t = leaf_alloc("tensor_wrap", dtype, rank, shape, false);
    if (!t)
        return NULL;
    if (!data && t->numel) {
        tg__error(TG_EINVAL, "tensor_wrap: data is NULL");
        tg_tensor_free(t);
        return NULL;
    }
    if ((uintptr_t)data % tg_dtype_size(dtype)) {
        tg__error(TG_EINVAL, "tensor_wrap: data is not aligned for %s", tg_dtype_name(dtype));
        tg_tensor_free(t);
        return NULL;
    }
    t->data = data;
    return t;
}

static tg_tensor *random_leaf(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                              tg_rng *rng, bool normal, double p0, double p1)
{
    if (!rng) {
        tg__error(TG_EINVAL, "%s: rng is NULL", who);
        return NULL;
    }
    tg_tensor *t = leaf_alloc(who, dtype, rank, shape, true);
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->numel; i++) {
        double v = normal ? p0 + p1 * tg_rng_normal(rng) : p0 + (p1 - p0) * tg_rng_uniform(rng);
        if (dtype == TG_F32)
            ((float *)t->data)[i] = (float)v;
        else
            ((double *)t->data)[i] = v;
    }
    return t;
}

tg_tensor *tg_tensor_randn(tg_dtype dtype, int rank, const size_t *shape, tg_rng *rng, double mean,
                           double std)
{
    return random_leaf("tensor_randn", dtype, rank, shape, rng, true, mean, std);
}

tg_tensor *tg_tensor_rand(tg_dtype dtype, int rank, const size_t *shape, tg_rng *rng, double lo,
                          double hi)
{
    return random_leaf("tensor_rand", dtype, rank, shape, rng, false, lo, hi);
}

/* ---- flags and names ------------------------------------------------------------------- */

tg_status tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad)
{
    if (!t)
        return tg__error(TG_EINVAL, "tensor_set_requires_grad: tensor is NULL");
    if (!(t->flags & TG_TF_LEAF))
        return tg__error(TG_EINVAL,
                         "tensor_set_requires_grad: node %u is not a leaf (a tape "
                         "tensor requires grad when its inputs do)",
                         t->index);
    if (t->requires_grad != requires_grad && __atomic_load_n(&t->registered, __ATOMIC_RELAXED))
        __atomic_fetch_add(&tg_tensor__grad_flags_changed, 1, __ATOMIC_SEQ_CST);
    t->requires_grad = requires_grad;
    return TG_OK;
}

bool tg_tensor_requires_grad(const tg_tensor *t)
{
    return t && t->requires_grad;
}

bool tg_tensor_is_leaf(const tg_tensor *t)
{
    return t && (t->flags & TG_TF_LEAF);
}

tg_status tg_tensor_set_name(tg_tensor *t, const char *name)
{
    if (!t || !name)
        return tg__error(TG_EINVAL, "tensor_set_name: %s is NULL", t ? "name" : "tensor");
    size_t n = strlen(name) + 1;
    if (t->flags & TG_TF_LEAF) {
        char *copy = tg__strdup(name);
        if (!copy)
            return tg__error(TG_ENOMEM, "tensor_set_name: out of memory");
        if (t->name)
            tg__free((void *)t->name, strlen(t->name) + 1);
        t->name = copy;
        return TG_OK;
    }
    tg_status st = tg_tensor__check_live(t, "tensor_set_name");
    if (st != TG_OK)
        return st;
    char *copy = tg_arena__alloc(&tg_tensor__home(t)->data, n, 1);
    if (!copy)
        return tg__error(TG_ENOMEM, "tensor_set_name: out of memory");
    memcpy(copy, name, n);
    t->name = copy;
    return TG_OK;
}

const char *tg_tensor_name(const tg_tensor *t)
{
    /* a stale tape tensor's name was in memory its tape has reused */
    return t && tg_tensor__check_live(t, "tensor_name") == TG_OK ? t->name : NULL;
}

/* ---- shape and values ------------------------------------------------------------------ */

tg_dtype tg_tensor_dtype(const tg_tensor *t)
{
    return t ? (tg_dtype)t->dtype : TG_F32;
}

int tg_tensor_rank(const tg_tensor *t)
{
    return t ? t->rank : 0;
}

const size_t *tg_tensor_shape(const tg_tensor *t)
{
    return t ? t->shape : NULL;
}

size_t tg_tensor_dim(const tg_tensor *t, int axis)
{
    if (!t)
        return 0;
    if (axis < 0)
        axis += t->rank;
    return axis >= 0 && axis < t->rank ? t->shape[axis] : 0;
}

size_t tg_tensor_numel(const tg_tensor *t)
{
    return t ? t->numel : 0;
}

/* TG_OK when t's values may be read (not NULL, not stale), else the error naming `who`. */
static tg_status readable(const tg_tensor *t, const char *who)
{
    if (!t)
        return tg__error(TG_EINVAL, "%s: tensor is NULL", who);
    return tg_tensor__check_live(t, who);
}

const void *tg_tensor_data_const(const tg_tensor *t)
{
    return readable(t, "tensor_data") == TG_OK ? t->data : NULL;
}

void *tg_tensor_data(tg_tensor *t)
{
    if (t && (t->flags & TG_TF_LEAF)) { /* the caller may write: a new version */
        tg_tensor__bump(t);
        return t->data;
    }
    return (void *)tg_tensor_data_const(t);
}

uint64_t tg_tensor_version(const tg_tensor *t)
{
    return t && (t->flags & TG_TF_LEAF) ? tg_tensor__version(t) : 0;
}

tg_status tg_tensor_bump_version(tg_tensor *t)
{
    if (!t)
        return tg__error(TG_EINVAL, "tensor_bump_version: tensor is NULL");
    if (!(t->flags & TG_TF_LEAF))
        return tg__error(TG_EINVAL,
                         "tensor_bump_version: node %u is not a leaf (recorded "
                         "values are read-only)",
                         t->index);
    tg_tensor__bump(t);
    return TG_OK;
}

static double load(const void *p, tg_dtype dtype, size_t i)
{
    return dtype == TG_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* Element i of t for `who` (tensor_get, tensor_item), NaN with the error naming it. */
static double get_for(const tg_tensor *t, size_t i, const char *who)
{
    if (readable(t, who) != TG_OK)
        return NAN;
    if (i >= t->numel) {
        tg__error(TG_EINVAL, "%s: index %zu is out of range for %zu elements", who, i, t->numel);
        return NAN;
    }
    return load(t->data, (tg_dtype)t->dtype, i);
}

double tg_tensor_get(const tg_tensor *t, size_t i)
{
    return get_for(t, i, "tensor_get");
}

double tg_tensor_item(const tg_tensor *t)
{
    return get_for(t, 0, "tensor_item");
}

tg_status tg_tensor_set(tg_tensor *t, size_t i, double value)
{
    if (!t)
        return tg__error(TG_EINVAL, "tensor_set: tensor is NULL");
    if (!(t->flags & TG_TF_LEAF))
        return tg__error(TG_EINVAL,
                         "tensor_set: node %u is not a leaf (recorded values are "
                         "read-only)",
                         t->index);
    if (i >= t->numel)
        return tg__error(TG_EINVAL, "tensor_set: index %zu is out of range for %zu elements", i,
                         t->numel);
    if (check_f32_value("tensor_set", (tg_dtype)t->dtype, value) != TG_OK)
        return TG_EINVAL;
    if (t->dtype == TG_F32)
        ((float *)t->data)[i] = (float)value;
    else
        ((double *)t->data)[i] = value;
    tg_tensor__bump(t);
    return TG_OK;
}

tg_status tg_tensor_to_f64(const tg_tensor *t, double *out)
{
    tg_status st = readable(t, "tensor_to_f64");
    if (st != TG_OK)
        return st;
    if (!out && t->numel)
        return tg__error(TG_EINVAL, "tensor_to_f64: out is NULL");
    for (size_t i = 0; i < t->numel; i++)
        out[i] = load(t->data, (tg_dtype)t->dtype, i);
    return TG_OK;
}

void *tg_tensor_grad_data(tg_tensor *t)
{
    if (!t)
        return NULL;
    if (t->flags & TG_TF_LEAF)
        return t->grad;
    if (tg_tensor__check_live(t, "tensor_grad_data") != TG_OK)
        return NULL;
    const uint32_t pass = tg_tensor__home(t)->pass;
    return t->grad_pass == pass && pass ? t->grad : NULL;
}

double tg_tensor_grad_get(const tg_tensor *t, size_t i)
{
    /* As tg_tensor_get: an index or tensor that names no element is an error (NaN), not the
     * 0 of a gradient nothing reached. */
    if (!t) {
        tg__error(TG_EINVAL, "tensor_grad_get: tensor is NULL");
        return NAN;
    }
    if (tg_tensor__check_live(t, "tensor_grad_get") != TG_OK)
        return NAN;
    if (i >= t->numel) {
        tg__error(TG_EINVAL, "tensor_grad_get: index %zu is out of range for %zu elements", i,
                  t->numel);
        return NAN;
    }
    const void *g = tg_tensor_grad_data((tg_tensor *)t);
    return g ? load(g, (tg_dtype)t->dtype, i) : 0.0;
}

tg_status tg_tensor_zero_grad(tg_tensor *t)
{
    if (!t)
        return tg__error(TG_EINVAL, "tensor_zero_grad: tensor is NULL");
    if (!(t->flags & TG_TF_LEAF))
        return tg__error(TG_EINVAL, "tensor_zero_grad: node %u is not a leaf", t->index);
    if (t->grad)
        memset(t->grad, 0, tg__nbytes(t));
    return TG_OK;
}

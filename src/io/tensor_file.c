/* tensor_file.c: named tensors saved and loaded in the format of docs/tensor-format.md
 * (version 1), for parameters that are not an MLP: the frame every tapegrad file has (header
 * and XXH3-64 checksum: bytes.h), then a count and tensor records laid out as in model files;
 * loaded into a new set (tg_tensors) or into the caller's tensors by name. */
#include "io/bytes.h"
#include "io/files.h"

#include <stdio.h>
#include <stdlib.h>

#define MAGIC "TGTENSR" /* 8 bytes with its NUL */
#define MAX_NAME 1024u
/* The smallest record: a 1-byte name (4 + 1), dtype 4, rank 4, a 0-d tensor's data 4. */
#define MIN_RECORD 17u
/* The largest file read: far more than a CPU model holds; a bogus path stays cheap. */
#define MAX_FILE_BYTES ((uint64_t)1 << 36)

_Static_assert(sizeof(MAGIC) == 8, "the magic is 8 bytes");
static const tg_io_format FORMAT = {MAGIC, 1, "a tapegrad tensor file"};

struct tg_tensors {
    size_t n;
    char **names;        /* n NUL-terminated copies */
    tg_tensor **tensors; /* n leaves owned by the set (NULL once taken) */
};

/* ---- names: none empty, none too long, no two equal ---------------------------------------- */

typedef struct name_ref {
    const char *p;
    size_t len;
    size_t index;
} name_ref;

/* Byte order, a prefix first. */
static int compare_bytes(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : la < lb ? -1 : la > lb ? 1 : 0;
}

/* By name, then by index (so the first of equal names comes first). */
static int compare_names(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = compare_bytes(x->p, x->len, y->p, y->len);
    return c ? c : x->index < y->index ? -1 : 1;
}

/* Sorts refs by name (then index); returns the index of the first of two equal names, or
 * (size_t)-1 when all differ. */
static size_t sort_find_duplicate(name_ref *refs, size_t n, size_t *second)
{
    if (n > 1)
        qsort(refs, n, sizeof *refs, compare_names);
    for (size_t i = 1; i < n; i++)
        if (refs[i].len == refs[i - 1].len && memcmp(refs[i].p, refs[i - 1].p, refs[i].len) == 0) {
            *second = refs[i].index;
            return refs[i - 1].index;
        }
    return (size_t)-1;
}

/* ---- saving ------------------------------------------------------------------------------- */

typedef struct save_args {
    size_t n;
    const char *const *names; /* NULL: each tensor's own */
    const tg_tensor *const *tensors;
} save_args;

static const char *name_of(const save_args *a, size_t i)
{
    return a->names ? a->names[i] : tg_tensor_name(a->tensors[i]);
}

static void serialize(writer *w, const void *ctx)
{
    const save_args *a = ctx;
    put_u64(w, a->n);
    for (size_t i = 0; i < a->n; i++)
        put_tensor(w, name_of(a, i), a->tensors[i]);
}

/* Every tensor readable, every name present, not empty, at most MAX_NAME bytes, unique. */
static tg_status check_save(const save_args *a, const char *who)
{
    if (a->n && !a->tensors)
        return tg__error(TG_EINVAL, "%s: tensors is NULL", who);
    for (size_t i = 0; i < a->n; i++) {
        const tg_tensor *t = a->tensors[i];
        if (!t)
            return tg__error(TG_EINVAL, "%s: tensor %zu is NULL", who, i);
        /* Empty tensors too: a stale one is TG_ESTALE whatever its size (its name, in memory
         * its tape has reused, would read as missing). Of no elements, tg_tensor_to_f64 copies
         * nothing and says only whether the tensor is live. */
        if (tg_tensor_numel(t) ? !tg_tensor_data_const(t) : tg_tensor_to_f64(t, NULL) != TG_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", tg_last_error());
            return tg__error(TG_ESTALE, "%s: tensor %zu: %s", who, i, why);
        }
        const char *name = name_of(a, i);
        if (!name)
            return tg__error(TG_EINVAL, "%s: tensor %zu has no name (%s)", who, i,
                             a->names ? "names[i] is NULL" : "pass names, or tg_tensor_set_name");
        size_t len = strlen(name);
        if (len == 0 || len > MAX_NAME)
            return tg__error(TG_EINVAL, "%s: tensor %zu's name is %zu bytes long (1..%u)", who, i,
                             len, MAX_NAME);
    }
    if (a->n < 2)
        return TG_OK;
    name_ref *refs = tg__calloc(a->n, sizeof *refs);
    if (!refs)
        return tg__error(TG_ENOMEM, "%s: out of memory", who);
    for (size_t i = 0; i < a->n; i++)
        refs[i] = (name_ref){name_of(a, i), strlen(name_of(a, i)), i};
    size_t second = 0, first = sort_find_duplicate(refs, a->n, &second);
    tg__free(refs, a->n * sizeof *refs);
    if (first != (size_t)-1)
        return tg__error(TG_EINVAL, "%s: tensors %zu and %zu are both named '%s'", who, first,
                         second, name_of(a, first));
    return TG_OK;
}

tg_status tg_tensors_save_buffer(size_t n, const char *const *names,
                                 const tg_tensor *const *tensors, void **out_buf, size_t *out_size)
{
    const char *who = "tensors_save_buffer";
    if (!out_buf || !out_size)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, !out_buf ? "out_buf" : "out_size");
    *out_buf = NULL;
    *out_size = 0;
    const save_args a = {n, names, tensors};
    tg_status st = check_save(&a, who);
    if (st != TG_OK)
        return st;
    return tg_io__encode(&FORMAT, serialize, &a, who, out_buf, out_size);
}

void tg_tensors_buffer_free(void *buf, size_t size)
{
    tg__free(buf, size);
}

tg_status tg_tensors_save(const char *path, size_t n, const char *const *names,
                          const tg_tensor *const *tensors)
{
    if (!path)
        return tg__error(TG_EINVAL, "tensors_save: path is NULL");
    char who[600];
    snprintf(who, sizeof who, "tensors_save: %s", path);
    const save_args a = {n, names, tensors};
    tg_status st = check_save(&a, who);
    void *buf = NULL;
    size_t size = 0;
    if (st == TG_OK)
        st = tg_io__encode(&FORMAT, serialize, &a, who, &buf, &size);
    if (st == TG_OK)
        st = tg_io__save_atomic("tensors_save", path, buf, size);
    tg__free(buf, size);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* One validated record; name and data point into the file's bytes. */
typedef struct record {
    const unsigned char *name;
    size_t name_len;
    tg_dtype dtype;
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t numel;
    const unsigned char *data;
} record;

/* What a file holds, validated: n records (allocated) and the reader for messages. */
typedef struct parsed {
    size_t n;
    record *recs;
} parsed;

static void parsed_free(parsed *p)
{
    tg__free(p->recs, p->n * sizeof *p->recs);
    p->recs = NULL;
    p->n = 0;
}

static tg_status parse_record(reader *r, size_t i, record *rec)
{
    char what[96 + MAX_NAME], label[32 + MAX_NAME];
    snprintf(what, sizeof what, "the name of tensor %zu", i);
    tg_status st = get_str(r, &rec->name, &rec->name_len, MAX_NAME, what);
    if (st != TG_OK)
        return st;
    if (rec->name_len == 0)
        return ferr(r, "tensor %zu has an empty name", i);
    snprintf(label, sizeof label, "tensor '%.*s'", (int)rec->name_len, (const char *)rec->name);
    uint32_t dtype, rank;
    snprintf(what, sizeof what, "%s dtype and rank", label);
    if ((st = get_u32(r, &dtype, what)) != TG_OK || (st = get_u32(r, &rank, what)) != TG_OK)
        return st;
    if (dtype > TG_F64)
        return ferr(r, "%s has unknown dtype %u (0 = f32, 1 = f64)", label, dtype);
    if (rank > TG_MAX_RANK)
        return ferr(r, "%s has rank %u (0..%d)", label, rank, TG_MAX_RANK);
    rec->dtype = (tg_dtype)dtype;
    rec->rank = (int)rank;
    snprintf(what, sizeof what, "%s shape", label);
    size_t numel = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < rank; d++) {
        if ((st = get_size(r, &rec->shape[d], SIZE_MAX, what)) != TG_OK)
            return st;
        overflow |= __builtin_mul_overflow(numel, rec->shape[d], &numel);
    }
    for (uint32_t d = 0; d < rank; d++)
        if (rec->shape[d] == 0) /* no elements, however long the other axes (as tensors) */
            numel = 0, overflow = false;
    const size_t es = tg_dtype_size(rec->dtype);
    char shape_s[160];
    if (overflow || numel > (r->end - r->pos) / es)
        return ferr(r, "%s has shape %s, more elements than the %zu bytes left hold", label,
                    tg_shape_format(shape_s, sizeof shape_s, rec->rank, rec->shape),
                    r->end - r->pos);
    rec->numel = numel;
    rec->data = r->p + r->pos;
    r->pos += numel * es;
    return TG_OK;
}

/* Pass 1: every field checked against the bytes there, every name unique. */
static tg_status parse(reader *r, parsed *out)
{
    size_t n = 0;
    tg_status st = tg_io__check_header(r, &FORMAT);
    if (st == TG_OK)
        st = get_size(r, &n, (r->end - r->pos) / MIN_RECORD, "the tensor count");
    if (st != TG_OK)
        return st;
    out->recs = n ? tg__calloc(n, sizeof *out->recs) : NULL;
    if (n && !out->recs)
        return tg__error(TG_ENOMEM, "%s: out of memory", r->who);
    out->n = n;
    for (size_t i = 0; i < n && st == TG_OK; i++)
        st = parse_record(r, i, &out->recs[i]);
    if (st == TG_OK && r->pos != r->end)
        st = ferr(r, "%zu unexpected bytes after the last tensor (at byte %zu)", r->end - r->pos,
                  r->pos);
    if (st == TG_OK && n > 1) {
        name_ref *refs = tg__calloc(n, sizeof *refs);
        if (!refs) {
            st = tg__error(TG_ENOMEM, "%s: out of memory", r->who);
        } else {
            for (size_t i = 0; i < n; i++)
                refs[i] = (name_ref){(const char *)out->recs[i].name, out->recs[i].name_len, i};
            size_t second = 0, first = sort_find_duplicate(refs, n, &second);
            tg__free(refs, n * sizeof *refs);
            if (first != (size_t)-1)
                st = ferr(r, "tensors %zu and %zu are both named '%.*s'", first, second,
                          (int)out->recs[first].name_len, (const char *)out->recs[first].name);
        }
    }
    if (st != TG_OK)
        parsed_free(out);
    return st;
}

void tg_tensors_free(tg_tensors *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        if (set->names && set->names[i])
            tg__free(set->names[i], strlen(set->names[i]) + 1);
        if (set->tensors)
            tg_tensor_free(set->tensors[i]);
    }
    /* (tg__free ignores NULL, whatever the size) */
    tg__free(set->names, set->n * sizeof *set->names);
    tg__free(set->tensors, set->n * sizeof *set->tensors);
    tg__free(set, sizeof *set);
}

/* Pass 2: a new set holding a leaf per record. Only allocation can fail here. */
static tg_status build(const reader *r, const parsed *p, tg_tensors **out)
{
    tg_tensors *set = tg__calloc(1, sizeof *set);
    if (!set)
        return tg__error(TG_ENOMEM, "%s: out of memory", r->who);
    set->n = p->n;
    if (p->n) {
        set->names = tg__calloc(p->n, sizeof *set->names);
        set->tensors = tg__calloc(p->n, sizeof *set->tensors);
        if (!set->names || !set->tensors) {
            tg_tensors_free(set);
            return tg__error(TG_ENOMEM, "%s: out of memory", r->who);
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        const record *rec = &p->recs[i];
        char *name = tg__malloc(rec->name_len + 1);
        tg_tensor *t = name ? tg_tensor_zeros(rec->dtype, rec->rank, rec->shape) : NULL;
        if (name) {
            memcpy(name, rec->name, rec->name_len);
            name[rec->name_len] = '\0';
        }
        set->names[i] = name;
        set->tensors[i] = t;
        if (!t || tg_tensor_set_name(t, name) != TG_OK) {
            tg_tensors_free(set);
            return tg__error(TG_ENOMEM, "%s: out of memory", r->who);
        }
        get_elems(tg_tensor_data(t), rec->data, rec->numel, tg_dtype_size(rec->dtype));
    }
    *out = set;
    return TG_OK;
}

/* A tg_io_parse_fn: ctx is the tg_tensors ** to fill. */
static tg_status load_set(const unsigned char *buf, size_t size, const char *who, void *ctx)
{
    reader r = {buf, size, 0, who, false};
    parsed p = {0, NULL};
    tg_status st = parse(&r, &p);
    if (st == TG_OK)
        st = build(&r, &p, ctx);
    parsed_free(&p);
    return st;
}

tg_status tg_tensors_load_buffer(const void *buf, size_t size, tg_tensors **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "tensors_load_buffer: out is NULL");
    *out = NULL;
    return tg_io__load_buffer("tensors_load_buffer", buf, size, load_set, out);
}

tg_status tg_tensors_load(const char *path, tg_tensors **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "tensors_load: out is NULL");
    *out = NULL;
    if (!path)
        return tg__error(TG_EINVAL, "tensors_load: path is NULL");
    return tg_io__load_file("tensors_load", path, MAX_FILE_BYTES, load_set, out);
}

/* ---- into the caller's tensors ------------------------------------------------------------- */

typedef struct into_args {
    size_t n;
    const char *const *names; /* NULL: each tensor's own */
    tg_tensor *const *tensors;
} into_args;

static const char *into_name(const into_args *a, size_t i)
{
    return a->names ? a->names[i] : tg_tensor_name(a->tensors[i]);
}

/* A tensor given to load_into, for finding one given twice. */
typedef struct leaf_ref {
    uintptr_t p;
    size_t index;
} leaf_ref;

static int compare_leaves(const void *a, const void *b)
{
    const leaf_ref *x = a, *y = b;
    if (x->p != y->p)
        return (x->p > y->p) - (x->p < y->p);
    return (x->index > y->index) - (x->index < y->index);
}

/* One leaf given twice (under two names) would take two of the file's tensors, the second
 * silently overwriting the first: refused, as a name asked for twice is. */
static tg_status check_distinct(const into_args *a, const char *who)
{
    if (a->n < 2)
        return TG_OK;
    leaf_ref *refs = tg__calloc(a->n, sizeof *refs);
    if (!refs)
        return tg__error(TG_ENOMEM, "%s: out of memory", who);
    for (size_t i = 0; i < a->n; i++)
        refs[i] = (leaf_ref){(uintptr_t)a->tensors[i], i};
    qsort(refs, a->n, sizeof *refs, compare_leaves);
    tg_status st = TG_OK;
    for (size_t i = 1; i < a->n && st == TG_OK; i++)
        if (refs[i].p == refs[i - 1].p)
            st = tg__error(TG_EINVAL,
                           "%s: tensors %zu and %zu are the same leaf (as '%s' and '%s'): one "
                           "would overwrite the other",
                           who, refs[i - 1].index, refs[i].index, into_name(a, refs[i - 1].index),
                           into_name(a, refs[i].index));
    tg__free(refs, a->n * sizeof *refs);
    return st;
}

static tg_status check_into(const into_args *a, const char *who)
{
    if (a->n && !a->tensors)
        return tg__error(TG_EINVAL, "%s: tensors is NULL", who);
    for (size_t i = 0; i < a->n; i++) {
        if (!a->tensors[i])
            return tg__error(TG_EINVAL, "%s: tensor %zu is NULL", who, i);
        if (!tg_tensor_is_leaf(a->tensors[i]))
            return tg__error(TG_EINVAL,
                             "%s: tensor %zu is not a leaf (a tape's tensors are "
                             "not written)",
                             who, i);
        if (!into_name(a, i))
            return tg__error(TG_EINVAL, "%s: tensor %zu has no name (%s)", who, i,
                             a->names ? "names[i] is NULL" : "pass names, or tg_tensor_set_name");
    }
    return check_distinct(a, who);
}

/* The record named `name`, by binary search in refs (sorted by name), or NULL. */
static const record *find(const parsed *p, const name_ref *refs, const char *name)
{
    const size_t len = strlen(name);
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_bytes(name, len, refs[mid].p, refs[mid].len);
        if (c == 0)
            return &p->recs[refs[mid].index];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Every requested name in the file with its dtype and shape, and nothing else in the file;
 * then, and only then, the values are copied. */
static tg_status fill(const reader *r, const parsed *p, const into_args *a)
{
    name_ref *refs = tg__calloc(p->n ? p->n : 1, sizeof *refs);
    bool *used = tg__calloc(p->n ? p->n : 1, sizeof *used);
    tg_status st = TG_OK;
    if (!refs || !used) {
        st = tg__error(TG_ENOMEM, "%s: out of memory", r->who);
        goto done;
    }
    for (size_t i = 0; i < p->n; i++)
        refs[i] = (name_ref){(const char *)p->recs[i].name, p->recs[i].name_len, i};
    size_t ignored;
    (void)sort_find_duplicate(refs, p->n, &ignored); /* unique: parse checked */
    for (size_t i = 0; i < a->n && st == TG_OK; i++) {
        const char *name = into_name(a, i);
        const tg_tensor *t = a->tensors[i];
        const record *rec = find(p, refs, name);
        char sf[160], st_[160];
        if (!rec) {
            st = tg__error(TG_EINVAL, "%s: no tensor '%s' in the file (it holds %zu)", r->who, name,
                           p->n);
        } else if (used[rec - p->recs]) {
            st = tg__error(TG_EINVAL, "%s: tensor '%s' is asked for twice", r->who, name);
        } else if (rec->dtype != tg_tensor_dtype(t)) {
            st = tg__error(TG_EDTYPE, "%s: tensor '%s' is %s in the file, %s here", r->who, name,
                           tg_dtype_name(rec->dtype), tg_dtype_name(tg_tensor_dtype(t)));
        } else if (rec->rank != tg_tensor_rank(t) ||
                   memcmp(rec->shape, tg_tensor_shape(t), (size_t)rec->rank * sizeof(size_t))) {
            st = tg__error(TG_ESHAPE, "%s: tensor '%s' has shape %s in the file, %s here", r->who,
                           name, tg_shape_format(sf, sizeof sf, rec->rank, rec->shape),
                           tg_shape_format(st_, sizeof st_, tg_tensor_rank(t), tg_tensor_shape(t)));
        } else {
            used[rec - p->recs] = true;
        }
    }
    for (size_t i = 0; i < p->n && st == TG_OK; i++)
        if (!used[i])
            st = tg__error(TG_EINVAL, "%s: the file's tensor '%.*s' is not among the %zu given",
                           r->who, (int)p->recs[i].name_len, (const char *)p->recs[i].name, a->n);
    for (size_t i = 0; i < a->n && st == TG_OK; i++) {
        const record *rec = find(p, refs, into_name(a, i));
        if (rec->numel)
            get_elems(tg_tensor_data(a->tensors[i]), rec->data, rec->numel,
                      tg_dtype_size(rec->dtype));
    }
done:
    tg__free(refs, (p->n ? p->n : 1) * sizeof *refs);
    tg__free(used, (p->n ? p->n : 1) * sizeof *used);
    return st;
}

/* A tg_io_parse_fn: ctx is the into_args. */
static tg_status load_into(const unsigned char *buf, size_t size, const char *who, void *ctx)
{
    reader r = {buf, size, 0, who, false};
    parsed p = {0, NULL};
    tg_status st = parse(&r, &p);
    if (st == TG_OK)
        st = fill(&r, &p, ctx);
    parsed_free(&p);
    return st;
}

tg_status tg_tensors_load_into_buffer(const void *buf, size_t size, size_t n,
                                      const char *const *names, tg_tensor *const *tensors)
{
    const into_args a = {n, names, tensors};
    tg_status st = check_into(&a, "tensors_load_into_buffer");
    if (st != TG_OK)
        return st;
    return tg_io__load_buffer("tensors_load_into_buffer", buf, size, load_into, (void *)&a);
}

tg_status tg_tensors_load_into(const char *path, size_t n, const char *const *names,
                               tg_tensor *const *tensors)
{
    if (!path)
        return tg__error(TG_EINVAL, "tensors_load_into: path is NULL");
    const into_args a = {n, names, tensors};
    tg_status st = check_into(&a, "tensors_load_into");
    if (st != TG_OK)
        return st;
    return tg_io__load_file("tensors_load_into", path, MAX_FILE_BYTES, load_into, (void *)&a);
}

/* ---- the set ------------------------------------------------------------------------------- */

size_t tg_tensors_count(const tg_tensors *set)
{
    return set ? set->n : 0;
}

const char *tg_tensors_name(const tg_tensors *set, size_t i)
{
    if (!set || i >= set->n) {
        tg__error(TG_EINVAL, "tensors_name: %s", set ? "index out of range" : "set is NULL");
        return NULL;
    }
    return set->names[i];
}

tg_tensor *tg_tensors_get(const tg_tensors *set, size_t i)
{
    if (!set || i >= set->n) {
        tg__error(TG_EINVAL, "tensors_get: %s", set ? "index out of range" : "set is NULL");
        return NULL;
    }
    return set->tensors[i];
}

tg_tensor *tg_tensors_find(const tg_tensors *set, const char *name)
{
    if (!set || !name) {
        tg__error(TG_EINVAL, "tensors_find: %s is NULL", set ? "name" : "set");
        return NULL;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->names[i], name) != 0)
            continue;
        /* The name stays when its tensor is handed over; the tensor is no longer the set's. */
        if (!set->tensors[i])
            tg__error(TG_EINVAL, "tensors_find: tensor %zu, '%s', was taken already", i, name);
        return set->tensors[i];
    }
    tg__error(TG_EINVAL, "tensors_find: no tensor '%s' among the %zu", name, set->n);
    return NULL;
}

tg_tensor *tg_tensors_take(tg_tensors *set, size_t i)
{
    tg_tensor *t = tg_tensors_get(set, i);
    if (t)
        set->tensors[i] = NULL;
    else if (set && i < set->n)
        tg__error(TG_EINVAL, "tensors_take: tensor %zu was taken already", i);
    return t;
}

/* model_file.c: saving and loading models in the format of docs/model-format.md (version 1):
 * little-endian fields written byte by byte (whatever the host) in the frame every tapegrad
 * file has (header and XXH3-64 checksum: io/bytes.h), and a loader that bounds every length by
 * the bytes actually there. */
#include "io/bytes.h"
#include "io/files.h"

#include <math.h>
#include <stdio.h>

#define MAGIC "TGMODEL" /* 8 bytes with its NUL */
#define MAX_TENSOR_NAME 64u
#define MAX_COLUMN_NAME 4096u /* as tg_model_set_columns */
/* The largest file tg_model_load reads: a model this size is far beyond what an MLP of 16
 * layers on a CPU trains, and the bound keeps a bogus path (a device, a huge file) cheap. */
#define MAX_FILE_BYTES ((size_t)1 << 30)

_Static_assert(sizeof(MAGIC) == 8, "the magic is 8 bytes");
static const tg_io_format FORMAT = {MAGIC, 1, "a tapegrad model file"};

/* ---- writing ------------------------------------------------------------------------------ */

static void put_u32(writer *w, uint32_t v)
{
    put_le(w, v, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    put_le(w, v, 8);
}

static void put_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

static void put_tensor_data(writer *w, tg_tensor *t)
{
    put_elems(w, tg_tensor_data_const(t), tg_tensor_numel(t), tg_dtype_size(tg_tensor_dtype(t)));
}

/* The body: everything between the header and the checksum. */
static void serialize(writer *w, const void *model)
{
    const tg_model *m = model;
    const tg_mlp_spec *s = tg_model_spec(m);
    put_u32(w, (uint32_t)s->dtype);
    put_u32(w, (uint32_t)s->n_layers);
    for (int i = 0; i <= s->n_layers; i++)
        put_u64(w, s->sizes[i]);
    for (int i = 0; i < s->n_layers; i++)
        put_u32(w, (uint32_t)s->act[i]);

    size_t n_classes, n_std;
    const double *mean, *std;
    put_u32(w, (uint32_t)tg_model_task(m, &n_classes));
    put_u64(w, n_classes);
    tg_model_standardization(m, &n_std, &mean, &std);
    put_u64(w, n_std);
    for (size_t i = 0; i < n_std; i++)
        put_f64(w, mean[i]);
    for (size_t i = 0; i < n_std; i++)
        put_f64(w, std[i]);
    size_t n_feat = tg_model_feature_name(m, 0) ? s->sizes[0] : 0;
    put_u64(w, n_feat);
    for (size_t i = 0; i < n_feat; i++)
        put_str(w, tg_model_feature_name(m, i));
    const char *target = tg_model_target_name(m);
    put_u32(w, target ? 1 : 0);
    if (target)
        put_str(w, target);

    size_t n = tg_model_param_count(m);
    put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        tg_tensor *t = tg_model_param(m, i);
        put_str(w, tg_tensor_name(t));
        put_u32(w, (uint32_t)tg_tensor_dtype(t));
        put_u32(w, (uint32_t)tg_tensor_rank(t));
        for (int d = 0; d < tg_tensor_rank(t); d++)
            put_u64(w, tg_tensor_shape(t)[d]);
        put_tensor_data(w, t);
    }
}

/* The index of the first element of the n values at p (dtype) that is NaN or infinite, or n. */
static size_t first_non_finite(const unsigned char *p, tg_dtype dtype, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v;
        if (dtype == TG_F32) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v = f;
        } else {
            memcpy(&v, p + 8 * i, 8);
        }
        if (!isfinite(v))
            return i;
    }
    return n;
}

/* A model whose parameters are not all finite (a run that diverged) is never written: it
 * would load, and then predict the same class for every row. */
static tg_status check_finite(const tg_model *model, const char *who)
{
    for (size_t i = 0; i < tg_model_param_count(model); i++) {
        const tg_tensor *t = tg_model_param(model, i);
        size_t n = tg_tensor_numel(t);
        size_t bad = first_non_finite(tg_tensor_data_const(t), tg_tensor_dtype(t), n);
        if (bad < n)
            return tg__error(TG_ENUMERIC,
                             "%s: parameter '%s' element %zu is %g: a model with non-finite "
                             "parameters is not saved (did training diverge?)",
                             who, tg_tensor_name(t), bad, tg_tensor_get(t, bad));
    }
    return TG_OK;
}

tg_status tg_model_save_buffer(const tg_model *model, void **out_buf, size_t *out_size)
{
    if (!model || !out_buf || !out_size)
        return tg__error(TG_EINVAL, "model_save_buffer: %s is NULL",
                         !model ? "model" : !out_buf ? "out_buf" : "out_size");
    *out_buf = NULL;
    *out_size = 0;
    tg_status st = check_finite(model, "model_save_buffer");
    if (st != TG_OK)
        return st;
    return tg_io__encode(&FORMAT, serialize, model, "model_save_buffer", out_buf, out_size);
}

void tg_model_buffer_free(void *buf, size_t size)
{
    tg__free(buf, size);
}

tg_status tg_model_save(const tg_model *model, const char *path)
{
    if (!model || !path)
        return tg__error(TG_EINVAL, "model_save: %s is NULL", model ? "path" : "model");
    void *buf;
    size_t size;
    tg_status st = check_finite(model, "model_save");
    if (st != TG_OK || (st = tg_model_save_buffer(model, &buf, &size)) != TG_OK)
        return st == TG_ENOMEM ? tg__error(st, "model_save: %s: out of memory", path) : st;
    st = tg_io__save_atomic("model_save", path, buf, size);
    tg_model_buffer_free(buf, size);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

static tg_status get_u32(reader *r, uint32_t *v, const char *what)
{
    uint64_t u;
    tg_status st = get_le(r, &u, 4, what);
    if (st == TG_OK)
        *v = (uint32_t)u;
    return st;
}

static tg_status get_u64(reader *r, uint64_t *v, const char *what)
{
    return get_le(r, v, 8, what);
}

/* A u64 that must fit in size_t and be at most `max` (what it counts must fit the file). */
static tg_status get_size(reader *r, size_t *v, size_t max, const char *what)
{
    uint64_t u;
    tg_status st = get_u64(r, &u, what);
    if (st != TG_OK)
        return st;
    if (u > max || u > SIZE_MAX)
        return ferr(r, "%s is %llu, more than the %zu the file can hold", what,
                    (unsigned long long)u, max);
    *v = (size_t)u;
    return TG_OK;
}

/* A length-prefixed string of at most `max` bytes without NUL: *s points into the buffer. */
static tg_status get_str(reader *r, const unsigned char **s, size_t *len, size_t max,
                         const char *what)
{
    uint32_t n;
    tg_status st = get_u32(r, &n, what);
    if (st != TG_OK)
        return st;
    if (n > max)
        return ferr(r, "%s is %u bytes long (at most %zu)", what, n, max);
    if ((st = need(r, n, what)) != TG_OK)
        return st;
    if (memchr(r->p + r->pos, 0, n))
        return ferr(r, "%s contains a NUL byte", what);
    *s = r->p + r->pos;
    *len = n;
    r->pos += n;
    return TG_OK;
}

/* What the body holds, once validated. The strings point into the file's bytes. */
typedef struct parsed {
    tg_mlp_spec spec;
    uint32_t task;
    size_t n_classes;
    size_t n_std;
    size_t std_pos;  /* offset of the means (the stds follow) */
    size_t n_feat;
    size_t feat_pos; /* offset of the first feature name's length */
    size_t feat_bytes; /* sum of the feature names' lengths */
    const unsigned char *target;
    size_t target_len;
    bool has_target;
    size_t tensor_pos[2 * TG_MLP_MAX_LAYERS]; /* offset of each tensor's data */
} parsed;

static tg_status parse_spec(reader *r, parsed *out)
{
    tg_mlp_spec *s = &out->spec;
    uint32_t dtype, n_layers, act;
    tg_status st;
    if ((st = get_u32(r, &dtype, "the spec dtype")) != TG_OK)
        return st;
    if (dtype > TG_F64)
        return ferr(r, "unknown dtype %u in the spec (0 = f32, 1 = f64)", dtype);
    if ((st = get_u32(r, &n_layers, "the layer count")) != TG_OK)
        return st;
    if (n_layers < 1 || n_layers > TG_MLP_MAX_LAYERS)
        return ferr(r, "layer count %u is out of range 1..%d", n_layers, TG_MLP_MAX_LAYERS);
    s->dtype = (tg_dtype)dtype;
    s->n_layers = (int)n_layers;
    for (uint32_t i = 0; i <= n_layers; i++) {
        char what[48];
        snprintf(what, sizeof what, "layer size %u", i);
        if ((st = get_size(r, &s->sizes[i], r->end, what)) != TG_OK)
            return st;
        if (s->sizes[i] == 0)
            return ferr(r, "layer size %u is 0", i);
    }
    for (uint32_t i = 0; i < n_layers; i++) {
        if ((st = get_u32(r, &act, "an activation")) != TG_OK)
            return st;
        if (act > TG_ACT_RELU)
            return ferr(r, "layer %u has unknown activation %u (0..3)", i, act);
        s->act[i] = (tg_activation)act;
    }
    /* The parameters must fit in what is left, before anything is allocated for them. */
    size_t total = 0, es = tg_dtype_size(s->dtype), left = r->end - r->pos;
    for (int i = 0; i < s->n_layers; i++) {
        size_t layer;
        if (__builtin_mul_overflow(s->sizes[i] + 1, s->sizes[i + 1], &layer) ||
            __builtin_add_overflow(total, layer, &total) || total > left / es)
            return ferr(r, "the spec's layers (layer %d: %zu -> %zu) need more parameters than "
                           "the %zu bytes left in the file hold",
                        i, s->sizes[i], s->sizes[i + 1], left);
    }
    return TG_OK;
}

static tg_status parse_metadata(reader *r, parsed *out)
{
    size_t n_in = out->spec.sizes[0];
    uint32_t task, has_target;
    tg_status st;
    if ((st = get_u32(r, &task, "the task")) != TG_OK ||
        (st = get_size(r, &out->n_classes, SIZE_MAX, "the class count")) != TG_OK)
        return st;
    if (task > TG_TASK_CLASSIFY)
        return ferr(r, "unknown task %u (0 = regress, 1 = classify)", task);
    if (task == TG_TASK_REGRESS && out->n_classes != 0)
        return ferr(r, "a regression model with class count %zu (expected 0)", out->n_classes);
    if (task == TG_TASK_CLASSIFY && out->n_classes < 2)
        return ferr(r, "a classification model with class count %zu (expected >= 2)",
                    out->n_classes);
    out->task = task;

    if ((st = get_size(r, &out->n_std, (r->end - r->pos) / 16, "the standardization count")) !=
        TG_OK)
        return st;
    if (out->n_std != 0 && out->n_std != n_in)
        return ferr(r, "standardization for %zu features, the model has %zu inputs", out->n_std,
                    n_in);
    out->std_pos = r->pos;
    for (size_t i = 0; i < 2 * out->n_std; i++) {
        double v;
        if ((st = get_f64(r, &v, "standardization")) != TG_OK)
            return st;
        if (!isfinite(v) || (i >= out->n_std && !(v > 0)))
            return ferr(r, "feature %zu has %s %g (expected a finite value%s)", i % out->n_std,
                        i < out->n_std ? "mean" : "std", v, i < out->n_std ? "" : " > 0");
    }

    if ((st = get_size(r, &out->n_feat, (r->end - r->pos) / 4, "the feature name count")) !=
        TG_OK)
        return st;
    if (out->n_feat != 0 && out->n_feat != n_in)
        return ferr(r, "%zu feature names, the model has %zu inputs", out->n_feat, n_in);
    out->feat_pos = r->pos;
    out->feat_bytes = 0;
    for (size_t i = 0; i < out->n_feat; i++) {
        const unsigned char *s;
        size_t len;
        char what[48];
        snprintf(what, sizeof what, "feature name %zu", i);
        if ((st = get_str(r, &s, &len, MAX_COLUMN_NAME, what)) != TG_OK)
            return st;
        out->feat_bytes += len;
    }
    if ((st = get_u32(r, &has_target, "the target flag")) != TG_OK)
        return st;
    if (has_target > 1)
        return ferr(r, "target flag is %u (expected 0 or 1)", has_target);
    out->has_target = has_target;
    if (has_target &&
        (st = get_str(r, &out->target, &out->target_len, MAX_COLUMN_NAME, "the target name")) !=
            TG_OK)
        return st;
    return TG_OK;
}

static tg_status parse_tensors(reader *r, parsed *out)
{
    const tg_mlp_spec *s = &out->spec;
    uint32_t count, dtype, rank;
    tg_status st;
    if ((st = get_u32(r, &count, "the tensor count")) != TG_OK)
        return st;
    if (count != 2u * (uint32_t)s->n_layers)
        return ferr(r, "%u tensors, the spec's %d layers have %d", count, s->n_layers,
                    2 * s->n_layers);
    for (uint32_t i = 0; i < count; i++) {
        int layer = (int)(i / 2);
        bool bias = i % 2;
        char expect[32], what[96], shape_s[160], expect_s[160];
        snprintf(expect, sizeof expect, "layer%d.%s", layer, bias ? "bias" : "weight");
        snprintf(what, sizeof what, "the name of tensor %u", i);
        const unsigned char *name;
        size_t len;
        if ((st = get_str(r, &name, &len, MAX_TENSOR_NAME, what)) != TG_OK)
            return st;
        if (len != strlen(expect) || memcmp(name, expect, len) != 0)
            return ferr(r, "tensor %u is named '%.*s', expected '%s'", i, (int)len,
                        (const char *)name, expect);
        snprintf(what, sizeof what, "tensor '%s' dtype and rank", expect);
        if ((st = get_u32(r, &dtype, what)) != TG_OK || (st = get_u32(r, &rank, what)) != TG_OK)
            return st;
        if (dtype != (uint32_t)s->dtype)
            return ferr(r, "tensor '%s' has dtype %u, the spec says %s", expect, dtype,
                        tg_dtype_name(s->dtype));
        if (rank < 1 || rank > TG_MAX_RANK)
            return ferr(r, "tensor '%s' has rank %u (1..%d)", expect, rank, TG_MAX_RANK);
        size_t shape[TG_MAX_RANK];
        snprintf(what, sizeof what, "tensor '%s' shape", expect);
        for (uint32_t d = 0; d < rank; d++)
            if ((st = get_size(r, &shape[d], SIZE_MAX, what)) != TG_OK)
                return st;
        const size_t want[2] = {bias ? s->sizes[layer + 1] : s->sizes[layer],
                                s->sizes[layer + 1]};
        int want_rank = bias ? 1 : 2;
        if ((int)rank != want_rank || memcmp(shape, want, rank * sizeof *shape) != 0)
            return ferr(r, "tensor '%s' has shape %s, the spec implies %s", expect,
                        tg_shape_format(shape_s, sizeof shape_s, (int)rank, shape),
                        tg_shape_format(expect_s, sizeof expect_s, want_rank, want));
        /* The spec was checked against the bytes left, so this product cannot overflow;
         * still, the data must be there. */
        size_t bytes = (bias ? want[0] : want[0] * want[1]) * tg_dtype_size(s->dtype);
        snprintf(what, sizeof what, "tensor '%s' data", expect);
        if ((st = need(r, bytes, what)) != TG_OK)
            return st;
        size_t n = bytes / tg_dtype_size(s->dtype), bad = first_non_finite(r->p + r->pos, s->dtype, n);
        if (bad < n)
            return ferr(r, "tensor '%s' element %zu is not finite (a diverged model)", expect, bad);
        out->tensor_pos[i] = r->pos;
        r->pos += bytes;
    }
    if (r->pos != r->end)
        return ferr(r, "%zu unexpected bytes after the last tensor (at byte %zu)",
                    r->end - r->pos, r->pos);
    return TG_OK;
}

/* Pass 2: copies the validated fields into a new model. Only allocation can fail here. */
static tg_status build(const reader *r, const parsed *p, tg_model **out)
{
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_model *m;
    /* The initializer's draws are overwritten below; it is the cheapest valid one. */
    tg_status st = tg_model_new(&p->spec, TG_INIT_XAVIER_UNIFORM, &rng, &m);
    if (st != TG_OK) /* the spec is valid: only ENOMEM */
        return tg__error(st, "%s: out of memory", r->who);
    st = tg_model_set_task(m, (tg_task)p->task, p->n_classes);
    TG_ASSERT(st == TG_OK);
    if (p->n_std) {
        double *ms = tg__malloc(2 * p->n_std * sizeof *ms);
        if (!ms)
            goto nomem;
        for (size_t i = 0; i < 2 * p->n_std; i++) {
            uint64_t bits = le(r->p + p->std_pos + 8 * i, 8);
            memcpy(&ms[i], &bits, 8);
        }
        st = tg_model_set_standardization(m, p->n_std, ms, ms + p->n_std);
        tg__free(ms, 2 * p->n_std * sizeof *ms);
        if (st != TG_OK)
            goto fail;
    }
    if (p->n_feat || p->has_target) {
        /* NUL-terminated copies in one block, with a pointer array in front. */
        size_t ptrs = p->n_feat * sizeof(char *);
        size_t bytes = ptrs + p->feat_bytes + p->n_feat + p->target_len + 1;
        char **names = tg__malloc(bytes);
        if (!names)
            goto nomem;
        char *dst = (char *)names + ptrs;
        size_t pos = p->feat_pos;
        for (size_t i = 0; i < p->n_feat; i++) {
            size_t len = (size_t)le(r->p + pos, 4);
            names[i] = dst;
            memcpy(dst, r->p + pos + 4, len);
            dst[len] = '\0';
            dst += len + 1;
            pos += 4 + len;
        }
        if (p->has_target) {
            memcpy(dst, p->target, p->target_len);
            dst[p->target_len] = '\0';
        }
        st = tg_model_set_columns(m, p->n_feat ? (const char *const *)names : NULL,
                                  p->has_target ? dst : NULL);
        tg__free(names, bytes);
        if (st != TG_OK)
            goto fail;
    }
    for (size_t i = 0; i < tg_model_param_count(m); i++) {
        tg_tensor *t = tg_model_param(m, i);
        const unsigned char *src = r->p + p->tensor_pos[i];
        const size_t n = tg_tensor_numel(t);
        if (tg_tensor_dtype(t) == TG_F32) {
            float *d = tg_tensor_data(t);
            for (size_t k = 0; k < n; k++) {
                uint32_t bits = (uint32_t)le(src + 4 * k, 4);
                memcpy(&d[k], &bits, 4);
            }
        } else {
            double *d = tg_tensor_data(t);
            for (size_t k = 0; k < n; k++) {
                uint64_t bits = le(src + 8 * k, 8);
                memcpy(&d[k], &bits, 8);
            }
        }
    }
    *out = m;
    return TG_OK;
nomem:
    st = TG_ENOMEM;
fail:
    tg_model_free(m);
    return tg__error(st, "%s: out of memory", r->who);
}

/* A tg_io_parse_fn: ctx is the tg_model ** to fill. */
static tg_status load(const unsigned char *buf, size_t size, const char *who, void *ctx)
{
    reader r = {buf, size, 0, who, false};
    parsed p;
    memset(&p, 0, sizeof p);
    tg_status st = tg_io__check_header(&r, &FORMAT);
    if (st == TG_OK)
        st = parse_spec(&r, &p);
    if (st == TG_OK)
        st = parse_metadata(&r, &p);
    if (st == TG_OK)
        st = parse_tensors(&r, &p);
    if (st == TG_OK)
        st = build(&r, &p, ctx);
    return st;
}

tg_status tg_model_load_buffer(const void *buf, size_t size, tg_model **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "model_load_buffer: out is NULL");
    *out = NULL;
    return tg_io__load_buffer("model_load_buffer", buf, size, load, out);
}

tg_status tg_model_load(const char *path, tg_model **out)
{
    if (!out)
        return tg__error(TG_EINVAL, "model_load: out is NULL");
    *out = NULL;
    if (!path)
        return tg__error(TG_EINVAL, "model_load: path is NULL");
    return tg_io__load_file("model_load", path, MAX_FILE_BYTES, load, out);
}

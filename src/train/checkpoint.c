/* checkpoint.c: checkpoints in the format of docs/checkpoint-format.md (version 3): progress,
 * optimizer options and state, and a complete model file, little-endian field by field, in
 * the frame every tapegrad file has (header and XXH3-64 checksum: io/bytes.h); loaded through
 * a cursor that checks every length against the bytes that are there before reading or
 * allocating anything. */
#include "io/bytes.h"
#include "io/files.h"
#include "train_internal.h"

#include <float.h>
#include <stdio.h>

#define MAGIC "TGCKPT\0" /* 8 bytes with its NUL */
/* A checkpoint holds a model file (at most 1 GiB, as tg_model_load reads) and up to two
 * optimizer buffers of the same size: 4 GiB bounds every real one, and a bogus path (a
 * device, a huge file) is refused before it is read. */
#define MAX_FILE_BYTES ((uint64_t)1 << 32)

_Static_assert(sizeof(MAGIC) == 8, "the magic is 8 bytes");
static const tg_io_format FORMAT = {MAGIC, 3, "a tapegrad checkpoint"};

/* ---- writing ------------------------------------------------------------------------------ */

/* What the body is written from. */
typedef struct contents {
    const tg_optim *optim;
    const tg_checkpoint_progress *progress;
    const void *model_buf; /* a model file (tg_model_save_buffer) */
    size_t model_size;
} contents;

/* The body: everything between the header and the checksum. */
static void serialize(writer *w, const void *ctx)
{
    const contents *c = ctx;
    const tg_optim *o = c->optim;
    const tg_checkpoint_progress *pr = c->progress;
    put_le(w, pr->epoch, 8);
    put_le(w, pr->batch, 8);
    put_le(w, pr->step, 8);
    for (int i = 0; i < 4; i++)
        put_le(w, pr->rng.s[i], 8);
    put_le(w, pr->world_size, 4);
    put_le(w, pr->seed, 8);
    put_le(w, pr->batch_size, 8);
    put_f64(w, pr->test_split);
    put_f64(w, pr->clip_norm);
    put_le(w, pr->train_rows, 8);
    put_le(w, pr->test_rows, 8);
    put_le(w, pr->data_hash, 8);

    tg_optim_options opt;
    tg_optim_get_options(o, &opt);
    put_le(w, (uint32_t)opt.kind, 4);
    put_le(w, opt.nesterov ? 1 : 0, 4);
    put_f64(w, opt.lr);
    put_f64(w, opt.momentum);
    put_f64(w, opt.beta1);
    put_f64(w, opt.beta2);
    put_f64(w, opt.eps);
    put_f64(w, opt.weight_decay);
    put_le(w, tg_optim_steps(o), 8);
    size_t bytes = tg_optim_state_size(o), es = tg_dtype_size(tg_optim_dtype(o));
    put_le(w, bytes, 8);
    put_elems(w, tg_optim_state((tg_optim *)o), bytes / es, es);

    put_le(w, c->model_size, 8);
    put_bytes(w, c->model_buf, c->model_size);
}

static bool rng_valid(const tg_rng *r)
{
    return r->s[0] | r->s[1] | r->s[2] | r->s[3];
}

static tg_status check_args(const char *who, const tg_model *model, const tg_optim *optim,
                            const tg_checkpoint_progress *pr)
{
    if (!model || !optim || !pr)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who,
                         !model ? "model" : !optim ? "optim" : "progress");
    size_t n = tg_model_param_count(model);
    bool same = tg_optim_param_count(optim) == n;
    for (size_t i = 0; same && i < n; i++)
        same = tg_optim_param(optim, i) == tg_model_param(model, i);
    if (!same)
        return tg__error(TG_EINVAL, "%s: the optimizer does not update exactly this model's %zu "
                                    "parameters in order (it has %zu leaves)",
                         who, n, tg_optim_param_count(optim));
    if (tg_optim_steps(optim) == UINT64_MAX) /* the loader, through optim_set_state, refuses */
        return tg__error(TG_EINVAL, "%s: the optimizer's step count is 2^64 - 1, which no step "
                                    "can follow",
                         who);
    if (!rng_valid(&pr->rng))
        return tg__error(TG_EINVAL, "%s: progress.rng is all zero (not a seeded tg_rng)", who);
    if (pr->world_size < 1)
        return tg__error(TG_EINVAL, "%s: progress.world_size is 0", who);
    if (pr->batch >> 63)
        return tg__error(TG_EINVAL, "%s: progress.batch is %llu", who,
                         (unsigned long long)pr->batch);
    if (pr->batch_size >> 63)
        return tg__error(TG_EINVAL, "%s: progress.batch_size is %llu", who,
                         (unsigned long long)pr->batch_size);
    if (!(pr->test_split >= 0 && pr->test_split < 1))
        return tg__error(TG_EINVAL, "%s: progress.test_split is %g (expected [0, 1))", who,
                         pr->test_split);
    if (!(pr->clip_norm >= 0 && pr->clip_norm <= DBL_MAX))
        return tg__error(TG_EINVAL, "%s: progress.clip_norm is %g (expected finite, >= 0)", who,
                         pr->clip_norm);
    return TG_OK;
}

static tg_status save_buffer(const char *who, const tg_model *model, const tg_optim *optim,
                             const tg_checkpoint_progress *pr, void **out_buf, size_t *out_size)
{
    tg_status st = check_args(who, model, optim, pr);
    if (st != TG_OK)
        return st;
    void *mbuf;
    size_t msize;
    if ((st = tg_model_save_buffer(model, &mbuf, &msize)) != TG_OK) {
        if (st == TG_ENOMEM)
            return tg__error(st, "%s: out of memory", who);
        char why[256]; /* non-finite parameters */
        snprintf(why, sizeof why, "%s", tg_last_error());
        return tg__error(st, "%s: %s", who, why);
    }
    const contents c = {optim, pr, mbuf, msize};
    st = tg_io__encode(&FORMAT, serialize, &c, who, out_buf, out_size);
    tg_model_buffer_free(mbuf, msize);
    return st;
}

tg_status tg_checkpoint_save_buffer(const tg_model *model, const tg_optim *optim,
                                    const tg_checkpoint_progress *progress, void **out_buf,
                                    size_t *out_size)
{
    const char *who = "checkpoint_save_buffer";
    if (!out_buf || !out_size)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, out_buf ? "out_size" : "out_buf");
    *out_buf = NULL;
    *out_size = 0;
    return save_buffer(who, model, optim, progress, out_buf, out_size);
}

void tg_checkpoint_buffer_free(void *buf, size_t size)
{
    tg__free(buf, size);
}

tg_status tg_checkpoint_save(const char *path, const tg_model *model, const tg_optim *optim,
                             const tg_checkpoint_progress *progress)
{
    if (!path)
        return tg__error(TG_EINVAL, "checkpoint_save: path is NULL");
    char who[600];
    snprintf(who, sizeof who, "checkpoint_save: %s", path);
    void *buf;
    size_t size;
    tg_status st = save_buffer(who, model, optim, progress, &buf, &size);
    if (st == TG_OK) {
        st = tg_io__save_atomic("checkpoint_save", path, buf, size);
        tg_checkpoint_buffer_free(buf, size);
    }
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

static tg_status parse_progress(reader *r, tg_checkpoint_progress *pr)
{
    uint64_t ws;
    tg_status st;
    if ((st = get_le(r, &pr->epoch, 8, "the epoch")) != TG_OK ||
        (st = get_le(r, &pr->batch, 8, "the batch")) != TG_OK ||
        (st = get_le(r, &pr->step, 8, "the step")) != TG_OK)
        return st;
    if (pr->batch >> 63)
        return ferr(r, "batch is %llu (at most 2^63 - 1)", (unsigned long long)pr->batch);
    for (int i = 0; i < 4; i++)
        if ((st = get_le(r, &pr->rng.s[i], 8, "the RNG state")) != TG_OK)
            return st;
    if (!rng_valid(&pr->rng))
        return ferr(r, "the RNG state is all zero (not a seeded generator)");
    if ((st = get_le(r, &ws, 4, "the world size")) != TG_OK)
        return st;
    if (ws < 1)
        return ferr(r, "world size is 0 (expected >= 1)");
    pr->world_size = (uint32_t)ws;
    if ((st = get_le(r, &pr->seed, 8, "the seed")) != TG_OK ||
        (st = get_le(r, &pr->batch_size, 8, "the batch size")) != TG_OK ||
        (st = get_f64(r, &pr->test_split, "the test split")) != TG_OK ||
        (st = get_f64(r, &pr->clip_norm, "the clipping norm")) != TG_OK ||
        (st = get_le(r, &pr->train_rows, 8, "the training rows")) != TG_OK ||
        (st = get_le(r, &pr->test_rows, 8, "the test rows")) != TG_OK ||
        (st = get_le(r, &pr->data_hash, 8, "the data hash")) != TG_OK)
        return st;
    if (pr->batch_size >> 63)
        return ferr(r, "batch size is %llu (at most 2^63 - 1)",
                    (unsigned long long)pr->batch_size);
    if (!(pr->test_split >= 0 && pr->test_split < 1))
        return ferr(r, "the test split is %g (expected a number in [0, 1))", pr->test_split);
    if (!(pr->clip_norm >= 0 && pr->clip_norm <= DBL_MAX))
        return ferr(r, "the clipping norm is %g (expected a finite number >= 0)", pr->clip_norm);
    return TG_OK;
}

/* What the body holds once its fields are bounded; the big parts stay in the buffer. */
typedef struct parsed {
    tg_checkpoint_progress progress;
    tg_optim_options opt;
    uint64_t steps;
    size_t state_pos, state_bytes;
    size_t model_pos, model_bytes;
} parsed;

static tg_status parse_optim(reader *r, parsed *p)
{
    uint64_t kind, nesterov, bytes;
    tg_status st;
    if ((st = get_le(r, &kind, 4, "the optimizer kind")) != TG_OK)
        return st;
    if (kind > TG_OPTIM_ADAMW)
        return ferr(r, "unknown optimizer kind %llu (0..3)", (unsigned long long)kind);
    if ((st = get_le(r, &nesterov, 4, "the nesterov flag")) != TG_OK)
        return st;
    if (nesterov > 1)
        return ferr(r, "nesterov flag is %llu (expected 0 or 1)", (unsigned long long)nesterov);
    p->opt.kind = (tg_optim_kind)kind;
    p->opt.nesterov = nesterov;
    if ((st = get_f64(r, &p->opt.lr, "the learning rate")) != TG_OK ||
        (st = get_f64(r, &p->opt.momentum, "the momentum")) != TG_OK ||
        (st = get_f64(r, &p->opt.beta1, "beta1")) != TG_OK ||
        (st = get_f64(r, &p->opt.beta2, "beta2")) != TG_OK ||
        (st = get_f64(r, &p->opt.eps, "eps")) != TG_OK ||
        (st = get_f64(r, &p->opt.weight_decay, "the weight decay")) != TG_OK ||
        (st = get_le(r, &p->steps, 8, "the optimizer's step count")) != TG_OK ||
        (st = get_le(r, &bytes, 8, "the state size")) != TG_OK)
        return st;
    if (bytes > r->end - r->pos)
        return ferr(r, "the optimizer state is %llu bytes, more than the %zu left",
                    (unsigned long long)bytes, r->end - r->pos);
    p->state_pos = r->pos;
    p->state_bytes = (size_t)bytes;
    r->pos += (size_t)bytes;
    return TG_OK;
}

static tg_status parse_model(reader *r, parsed *p)
{
    uint64_t bytes;
    tg_status st;
    if ((st = get_le(r, &bytes, 8, "the model size")) != TG_OK)
        return st;
    if (bytes != r->end - r->pos)
        return ferr(r, "the model is %llu bytes, but %zu bytes are left before the checksum",
                    (unsigned long long)bytes, r->end - r->pos);
    p->model_pos = r->pos;
    p->model_bytes = (size_t)bytes;
    r->pos += (size_t)bytes;
    return TG_OK;
}

/* Builds the model and optimizer from the bounded fields; the embedded model file and the
 * optimizer's options and state are validated by their own loaders, and their complaints
 * become this file's format errors. */
static tg_status build(const reader *r, const parsed *p, tg_model **model_out, tg_optim **optim_out)
{
    tg_model *m = NULL;
    tg_optim *o = NULL;
    void *state = NULL;
    tg_status st = tg_model_load_buffer(r->p + p->model_pos, p->model_bytes, &m);
    if (st != TG_OK)
        return st == TG_ENOMEM ? tg__error(st, "%s: out of memory", r->who)
                               : ferr(r, "the embedded model: %s", tg_last_error());
    if ((st = tg_model_optim_new(&p->opt, m, &o)) != TG_OK) {
        st = st == TG_ENOMEM ? tg__error(st, "%s: out of memory", r->who)
                             : ferr(r, "the optimizer: %s", tg_last_error());
        goto fail;
    }
    size_t es = tg_dtype_size(tg_optim_dtype(o));
    if (p->state_bytes % es != 0 || p->state_bytes != tg_optim_state_size(o)) {
        st = ferr(r, "the optimizer state is %zu bytes; %s over this model's %zu %s parameters "
                     "keeps %zu",
                  p->state_bytes, tg_optim_kind_name(p->opt.kind), tg_model_numel(m),
                  tg_dtype_name(tg_optim_dtype(o)), tg_optim_state_size(o));
        goto fail;
    }
    if (p->state_bytes) {
        /* Decoded element by element: the file is little-endian whatever the host. */
        if (!(state = tg__malloc(p->state_bytes))) {
            st = tg__error(TG_ENOMEM, "%s: out of memory", r->who);
            goto fail;
        }
        const unsigned char *src = r->p + p->state_pos;
        unsigned char *dst = state;
        for (size_t i = 0; i < p->state_bytes / es; i++) {
            uint64_t v = le(src + i * es, (int)es);
            if (es == 4) {
                uint32_t u = (uint32_t)v;
                memcpy(dst + 4 * i, &u, 4);
            } else {
                memcpy(dst + 8 * i, &v, 8);
            }
        }
    }
    if ((st = tg_optim_set_state(o, state, p->state_bytes, p->steps)) != TG_OK) {
        st = ferr(r, "the optimizer: %s", tg_last_error());
        goto fail;
    }
    tg__free(state, p->state_bytes);
    *model_out = m;
    *optim_out = o;
    return TG_OK;
fail:
    tg__free(state, p->state_bytes);
    tg_optim_free(o);
    tg_model_free(m);
    return st;
}

/* Where a load puts what it read. */
typedef struct outs {
    tg_model **model;
    tg_optim **optim;
    tg_checkpoint_progress *progress; /* may be NULL */
} outs;

/* A tg_io_parse_fn: ctx is the outs to fill. */
static tg_status load(const unsigned char *buf, size_t size, const char *who, void *ctx)
{
    const outs *o = ctx;
    reader r = {buf, size, 0, who, false};
    parsed p;
    memset(&p, 0, sizeof p);
    tg_status st = tg_io__check_header(&r, &FORMAT);
    if (st == TG_OK)
        st = parse_progress(&r, &p.progress);
    if (st == TG_OK)
        st = parse_optim(&r, &p);
    if (st == TG_OK)
        st = parse_model(&r, &p);
    if (st == TG_OK)
        st = build(&r, &p, o->model, o->optim);
    if (st == TG_OK && o->progress)
        *o->progress = p.progress;
    return st;
}

static tg_status check_outs(const char *who, tg_model **model, tg_optim **optim)
{
    if (model)
        *model = NULL;
    if (optim)
        *optim = NULL;
    if (!model || !optim)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, model ? "optim" : "model");
    return TG_OK;
}

tg_status tg_checkpoint_load_buffer(const void *buf, size_t size, tg_model **model,
                                    tg_optim **optim, tg_checkpoint_progress *progress)
{
    const char *who = "checkpoint_load_buffer";
    tg_status st = check_outs(who, model, optim);
    if (st != TG_OK)
        return st;
    return tg_io__load_buffer(who, buf, size, load, &(outs){model, optim, progress});
}

tg_status tg_checkpoint_load(const char *path, tg_model **model, tg_optim **optim,
                             tg_checkpoint_progress *progress)
{
    const char *who = "checkpoint_load";
    tg_status st = check_outs(who, model, optim);
    if (st != TG_OK)
        return st;
    if (!path)
        return tg__error(TG_EINVAL, "%s: path is NULL", who);
    return tg_io__load_file(who, path, MAX_FILE_BYTES, load, &(outs){model, optim, progress});
}

/* Options that change what a step does must match; the learning rate is taken from the file
 * (a schedule may have moved it). */
static const char *options_differ(const tg_optim_options *a, const tg_optim_options *b)
{
    if (a->kind != b->kind)
        return "optimizer";
    if (a->nesterov != b->nesterov)
        return "nesterov setting";
    if (a->momentum != b->momentum)
        return "momentum";
    if (a->beta1 != b->beta1 || a->beta2 != b->beta2)
        return "betas";
    if (a->eps != b->eps)
        return "eps";
    if (a->weight_decay != b->weight_decay)
        return "weight decay";
    return NULL;
}

tg_status tg_checkpoint_restore(const char *path, tg_model *model, tg_optim *optim,
                                tg_checkpoint_progress *progress)
{
    const char *who = "checkpoint_restore";
    if (!path || !model || !optim)
        return tg__error(TG_EINVAL, "%s: %s is NULL", who,
                         !path ? "path" : !model ? "model" : "optim");
    tg_checkpoint_progress p = TG_CHECKPOINT_PROGRESS_INIT;
    memset(&p.rng, 0xff, sizeof p.rng); /* any valid state: check_args only checks the optim */
    tg_status st = check_args(who, model, optim, &p);
    if (st != TG_OK)
        return st;
    tg_model *m;
    tg_optim *o;
    if ((st = tg_checkpoint_load(path, &m, &o, &p)) != TG_OK)
        return st;
    const tg_mlp_spec *want = tg_model_spec(model), *got = tg_model_spec(m);
    tg_optim_options ow, og;
    tg_optim_get_options(optim, &ow);
    tg_optim_get_options(o, &og);
    const char *diff = NULL;
    if (!tg_train__same_spec(want, got)) {
        char a[640], b[640];
        st = tg__error(TG_EINVAL, "%s: %s: the checkpoint's model (%s) is not this one (%s)",
                       who, path, tg_train__spec_text(got, b, sizeof b),
                       tg_train__spec_text(want, a, sizeof a));
    } else if ((diff = options_differ(&ow, &og)) != NULL) {
        st = tg__error(TG_EINVAL, "%s: %s: the checkpoint's %s differs from this optimizer's "
                                  "(%s, momentum %g, betas %g/%g, eps %g, weight decay %g there)",
                       who, path, diff, tg_optim_kind_name(og.kind), og.momentum, og.beta1,
                       og.beta2, og.eps, og.weight_decay);
    } else {
        /* Same spec and kind, so the sizes match and these cannot fail. */
        st = tg_optim_set_state(optim, tg_optim_state(o), tg_optim_state_size(o),
                                tg_optim_steps(o));
        TG_ASSERT(st == TG_OK);
        tg_optim_set_lr(optim, og.lr);
        memcpy(tg_model_param_data(model), tg_model_param_data(m),
               tg_model_numel(m) * tg_dtype_size(got->dtype));
        if (progress)
            *progress = p;
    }
    tg_optim_free(o);
    tg_model_free(m);
    return st;
}

/* dist.c: data-parallel training on MPI (tapegrad/dist.h): joining the job, broadcasting rank
 * 0's parameters, averaging the gradient block over the ranks, and checking that the ranks
 * still agree. Built without MPI (TG_HAVE_MPI undefined), every entry point says so with
 * TG_ENOTSUP. */
#include "core/core.h"
#include "train/train_internal.h"

#ifdef TG_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <xxhash.h>

/* Elements per MPI call: MPI counts are ints, and buckets this large cost nothing extra (a
 * model of 2^30 f32 parameters is 4 GiB). */
#define BUCKET ((size_t)1 << 30)

/* What every call exchanges before any data moves: which call it is, how many elements of
 * which type it will send or receive, and whether this rank is ready (it may have failed
 * alone, say out of memory). Fixed size, so this exchange cannot overflow whatever the other
 * ranks pass; everything after it moves sizes all ranks have agreed on. */
enum { HDR_CALL, HDR_COUNT, HDR_TYPE, HDR_OK, HDR_WORDS };

/* The calls, for the header's HDR_CALL (0 is none). */
enum {
    CALL_BROADCAST_PARAMS = 1,
    CALL_ALLREDUCE_GRADS,
    CALL_BROADCAST,
    CALL_ALLREDUCE_SUM,
    CALL_CHECK_PARAMS,
    CALL_BARRIER,
    CALL_CHECK_TRAINER,
    CALL_COUNT
};
static const char *const CALL_NAMES[CALL_COUNT] = {
    "?",
    "dist_broadcast_params",
    "dist_allreduce_grads",
    "dist_broadcast",
    "dist_allreduce_sum",
    "dist_check_params",
    "dist_barrier",
    "dist_check_trainer",
};

/* The header's HDR_TYPE: a tg_dtype, or these. */
enum { TYPE_BYTES = 100, TYPE_HASH, TYPE_SETTINGS };

/* Words per rank of the scratch block: enough for a header, a hash, or a trainer's settings
 * record and its statistics verdict. */
#define SCRATCH_WORDS                                                                              \
    ((int)TG_TRAIN__SETTINGS_WORDS > (int)HDR_WORDS ? (size_t)TG_TRAIN__SETTINGS_WORDS             \
                                                    : (size_t)HDR_WORDS)

struct tg_dist {
    MPI_Comm comm; /* a duplicate of MPI_COMM_WORLD, with MPI_ERRORS_RETURN */
    int rank, size;
    uint64_t *scratch; /* size * SCRATCH_WORDS: what the allgathers gather into, allocated
                        * once so that no call fails alone between collectives */
    bool broken;       /* an MPI call on comm failed: the ranks may be out of step for good */
};

/* Handles alive, and whether the library started MPI (then the last free finalizes it).
 * Guarded by the documented rule that init and free are called from one thread. */
static int live_handles;
static bool we_initialized;

/* One handle fewer: the last one finalizes MPI if the library started it. */
static void release_handle(void)
{
    if (--live_handles == 0 && we_initialized) {
        MPI_Finalize();
        we_initialized = false;
    }
}

/* TG_EIO naming the call and MPI's reason, for an MPI return code `rc` != MPI_SUCCESS. */
static tg_status mpi_error(const char *who, const char *call, int rc)
{
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        len = snprintf(msg, sizeof msg, "MPI error %d", rc);
    msg[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
    return tg__error(TG_EIO, "%s: %s failed: %s", who, call, msg);
}

/* mpi_error for a call on d's communicator, which then no longer counts as in step: MPI
 * reports an error to the rank that saw it, not to every rank alike. */
static tg_status comm_error(tg_dist *d, const char *who, const char *call, int rc)
{
    d->broken = true;
    return mpi_error(who, call, rc);
}

bool tg_dist_available(void)
{
    return true;
}

bool tg_dist_in_step(const tg_dist *dist)
{
    return dist && !dist->broken;
}

tg_status tg_dist_init(tg_dist **out)
{
    const char *who = "dist_init";
    if (!out)
        return tg__error(TG_EINVAL, "%s: out is NULL", who);
    *out = NULL;
    int flag = 0;
    MPI_Finalized(&flag);
    if (flag)
        return tg__error(TG_EIO,
                         "%s: MPI was already finalized in this process (it cannot be "
                         "started twice)",
                         who);
    MPI_Initialized(&flag);
    if (!flag) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return tg__error(TG_EIO, "%s: MPI_Init_thread failed (code %d)", who, rc);
        we_initialized = true;
    }
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tg_dist *d = tg__calloc(1, sizeof *d);
    uint64_t *scratch =
        d && size > 0 ? tg__calloc((size_t)size * SCRATCH_WORDS, sizeof *scratch) : NULL;
    if (!scratch) {
        tg__free(d, sizeof *d);
        d = NULL;
    } else {
        d->scratch = scratch;
        d->size = size;
    }
    live_handles++;
    /* Every rank makes the collective calls, whether or not its allocations succeeded, then
     * they share the outcome: a rank that failed alone must not leave the others waiting.
     * The duplicate returns errors instead of aborting (the world communicator's default), and
     * the caller's communicators keep their own handlers. */
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0, first_failed = size;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    tg_status st = TG_OK;
    if (rc != MPI_SUCCESS)
        st = mpi_error(who, "MPI_Comm_dup", rc);
    else if ((rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS)
        st = mpi_error(who, "MPI_Comm_set_errhandler", rc);
    else if ((rc = MPI_Comm_rank(comm, &rank)) != MPI_SUCCESS)
        st = mpi_error(who, "MPI_Comm_rank", rc);
    else {
        int failed_here = d ? size : rank;
        rc = MPI_Allreduce(&failed_here, &first_failed, 1, MPI_INT, MPI_MIN, comm);
        if (rc != MPI_SUCCESS)
            st = mpi_error(who, "MPI_Allreduce", rc);
        else if (!d)
            st = tg__error(TG_ENOMEM, "%s: out of memory", who);
        else if (first_failed < size)
            st = tg__error(TG_EIO, "%s: rank %d ran out of memory", who, first_failed);
    }
    if (st != TG_OK) {
        if (comm != MPI_COMM_NULL)
            MPI_Comm_free(&comm);
        if (d) {
            d->comm = MPI_COMM_NULL;
            tg_dist_free(d);
        } else {
            release_handle();
        }
        return st;
    }
    d->comm = comm;
    d->rank = rank;
    *out = d;
    return TG_OK;
}

void tg_dist_free(tg_dist *dist)
{
    if (!dist)
        return;
    /* After the caller's MPI_Finalize, MPI has released the communicator itself, and freeing
     * it would abort the process. */
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (dist->comm != MPI_COMM_NULL && !finalized)
        MPI_Comm_free(&dist->comm);
    tg__free(dist->scratch, (size_t)dist->size * SCRATCH_WORDS * sizeof *dist->scratch);
    tg__free(dist, sizeof *dist);
    release_handle();
}

int tg_dist_rank(const tg_dist *dist)
{
    return dist ? dist->rank : 0;
}

int tg_dist_size(const tg_dist *dist)
{
    return dist ? dist->size : 1;
}

static MPI_Datatype mpi_type(tg_dtype dtype)
{
    return dtype == TG_F64 ? MPI_DOUBLE : MPI_FLOAT;
}

static const char *type_name(uint64_t type)
{
    return type == TYPE_BYTES      ? "bytes"
           : type == TYPE_HASH     ? "hashes"
           : type == TYPE_SETTINGS ? "words of settings"
           : type == TG_F32        ? "f32 elements"
           : type == TG_F64        ? "f64 elements"
                                   : "elements of an unknown type";
}

static const char *call_name(uint64_t call)
{
    return call < CALL_COUNT ? CALL_NAMES[call] : "?";
}

/* The exchange every call starts with (see HDR_*): gathers every rank's header and compares
 * them with rank 0's. Every rank sees the same headers, so every rank comes to the same
 * verdict: TG_OK when all are ready for the same call with the same count and type; else
 * TG_EINVAL naming the first rank that differs and both values (TG_EIO when a rank failed
 * alone before the exchange; that rank returns `mine`, its own status, with its message). */
static tg_status agree(tg_dist *d, int call, uint64_t count, uint64_t type, tg_status mine)
{
    const char *who = CALL_NAMES[call];
    /* After an MPI error the others may still wait in the call that failed: a new one could
     * pair with it, or wait for ever. */
    if (d->broken)
        return tg__error(TG_EIO,
                         "%s: an MPI call failed on this rank before; the ranks may be out of "
                         "step (end the job with tg_dist_abort)",
                         who);
    uint64_t hdr[HDR_WORDS] = {(uint64_t)call, count, type, mine == TG_OK};
    uint64_t *all = d->scratch;
    int rc = MPI_Allgather(hdr, HDR_WORDS, MPI_UINT64_T, all, HDR_WORDS, MPI_UINT64_T, d->comm);
    if (rc != MPI_SUCCESS)
        return comm_error(d, who, "MPI_Allgather", rc);
    if (mine != TG_OK)
        return mine;
    for (int r = 0; r < d->size; r++) {
        const uint64_t *h = all + (size_t)r * HDR_WORDS;
        if (!h[HDR_OK])
            return tg__error(TG_EIO,
                             "%s: rank %d failed before the exchange (its own message "
                             "says why)",
                             who, r);
    }
    for (int r = 1; r < d->size; r++) {
        const uint64_t *h0 = all, *h = all + (size_t)r * HDR_WORDS;
        if (h[HDR_CALL] != h0[HDR_CALL])
            return tg__error(TG_EINVAL,
                             "%s: the ranks are out of step: rank 0 called %s, rank %d called %s "
                             "(every rank must make the same calls in the same order)",
                             who, call_name(h0[HDR_CALL]), r, call_name(h[HDR_CALL]));
        if (h[HDR_COUNT] != h0[HDR_COUNT] || h[HDR_TYPE] != h0[HDR_TYPE])
            return tg__error(TG_EINVAL,
                             "%s: ranks disagree on the size: rank 0 has %llu %s, rank %d has "
                             "%llu %s (nothing was sent)",
                             who, (unsigned long long)h0[HDR_COUNT], type_name(h0[HDR_TYPE]), r,
                             (unsigned long long)h[HDR_COUNT], type_name(h[HDR_TYPE]));
    }
    return TG_OK;
}

/* TG_EINVAL for a NULL handle: there is no communicator to tell the other ranks on. */
static tg_status null_dist(const char *who)
{
    return tg__error(TG_EINVAL, "%s: dist is NULL", who);
}

/* TG_EINVAL for another NULL argument. The call still joins the exchange with it (agree's
 * `mine`), so the other ranks fail with it, naming this rank, instead of pairing this call
 * with this rank's next one. */
static tg_status null_arg(const char *who, const char *what)
{
    return tg__error(TG_EINVAL, "%s: %s is NULL", who, what);
}

/* The spec as fixed-width integers, for comparing architectures across ranks. */
#define SPEC_WORDS (3 + 2 * TG_MLP_MAX_LAYERS + 1)
static void spec_words(const tg_mlp_spec *s, uint64_t *w)
{
    memset(w, 0, SPEC_WORDS * sizeof *w);
    w[0] = (uint64_t)s->dtype;
    w[1] = (uint64_t)s->n_layers;
    for (int i = 0; i <= s->n_layers; i++)
        w[2 + i] = s->sizes[i];
    for (int i = 0; i < s->n_layers; i++)
        w[3 + TG_MLP_MAX_LAYERS + i] = (uint64_t)s->act[i];
}

/* A spec's words as text, "f32 5 -> 7 (tanh) -> 1 (identity)": what two ranks' specs can
 * differ in, for the message that names both. */
static void spec_format(char *buf, size_t size, const uint64_t *w)
{
    int n = snprintf(buf, size, "%s", tg_dtype_name((tg_dtype)w[0]));
    uint64_t layers = w[1] < TG_MLP_MAX_LAYERS ? w[1] : TG_MLP_MAX_LAYERS;
    for (uint64_t i = 0; i <= layers && n >= 0 && (size_t)n < size; i++) {
        n += snprintf(buf + n, size - (size_t)n, "%s%llu", i ? " -> " : " ",
                      (unsigned long long)w[2 + i]);
        if (i > 0 && n >= 0 && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, " (%s)",
                          tg_activation_name((tg_activation)w[3 + TG_MLP_MAX_LAYERS + i - 1]));
    }
}

tg_status tg_dist_broadcast_params(tg_dist *dist, tg_model *model)
{
    const char *who = "dist_broadcast_params";
    if (!dist)
        return null_dist(who);
    /* Rank 0's spec first, so a rank with another architecture fails before any data moves;
     * then the first rank whose spec differs, so every rank can name both. */
    tg_status st = agree(dist, CALL_BROADCAST_PARAMS, SPEC_WORDS, TYPE_BYTES,
                         model ? TG_OK : null_arg(who, "model"));
    if (st != TG_OK)
        return st;
    const tg_mlp_spec *s = tg_model_spec(model);
    uint64_t mine[SPEC_WORDS], root[SPEC_WORDS];
    spec_words(s, mine);
    memcpy(root, mine, sizeof root);
    int rc = MPI_Bcast(root, SPEC_WORDS, MPI_UINT64_T, 0, dist->comm);
    if (rc != MPI_SUCCESS)
        return comm_error(dist, who, "MPI_Bcast", rc);
    int differs = memcmp(root, mine, sizeof root) != 0 ? dist->rank : dist->size, first = 0;
    rc = MPI_Allreduce(&differs, &first, 1, MPI_INT, MPI_MIN, dist->comm);
    if (rc != MPI_SUCCESS)
        return comm_error(dist, who, "MPI_Allreduce", rc);
    if (first < dist->size) {
        uint64_t other[SPEC_WORDS];
        memcpy(other, mine, sizeof other);
        if ((rc = MPI_Bcast(other, SPEC_WORDS, MPI_UINT64_T, first, dist->comm)) != MPI_SUCCESS)
            return comm_error(dist, who, "MPI_Bcast", rc);
        char a[512], b[512];
        spec_format(a, sizeof a, other);
        spec_format(b, sizeof b, root);
        return tg__error(TG_EINVAL,
                         "%s: rank %d's model (%s) differs from rank 0's (%s); nothing was sent",
                         who, first, a, b);
    }
    size_t n = tg_model_numel(model), es = tg_dtype_size(s->dtype);
    unsigned char *p = tg_model_param_data(model);
    for (size_t off = 0; off < n; off += BUCKET) {
        size_t count = n - off < BUCKET ? n - off : BUCKET;
        rc = MPI_Bcast(p + off * es, (int)count, mpi_type(s->dtype), 0, dist->comm);
        if (rc != MPI_SUCCESS)
            return comm_error(dist, who, "MPI_Bcast", rc);
    }
    return TG_OK;
}

tg_status tg_dist_allreduce_grads(tg_dist *dist, tg_model *model)
{
    const char *who = "dist_allreduce_grads";
    if (!dist)
        return null_dist(who);
    tg_dtype dt = model ? tg_model_spec(model)->dtype : TG_F32;
    size_t n = model ? tg_model_numel(model) : 0, es = tg_dtype_size(dt);
    tg_status st =
        agree(dist, CALL_ALLREDUCE_GRADS, n, (uint64_t)dt, model ? TG_OK : null_arg(who, "model"));
    if (st != TG_OK)
        return st;
    unsigned char *g = tg_model_grad_data(model);
    for (size_t off = 0; off < n; off += BUCKET) {
        size_t count = n - off < BUCKET ? n - off : BUCKET;
        int rc = MPI_Allreduce(MPI_IN_PLACE, g + off * es, (int)count, mpi_type(dt), MPI_SUM,
                               dist->comm);
        if (rc != MPI_SUCCESS)
            return comm_error(dist, who, "MPI_Allreduce", rc);
    }
    if (dist->size > 1) {
        /* The sum is the same bits on every rank, and so is this product. */
        if (dt == TG_F64) {
            double *d = tg_model_grad_data(model), inv = 1.0 / dist->size;
            for (size_t i = 0; i < n; i++)
                d[i] *= inv;
        } else {
            float *f = tg_model_grad_data(model), inv = 1.0f / (float)dist->size;
            for (size_t i = 0; i < n; i++)
                f[i] *= inv;
        }
    }
    return TG_OK;
}

tg_status tg_dist_broadcast(tg_dist *dist, void *data, size_t bytes)
{
    const char *who = "dist_broadcast";
    if (!dist)
        return null_dist(who);
    tg_status st = agree(dist, CALL_BROADCAST, bytes, TYPE_BYTES,
                         data || !bytes ? TG_OK : null_arg(who, "data"));
    if (st != TG_OK)
        return st;
    unsigned char *p = data;
    for (size_t off = 0; off < bytes; off += BUCKET) {
        size_t count = bytes - off < BUCKET ? bytes - off : BUCKET;
        int rc = MPI_Bcast(p + off, (int)count, MPI_BYTE, 0, dist->comm);
        if (rc != MPI_SUCCESS)
            return comm_error(dist, who, "MPI_Bcast", rc);
    }
    return TG_OK;
}

tg_status tg_dist_allreduce_sum(tg_dist *dist, double *data, size_t n)
{
    const char *who = "dist_allreduce_sum";
    if (!dist)
        return null_dist(who);
    tg_status st =
        agree(dist, CALL_ALLREDUCE_SUM, n, TG_F64, data || !n ? TG_OK : null_arg(who, "data"));
    if (st != TG_OK)
        return st;
    for (size_t off = 0; off < n; off += BUCKET) {
        size_t count = n - off < BUCKET ? n - off : BUCKET;
        int rc =
            MPI_Allreduce(MPI_IN_PLACE, data + off, (int)count, MPI_DOUBLE, MPI_SUM, dist->comm);
        if (rc != MPI_SUCCESS)
            return comm_error(dist, who, "MPI_Allreduce", rc);
    }
    return TG_OK;
}

tg_status tg_dist_check_params(tg_dist *dist, const tg_model *model, uint64_t *hash)
{
    const char *who = "dist_check_params";
    if (hash)
        *hash = 0;
    if (!dist)
        return null_dist(who);
    tg_status st =
        agree(dist, CALL_CHECK_PARAMS, 1, TYPE_HASH, model ? TG_OK : null_arg(who, "model"));
    if (st != TG_OK)
        return st;
    size_t bytes = tg_model_numel(model) * tg_dtype_size(tg_model_spec(model)->dtype);
    /* (the block starts at parameter 0; tg_model_param_data would count as a write) */
    uint64_t h = XXH3_64bits(tg_tensor_data_const(tg_model_param(model, 0)), bytes);
    if (hash)
        *hash = h;
    uint64_t *all = dist->scratch;
    int rc = MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, dist->comm);
    if (rc != MPI_SUCCESS) {
        st = comm_error(dist, who, "MPI_Allgather", rc);
    } else {
        char msg[512];
        int len = 0, bad = 0;
        for (int r = 1; r < dist->size; r++) {
            if (all[r] == all[0])
                continue;
            if (bad++ < 4 && len >= 0 && (size_t)len < sizeof msg)
                len += snprintf(msg + len, sizeof msg - (size_t)len, "%s rank %d (0x%016llx)",
                                bad > 1 ? "," : "", r, (unsigned long long)all[r]);
        }
        if (bad)
            st = tg__error(TG_ENUMERIC,
                           "%s: the parameters of %d of %d ranks differ from rank 0's "
                           "(0x%016llx):%s%s",
                           who, bad, dist->size, (unsigned long long)all[0], msg,
                           bad > 4 ? ", ..." : "");
    }
    return st;
}

/* The settings records of all ranks, gathered into dist->scratch, against rank 0's. */
static tg_status compare_settings(tg_dist *d, const uint64_t *all)
{
    enum { W = TG_TRAIN__SETTINGS_WORDS };
    for (int r = 0; r < d->size; r++) {
        const uint64_t *w = all + (size_t)r * W;
        if (w[TG_TRAIN__RANK] != (uint64_t)r || w[TG_TRAIN__WORLD] != (uint64_t)d->size)
            return tg__error(TG_EINVAL,
                             "train: rank %d's trainer was made as rank %llu of %llu, but the "
                             "job has %d ranks (set the options' rank and world from "
                             "tg_dist_rank and tg_dist_size)",
                             r, (unsigned long long)w[TG_TRAIN__RANK],
                             (unsigned long long)w[TG_TRAIN__WORLD], d->size);
    }
    for (int r = 1; r < d->size; r++) {
        const uint64_t *w = all + (size_t)r * W;
        int f = tg_train__settings_diff(all, w, TG_TRAIN__RANKS, true);
        if (f < 0)
            continue;
        char a[128], b[128];
        tg_train__setting_text(f, all, a, sizeof a);
        tg_train__setting_text(f, w, b, sizeof b);
        return tg__error(TG_EINVAL, "train: ranks disagree on %s: rank 0 has %s, rank %d has %s",
                         tg_train__setting_name(f), a, r, b);
    }
    return TG_OK;
}

/* The standardization statistics (n features: the same on every rank, compared before) of
 * every rank against rank 0's, which are broadcast; each rank then shares the first feature
 * where it differs, with its values, so every rank can name them. */
static tg_status compare_stats(tg_dist *d, const tg_trainer *t, size_t n)
{
    const char *who = "dist_check_trainer";
    tg_model *m = tg_trainer_model((tg_trainer *)t);
    size_t have = 0;
    const double *mean = NULL, *std = NULL;
    tg_model_standardization(m, &have, &mean, &std);
    size_t bytes = 2 * n * sizeof(double);
    double *root = have == n ? tg__malloc(bytes + 1) : NULL;
    tg_status st = root        ? TG_OK
                   : have != n ? tg__error(TG_EINVAL,
                                           "%s: the trainer's model standardizes %zu of %zu "
                                           "features",
                                           who, have, n)
                               : tg__error(TG_ENOMEM, "%s: out of memory", who);
    st = agree(d, CALL_CHECK_TRAINER, 2 * n, TG_F64, st);
    if (st != TG_OK) {
        tg__free(root, bytes + 1);
        return st;
    }
    memcpy(root, mean, n * sizeof *root);
    memcpy(root + n, std, n * sizeof *root);
    int rc = MPI_SUCCESS;
    const char *call = "MPI_Bcast"; /* the one that failed, if one did */
    for (size_t off = 0; off < 2 * n && rc == MPI_SUCCESS; off += BUCKET) {
        size_t count = 2 * n - off < BUCKET ? 2 * n - off : BUCKET;
        rc = MPI_Bcast(root + off, (int)count, MPI_DOUBLE, 0, d->comm);
    }
    size_t i = rc == MPI_SUCCESS ? tg_train__stats_diff(n, root, root + n, mean, std) : 0;
    uint64_t verdict[3] = {(uint64_t)i, 0, 0};
    if (i != (size_t)-1 && i < n) {
        memcpy(&verdict[1], &mean[i], sizeof verdict[1]);
        memcpy(&verdict[2], &std[i], sizeof verdict[2]);
    }
    if (rc == MPI_SUCCESS) {
        call = "MPI_Allgather";
        rc = MPI_Allgather(verdict, 3, MPI_UINT64_T, d->scratch, 3, MPI_UINT64_T, d->comm);
    }
    if (rc != MPI_SUCCESS) {
        tg__free(root, bytes + 1);
        return comm_error(d, who, call, rc);
    }
    for (int r = 1; r < d->size; r++) {
        const uint64_t *v = d->scratch + 3 * (size_t)r;
        if (v[0] == (uint64_t)(size_t)-1 || v[0] >= n)
            continue;
        double rm, rs;
        memcpy(&rm, &v[1], sizeof rm);
        memcpy(&rs, &v[2], sizeof rs);
        char name[256];
        tg_train__feature_text(m, (size_t)v[0], name, sizeof name);
        st = tg__error(TG_EINVAL,
                       "train: ranks disagree on the standardization statistics of %s: rank 0 "
                       "has mean %.17g, std %.17g; rank %d has mean %.17g, std %.17g (every rank "
                       "must read the same data)",
                       name, root[v[0]], root[n + v[0]], r, rm, rs);
        break;
    }
    tg__free(root, bytes + 1);
    return st;
}

tg_status tg_dist_check_trainer(tg_dist *dist, const tg_trainer *trainer)
{
    const char *who = "dist_check_trainer";
    enum { W = TG_TRAIN__SETTINGS_WORDS };
    if (!dist)
        return null_dist(who);
    tg_status st = agree(dist, CALL_CHECK_TRAINER, W, TYPE_SETTINGS,
                         trainer ? TG_OK : null_arg(who, "trainer"));
    if (st != TG_OK)
        return st;
    uint64_t mine[W];
    tg_train__settings(trainer, mine);
    uint64_t *all = dist->scratch;
    int rc = MPI_Allgather(mine, W, MPI_UINT64_T, all, W, MPI_UINT64_T, dist->comm);
    if (rc != MPI_SUCCESS)
        return comm_error(dist, who, "MPI_Allgather", rc);
    if ((st = compare_settings(dist, all)) != TG_OK)
        return st;
    /* The data hashes, kept before the scratch block is reused. */
    int other = -1;
    uint64_t h0 = all[TG_TRAIN__DATA_HASH], hr = 0;
    for (int r = 1; r < dist->size && other < 0; r++)
        if (all[(size_t)r * W + TG_TRAIN__DATA_HASH] != h0)
            other = r, hr = all[(size_t)r * W + TG_TRAIN__DATA_HASH];
    if ((st = compare_stats(dist, trainer, (size_t)mine[TG_TRAIN__FEATURES])) != TG_OK)
        return st;
    if (other >= 0)
        return tg__error(TG_EINVAL,
                         "train: ranks disagree on the data: rank 0's rows hash to 0x%016llx, "
                         "rank %d's to 0x%016llx (the same statistics, but other rows or another "
                         "order: every rank must read the same data)",
                         (unsigned long long)h0, other, (unsigned long long)hr);
    return TG_OK;
}

tg_status tg_dist_abort(tg_dist *dist, int code)
{
    if (!dist)
        return null_dist("dist_abort");
    int rc = MPI_Abort(dist->comm, code);
    return comm_error(dist, "dist_abort", "MPI_Abort", rc);
}

tg_status tg_dist_barrier(tg_dist *dist)
{
    if (!dist)
        return null_dist("dist_barrier");
    tg_status st = agree(dist, CALL_BARRIER, 0, TYPE_BYTES, TG_OK);
    if (st != TG_OK)
        return st;
    int rc = MPI_Barrier(dist->comm);
    return rc == MPI_SUCCESS ? TG_OK : comm_error(dist, "dist_barrier", "MPI_Barrier", rc);
}

#else /* built without MPI */

static tg_status no_mpi(const char *who)
{
    return tg__error(TG_ENOTSUP,
                     "%s: tapegrad was built without MPI, so distributed training is not "
                     "available (install libopenmpi-dev and configure with -DTG_MPI=ON)",
                     who);
}

bool tg_dist_available(void)
{
    return false;
}

tg_status tg_dist_init(tg_dist **out)
{
    if (out)
        *out = NULL;
    return no_mpi("dist_init");
}

void tg_dist_free(tg_dist *dist)
{
    TG_UNUSED(dist);
}

int tg_dist_rank(const tg_dist *dist)
{
    TG_UNUSED(dist);
    return 0;
}

int tg_dist_size(const tg_dist *dist)
{
    TG_UNUSED(dist);
    return 1;
}

tg_status tg_dist_broadcast_params(tg_dist *dist, tg_model *model)
{
    TG_UNUSED(dist), TG_UNUSED(model);
    return no_mpi("dist_broadcast_params");
}

tg_status tg_dist_allreduce_grads(tg_dist *dist, tg_model *model)
{
    TG_UNUSED(dist), TG_UNUSED(model);
    return no_mpi("dist_allreduce_grads");
}

tg_status tg_dist_broadcast(tg_dist *dist, void *data, size_t bytes)
{
    TG_UNUSED(dist), TG_UNUSED(data), TG_UNUSED(bytes);
    return no_mpi("dist_broadcast");
}

tg_status tg_dist_allreduce_sum(tg_dist *dist, double *data, size_t n)
{
    TG_UNUSED(dist), TG_UNUSED(data), TG_UNUSED(n);
    return no_mpi("dist_allreduce_sum");
}

tg_status tg_dist_check_params(tg_dist *dist, const tg_model *model, uint64_t *hash)
{
    TG_UNUSED(dist), TG_UNUSED(model);
    if (hash)
        *hash = 0;
    return no_mpi("dist_check_params");
}

tg_status tg_dist_check_trainer(tg_dist *dist, const tg_trainer *trainer)
{
    TG_UNUSED(dist), TG_UNUSED(trainer);
    return no_mpi("dist_check_trainer");
}

bool tg_dist_in_step(const tg_dist *dist)
{
    TG_UNUSED(dist);
    return false;
}

tg_status tg_dist_abort(tg_dist *dist, int code)
{
    TG_UNUSED(dist), TG_UNUSED(code);
    return no_mpi("dist_abort");
}

tg_status tg_dist_barrier(tg_dist *dist)
{
    TG_UNUSED(dist);
    return no_mpi("dist_barrier");
}

#endif

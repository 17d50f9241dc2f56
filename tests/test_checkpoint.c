/* test_checkpoint.c: checkpoints (docs/checkpoint-format.md): bit-exact round trips through
 * buffers and files; the documented offsets; every truncation and every single-byte flip
 * detected; forged files with a valid checksum but bad fields rejected with a message;
 * training resumed from a checkpoint matches an uninterrupted run bit for bit for every
 * optimizer and dtype; restoring optimizer state; I/O and out-of-memory paths; a trainer
 * stopped mid-epoch and resumed; `tapegrad train` killed with SIGKILL mid-run and resumed
 * with --resume ends bit-identical to a run that never stopped. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "support/helpers.h"
#include "support/oom.h"
#include "support/proc.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

/* 3 -> 4 (tanh) -> 2, with metadata, so the embedded model file carries everything. */
static tg_model *small_model(tg_dtype dt, uint64_t seed)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2, s.sizes[0] = 3, s.sizes[1] = 4, s.sizes[2] = 2;
    s.act[0] = TG_ACT_TANH, s.act[1] = TG_ACT_IDENTITY, s.dtype = dt;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK, "%s",
                 tg_last_error());
    const double mean[3] = {1, 2, 3}, std[3] = {0.5, 1, 2};
    cr_assert_eq(tg_model_set_standardization(m, 3, mean, std), TG_OK);
    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 2), TG_OK);
    return m;
}

static tg_optim *make_optim(tg_model *m, tg_optim_kind kind)
{
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = kind;
    o.lr = kind >= TG_OPTIM_ADAM ? 0.01 : 0.05;
    o.weight_decay = 1e-3;
    if (kind == TG_OPTIM_MOMENTUM)
        o.nesterov = true;
    tg_tensor *ps[2 * TG_MLP_MAX_LAYERS];
    size_t n = tg_model_param_count(m);
    for (size_t i = 0; i < n; i++)
        ps[i] = tg_model_param(m, i);
    tg_optim *opt;
    cr_assert_eq(tg_optim_new(&o, ps, n, &opt), TG_OK, "%s", tg_last_error());
    return opt;
}

/* One training step on a batch that depends only on `step`: the data of step k is the same
 * whichever process runs it, as a resumed run needs. */
static void train_step(tg_model *m, tg_optim *o, tg_tape *tape, uint64_t step)
{
    tg_dtype dt = tg_model_spec(m)->dtype;
    double x[8 * 3], y[8];
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + step);
    for (int i = 0; i < 8 * 3; i++)
        x[i] = tg_rng_normal(&rng);
    for (int i = 0; i < 8; i++)
        y[i] = (double)(x[3 * i] + x[3 * i + 1] > 0);
    tg_tensor *xb = ts_mat(dt, 8, 3, x, false), *yb = ts_vec(dt, 8, y, false);
    tg_model_zero_grad(m);
    tg_tensor *loss = tg_cross_entropy(tape, tg_model_forward(tape, m, xb), yb);
    cr_assert(loss && tg_backward(tape, loss) == TG_OK, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_optim_step(o), TG_OK);
    tg_tape_reset(tape);
    tg_tensor_free(xb);
    tg_tensor_free(yb);
}

static void train(tg_model *m, tg_optim *o, uint64_t from, uint64_t to)
{
    tg_tape *tape = tg_tape_new();
    for (uint64_t s = from; s < to; s++)
        train_step(m, o, tape, s);
    tg_tape_free(tape);
}

static tg_checkpoint_progress some_progress(void)
{
    tg_checkpoint_progress p = TG_CHECKPOINT_PROGRESS_INIT;
    p.epoch = 3, p.batch = 7, p.step = 123, p.world_size = 2;
    p.seed = 42, p.batch_size = 32, p.test_split = 0.25, p.clip_norm = 1.5;
    p.train_rows = 120, p.test_rows = 40, p.data_hash = UINT64_C(0x0123456789abcdef);
    tg_rng_seed(&p.rng, 99);
    tg_rng_next(&p.rng);
    return p;
}

static size_t param_bytes(const tg_model *m)
{
    return tg_model_numel(m) * tg_dtype_size(tg_model_spec(m)->dtype);
}

static void assert_same(tg_model *a, tg_optim *oa, tg_model *b, tg_optim *ob)
{
    cr_assert_eq(memcmp(tg_model_spec(a), tg_model_spec(b), sizeof(tg_mlp_spec)), 0);
    cr_assert_eq(memcmp(tg_model_param_data(a), tg_model_param_data(b), param_bytes(a)), 0,
                 "parameters differ");
    tg_optim_options x, y;
    tg_optim_get_options(oa, &x);
    tg_optim_get_options(ob, &y);
    cr_assert(x.kind == y.kind && x.nesterov == y.nesterov && x.lr == y.lr &&
              x.momentum == y.momentum && x.beta1 == y.beta1 && x.beta2 == y.beta2 &&
              x.eps == y.eps && x.weight_decay == y.weight_decay);
    cr_assert_eq(tg_optim_steps(oa), tg_optim_steps(ob));
    cr_assert_eq(tg_optim_state_size(oa), tg_optim_state_size(ob));
    if (tg_optim_state_size(oa))
        cr_assert_eq(memcmp(tg_optim_state(oa), tg_optim_state(ob), tg_optim_state_size(oa)), 0,
                     "optimizer state differs");
    /* The loaded optimizer updates the loaded model's parameters. */
    for (size_t i = 0; i < tg_model_param_count(b); i++)
        cr_assert_eq(tg_optim_param(ob, i), tg_model_param(b, i));
}

static void save_buf(tg_model *m, tg_optim *o, const tg_checkpoint_progress *p,
                     unsigned char **buf, size_t *size)
{
    void *v;
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, p, &v, size), TG_OK, "%s", tg_last_error());
    *buf = v;
}

/* A small model and optimizer trained `steps` steps, some_progress(), and the checkpoint of
 * the three in a buffer: what the format tests take apart. */
typedef struct trained {
    tg_model *m;
    tg_optim *o;
    tg_checkpoint_progress p;
    unsigned char *buf;
    size_t size;
} trained;

static trained save_trained(tg_dtype dt, uint64_t seed, tg_optim_kind kind, uint64_t steps)
{
    trained s = {.m = small_model(dt, seed), .p = some_progress()};
    s.o = make_optim(s.m, kind);
    train(s.m, s.o, 0, steps);
    save_buf(s.m, s.o, &s.p, &s.buf, &s.size);
    return s;
}

static void trained_free(trained *s)
{
    tg_checkpoint_buffer_free(s->buf, s->size);
    tg_optim_free(s->o);
    tg_model_free(s->m);
}

static void expect_format_error(const unsigned char *buf, size_t size, const char *needle,
                                const char *what)
{
    tg_model *m = (tg_model *)&m;
    tg_optim *o = (tg_optim *)&o;
    tg_status st = tg_checkpoint_load_buffer(buf, size, &m, &o, NULL);
    cr_assert_eq(st, TG_EFORMAT, "%s: status %s, message: %s", what, tg_status_name(st),
                 tg_last_error());
    cr_assert(m == NULL && o == NULL, "%s: nothing is returned", what);
    ts_assert_has(tg_last_error(), "checkpoint_load_buffer: ");
    if (needle)
        ts_assert_has(tg_last_error(), needle);
}

static void reseal(unsigned char *buf, size_t size)
{
    ts_put_le(buf + size - 8, XXH3_64bits(buf, size - 8), 8);
}

static char tmpdir[64];
static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg_checkpoint_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static const tg_optim_kind KINDS[4] = {TG_OPTIM_SGD, TG_OPTIM_MOMENTUM, TG_OPTIM_ADAM,
                                       TG_OPTIM_ADAMW};

/* ---- round trips ---------------------------------------------------------------------------- */

Test(checkpoint, round_trip_buffer_bit_exact)
{
    for (int dt = 0; dt < 2; dt++) {
        for (int k = 0; k < 4; k++) {
            tg_model *m = small_model((tg_dtype)dt, 5);
            tg_optim *o = make_optim(m, KINDS[k]);
            train(m, o, 0, 3);
            tg_checkpoint_progress p = some_progress(), back_p;
            unsigned char *buf;
            size_t size;
            save_buf(m, o, &p, &buf, &size);
            tg_model *m2;
            tg_optim *o2;
            cr_assert_eq(tg_checkpoint_load_buffer(buf, size, &m2, &o2, &back_p), TG_OK, "%s",
                         tg_last_error());
            assert_same(m, o, m2, o2);
            cr_assert_eq(memcmp(&p, &back_p, sizeof p), 0, "progress differs");
            /* Metadata travels with the model. */
            size_t n;
            const double *mean, *sd;
            tg_model_standardization(m2, &n, &mean, &sd);
            cr_assert(n == 3 && mean[2] == 3 && sd[0] == 0.5);
            /* Saving what was loaded gives the same bytes. */
            unsigned char *again;
            size_t size2;
            save_buf(m2, o2, &back_p, &again, &size2);
            cr_assert(size2 == size && memcmp(buf, again, size) == 0);
            tg_checkpoint_buffer_free(buf, size);
            tg_checkpoint_buffer_free(again, size2);
            tg_optim_free(o);
            tg_optim_free(o2);
            tg_model_free(m);
            tg_model_free(m2);
        }
    }
}

Test(checkpoint, documented_layout)
{
    trained s = save_trained(TG_F32, 5, TG_OPTIM_ADAM, 2);
    size_t numel = tg_model_numel(s.m), S = 2 * numel * 4;
    cr_assert_eq(memcmp(s.buf, "TGCKPT\0\0", 8), 0);
    cr_assert_eq(ts_get_le(s.buf + 8, 4), 3);
    cr_assert_eq(ts_get_le(s.buf + 12, 4), 0);
    cr_assert_eq(ts_get_le(s.buf + 16, 8), s.size);
    cr_assert_eq(ts_get_le(s.buf + 24, 8), 3);
    cr_assert_eq(ts_get_le(s.buf + 32, 8), 7);
    cr_assert_eq(ts_get_le(s.buf + 40, 8), 123);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ts_get_le(s.buf + 48 + 8 * i, 8), s.p.rng.s[i]);
    cr_assert_eq(ts_get_le(s.buf + 80, 4), 2);
    /* The run's settings. */
    double split = 0.25, clip = 1.5;
    uint64_t split_bits, clip_bits;
    memcpy(&split_bits, &split, 8);
    memcpy(&clip_bits, &clip, 8);
    cr_assert_eq(ts_get_le(s.buf + 84, 8), 42, "seed");
    cr_assert_eq(ts_get_le(s.buf + 92, 8), 32, "batch size");
    cr_assert_eq(ts_get_le(s.buf + 100, 8), split_bits, "test split");
    cr_assert_eq(ts_get_le(s.buf + 108, 8), clip_bits, "clipping norm");
    cr_assert_eq(ts_get_le(s.buf + 116, 8), 120, "training rows");
    cr_assert_eq(ts_get_le(s.buf + 124, 8), 40, "test rows");
    cr_assert_eq(ts_get_le(s.buf + 132, 8), UINT64_C(0x0123456789abcdef), "data hash");
    cr_assert_eq(ts_get_le(s.buf + 140, 4), TG_OPTIM_ADAM);
    cr_assert_eq(ts_get_le(s.buf + 144, 4), 0);
    uint64_t lr_bits;
    double lr = 0.01;
    memcpy(&lr_bits, &lr, 8);
    cr_assert_eq(ts_get_le(s.buf + 148, 8), lr_bits);
    cr_assert_eq(ts_get_le(s.buf + 196, 8), 2, "optimizer steps");
    cr_assert_eq(ts_get_le(s.buf + 204, 8), S);
    /* The state block: m then v, f32 little-endian. */
    const float *state = tg_optim_state(s.o);
    for (size_t i = 0; i < 2 * numel; i++) {
        uint32_t bits;
        memcpy(&bits, &state[i], 4);
        cr_assert_eq(ts_get_le(s.buf + 212 + 4 * i, 4), bits, "state[%zu]", i);
    }
    /* Then a complete model file, as tg_model_save_buffer writes it. */
    void *mb;
    size_t msize;
    cr_assert_eq(tg_model_save_buffer(s.m, &mb, &msize), TG_OK);
    cr_assert_eq(ts_get_le(s.buf + 212 + S, 8), msize);
    cr_assert_eq(memcmp(s.buf + 220 + S, mb, msize), 0);
    cr_assert_eq(s.size, 220 + S + msize + 8);
    cr_assert_eq(ts_get_le(s.buf + s.size - 8, 8), XXH3_64bits(s.buf, s.size - 8));
    tg_model_buffer_free(mb, msize);
    trained_free(&s);
}

Test(checkpoint, file_round_trip_and_atomic_overwrite)
{
    make_tmpdir();
    char path[128], names[256];
    snprintf(path, sizeof path, "%s/run.tgc", tmpdir);
    tg_model *m = small_model(TG_F64, 1);
    tg_optim *o = make_optim(m, TG_OPTIM_ADAMW);
    tg_checkpoint_progress p = some_progress();
    for (int round = 0; round < 2; round++) { /* the second save overwrites the first */
        train(m, o, (uint64_t)round, (uint64_t)round + 1);
        p.step = (uint64_t)round;
        cr_assert_eq(tg_checkpoint_save(path, m, o, &p), TG_OK, "%s", tg_last_error());
        cr_assert_eq(ts_dir_names(tmpdir, names, sizeof names), 1,
                     "no temporary file is left behind: %s", names);
        tg_model *m2;
        tg_optim *o2;
        tg_checkpoint_progress p2;
        cr_assert_eq(tg_checkpoint_load(path, &m2, &o2, &p2), TG_OK, "%s", tg_last_error());
        assert_same(m, o, m2, o2);
        cr_assert_eq(p2.step, (uint64_t)round);
        tg_optim_free(o2);
        tg_model_free(m2);
    }
    /* A save that cannot happen leaves the old checkpoint in place. */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/run.tgc", tmpdir);
    cr_assert_eq(tg_checkpoint_save(bad, m, o, &p), TG_EIO);
    ts_assert_has(tg_last_error(), "checkpoint_save: ");
    ts_assert_has(tg_last_error(), bad);
    ts_assert_has(tg_last_error(), "cannot create");
    tg_model *m3;
    tg_optim *o3;
    cr_assert_eq(tg_checkpoint_load(bad, &m3, &o3, NULL), TG_EIO);
    ts_assert_has(tg_last_error(), "cannot open");
    cr_assert_eq(tg_checkpoint_load(tmpdir, &m3, &o3, NULL), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file");
    remove(path);
    rmdir(tmpdir);
    tg_optim_free(o);
    tg_model_free(m);
}

/* ---- corruption ----------------------------------------------------------------------------- */

Test(checkpoint, every_truncation_is_detected)
{
    trained s = save_trained(TG_F32, 2, TG_OPTIM_ADAM, 1);
    for (size_t n = 0; n < s.size; n++)
        expect_format_error(s.buf, n, NULL, "truncated");
    expect_format_error(s.buf, 5, "truncated at byte 5 (expected 3 more bytes for the magic)",
                        "5 bytes");
    expect_format_error(s.buf, 100, "truncated at byte 100", "100 bytes");
    trained_free(&s);
}

Test(checkpoint, every_single_byte_flip_is_detected)
{
    trained s = save_trained(TG_F32, 2, TG_OPTIM_MOMENTUM, 1);
    for (size_t i = 0; i < s.size; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            s.buf[i] ^= (unsigned char)(1u << bit);
            char what[64];
            snprintf(what, sizeof what, "byte %zu bit %d", i, bit);
            expect_format_error(s.buf, s.size, NULL, what);
            s.buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    trained_free(&s);
}

Test(checkpoint, header_messages)
{
    trained s = save_trained(TG_F32, 2, TG_OPTIM_SGD, 0);
    unsigned char *c = malloc(s.size + 1);
    memcpy(c, s.buf, s.size);
    c[0] = 'X';
    expect_format_error(c, s.size, "bad magic (not a tapegrad checkpoint)", "magic");
    memcpy(c, s.buf, s.size);
    ts_put_le(c + 8, 1, 4);
    expect_format_error(c, s.size, "unknown format version 1 (this build reads version 3)",
                        "version");
    memcpy(c, s.buf, s.size);
    ts_put_le(c + 12, 1, 4);
    expect_format_error(c, s.size, "unknown flags 0x00000001", "flags");
    memcpy(c, s.buf, s.size);
    c[s.size] = 0;
    expect_format_error(c, s.size + 1, "trailing data", "trailing byte");
    memcpy(c, s.buf, s.size);
    c[s.size / 2] ^= 1;
    expect_format_error(c, s.size, "checksum mismatch", "flip");
    /* A model file is not a checkpoint, and the other way round. */
    void *mb;
    size_t msize;
    cr_assert_eq(tg_model_save_buffer(s.m, &mb, &msize), TG_OK);
    expect_format_error(mb, msize, "bad magic", "a model file");
    tg_model *mm = NULL;
    cr_assert_eq(tg_model_load_buffer(s.buf, s.size, &mm), TG_EFORMAT);
    tg_model_buffer_free(mb, msize);
    free(c);
    trained_free(&s);
}

/* Files a buggy or hostile writer could make: checksum valid, a field wrong. */
Test(checkpoint, valid_checksum_but_lying_fields)
{
    trained s = save_trained(TG_F64, 2, TG_OPTIM_ADAM, 2);
    size_t S = (size_t)ts_get_le(s.buf + 204, 8);
    unsigned char *c = malloc(s.size);
    struct {
        size_t off;
        int n;
        uint64_t v;
        const char *needle;
    } cases[] = {
        {32, 8, UINT64_C(1) << 63, "batch is 9223372036854775808"},
        {48, 8, 0, NULL}, /* with the rest of the RNG zeroed below */
        {80, 4, 0, "world size is 0"},
        {92, 8, UINT64_C(1) << 63, "batch size is 9223372036854775808"},
        {100, 8, 0x3ff0000000000000u, "the test split is 1 (expected a number in [0, 1))"},
        {108, 8, 0xbff0000000000000u, "the clipping norm is -1"},
        {108, 8, 0x7ff0000000000000u, "the clipping norm is inf"},
        {140, 4, 4, "unknown optimizer kind 4"},
        {144, 4, 2, "nesterov flag is 2"},
        {144, 4, 1, "the optimizer: optim_new: nesterov applies to sgd and momentum"},
        {148, 8, 0xfff8000000000000u, "the optimizer: optim_new: lr is"}, /* NaN */
        {164, 8, 0x3ff0000000000000u, "beta1 1 and beta2"},              /* beta1 = 1 */
        {140, 4, 1, "the optimizer state is 416 bytes; momentum over this model's 26 f64 "
                   "parameters keeps 208"},
        {204, 8, 0, "bytes are left before the checksum"}, /* the state is read as the model */
        {204, 8, (uint64_t)1 << 40, "more than the"},
        {212 + 8 * 3, 8, 0x7ff0000000000000u, "m[3] is inf"},
        {212 + S - 8, 8, 0xbff0000000000000u, "v[25] is -1 (expected 0 to +inf)"},
        {212 + S, 8, 12, "the model is 12 bytes"},
        {220 + S + 30, 1, 0x55, "the embedded model: model_load_buffer: checksum mismatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, s.buf, s.size);
        ts_put_le(c + cases[i].off, cases[i].v, cases[i].n);
        if (cases[i].off == 48)
            memset(c + 48, 0, 32);
        reseal(c, s.size);
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        expect_format_error(c, s.size, cases[i].needle ? cases[i].needle : "RNG state is all zero",
                            what);
    }
    cr_assert_eq(tg_model_numel(s.m), 26, "v[25] above is the last second moment");
    free(c);
    trained_free(&s);
}

/* ---- resuming ------------------------------------------------------------------------------- */

/* N steps, save, load, M steps == N+M steps, bit for bit, for every optimizer and dtype. */
Test(checkpoint, resume_is_bit_identical)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/resume.tgc", tmpdir);
    const uint64_t N = 5, M = 7;
    for (int dt = 0; dt < 2; dt++) {
        for (int k = 0; k < 4; k++) {
            tg_model *ref = small_model((tg_dtype)dt, 11);
            tg_optim *oref = make_optim(ref, KINDS[k]);
            train(ref, oref, 0, N + M);

            tg_model *a = small_model((tg_dtype)dt, 11);
            tg_optim *oa = make_optim(a, KINDS[k]);
            train(a, oa, 0, N);
            tg_checkpoint_progress p = TG_CHECKPOINT_PROGRESS_INIT;
            p.step = N;
            tg_rng_seed(&p.rng, 1);
            cr_assert_eq(tg_checkpoint_save(path, a, oa, &p), TG_OK, "%s", tg_last_error());
            tg_optim_free(oa);
            tg_model_free(a);

            tg_model *b;
            tg_optim *ob;
            cr_assert_eq(tg_checkpoint_load(path, &b, &ob, &p), TG_OK, "%s", tg_last_error());
            cr_assert_eq(p.step, N);
            train(b, ob, p.step, N + M);
            cr_assert_eq(memcmp(tg_model_param_data(ref), tg_model_param_data(b),
                                param_bytes(ref)),
                         0, "%s %s: resumed run differs", tg_dtype_name((tg_dtype)dt),
                         tg_optim_kind_name(KINDS[k]));
            cr_assert_eq(tg_optim_steps(ob), N + M);
            /* The comparison can fail: the steps after the checkpoint changed the model. */
            tg_model *init = small_model((tg_dtype)dt, 11);
            cr_assert_neq(memcmp(tg_model_param_data(init), tg_model_param_data(b),
                                 param_bytes(b)),
                          0);
            tg_model_free(init);
            tg_optim_free(oref);
            tg_optim_free(ob);
            tg_model_free(ref);
            tg_model_free(b);
        }
    }
    remove(path);
    rmdir(tmpdir);
}

Test(checkpoint, save_arguments)
{
    tg_model *m = small_model(TG_F32, 2), *other = small_model(TG_F32, 3);
    tg_optim *o = make_optim(other, TG_OPTIM_SGD);
    tg_checkpoint_progress p = some_progress();
    void *buf = (void *)&buf;
    size_t size = 9;
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &p, &buf, &size), TG_EINVAL);
    ts_assert_has(tg_last_error(), "does not update exactly this model's 4");
    cr_assert(buf == NULL && size == 0);
    tg_optim_free(o);
    o = make_optim(m, TG_OPTIM_SGD);
    tg_checkpoint_progress bad = p;
    memset(&bad.rng, 0, sizeof bad.rng);
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &bad, &buf, &size), TG_EINVAL);
    ts_assert_has(tg_last_error(), "rng is all zero");
    bad = p;
    bad.world_size = 0;
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &bad, &buf, &size), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_save_buffer(NULL, o, &p, &buf, &size), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_save_buffer(m, NULL, &p, &buf, &size), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, NULL, &buf, &size), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &p, NULL, &size), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_save(NULL, m, o, &p), TG_EINVAL);
    tg_model *lm;
    tg_optim *lo;
    cr_assert_eq(tg_checkpoint_load(NULL, &lm, &lo, NULL), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_load_buffer(NULL, 3, &lm, &lo, NULL), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_load_buffer("x", 1, NULL, &lo, NULL), TG_EINVAL);
    cr_assert_eq(tg_checkpoint_load_buffer("x", 1, &lm, NULL, NULL), TG_EINVAL);
    cr_assert_null(lm);
    tg_optim_free(o);
    tg_model_free(m);
    tg_model_free(other);
}

/* ---- optimizer state ------------------------------------------------------------------------ */

Test(checkpoint, optim_set_state_validates_everything_first)
{
    tg_model *m = small_model(TG_F64, 2);
    tg_optim *o = make_optim(m, TG_OPTIM_ADAM);
    train(m, o, 0, 1);
    size_t bytes = tg_optim_state_size(o), n = bytes / 8;
    double *saved = malloc(bytes), *s = malloc(bytes);
    memcpy(saved, tg_optim_state(o), bytes);
    memcpy(s, saved, bytes);
    s[n / 2] = -1e-300; /* the first second moment */
    cr_assert_eq(tg_optim_set_state(o, s, bytes, 9), TG_EINVAL);
    ts_assert_has(tg_last_error(), "optim_set_state: v[0] is");
    cr_assert_eq(memcmp(tg_optim_state(o), saved, bytes), 0, "unchanged");
    cr_assert_eq(tg_optim_steps(o), 1, "unchanged");
    cr_assert_eq(tg_optim_set_state(o, s, bytes - 8, 9), TG_EINVAL);
    ts_assert_has(tg_last_error(), "keeps 416");
    cr_assert_eq(tg_optim_set_state(o, NULL, bytes, 9), TG_EINVAL);
    cr_assert_eq(tg_optim_set_state(NULL, s, bytes, 9), TG_EINVAL);
    s[n / 2] = 0.25;
    s[0] = -3; /* a first moment may be negative */
    cr_assert_eq(tg_optim_set_state(o, s, bytes, 9), TG_OK, "%s", tg_last_error());
    cr_assert_eq(memcmp(tg_optim_state(o), s, bytes), 0);
    cr_assert_eq(tg_optim_steps(o), 9);
    tg_optim_options opt;
    cr_assert_eq(tg_optim_get_options(o, &opt), TG_OK);
    cr_assert(opt.kind == TG_OPTIM_ADAM && opt.lr == 0.01 && opt.weight_decay == 1e-3);
    cr_assert_eq(tg_optim_get_options(o, NULL), TG_EINVAL);
    cr_assert_eq(tg_optim_param_count(o), 4);
    cr_assert_null(tg_optim_param(o, 4));
    cr_assert_eq(tg_optim_dtype(o), TG_F64);
    /* Plain SGD keeps no state: only the step count is set. */
    tg_optim *sgd = make_optim(m, TG_OPTIM_SGD);
    cr_assert_eq(tg_optim_set_state(sgd, NULL, 0, 4), TG_OK);
    cr_assert_eq(tg_optim_steps(sgd), 4);
    tg_optim_free(sgd);
    free(s);
    free(saved);
    tg_optim_free(o);
    tg_model_free(m);
}

/* ---- out of memory ------------------------------------------------------------------------- */

/* A checkpoint under the hook, and the file it was saved to. */
typedef struct oom_case {
    const char *path;
    tg_model *m;
    tg_optim *o;
    tg_checkpoint_progress p;
} oom_case;

static size_t oom_save(size_t n, void *ud)
{
    oom_case *c = ud;
    ts_alloc_fail_at(n);
    tg_status st = tg_checkpoint_save(c->path, c->m, c->o, &c->p);
    ts_alloc_fail_at(0);
    if (st == TG_OK)
        return 0;
    ts_assert_enomem(st, "checkpoint_save", n);
    return 1;
}

static size_t oom_load(size_t n, void *ud)
{
    oom_case *c = ud;
    tg_model *m = NULL;
    tg_optim *o = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_checkpoint_load(c->path, &m, &o, NULL);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "checkpoint_load", n);
        cr_assert(m == NULL && o == NULL);
        return 1;
    }
    assert_same(c->m, c->o, m, o);
    tg_optim_free(o);
    tg_model_free(m);
    return 0;
}

Test(oom, checkpoint_save_and_load_fail_cleanly_at_every_allocation)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/oom.tgc", tmpdir);
    ts_alloc_install();
    oom_case c = {.path = path, .m = small_model(TG_F32, 2), .p = some_progress()};
    c.o = make_optim(c.m, TG_OPTIM_ADAMW);
    cr_assert_eq(tg_checkpoint_save(path, c.m, c.o, &c.p), TG_OK, "%s", tg_last_error());
    /* Neither call survives a refused allocation: success means none was refused. */
    const ts_oom_opts opts = {.min_failing = 1, .no_fallback = true};
    ts_oom_drive("checkpoint_save", oom_save, &c, opts);
    ts_oom_drive("checkpoint_load", oom_load, &c, opts);
    tg_optim_free(c.o);
    tg_model_free(c.m);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
    remove(path);
    rmdir(tmpdir);
}

/* ---- a trainer stopped mid-epoch and resumed -------------------------------------------------- */

typedef struct stopper {
    const char *path;
    size_t at, taken; /* checkpoint and stop after step `at` of the run */
} stopper;

static tg_status save_and_stop(tg_trainer *t, int epoch, size_t batch, void *ud)
{
    stopper *s = ud;
    if (++s->taken < s->at)
        return TG_OK;
    tg_checkpoint_progress p = TG_CHECKPOINT_PROGRESS_INIT;
    p.epoch = (uint64_t)epoch, p.batch = batch, p.step = s->taken, p.rng = *tg_trainer_rng(t);
    tg_status st = tg_checkpoint_save(s->path, tg_trainer_model(t), tg_trainer_optim(t), &p);
    cr_assert_eq(st, TG_OK, "%s", tg_last_error());
    return TG_EINVAL; /* as if the process had been killed here */
}

/* 2 features and a class, 150 rows: 4 steps of 32 per epoch at an 80/20 split; with flip,
 * the same features and the other class on every row. */
static tg_table *xor_table_of(bool flip)
{
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "a,b,c\n");
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    for (int i = 0; i < 150; i++) {
        double a = tg_rng_normal(&rng), b = tg_rng_normal(&rng);
        n += (size_t)snprintf(text + n, sizeof text - n, "%.6f,%.6f,%d\n", a, b,
                              ((a > 0) != (b > 0)) != flip);
    }
    tg_table *t;
    cr_assert_eq(tg_table_parse_csv(text, n, "xor", &t), TG_OK, "%s", tg_last_error());
    return t;
}

static tg_table *xor_table(void)
{
    return xor_table_of(false);
}

Test(checkpoint, trainer_resumes_mid_epoch_bit_identical)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/trainer.tgc", tmpdir);
    tg_table *table = xor_table();
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 4, o.hidden[0] = 8;
    tg_trainer *ref, *a, *b;
    cr_assert_eq(tg_trainer_new(table, "c", &o, &ref), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_run(ref, NULL), TG_OK, "%s", tg_last_error());
    for (size_t at = 1; at <= 16; at += 5) { /* step 6 is in epoch 2, 16 ends the run */
        stopper s = {path, at, 0};
        tg_train_options os = o;
        os.on_step = save_and_stop, os.on_step_ud = &s;
        cr_assert_eq(tg_trainer_new(table, "c", &os, &a), TG_OK);
        cr_assert_eq(tg_trainer_run(a, NULL), TG_EINVAL, "stopped after step %zu", at);
        tg_trainer_free(a);

        cr_assert_eq(tg_trainer_new(table, "c", &o, &b), TG_OK);
        tg_checkpoint_progress p;
        cr_assert_eq(tg_checkpoint_restore(path, tg_trainer_model(b), tg_trainer_optim(b), &p),
                     TG_OK, "%s", tg_last_error());
        cr_assert_eq(p.step, at);
        cr_assert_eq(p.epoch * 4 + p.batch, at, "epoch %llu batch %llu",
                     (unsigned long long)p.epoch, (unsigned long long)p.batch);
        cr_assert_eq(tg_trainer_set_position(b, (int)p.epoch, (size_t)p.batch), TG_OK, "%s",
                     tg_last_error());
        cr_assert_eq(tg_trainer_run(b, NULL), TG_OK, "%s", tg_last_error());
        tg_model *mr = tg_trainer_model(ref), *mb = tg_trainer_model(b);
        cr_assert_eq(memcmp(tg_model_param_data(mr), tg_model_param_data(mb), param_bytes(mr)),
                     0, "resumed after step %zu: parameters differ", at);
        cr_assert_eq(tg_optim_steps(tg_trainer_optim(b)), 16);
        tg_trainer_free(b);
    }
    /* Out of range, and a checkpoint of another architecture or optimizer. */
    cr_assert_eq(tg_trainer_set_position(ref, 4, 0), TG_EINVAL);
    cr_assert_eq(tg_trainer_set_position(ref, 0, 5), TG_EINVAL);
    tg_train_options other = o;
    other.hidden[0] = 9;
    cr_assert_eq(tg_trainer_new(table, "c", &other, &b), TG_OK);
    cr_assert_eq(tg_checkpoint_restore(path, tg_trainer_model(b), tg_trainer_optim(b), NULL),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "the checkpoint's model (f32 2 8 2 (relu, identity)) is "
                                   "not this one (f32 2 9 2 (relu, identity))");
    tg_trainer_free(b);
    other = o;
    other.optim.kind = TG_OPTIM_ADAMW;
    cr_assert_eq(tg_trainer_new(table, "c", &other, &b), TG_OK);
    void *before = malloc(param_bytes(tg_trainer_model(b)));
    memcpy(before, tg_model_param_data(tg_trainer_model(b)), param_bytes(tg_trainer_model(b)));
    cr_assert_eq(tg_checkpoint_restore(path, tg_trainer_model(b), tg_trainer_optim(b), NULL),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "the checkpoint's optimizer differs");
    cr_assert_eq(memcmp(before, tg_model_param_data(tg_trainer_model(b)),
                        param_bytes(tg_trainer_model(b))),
                 0, "untouched");
    free(before);
    tg_trainer_free(b);
    tg_trainer_free(ref);
    tg_table_free(table);
    remove(path);
    rmdir(tmpdir);
}

/* tg_trainer_restore: a checkpoint written with tg_trainer_progress resumes only the run that
 * wrote it; every setting it records is compared, with both values in the message. */
static tg_status save_progress_and_stop(tg_trainer *t, int epoch, size_t batch, void *ud)
{
    stopper *s = ud;
    if (++s->taken < s->at)
        return TG_OK;
    tg_checkpoint_progress p;
    tg_trainer_progress(t, epoch, batch, &p);
    cr_assert_eq(p.batch_size, 32);
    cr_assert_eq(p.seed, 42);
    tg_status st = tg_checkpoint_save(s->path, tg_trainer_model(t), tg_trainer_optim(t), &p);
    cr_assert_eq(st, TG_OK, "%s", tg_last_error());
    return TG_EINVAL;
}

/* Restoring `path` into a trainer made with `o` (on `table`) fails naming `want`, and leaves
 * the trainer untouched. */
static void expect_refused(const tg_table *table, const tg_train_options *o, const char *path,
                           const char *want)
{
    tg_trainer *b;
    cr_assert_eq(tg_trainer_new(table, "c", o, &b), TG_OK, "%s", tg_last_error());
    tg_model *m = tg_trainer_model(b);
    void *before = malloc(param_bytes(m));
    memcpy(before, tg_model_param_data(m), param_bytes(m));
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_EINVAL, "%s: %s", want, tg_last_error());
    ts_assert_has(tg_last_error(), want);
    cr_assert_eq(memcmp(before, tg_model_param_data(m), param_bytes(m)), 0, "untouched");
    cr_assert_eq(tg_trainer_epoch_index(b), 0);
    free(before);
    tg_trainer_free(b);
}

/* A run of options o on table trained to its end (returned), and another that writes a
 * checkpoint with tg_trainer_progress to path after its sixth step and stops. */
static tg_trainer *run_and_checkpoint_at_step_6(const tg_table *table, const tg_train_options *o,
                                                const char *path)
{
    tg_trainer *ref, *a;
    cr_assert_eq(tg_trainer_new(table, "c", o, &ref), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_run(ref, NULL), TG_OK, "%s", tg_last_error());
    stopper s = {path, 6, 0};
    tg_train_options os = *o;
    os.on_step = save_progress_and_stop, os.on_step_ud = &s;
    cr_assert_eq(tg_trainer_new(table, "c", &os, &a), TG_OK);
    cr_assert_eq(tg_trainer_run(a, NULL), TG_EINVAL);
    tg_trainer_free(a);
    return ref;
}

Test(checkpoint, trainer_restore_compares_every_setting)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/trainer.tgc", tmpdir);
    tg_table *table = xor_table();
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 4, o.hidden[0] = 8;
    tg_trainer *ref = run_and_checkpoint_at_step_6(table, &o, path), *b;

    /* The same run resumes bit for bit, with more epochs too (the orders do not depend on
     * the total). */
    cr_assert_eq(tg_trainer_new(table, "c", &o, &b), TG_OK);
    tg_checkpoint_progress p;
    cr_assert_eq(tg_trainer_restore(b, path, &p), TG_OK, "%s", tg_last_error());
    cr_assert(p.epoch == 1 && p.batch == 2 && p.step == 6 && p.train_rows == 120 &&
                  p.test_rows == 30,
              "epoch %llu batch %llu rows %llu/%llu", (unsigned long long)p.epoch,
              (unsigned long long)p.batch, (unsigned long long)p.train_rows,
              (unsigned long long)p.test_rows);
    cr_assert_eq(tg_trainer_run(b, NULL), TG_OK, "%s", tg_last_error());
    tg_model *mr = tg_trainer_model(ref), *mb = tg_trainer_model(b);
    cr_assert_eq(memcmp(tg_model_param_data(mr), tg_model_param_data(mb), param_bytes(mr)), 0);
    tg_trainer_free(b);
    tg_train_options more = o;
    more.epochs = 6;
    cr_assert_eq(tg_trainer_new(table, "c", &more, &b), TG_OK);
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_OK, "%s", tg_last_error());
    tg_trainer_free(b);
    /* Fewer epochs than the checkpoint reached: the message says which option, in the
     * 1-based epochs `tapegrad train` prints. */
    tg_train_options fewer = o;
    fewer.epochs = 1;
    cr_assert_eq(tg_trainer_new(table, "c", &fewer, &b), TG_OK);
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "stopped in epoch 2, step 2 of it; this run has --epochs 1");
    tg_trainer_free(b);

    /* Everything else must match. */
    tg_train_options x = o;
    x.seed = 7;
    expect_refused(table, &x, path, "the checkpoint's run differs on --seed: it has 42, this run "
                                    "has 7");
    x = o, x.batch = 16;
    expect_refused(table, &x, path, "differs on --batch: it has 32, this run has 16");
    x = o, x.test_split = 0.3;
    expect_refused(table, &x, path, "differs on --test-split: it has 0.2, this run has 0.3");
    x = o, x.clip_norm = 1;
    expect_refused(table, &x, path, "differs on the clipping norm: it has 0, this run has 1");
    x = o, x.optim.lr = 0.01;
    expect_refused(table, &x, path, "differs on --lr: it has 0.003, this run has 0.01");
    x = o, x.optim.kind = TG_OPTIM_SGD;
    expect_refused(table, &x, path, "differs on --optim: it has adam, this run has sgd");
    x = o, x.optim.weight_decay = 0;
    expect_refused(table, &x, path, "differs on --weight-decay: it has 0.001, this run has 0");
    x = o, x.optim.beta2 = 0.99;
    expect_refused(table, &x, path, "differs on beta2: it has 0.999, this run has 0.99");
    x = o, x.hidden[0] = 9;
    expect_refused(table, &x, path, "differs on --layers: it has 8, this run has 9");
    x = o, x.act = TG_ACT_TANH;
    expect_refused(table, &x, path, "differs on --act: it has relu, this run has tanh");
    x = o, x.dtype = TG_F64;
    expect_refused(table, &x, path, "differs on --dtype: it has f32, this run has f64");
    x = o, x.task = TG_TRAIN_REGRESS;
    expect_refused(table, &x, path, "differs on --task: it has classify, this run has regress");
    x = o, x.world = 2, x.rank = 1;
    expect_refused(table, &x, path, "differs on the number of ranks: it has 1, this run has 2");

    /* Other data with the same shape: the statistics are compared feature by feature. */
    tg_table *other;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "a,b,c\n");
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    for (int i = 0; i < 150; i++) {
        double va = tg_rng_normal(&rng), vb = tg_rng_normal(&rng);
        n += (size_t)snprintf(text + n, sizeof text - n, "%.6f,%.6f,%d\n", va, i == 3 ? vb + 1 : vb,
                              (va > 0) != (vb > 0));
    }
    cr_assert_eq(tg_table_parse_csv(text, n, "xor2", &other), TG_OK, "%s", tg_last_error());
    expect_refused(other, &o, path, "the standardization statistics of feature 2 ('b') differ");
    tg_table_free(other);
    /* The same features with every class flipped: only the data's hash tells them apart */
    other = xor_table_of(true);
    expect_refused(other, &o, path, "the checkpoint's run trained on other data: its rows "
                                    "(features and target) hash to ");
    tg_table_free(other);

    /* A checkpoint whose progress did not record the settings is compared on the rest. */
    tg_model *m;
    tg_optim *opt;
    cr_assert_eq(tg_checkpoint_load(path, &m, &opt, &p), TG_OK);
    p.batch_size = 0;
    cr_assert_eq(tg_checkpoint_save(path, m, opt, &p), TG_OK, "%s", tg_last_error());
    tg_optim_free(opt);
    tg_model_free(m);
    x = o, x.batch = 16;
    cr_assert_eq(tg_trainer_new(table, "c", &x, &b), TG_OK);
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_OK, "%s", tg_last_error());
    tg_trainer_free(b);
    x = o, x.optim.lr = 0.01;
    expect_refused(table, &x, path, "differs on --lr");
    /* Another seed still splits other rows: the statistics say so. */
    x = o, x.seed = 7;
    expect_refused(table, &x, path, "the standardization statistics of feature 1 ('a') differ");

    cr_assert_eq(tg_trainer_restore(NULL, path, NULL), TG_EINVAL);
    tg_trainer_free(ref);
    tg_table_free(table);
    remove(path);
    rmdir(tmpdir);
}

/* A run of the momentum optimizer with its default momentum (0, which means 0.9) resumes, bit
 * for bit: the trainer's settings and the checkpoint's both read the optimizer's 0.9 (they
 * once compared 0.9 with 0 and refused every such run, `tapegrad train --optim momentum
 * --resume` included). An explicit 0.9 is the same run; 0.5 is not. */
Test(checkpoint, a_momentum_run_resumes)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/momentum.tgc", tmpdir);
    tg_table *table = xor_table();
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 4, o.hidden[0] = 8;
    o.optim.kind = TG_OPTIM_MOMENTUM, o.optim.lr = 0.05;
    tg_trainer *ref = run_and_checkpoint_at_step_6(table, &o, path), *b;
    cr_assert_eq(tg_trainer_new(table, "c", &o, &b), TG_OK);
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_run(b, NULL), TG_OK, "%s", tg_last_error());
    tg_model *mr = tg_trainer_model(ref), *mb = tg_trainer_model(b);
    cr_assert_eq(memcmp(tg_model_param_data(mr), tg_model_param_data(mb), param_bytes(mr)), 0);
    tg_trainer_free(b);
    tg_train_options x = o;
    x.optim.momentum = 0.9;
    cr_assert_eq(tg_trainer_new(table, "c", &x, &b), TG_OK);
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_OK, "%s", tg_last_error());
    tg_trainer_free(b);
    x.optim.momentum = 0.5;
    expect_refused(table, &x, path, "differs on the momentum: it has 0.9, this run has 0.5");
    tg_trainer_free(ref);
    tg_table_free(table);
    remove(path);
    rmdir(tmpdir);
}

/* Another --target over the same table keeps the task and the number of features, so the
 * first difference found used to be the statistics of "feature 1 ('b')" with the values of
 * the checkpoint's feature 1, 'a': the message named a column that was not the one compared.
 * The checkpoint's model stores the column names: the refusal names the target. */
Test(checkpoint, trainer_restore_names_another_target)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/target.tgc", tmpdir);
    tg_table *table = xor_table();
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.task = TG_TRAIN_REGRESS, o.epochs = 2, o.hidden[0] = 8;
    tg_trainer *a, *b;
    cr_assert_eq(tg_trainer_new(table, "c", &o, &a), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_epoch(a, NULL), TG_OK, "%s", tg_last_error());
    tg_checkpoint_progress p;
    tg_trainer_progress(a, 1, 0, &p);
    cr_assert_eq(tg_checkpoint_save(path, tg_trainer_model(a), tg_trainer_optim(a), &p), TG_OK,
                 "%s", tg_last_error());
    cr_assert_eq(tg_trainer_new(table, "a", &o, &b), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "differs on --target: it has 'c', this run has 'a'");
    tg_trainer_free(b);
    tg_trainer_free(a);
    tg_table_free(table);
    remove(path);
    rmdir(tmpdir);
}

/* A checkpoint of a trainer that has not run yet (epoch 0, step 0) is a valid one: its
 * progress used to carry the all-zero RNG of a trainer that had drawn no order, which
 * tg_checkpoint_save refuses. Resumed, it trains like a fresh run. */
Test(checkpoint, a_trainer_that_has_not_run_can_be_checkpointed)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/start.tgc", tmpdir);
    tg_table *table = xor_table();
    tg_train_options o = TG_TRAIN_OPTIONS_INIT;
    o.epochs = 2, o.hidden[0] = 8;
    tg_trainer *a, *b;
    cr_assert_eq(tg_trainer_new(table, "c", &o, &a), TG_OK, "%s", tg_last_error());
    tg_checkpoint_progress p;
    tg_trainer_progress(a, 0, 0, &p);
    cr_assert_eq(tg_checkpoint_save(path, tg_trainer_model(a), tg_trainer_optim(a), &p), TG_OK,
                 "%s", tg_last_error());
    cr_assert_eq(tg_trainer_new(table, "c", &o, &b), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_restore(b, path, NULL), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_run(a, NULL), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trainer_run(b, NULL), TG_OK, "%s", tg_last_error());
    tg_model *ma = tg_trainer_model(a), *mb = tg_trainer_model(b);
    cr_assert_eq(memcmp(tg_model_param_data(ma), tg_model_param_data(mb), param_bytes(ma)), 0);
    tg_trainer_free(b);
    tg_trainer_free(a);
    tg_table_free(table);
    remove(path);
    rmdir(tmpdir);
}

/* ---- tapegrad train as a subprocess ---------------------------------------------------------- */

Test(checkpoint, train_command_killed_and_resumed_is_bit_identical, .timeout = 280)
{
    const char *tools = tp_env("TG_TOOLS_DIR"), *src = tp_env("TG_SOURCE_DIR");
    char exe[4096], data[4096], ckpt[128], ref[128], res[128], log[128];
    snprintf(exe, sizeof exe, "%s/tapegrad", tools);
    snprintf(data, sizeof data, "%s/examples/data/digits.csv", src);
    make_tmpdir();
    snprintf(ckpt, sizeof ckpt, "%s/run.tgc", tmpdir);
    snprintf(ref, sizeof ref, "%s/ref.tgm", tmpdir);
    snprintf(res, sizeof res, "%s/res.tgm", tmpdir);
    snprintf(log, sizeof log, "%s/log", tmpdir);
#define TRAIN(...)                                                                                 \
    (const char *const[])                                                                          \
    {                                                                                              \
        exe, "train", data, "--target", "digit", "--epochs", "12", "--json", __VA_ARGS__, NULL     \
    }
    free(tp_run_log(TRAIN("--save", ref), log, 0));
    pid_t pid = tp_start(TRAIN("--checkpoint", ckpt, "--checkpoint-every", "7"), log);
    uint64_t step = tp_kill_after_checkpoint(pid, ckpt, 150); /* of 540 */
    free(tp_run_log(
        TRAIN("--resume", ckpt, "--checkpoint", ckpt, "--checkpoint-every", "7", "--save", res),
        log, 0));
    char *a = tp_slurp(ref), *b = tp_slurp(res);
    struct stat sa, sb;
    cr_assert(stat(ref, &sa) == 0 && stat(res, &sb) == 0);
    cr_assert(sa.st_size == sb.st_size && memcmp(a, b, (size_t)sa.st_size) == 0,
              "killed after step %llu and resumed: the model differs from the uninterrupted run's",
              (unsigned long long)step);
    free(a);
    free(b);
    /* What --resume refuses: another architecture, and a file that is not a checkpoint. */
    char *out = tp_run_log(TRAIN("--resume", ckpt, "--layers", "32"), log, 1);
    ts_assert_has(out, "the checkpoint's run differs on --layers: it has 64, this run has 32");
    free(out);
    /* Another seed would make test rows training rows; another batch, other steps. */
    out = tp_run_log(TRAIN("--resume", ckpt, "--seed", "7"), log, 1);
    ts_assert_has(out, "the checkpoint's run differs on --seed: it has 42, this run has 7");
    free(out);
    out = tp_run_log(TRAIN("--resume", ckpt, "--batch", "16"), log, 1);
    ts_assert_has(out, "the checkpoint's run differs on --batch: it has 32, this run has 16");
    free(out);
    out = tp_run_log(TRAIN("--resume", ckpt, "--lr", "0.01"), log, 1);
    ts_assert_has(out, "the checkpoint's run differs on --lr: it has 0.003, this run has 0.01");
    free(out);
    out = tp_run_log(TRAIN("--resume", ckpt, "--test-split", "0.1"), log, 1);
    ts_assert_has(out, "differs on --test-split: it has 0.2, this run has 0.1");
    free(out);
    out = tp_run_log(TRAIN("--resume", ckpt, "--optim", "sgd"), log, 1);
    ts_assert_has(out, "differs on --optim: it has adam, this run has sgd");
    free(out);
    out = tp_run_log(TRAIN("--resume", ckpt, "--dtype", "f64"), log, 1);
    ts_assert_has(out, "differs on --dtype: it has f32, this run has f64");
    free(out);
    out = tp_run_log(TRAIN("--resume", ref), log, 1);
    ts_assert_has(out, "bad magic (not a tapegrad checkpoint)");
    free(out);
#undef TRAIN
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* A step count no step can follow (2^64 - 1: the loader's tg_optim_set_state refuses it) is
 * not written either: the file could not be loaded. */
Test(checkpoint, save_refuses_the_largest_step_count)
{
    tg_model *m = small_model(TG_F32, 3);
    tg_optim *o = make_optim(m, TG_OPTIM_ADAM);
    tg_optim_set_steps(o, UINT64_MAX);
    tg_checkpoint_progress p = some_progress();
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &p, &buf, &size), TG_EINVAL);
    ts_assert_has(tg_last_error(), "the optimizer's step count is 2^64 - 1");
    cr_assert_null(buf);
    tg_optim_set_steps(o, UINT64_MAX - 1);
    cr_assert_eq(tg_checkpoint_save_buffer(m, o, &p, &buf, &size), TG_OK, "%s", tg_last_error());
    tg_checkpoint_buffer_free(buf, size);
    tg_optim_free(o);
    tg_model_free(m);
}

/* An optimizer made from options whose unused fields are anything (SGD's betas and eps, Adam's
 * momentum) steps as one made from TG_OPTIM_OPTIONS_INIT, so it restores the other's
 * checkpoint; reading its options back shows the defaults there. A field the kind uses still
 * has to match. */
Test(checkpoint, restore_compares_only_the_fields_the_optimizer_uses)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/unused.tgc", tmpdir);
    const tg_optim_options init = TG_OPTIM_OPTIONS_INIT;
    for (int k = 0; k < 4; k++) {
        const bool adam = KINDS[k] >= TG_OPTIM_ADAM;
        tg_model *m = small_model(TG_F64, 11);
        tg_optim *saved = make_optim(m, KINDS[k]);
        train(m, saved, 0, 2);
        tg_checkpoint_progress p = some_progress();
        cr_assert_eq(tg_checkpoint_save(path, m, saved, &p), TG_OK, "%s", tg_last_error());

        tg_optim_options o;
        memset(&o, 0, sizeof o);
        o.kind = KINDS[k], o.lr = 0.5, o.weight_decay = 1e-3;
        o.nesterov = KINDS[k] == TG_OPTIM_MOMENTUM;
        if (adam)
            o.beta1 = 0.9, o.beta2 = 0.999, o.eps = 1e-8, o.momentum = 0.5;
        else
            o.beta1 = 0.5, o.eps = 1; /* beta2 0, not in Adam's range either */
        tg_tensor *ps[2 * TG_MLP_MAX_LAYERS];
        const size_t n = tg_model_param_count(m);
        for (size_t i = 0; i < n; i++)
            ps[i] = tg_model_param(m, i);
        tg_optim *other;
        cr_assert_eq(tg_optim_new(&o, ps, n, &other), TG_OK, "%s", tg_last_error());
        tg_optim_options back;
        cr_assert_eq(tg_optim_get_options(other, &back), TG_OK);
        cr_assert(adam ? back.momentum == init.momentum
                       : back.beta1 == init.beta1 && back.beta2 == init.beta2 &&
                             back.eps == init.eps,
                  "%s", tg_optim_kind_name(KINDS[k]));
        cr_assert_eq(tg_checkpoint_restore(path, m, other, NULL), TG_OK, "%s: %s",
                     tg_optim_kind_name(KINDS[k]), tg_last_error());
        cr_assert_eq(tg_optim_steps(other), 2);
        tg_optim_free(other);

        if (adam)
            o.eps = 1e-7;
        else
            o.momentum = 0.5;
        cr_assert_eq(tg_optim_new(&o, ps, n, &other), TG_OK, "%s", tg_last_error());
        cr_assert_eq(tg_checkpoint_restore(path, m, other, NULL), TG_EINVAL);
        ts_assert_has(tg_last_error(),
                      adam ? "the checkpoint's eps differs" : "the checkpoint's momentum differs");
        tg_optim_free(other);
        tg_optim_free(saved);
        tg_model_free(m);
    }
    remove(path);
    rmdir(tmpdir);
}

/* tg_checkpoint_restore compares the architectures field by field: a spec whose padding bytes
 * hold anything (here 0xAB: a spec built in memory that was not zeroed) restores its own
 * checkpoint, and one that differs only in an activation is refused with a message that shows
 * the difference. */
Test(checkpoint, restore_compares_the_architecture_not_its_bytes)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/spec.tgc", tmpdir);
    tg_mlp_spec s;
    memset(&s, 0xAB, sizeof s);
    s.n_layers = 2, s.sizes[0] = 3, s.sizes[1] = 4, s.sizes[2] = 2;
    s.act[0] = TG_ACT_TANH, s.act[1] = TG_ACT_IDENTITY, s.dtype = TG_F64;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK, "%s",
                 tg_last_error());
    tg_optim *o = make_optim(m, TG_OPTIM_ADAM);
    train(m, o, 0, 2);
    tg_checkpoint_progress p = some_progress();
    cr_assert_eq(tg_checkpoint_save(path, m, o, &p), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_checkpoint_restore(path, m, o, NULL), TG_OK, "%s", tg_last_error());

    s.act[0] = TG_ACT_RELU;
    tg_model *relu;
    cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &relu), TG_OK);
    tg_optim *ro = make_optim(relu, TG_OPTIM_ADAM);
    cr_assert_eq(tg_checkpoint_restore(path, relu, ro, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "the checkpoint's model (f64 3 4 2 (tanh, identity)) is not "
                                   "this one (f64 3 4 2 (relu, identity))");
    tg_optim_free(ro);
    tg_model_free(relu);
    tg_optim_free(o);
    tg_model_free(m);
    remove(path);
    rmdir(tmpdir);
}

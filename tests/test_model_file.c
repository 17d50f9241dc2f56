/* test_model_file.c: model files (docs/model-format.md): bit-exact round trips through files
 * and buffers; the documented layout; every truncation and every single-byte flip of small
 * files detected; files with a valid checksum but lying fields rejected with a message;
 * I/O errors; atomic saves; and out-of-memory paths of save and load. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "support/helpers.h"
#include "support/oom.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

/* 2 -> 3 (tanh) -> 1 (sigmoid), with every kind of metadata set, and parameters that include
 * -0, the largest finite numbers and a subnormal (bit patterns must survive). (NaN and
 * infinities are refused: non_finite_parameters_are_refused.) */
static tg_model *small_model(tg_dtype dt, bool metadata)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2, s.sizes[0] = 2, s.sizes[1] = 3, s.sizes[2] = 1;
    s.act[0] = TG_ACT_TANH, s.act[1] = TG_ACT_SIGMOID, s.dtype = dt;
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_HE_UNIFORM, &rng, &m), TG_OK, "%s", tg_last_error());
    tg_tensor *b0 = tg_model_param(m, 1);
    if (dt == TG_F64) {
        double *b = tg_tensor_data(b0);
        b[0] = DBL_MAX;
        b[1] = -0.0;
        b[2] = 4.9e-324;
    } else {
        float *b = tg_tensor_data(b0);
        b[0] = FLT_MAX;
        b[1] = -0.0f;
        b[2] = 1.4e-45f;
    }
    tg_tensor_set(tg_model_param(m, 3), 0, dt == TG_F64 ? -DBL_MAX : -FLT_MAX);
    if (metadata) {
        const double mean[2] = {1.5, -2.25}, std[2] = {0.5, 3.0};
        const char *cols[2] = {"width", "h\xc3\xb6he"}; /* any bytes but NUL */
        cr_assert_eq(tg_model_set_standardization(m, 2, mean, std), TG_OK);
        cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 2), TG_OK);
        cr_assert_eq(tg_model_set_columns(m, cols, "label"), TG_OK);
    }
    return m;
}

static void save_buf(const tg_model *m, unsigned char **buf, size_t *size)
{
    void *p;
    cr_assert_eq(tg_model_save_buffer(m, &p, size), TG_OK, "%s", tg_last_error());
    *buf = p;
}

static void assert_same_model(const tg_model *a, const tg_model *b)
{
    const tg_mlp_spec *sa = tg_model_spec(a), *sb = tg_model_spec(b);
    cr_assert_eq(memcmp(sa, sb, sizeof *sa), 0, "spec differs");
    size_t bytes = tg_model_numel(a) * tg_dtype_size(sa->dtype);
    cr_assert_eq(tg_model_numel(a), tg_model_numel(b));
    cr_assert_eq(memcmp(tg_model_param_data((tg_model *)a), tg_model_param_data((tg_model *)b),
                        bytes),
                 0, "parameters differ");
    size_t na, nb, ka, kb;
    const double *ma, *sda, *mb, *sdb;
    tg_model_standardization(a, &na, &ma, &sda);
    tg_model_standardization(b, &nb, &mb, &sdb);
    cr_assert_eq(na, nb);
    if (na) {
        cr_assert_eq(memcmp(ma, mb, na * 8), 0);
        cr_assert_eq(memcmp(sda, sdb, na * 8), 0);
    }
    cr_assert_eq(tg_model_task(a, &ka), tg_model_task(b, &kb));
    cr_assert_eq(ka, kb);
    for (size_t i = 0; i < sa->sizes[0]; i++) {
        const char *fa = tg_model_feature_name(a, i), *fb = tg_model_feature_name(b, i);
        cr_assert((fa == NULL) == (fb == NULL));
        if (fa)
            cr_assert_str_eq(fa, fb);
    }
    const char *ta = tg_model_target_name(a), *tb = tg_model_target_name(b);
    cr_assert((ta == NULL) == (tb == NULL));
    if (ta)
        cr_assert_str_eq(ta, tb);
}

/* Loads buf and expects TG_EFORMAT with `needle` in the message (NULL: any message). */
static void expect_format_error(const unsigned char *buf, size_t size, const char *needle,
                                const char *what)
{
    tg_model *m = (tg_model *)&m;
    tg_status st = tg_model_load_buffer(buf, size, &m);
    cr_assert_eq(st, TG_EFORMAT, "%s: status %s, message: %s", what, tg_status_name(st),
                 tg_last_error());
    cr_assert_null(m, "%s: nothing is returned", what);
    ts_assert_has(tg_last_error(), "model_load_buffer: ");
    if (needle)
        ts_assert_has(tg_last_error(), needle);
}

/* Makes a forged file consistent again: size field and checksum. */
static void reseal(unsigned char *buf, size_t size)
{
    ts_put_le(buf + 16, size, 8);
    ts_put_le(buf + size - 8, XXH3_64bits(buf, size - 8), 8);
}

static size_t find(const unsigned char *buf, size_t size, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(buf + i, s, n) == 0)
            return i;
    cr_assert_fail("'%s' not in the file", s);
    return 0;
}

/* A fresh directory for files, removed at the end by the test itself. */
static char tmpdir[64];
static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg_model_file_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

/* ---- round trips ---------------------------------------------------------------------------- */

Test(model_file, round_trip_buffer_bit_exact)
{
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        for (int meta = 0; meta < 2; meta++) {
            tg_model *m = small_model(dts[d], meta);
            unsigned char *buf;
            size_t size;
            save_buf(m, &buf, &size);
            tg_model *back = NULL;
            cr_assert_eq(tg_model_load_buffer(buf, size, &back), TG_OK, "%s", tg_last_error());
            assert_same_model(m, back);
            /* Saving the loaded model gives the same bytes. */
            unsigned char *again;
            size_t size2;
            save_buf(back, &again, &size2);
            cr_assert_eq(size2, size);
            cr_assert_eq(memcmp(buf, again, size), 0);
            /* The loaded model works: its parameters are leaves with the gradient block. */
            cr_assert_eq(tg_tensor_grad_data(tg_model_param(back, 0)), tg_model_grad_data(back));
            tg_model_buffer_free(buf, size);
            tg_model_buffer_free(again, size2);
            tg_model_free(m);
            tg_model_free(back);
        }
    }
}

Test(model_file, round_trip_file_and_atomic_overwrite)
{
    make_tmpdir();
    char path[128], names[256];
    snprintf(path, sizeof path, "%s/model.tgm", tmpdir);
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        tg_model *m = small_model(dts[d], true);
        cr_assert_eq(tg_model_save(m, path), TG_OK, "%s", tg_last_error()); /* overwrites */
        cr_assert_eq(ts_dir_names(tmpdir, names, sizeof names), 1,
                     "no temporary file is left behind: %s", names);
        tg_model *back = NULL;
        cr_assert_eq(tg_model_load(path, &back), TG_OK, "%s", tg_last_error());
        assert_same_model(m, back);
        /* The file holds exactly the buffer's bytes. */
        unsigned char *buf;
        size_t size;
        save_buf(m, &buf, &size);
        FILE *f = fopen(path, "rb");
        unsigned char *disk = malloc(size + 1);
        cr_assert_eq(fread(disk, 1, size + 1, f), size);
        fclose(f);
        cr_assert_eq(memcmp(disk, buf, size), 0);
        free(disk);
        tg_model_buffer_free(buf, size);
        tg_model_free(m);
        tg_model_free(back);
    }
    unlink(path);
    rmdir(tmpdir);
}

/* A file name of 254 bytes, valid, too long for "NAME.tmp-XXXXXX" (255 bytes at most on
 * Linux's file systems): the temporary file takes a shorter name in the same directory, and
 * the save and the overwrite work. */
Test(model_file, a_name_near_the_longest_saves)
{
    make_tmpdir();
    char path[512], names[1024];
    int n = snprintf(path, sizeof path, "%s/", tmpdir);
    memset(path + n, 'm', 250);
    strcpy(path + n + 250, ".tgm");
    tg_model *m = small_model(TG_F64, true);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(tg_model_save(m, path), TG_OK, "%s", tg_last_error());
        cr_assert_eq(ts_dir_names(tmpdir, names, sizeof names), 1,
                     "no temporary file is left behind: %s", names);
    }
    tg_model *back = NULL;
    cr_assert_eq(tg_model_load(path, &back), TG_OK, "%s", tg_last_error());
    assert_same_model(m, back);
    tg_model_free(back);
    tg_model_free(m);
    unlink(path);
    rmdir(tmpdir);
}

Test(model_file, documented_layout)
{
    /* One layer 1 -> 1, f32, no metadata: the smallest file, 176 bytes, field by field. */
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 1, s.sizes[0] = 1, s.sizes[1] = 1, s.act[0] = TG_ACT_RELU, s.dtype = TG_F32;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_HE_NORMAL, &rng, &m), TG_OK);
    tg_tensor_set(tg_model_param(m, 0), 0, 1.5);  /* 0x3fc00000 */
    tg_tensor_set(tg_model_param(m, 1), 0, -2.0); /* 0xc0000000 */
    unsigned char *b;
    size_t size;
    save_buf(m, &b, &size);
    cr_assert_eq(size, 176);
    static const unsigned char head[] = {
        'T', 'G', 'M', 'O', 'D', 'E', 'L', 0, /* magic */
        1, 0, 0, 0,                           /* version */
        0, 0, 0, 0,                           /* flags */
        176, 0, 0, 0, 0, 0, 0, 0,             /* file size */
        0, 0, 0, 0,                           /* dtype f32 */
        1, 0, 0, 0,                           /* 1 layer */
        1, 0, 0, 0, 0, 0, 0, 0,               /* sizes[0] */
        1, 0, 0, 0, 0, 0, 0, 0,               /* sizes[1] */
        3, 0, 0, 0,                           /* relu */
        0, 0, 0, 0,                           /* task: regression (M = 40 + 12) */
        0, 0, 0, 0, 0, 0, 0, 0,               /* n_classes */
        0, 0, 0, 0, 0, 0, 0, 0,               /* no standardization */
        0, 0, 0, 0, 0, 0, 0, 0,               /* no feature names */
        0, 0, 0, 0,                           /* no target */
        2, 0, 0, 0,                           /* 2 tensors */
        13, 0, 0, 0, 'l', 'a', 'y', 'e', 'r', '0', '.', 'w', 'e', 'i', 'g', 'h', 't',
        0, 0, 0, 0,                           /* f32 */
        2, 0, 0, 0,                           /* rank 2 */
        1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00, 0xc0, 0x3f,               /* 1.5f */
        11, 0, 0, 0, 'l', 'a', 'y', 'e', 'r', '0', '.', 'b', 'i', 'a', 's',
        0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0xc0,               /* -2.0f */
    };
    cr_assert_eq(sizeof head, 168);
    for (size_t i = 0; i < sizeof head; i++)
        cr_assert_eq(b[i], head[i], "byte %zu: 0x%02x, want 0x%02x", i, b[i], head[i]);
    cr_assert_eq(ts_get_le(b + 168, 8), XXH3_64bits(b, 168),
                 "the checksum covers all bytes before it");
    tg_model_buffer_free(b, size);
    tg_model_free(m);
}

/* ---- corruption ------------------------------------------------------------------------------ */

Test(model_file, every_truncation_is_detected)
{
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        tg_model *m = small_model(dts[d], true);
        unsigned char *buf;
        size_t size;
        save_buf(m, &buf, &size);
        for (size_t len = 0; len < size; len++) {
            /* A copy of exactly len bytes, so ASan sees any read past the end. */
            unsigned char *cut = malloc(len ? len : 1);
            memcpy(cut, buf, len);
            char needle[64], what[64];
            snprintf(needle, sizeof needle, "truncated at byte %zu", len);
            snprintf(what, sizeof what, "%s, %zu of %zu bytes", tg_dtype_name(dts[d]), len, size);
            expect_format_error(cut, len, needle, what);
            free(cut);
        }
        tg_model_buffer_free(buf, size);
        tg_model_free(m);
    }
}

Test(model_file, every_single_byte_flip_is_detected)
{
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        tg_model *m = small_model(dts[d], true);
        unsigned char *buf;
        size_t size;
        save_buf(m, &buf, &size);
        for (size_t i = 0; i < size; i++) {
            buf[i] ^= 0xFF;
            const char *needle = i < 8    ? "bad magic"
                                 : i < 12 ? "unknown format version"
                                 : i < 16 ? "unknown flags"
                                 : i < 24 ? "the header says the file is"
                                          : "checksum mismatch";
            char what[64];
            snprintf(what, sizeof what, "%s, byte %zu of %zu", tg_dtype_name(dts[d]), i, size);
            expect_format_error(buf, size, needle, what);
            buf[i] ^= 0xFF;
        }
        tg_model *ok;
        cr_assert_eq(tg_model_load_buffer(buf, size, &ok), TG_OK, "restored");
        tg_model_free(ok);
        tg_model_buffer_free(buf, size);
        tg_model_free(m);
    }
}

Test(model_file, header_messages)
{
    tg_model *m = small_model(TG_F64, false);
    unsigned char *buf;
    size_t size;
    save_buf(m, &buf, &size);
    const char text[] = "layer0.weight,1,2,3\n";
    expect_format_error((const unsigned char *)text, sizeof text - 1,
                        "bad magic (not a tapegrad model file)", "text");
    ts_put_le(buf + 8, 7, 4);
    expect_format_error(buf, size, "unknown format version 7 (this build reads version 1)",
                        "version 7");
    ts_put_le(buf + 8, 1, 4);
    /* A checksum mismatch names both values. */
    uint64_t stored = ts_get_le(buf + size - 8, 8);
    buf[40] ^= 1;
    char needle[128];
    snprintf(needle, sizeof needle, "checksum mismatch (file says 0x%016llx, content hashes to 0x%016llx)",
             (unsigned long long)stored, (unsigned long long)XXH3_64bits(buf, size - 8));
    expect_format_error(buf, size, needle, "checksum");
    buf[40] ^= 1;
    /* Trailing bytes after the checksum. */
    unsigned char *longer = malloc(size + 3);
    memcpy(longer, buf, size);
    memset(longer + size, 0, 3);
    expect_format_error(longer, size + 3, "trailing", "3 extra bytes");
    free(longer);
    expect_format_error(NULL, 0, "truncated at byte 0", "empty");
    tg_model *out;
    cr_assert_eq(tg_model_load_buffer(NULL, 5, &out), TG_EINVAL);
    cr_assert_eq(tg_model_load_buffer(buf, size, NULL), TG_EINVAL);
    tg_model_buffer_free(buf, size);
    tg_model_free(m);
}

/* Applies `edit` to a copy of the file, reseals it (size and checksum valid again) and
 * expects a clean TG_EFORMAT naming the problem. */
static void forged(const unsigned char *buf, size_t size, size_t at, uint64_t value, int width,
                   const char *needle)
{
    unsigned char *f = malloc(size);
    memcpy(f, buf, size);
    if (width == 1)
        f[at] = (unsigned char)value;
    else if (width == 4)
        ts_put_le(f + at, (uint32_t)value, 4);
    else
        ts_put_le(f + at, value, 8);
    reseal(f, size);
    expect_format_error(f, size, needle, needle);
    free(f);
}

Test(model_file, valid_checksum_but_lying_fields)
{
    tg_model *m = small_model(TG_F32, true);
    unsigned char *b;
    size_t size;
    save_buf(m, &b, &size);
    /* Layout (2 layers): spec at 24, sizes at 32, acts at 56, metadata M = 64. */
    forged(b, size, 24, 2, 4, "unknown dtype 2");
    forged(b, size, 28, 200, 4, "layer count 200 is out of range 1..16");
    forged(b, size, 28, 0, 4, "layer count 0");
    forged(b, size, 32, UINT64_C(1) << 40, 8, "more than the");
    forged(b, size, 40, 0, 8, "layer size 1 is 0");
    forged(b, size, 40, 100, 8, "need more parameters than the");
    forged(b, size, 56, 9, 4, "layer 0 has unknown activation 9");
    forged(b, size, 64, 3, 4, "unknown task 3");
    forged(b, size, 68, 1, 8, "class count 1");
    forged(b, size, 76, UINT64_MAX, 8, "the standardization count is");
    forged(b, size, 76, 1, 8, "standardization for 1 features, the model has 2 inputs");
    forged(b, size, 84 + 8, UINT64_C(0xfff0000000000000), 8, "feature 1 has mean -inf");
    forged(b, size, 84 + 16, 0, 8, "feature 0 has std 0"); /* std[0] = 0 */
    forged(b, size, 84 + 16, UINT64_C(0x7ff0000000000000), 8, "has std inf");
    size_t nfeat = 84 + 32;
    forged(b, size, nfeat, 5, 8, "5 feature names, the model has 2 inputs");
    forged(b, size, nfeat, UINT64_C(1) << 62, 8, "the feature name count is");
    forged(b, size, nfeat + 8, 4000, 4, "expected");
    forged(b, size, nfeat + 8, 5000, 4, "feature name 0 is 5000 bytes long (at most 4096)");
    size_t target_flag = find(b, size, "label") - 8;
    forged(b, size, target_flag, 2, 4, "target flag is 2");
    size_t count = target_flag + 4 + 4 + 5;
    forged(b, size, count, 99, 4, "99 tensors, the spec's 2 layers have 4");
    size_t name = find(b, size, "layer0.weight") - 4;
    cr_assert_eq(name, count + 4);
    forged(b, size, name, 0xFFFFFFF0u, 4, "is 4294967280 bytes long (at most 64)");
    forged(b, size, name + 4 + 5, '2', 1, "tensor 0 is named 'layer2.weight', expected 'layer0.weight'");
    size_t dtype = name + 4 + 13, rank = dtype + 4, shape = rank + 4;
    forged(b, size, dtype, 1, 4, "tensor 'layer0.weight' has dtype 1, the spec says f32");
    forged(b, size, rank, 9, 4, "tensor 'layer0.weight' has rank 9");
    forged(b, size, rank, 1, 4, "tensor 'layer0.weight' has shape [2], the spec implies [2,3]");
    forged(b, size, shape, UINT64_C(1) << 60, 8,
           "has shape [1152921504606846976,3], the spec implies [2,3]");
    forged(b, size, shape + 8, 2, 8, "has shape [2,2], the spec implies [2,3]");

    /* The last tensor's data cut short (the file shrunk consistently): a truncation message
     * naming the tensor. Extra bytes before the checksum are refused too. */
    unsigned char *f = malloc(size + 8);
    memcpy(f, b, size - 8);
    reseal(f, size - 2);
    char needle[160];
    snprintf(needle, sizeof needle, "truncated at byte %zu (expected 2 more bytes for tensor "
             "'layer1.bias' data before the checksum)", size - 2 - 8);
    expect_format_error(f, size - 2, needle, "short data");
    memcpy(f, b, size - 8);
    memset(f + size - 8, 0, 8);
    reseal(f, size + 8);
    expect_format_error(f, size + 8, "8 unexpected bytes after the last tensor", "extra bytes");
    free(f);
    /* A NUL inside a name. */
    f = malloc(size);
    memcpy(f, b, size);
    f[find(b, size, "width") + 2] = 0;
    reseal(f, size);
    expect_format_error(f, size, "feature name 0 contains a NUL byte", "NUL");
    free(f);
    cr_assert_eq(find(b, size, "width"), 128, "the offsets above assume this layout");
    tg_model_buffer_free(b, size);
    tg_model_free(m);
}

/* ---- I/O errors ------------------------------------------------------------------------------- */

Test(model_file, io_errors_name_the_path)
{
    tg_model *m = NULL;
    const char *missing = "/nonexistent-dir/model.tgm";
    cr_assert_eq(tg_model_load(missing, &m), TG_EIO);
    cr_assert_null(m);
    ts_assert_has(tg_last_error(), "model_load: /nonexistent-dir/model.tgm: cannot "
                                   "open: No such file or directory");
    cr_assert_eq(tg_model_load("/tmp", &m), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file");
    cr_assert_eq(tg_model_load(NULL, &m), TG_EINVAL);

    tg_model *model = small_model(TG_F32, false);
    cr_assert_eq(tg_model_save(model, missing), TG_EIO);
    ts_assert_has(tg_last_error(), "model_save: /nonexistent-dir/model.tgm: cannot create the "
                                   "temporary file: No such file or directory "
                                   "(model.tgm.tmp-XXXXXX)");
    /* A long path: the reason is in the message, which is cut at 512 bytes. */
    char longpath[400] = "/nonexistent-dir";
    for (int i = 0; i < 10; i++)
        strcat(longpath, "/ddddddddddddddddddddddddddddd");
    strcat(longpath, "/model.tgm");
    cr_assert_eq(tg_model_save(model, longpath), TG_EIO);
    ts_assert_has(tg_last_error(), "cannot create the temporary file: No such file or directory");
    cr_assert_eq(tg_model_save(model, NULL), TG_EINVAL);
    cr_assert_eq(tg_model_save(NULL, "x"), TG_EINVAL);
    /* An empty path: said so, before any temporary file is made in the working directory. */
    cr_assert_eq(tg_model_save(model, ""), TG_EIO);
    ts_assert_has(tg_last_error(), "model_save: the path is empty: No such file or directory");

    /* A corrupt file on disk: the message starts with the path. */
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/bad.tgm", tmpdir);
    FILE *f = fopen(path, "wb");
    fputs("TGMODEL", f);
    fclose(f);
    cr_assert_eq(tg_model_load(path, &m), TG_EFORMAT);
    char needle[200];
    snprintf(needle, sizeof needle, "model_load: %s: truncated at byte 7", path);
    ts_assert_has(tg_last_error(), needle);
    /* Over 1 GiB (a sparse file: nothing is written or read): refused from its size. */
    cr_assert_eq(truncate(path, ((off_t)1 << 30) + 1), 0, "truncate: %s", strerror(errno));
    cr_assert_eq(tg_model_load(path, &m), TG_EFORMAT);
    ts_assert_has(tg_last_error(), "1073741825 bytes, more than the");
    unlink(path);
    rmdir(tmpdir);
    tg_model_free(model);
}

/* ---- out of memory ------------------------------------------------------------------------- */

/* One of the four entry points, with allocation n failing. */
typedef struct oom_case {
    int which; /* load_buffer, save_buffer, save, load */
    const tg_model *m;
    const unsigned char *buf;
    size_t size;
    const char *path;
} oom_case;

static size_t oom_save_load(size_t n, void *ud)
{
    const oom_case *c = ud;
    tg_model *back = NULL;
    void *out = NULL;
    size_t out_size = 0;
    tg_status st;
    ts_alloc_fail_at(n);
    switch (c->which) {
    case 0: st = tg_model_load_buffer(c->buf, c->size, &back); break;
    case 1: st = tg_model_save_buffer(c->m, &out, &out_size); break;
    case 2: st = tg_model_save(c->m, c->path); break;
    default: st = tg_model_load(c->path, &back); break;
    }
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "model file", n);
        cr_assert_null(back);
        cr_assert_null(out);
    }
    tg_model_free(back);
    tg_model_buffer_free(out, out_size);
    return st != TG_OK;
}

Test(oom, save_and_load_fail_cleanly_at_every_allocation)
{
    ts_alloc_install();
    tg_model *m = small_model(TG_F64, true);
    unsigned char *buf;
    size_t size;
    save_buf(m, &buf, &size);
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/oom.tgm", tmpdir);
    static const char *const names[4] = {"model_load_buffer", "model_save_buffer", "model_save",
                                         "model_load"};
    for (int which = 0; which < 4; which++) {
        oom_case c = {.which = which, .m = m, .buf = buf, .size = size, .path = path};
        /* Success means no allocation was refused: none of these has a fallback. */
        ts_oom_drive(names[which], oom_save_load, &c,
                     (ts_oom_opts){.min_failing = 1, .max_runs = 1000, .no_fallback = true});
    }
    unlink(path);
    rmdir(tmpdir);
    tg_model_buffer_free(buf, size);
    tg_model_free(m);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
}

/* ---- saving where others can write, and loading what is not a file ------------------------- */

/* A symbolic link planted at the old temporary name (PATH.tmp) pointing at someone's file: the
 * save neither writes through it nor leaves PATH a link, and the victim is intact. */
Test(model_file, save_never_writes_through_a_planted_link)
{
    make_tmpdir();
    char path[128], link[136], victim[128], names[256];
    snprintf(path, sizeof path, "%s/m.tgm", tmpdir);
    snprintf(link, sizeof link, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim.txt", tmpdir);
    FILE *f = fopen(victim, "w");
    cr_assert(f && fputs("precious\n", f) >= 0 && fclose(f) == 0);
    cr_assert_eq(symlink("victim.txt", link), 0, "symlink: %s", strerror(errno));
    tg_model *m = small_model(TG_F32, false);
    cr_assert_eq(tg_model_save(m, path), TG_OK, "%s", tg_last_error());
    struct stat sb;
    cr_assert_eq(lstat(path, &sb), 0);
    cr_expect(S_ISREG(sb.st_mode), "%s is a regular file, not a link", path);
    char text[32] = "";
    f = fopen(victim, "r");
    cr_assert(f && fgets(text, sizeof text, f));
    fclose(f);
    cr_expect_str_eq(text, "precious\n", "the victim is untouched");
    cr_expect_eq(lstat(link, &sb), 0);
    cr_expect(S_ISLNK(sb.st_mode), "the planted link is left alone");
    cr_expect_eq(ts_dir_names(tmpdir, names, sizeof names), 3, "only m.tgm, the link and the "
                 "victim: %s", names);
    tg_model_free(m);
}

/* What is at PATH and is not a regular file is never replaced: a FIFO, a directory (and a
 * device, by the same test: not tried here, since a regression run as root would replace
 * /dev/null with a model). */
Test(model_file, save_refuses_what_is_not_a_regular_file)
{
    make_tmpdir();
    char fifo[128], dir[128], names[256];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    snprintf(dir, sizeof dir, "%s/dir", tmpdir);
    cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
    cr_assert_eq(mkdir(dir, 0700), 0, "mkdir: %s", strerror(errno));
    tg_model *m = small_model(TG_F32, false);
    cr_assert_eq(tg_model_save(m, fifo), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file (a FIFO): refusing to replace it");
    cr_assert_eq(tg_model_save(m, dir), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file (a directory)");
    struct stat sb;
    cr_assert_eq(lstat(fifo, &sb), 0);
    cr_expect(S_ISFIFO(sb.st_mode), "the FIFO is still a FIFO");
    cr_expect_eq(ts_dir_names(tmpdir, names, sizeof names), 2, "no temporary file: %s", names);
    unlink(fifo);
    rmdir(dir);
    rmdir(tmpdir);
    tg_model_free(m);
}

/* A symbolic link at PATH is followed: the file it leads to is replaced (atomically, beside
 * itself) and the link survives; a link that leads nowhere, or to a FIFO, is refused. */
Test(model_file, save_through_a_symbolic_link_keeps_the_link)
{
    make_tmpdir();
    char target[128], link[128], dangling[128], fifo[128], to_fifo[128];
    snprintf(target, sizeof target, "%s/real.tgm", tmpdir);
    snprintf(link, sizeof link, "%s/link.tgm", tmpdir);
    snprintf(dangling, sizeof dangling, "%s/dangling.tgm", tmpdir);
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    snprintf(to_fifo, sizeof to_fifo, "%s/to_fifo", tmpdir);
    FILE *f = fopen(target, "w");
    cr_assert(f && fputs("old\n", f) >= 0 && fclose(f) == 0);
    cr_assert_eq(symlink("real.tgm", link), 0, "symlink: %s", strerror(errno));
    tg_model *m = small_model(TG_F64, false), *back = NULL;
    cr_assert_eq(tg_model_save(m, link), TG_OK, "%s", tg_last_error());
    struct stat sb;
    cr_assert_eq(lstat(link, &sb), 0);
    cr_expect(S_ISLNK(sb.st_mode), "the link is still a link");
    cr_assert_eq(tg_model_load(target, &back), TG_OK, "the target holds the model: %s",
                 tg_last_error());
    tg_model_free(back);
    cr_assert_eq(symlink("missing.tgm", dangling), 0);
    cr_assert_eq(tg_model_save(m, dangling), TG_EIO);
    ts_assert_has(tg_last_error(), "a symbolic link that leads to no file");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(symlink("fifo", to_fifo), 0);
    cr_assert_eq(tg_model_save(m, to_fifo), TG_EIO);
    ts_assert_has(tg_last_error(), "which is not a regular file: refusing to replace it");
    cr_assert_eq(lstat(fifo, &sb), 0);
    cr_expect(S_ISFIFO(sb.st_mode));
    unlink(link);
    unlink(target);
    unlink(dangling);
    unlink(to_fifo);
    unlink(fifo);
    rmdir(tmpdir);
    tg_model_free(m);
}

/* Overwriting keeps the old file's permission bits; a new file gets 0666 less the umask. */
Test(model_file, save_keeps_the_old_files_mode)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/m.tgm", tmpdir);
    tg_model *m = small_model(TG_F64, false);
    mode_t mask = umask(022);
    cr_assert_eq(tg_model_save(m, path), TG_OK, "%s", tg_last_error());
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0644, "a new file: mode %o", sb.st_mode & 0777);
    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(tg_model_save(m, path), TG_OK, "%s", tg_last_error());
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600, "overwritten: mode %o, not the old 0600",
                 sb.st_mode & 0777);
    umask(mask);
    tg_model_free(m);
}

/* A FIFO has no writer: loading it must be refused at once, not wait for one forever. */
Test(model_file, a_fifo_is_refused_without_waiting, .timeout = 20)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/fifo", tmpdir);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    tg_model *m = NULL;
    cr_assert_eq(tg_model_load(path, &m), TG_EIO);
    ts_assert_has(tg_last_error(), "not a regular file");
    cr_assert_null(m);
    unlink(path);
}

/* A diverged model (NaN or infinite parameters) is never written, and a file holding one (made
 * by hand, or by an older version) is refused on load: either would predict class 0 for every
 * row without a word. */
Test(model_file, non_finite_parameters_are_refused)
{
    make_tmpdir();
    char path[128], names[256];
    snprintf(path, sizeof path, "%s/m.tgm", tmpdir);
    const double bad[3] = {NAN, INFINITY, -INFINITY};
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < 3; k++) {
            tg_model *m = small_model(dts[d], false);
            unsigned char *buf;
            size_t size;
            save_buf(m, &buf, &size); /* finite: saved */
            tg_tensor_set(tg_model_param(m, 2), 2, bad[k]); /* layer1.weight, (3, 1) */
            cr_expect_eq(tg_model_save(m, path), TG_ENUMERIC, "%g saved", bad[k]);
            ts_assert_has(tg_last_error(), "parameter 'layer1.weight' element 2 is");
            cr_expect_eq(ts_dir_names(tmpdir, names, sizeof names), 0, "nothing written: %s",
                         names);
            void *b2 = NULL;
            size_t s2 = 0;
            cr_expect_eq(tg_model_save_buffer(m, &b2, &s2), TG_ENUMERIC);
            cr_expect_null(b2);

            /* The same value put into a valid file's bytes, the checksum made right again. */
            const size_t es = dts[d] == TG_F32 ? 4 : 8;
            /* layer1.weight's last element ends where layer1.bias's name (u32 length, bytes) starts */
            const size_t at = find(buf, size, "layer1.bias") - 4 - es;
            if (dts[d] == TG_F32) {
                float f = (float)bad[k];
                memcpy(buf + at, &f, 4);
            } else {
                memcpy(buf + at, &bad[k], 8);
            }
            reseal(buf, size);
            tg_model *back = NULL;
            cr_expect_eq(tg_model_load_buffer(buf, size, &back), TG_EFORMAT, "%g loaded", bad[k]);
            ts_assert_has(tg_last_error(), "tensor 'layer1.weight' element 2 is not finite");
            cr_expect_null(back);
            tg_model_buffer_free(buf, size);
            tg_model_free(m);
        }
    }
}

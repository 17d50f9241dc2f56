/* test_tensor_file.c: named tensor files (tapegrad/io.h, docs/tensor-format.md): bit-exact
 * round trips of both dtypes, every rank, 0-d and empty tensors; the smallest file byte by
 * byte; each corruption (magic, version, flags, size, checksum, every truncation, names,
 * shapes) a clean TG_EFORMAT naming the file and the fault; loading into existing leaves by
 * name with dtype and shape checks, all or nothing; and the out-of-memory paths. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "support/helpers.h"
#include "support/oom.h"
#include "support/proc.h"

/* Rewrites the header's size field and the trailing checksum to match buf, so a change to the
 * body reaches the body's own checks. */
static void repair(unsigned char *buf, size_t size)
{
    ts_put_le(buf + 16, size, 8);
    ts_put_le(buf + size - 8, XXH3_64bits(buf, size - 8), 8);
}

/* A file of header, body and checksum, made here by hand (not by tapegrad). */
static unsigned char *frame(const unsigned char *body, size_t body_len, size_t *size)
{
    *size = 24 + body_len + 8;
    unsigned char *b = calloc(1, *size);
    memcpy(b, "TGTENSR", 8);
    ts_put_le(b + 8, 1, 4);
    memcpy(b + 24, body, body_len);
    repair(b, *size);
    return b;
}

/* Five tensors covering both dtypes, ranks 0..4, an empty one and special values. */
typedef struct five {
    tg_tensor *t[5];
    const char *names[5];
} five;

static five make_five(void)
{
    five f = {{NULL}, {"scalar", "layer.w", "empty", "specials", "cube"}};
    f.t[0] = tg_tensor_scalar(TG_F32, 0);
    uint32_t nan_bits = 0x7fc12345u; /* a NaN with a payload */
    memcpy(tg_tensor_data(f.t[0]), &nan_bits, 4);
    const size_t s2[2] = {2, 3}, s0[2] = {0, 3}, s4[4] = {2, 1, 3, 2}, s1[1] = {6};
    f.t[1] = tg_tensor_from_f64(TG_F64, 2, s2, (double[]){0.1, -0.2, 1e-310, 3, 4, 5});
    f.t[2] = tg_tensor_zeros(TG_F32, 2, s0);
    f.t[3] = tg_tensor_from_f64(TG_F32, 1, s1,
                                (double[]){INFINITY, -INFINITY, -0.0, 1e-45, 3.4e38, 1.0 / 3});
    f.t[4] = tg_tensor_zeros(TG_F64, 4, s4);
    for (size_t i = 0; i < 12; i++)
        tg_tensor_set(f.t[4], i, sin((double)i) * 1e5);
    for (int i = 0; i < 5; i++)
        cr_assert_not_null(f.t[i]);
    return f;
}

static void free_five(five *f)
{
    for (int i = 0; i < 5; i++)
        tg_tensor_free(f->t[i]);
}

static void assert_same(const tg_tensor *a, const tg_tensor *b, const char *what)
{
    cr_assert_eq(tg_tensor_dtype(a), tg_tensor_dtype(b), "%s: dtype", what);
    cr_assert_eq(tg_tensor_rank(a), tg_tensor_rank(b), "%s: rank", what);
    for (int d = 0; d < tg_tensor_rank(a); d++)
        cr_assert_eq(tg_tensor_shape(a)[d], tg_tensor_shape(b)[d], "%s: axis %d", what, d);
    size_t bytes = tg_tensor_numel(a) * tg_dtype_size(tg_tensor_dtype(a));
    cr_assert_eq(tg_tensor_numel(a), tg_tensor_numel(b), "%s: numel", what);
    if (bytes)
        cr_assert_eq(memcmp(tg_tensor_data_const(a), tg_tensor_data_const(b), bytes), 0,
                     "%s: the values differ", what);
}

static void save_five(five *f, void **buf, size_t *size)
{
    cr_assert_eq(tg_tensors_save_buffer(5, f->names, (const tg_tensor *const *)f->t, buf, size),
                 TG_OK, "%s", tg_last_error());
}

Test(tensor_file, round_trip_is_bit_exact)
{
    five f = make_five();
    void *buf;
    size_t size;
    save_five(&f, &buf, &size);
    tg_tensors *set = NULL;
    cr_assert_eq(tg_tensors_load_buffer(buf, size, &set), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensors_count(set), 5);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(tg_tensors_name(set, i), f.names[i]);
        assert_same(tg_tensors_get(set, i), f.t[i], f.names[i]);
        cr_assert_str_eq(tg_tensor_name(tg_tensors_get(set, i)), f.names[i]);
        cr_assert_eq(tg_tensors_find(set, f.names[i]), tg_tensors_get(set, i));
        cr_assert(tg_tensor_is_leaf(tg_tensors_get(set, i)));
    }
    cr_assert_null(tg_tensors_find(set, "nope"));
    ts_assert_has(tg_last_error(), "no tensor 'nope' among the 5");
    cr_assert_null(tg_tensors_get(set, 5));
    /* One encoding per content: saving what was loaded gives the same bytes. */
    const tg_tensor *again[5];
    const char *names[5];
    for (size_t i = 0; i < 5; i++)
        again[i] = tg_tensors_get(set, i), names[i] = tg_tensors_name(set, i);
    void *buf2;
    size_t size2;
    cr_assert_eq(tg_tensors_save_buffer(5, NULL, again, &buf2, &size2), TG_OK, "%s",
                 tg_last_error());
    cr_assert_eq(size2, size);
    cr_assert_eq(memcmp(buf, buf2, size), 0);
    tg_tensors_buffer_free(buf2, size2);
    (void)names;
    /* A taken tensor is the caller's. */
    tg_tensor *taken = tg_tensors_take(set, 1);
    cr_assert_not_null(taken);
    cr_assert_null(tg_tensors_take(set, 1));
    ts_assert_has(tg_last_error(), "taken already");
    /* Its name stays in the set, but find no longer gives it: NULL, with an error saying why
     * (not the error of an earlier call, or none). */
    tg_clear_error();
    cr_assert_null(tg_tensors_find(set, f.names[1]));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensors_find: tensor 1, 'layer.w', was taken already");
    tg_tensors_free(set);
    assert_same(taken, f.t[1], "taken");
    tg_tensor_free(taken);
    /* Into existing leaves, by name, in any order. */
    five g = make_five();
    for (int i = 0; i < 5; i++)
        for (size_t k = 0; k < tg_tensor_numel(g.t[i]); k++)
            tg_tensor_set(g.t[i], k, 7);
    tg_tensor *rev[5] = {g.t[4], g.t[3], g.t[2], g.t[1], g.t[0]};
    const char *rev_names[5] = {"cube", "specials", "empty", "layer.w", "scalar"};
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, rev_names, rev), TG_OK, "%s",
                 tg_last_error());
    for (int i = 0; i < 5; i++)
        assert_same(g.t[i], f.t[i], f.names[i]);
    free_five(&g);
    tg_tensors_buffer_free(buf, size);
    free_five(&f);
}

/* One 0-d f32 tensor "a" = 1.5 (0x3fc00000): 24 + 8 + (4 + 1 + 4 + 4 + 4) + 8 = 57 bytes. */
Test(tensor_file, the_smallest_file_byte_by_byte)
{
    tg_tensor *a = tg_tensor_scalar(TG_F32, 1.5);
    const char *name = "a";
    void *buf;
    size_t size;
    cr_assert_eq(tg_tensors_save_buffer(1, &name, (const tg_tensor *const *)&a, &buf, &size),
                 TG_OK);
    cr_assert_eq(size, 57);
    const unsigned char *b = buf;
    cr_assert_eq(memcmp(b, "TGTENSR\0", 8), 0);
    cr_assert_eq(ts_get_le(b + 8, 4), 1);   /* version */
    cr_assert_eq(ts_get_le(b + 12, 4), 0);  /* flags */
    cr_assert_eq(ts_get_le(b + 16, 8), 57); /* size */
    cr_assert_eq(ts_get_le(b + 24, 8), 1);  /* count */
    cr_assert_eq(ts_get_le(b + 32, 4), 1);  /* name length */
    cr_assert_eq(b[36], 'a');
    cr_assert_eq(ts_get_le(b + 37, 4), 0); /* f32 */
    cr_assert_eq(ts_get_le(b + 41, 4), 0); /* rank 0: no shape */
    cr_assert_eq(ts_get_le(b + 45, 4), 0x3fc00000u);
    cr_assert_eq(ts_get_le(b + 49, 8), XXH3_64bits(b, 49));
    tg_tensors_buffer_free(buf, size);
    /* No tensors at all: a count of 0. */
    cr_assert_eq(tg_tensors_save_buffer(0, NULL, NULL, &buf, &size), TG_OK);
    cr_assert_eq(size, 40);
    tg_tensors *set = NULL;
    cr_assert_eq(tg_tensors_load_buffer(buf, size, &set), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensors_count(set), 0);
    tg_tensors_free(set);
    tg_tensors_buffer_free(buf, size);
    tg_tensor_free(a);
}

static tg_status load_st(const unsigned char *b, size_t size)
{
    tg_tensors *set = (tg_tensors *)&set;
    tg_status st = tg_tensors_load_buffer(b, size, &set);
    if (st == TG_OK)
        tg_tensors_free(set);
    else
        cr_assert_null(set, "nothing is returned on error");
    return st;
}

static void expect_format_error(const unsigned char *b, size_t size, const char *needle)
{
    cr_assert_eq(load_st(b, size), TG_EFORMAT, "expected '%s'; got %s", needle, tg_last_error());
    ts_assert_has(tg_last_error(), "tensors_load_buffer: ");
    ts_assert_has(tg_last_error(), needle);
}

Test(tensor_file, header_faults_are_named)
{
    five f = make_five();
    void *buf;
    size_t size;
    save_five(&f, &buf, &size);
    unsigned char *b = malloc(size);
    memcpy(b, buf, size);
    b[0] = 'X';
    expect_format_error(b, size, "bad magic (not a tapegrad tensor file)");
    memcpy(b, buf, size);
    ts_put_le(b + 8, 2, 4);
    expect_format_error(b, size, "unknown format version 2 (this build reads version 1)");
    memcpy(b, buf, size);
    ts_put_le(b + 12, 1, 4);
    expect_format_error(b, size, "unknown flags 0x00000001");
    memcpy(b, buf, size);
    b[size / 2] ^= 0x10;
    expect_format_error(b, size, "checksum mismatch");
    memcpy(b, buf, size);
    b[size - 1] ^= 0x01; /* the checksum itself */
    expect_format_error(b, size, "checksum mismatch");
    /* A model file is not a tensor file, nor the other way round. */
    tg_tensors *set = NULL;
    cr_assert_eq(tg_tensors_load_buffer(b, 0, &set), TG_EFORMAT);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_load_buffer(buf, size, &m), TG_EFORMAT);
    ts_assert_has(tg_last_error(), "bad magic (not a tapegrad model file)");
    free(b);
    tg_tensors_buffer_free(buf, size);
    free_five(&f);
}

/* Every prefix of a file is refused cleanly, as it is and with the frame repaired around it
 * (then the body's own checks must catch the missing bytes); ASan watches the reads. */
Test(tensor_file, every_truncation_is_refused)
{
    five f = make_five();
    void *buf;
    size_t size;
    save_five(&f, &buf, &size);
    for (size_t len = 0; len < size; len++) {
        unsigned char *b = malloc(len ? len : 1); /* exactly len bytes: ASan sees overreads */
        memcpy(b, buf, len);
        cr_assert_eq(load_st(b, len), TG_EFORMAT, "length %zu: %s", len, tg_last_error());
        ts_assert_has(tg_last_error(), "tensors_load_buffer: ");
        if (len >= 32) {
            repair(b, len);
            cr_assert_eq(load_st(b, len), TG_EFORMAT, "repaired length %zu", len);
            ts_assert_has(tg_last_error(), "tensors_load_buffer: ");
        }
        free(b);
    }
    tg_tensors_buffer_free(buf, size);
    free_five(&f);
}

/* Random byte changes with the frame repaired: each load succeeds or fails with TG_EFORMAT,
 * never crashes, never leaks (ASan and the allocator books). */
Test(tensor_file, mutated_bodies_never_crash)
{
    five f = make_five();
    void *buf;
    size_t size;
    save_five(&f, &buf, &size);
    unsigned char *b = malloc(size);
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    size_t loaded = 0;
    for (int k = 0; k < 4000; k++) {
        memcpy(b, buf, size);
        int changes = 1 + (int)(tg_rng_next(&rng) % 3);
        for (int c = 0; c < changes; c++) {
            size_t at = 24 + (size_t)(tg_rng_next(&rng) % (size - 32));
            b[at] = (unsigned char)tg_rng_next(&rng);
        }
        repair(b, size);
        tg_status st = load_st(b, size);
        cr_assert(st == TG_OK || st == TG_EFORMAT, "try %d: %s", k, tg_last_error());
        loaded += st == TG_OK;
    }
    cr_assert_gt(loaded, 0, "changes to values load");
    free(b);
    tg_tensors_buffer_free(buf, size);
    free_five(&f);
}

/* Bodies made by hand: the checks a valid checksum does not replace. */
Test(tensor_file, bad_bodies_are_named)
{
    size_t size;
    unsigned char *b;
    /* count 1; name "" */
    unsigned char empty_name[8 + 4 + 4 + 4 + 4] = {1};
    b = frame(empty_name, sizeof empty_name, &size);
    expect_format_error(b, size, "tensor 0 has an empty name");
    free(b);
    /* two tensors named "w", 0-d f32 */
    unsigned char dup[8 + 2 * 17] = {2};
    for (int i = 0; i < 2; i++) {
        unsigned char *r = dup + 8 + 17 * i;
        r[0] = 1, r[4] = 'w';
    }
    b = frame(dup, sizeof dup, &size);
    expect_format_error(b, size, "tensors 0 and 1 are both named 'w'");
    free(b);
    /* dtype 2, rank 5, a shape bigger than the file, a NUL in a name, a huge count */
    unsigned char one[8 + 17] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'w'};
    one[13] = 2;
    b = frame(one, sizeof one, &size);
    expect_format_error(b, size, "tensor 'w' has unknown dtype 2 (0 = f32, 1 = f64)");
    free(b);
    one[13] = 0, one[17] = 5;
    b = frame(one, sizeof one, &size);
    expect_format_error(b, size, "tensor 'w' has rank 5 (0..4)");
    free(b);
    unsigned char big[8 + 4 + 1 + 4 + 4 + 16] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'w'};
    big[8 + 5 + 4] = 2; /* rank 2 */
    ts_put_le(big + 8 + 13, (uint64_t)1 << 40, 8);
    ts_put_le(big + 8 + 21, (uint64_t)1 << 40, 8);
    b = frame(big, sizeof big, &size);
    expect_format_error(b, size,
                        "tensor 'w' has shape [1099511627776,1099511627776], more "
                        "elements than the 0 bytes left hold");
    free(b);
    one[12] = 0;
    one[17] = 0;
    b = frame(one, sizeof one, &size);
    expect_format_error(b, size, "the name of tensor 0 contains a NUL byte");
    free(b);
    unsigned char count[8];
    ts_put_le(count, 1000, 8);
    b = frame(count, sizeof count, &size);
    expect_format_error(b, size, "the tensor count is 1000, more than the 0 the file can hold");
    free(b);
    /* trailing bytes after the last tensor */
    unsigned char trail[8 + 17 + 3] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'w'};
    b = frame(trail, sizeof trail, &size);
    expect_format_error(b, size, "3 unexpected bytes after the last tensor");
    free(b);
}

Test(tensor_file, save_refuses_bad_names_and_tensors)
{
    five f = make_five();
    void *buf = (void *)1;
    size_t size = 1;
    const char *dup[5] = {"a", "b", "c", "b", "e"};
    cr_assert_eq(tg_tensors_save_buffer(5, dup, (const tg_tensor *const *)f.t, &buf, &size),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensors_save_buffer: tensors 1 and 3 are both named 'b'");
    cr_assert_null(buf);
    cr_assert_eq(size, 0);
    const char *empty[5] = {"a", "b", "", "d", "e"};
    cr_assert_eq(tg_tensors_save_buffer(5, empty, (const tg_tensor *const *)f.t, &buf, &size),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor 2's name is 0 bytes long (1..1024)");
    /* names NULL: the tensors' own names, and f.t[] have none */
    cr_assert_eq(tg_tensors_save_buffer(5, NULL, (const tg_tensor *const *)f.t, &buf, &size),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor 0 has no name (pass names, or tg_tensor_set_name)");
    const tg_tensor *withnull[2] = {f.t[0], NULL};
    cr_assert_eq(tg_tensors_save_buffer(2, dup, withnull, &buf, &size), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor 1 is NULL");
    cr_assert_eq(tg_tensors_save(NULL, 0, NULL, NULL), TG_EINVAL);
    cr_assert_eq(tg_tensors_save_buffer(0, NULL, NULL, NULL, &size), TG_EINVAL);
    /* A tape tensor whose tape was reset is stale. */
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_neg(tape, f.t[1]);
    tg_tape_reset(tape);
    const tg_tensor *stale[1] = {y};
    cr_assert_eq(tg_tensors_save_buffer(1, dup, stale, &buf, &size), TG_ESTALE);
    ts_assert_has(tg_last_error(), "tensors_save_buffer: tensor 0: ");
    /* An empty one too, with names given (it was saved) or not (it was said to have none). */
    const size_t none[2] = {0, 3};
    tg_tensor *e = tg_tensor_zeros(TG_F64, 2, none);
    tg_tensor_set_requires_grad(e, true);
    tg_tensor *ye = tg_neg(tape, e);
    cr_assert_not_null(ye, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_set_name(ye, "ye"), TG_OK);
    tg_tape_reset(tape);
    stale[0] = ye;
    cr_assert_eq(tg_tensors_save_buffer(1, dup, stale, &buf, &size), TG_ESTALE);
    ts_assert_has(tg_last_error(), "tensors_save_buffer: tensor 0: ");
    cr_assert_null(buf);
    cr_assert_eq(tg_tensors_save_buffer(1, NULL, stale, &buf, &size), TG_ESTALE);
    ts_assert_has(tg_last_error(), "was recorded before its tape was reset");
    tg_tensor_free(e);
    tg_tape_free(tape);
    free_five(&f);
}

Test(tensor_file, load_into_checks_everything_before_writing)
{
    five f = make_five();
    void *buf;
    size_t size;
    save_five(&f, &buf, &size);
    five g = make_five();
    for (int i = 0; i < 5; i++)
        cr_assert_eq(tg_tensor_set_name(g.t[i], f.names[i]), TG_OK);
    tg_tensor_set(g.t[1], 0, 42);
    /* a shape that differs: w as (3, 2) */
    const size_t s32[2] = {3, 2};
    tg_tensor *w32 = tg_tensor_zeros(TG_F64, 2, s32),
              *w_f32 = tg_tensor_zeros(TG_F32, 2, (size_t[]){2, 3});
    tg_tensor *ts[5] = {g.t[0], g.t[1], g.t[2], g.t[3], w32};
    const char *ns[5] = {"scalar", "specials", "empty", "cube", "layer.w"};
    /* names from ns: specials goes into g.t[1] (f64 (2,3)) while the file's is f32 (6) */
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, ns, ts), TG_EDTYPE);
    ts_assert_has(tg_last_error(),
                  "tensors_load_into_buffer: tensor 'specials' is f32 in the file, f64 here");
    cr_assert_eq(tg_tensor_get(g.t[1], 0), 42, "nothing is written on error");
    tg_tensor *ts2[5] = {g.t[0], g.t[1], g.t[2], g.t[3], g.t[4]};
    const char *ns2[5] = {"scalar", "layer.w", "empty", "specials", "cube"};
    ts2[1] = w32;
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, ns2, ts2), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "tensor 'layer.w' has shape [2,3] in the file, [3,2] here");
    ts2[1] = w_f32;
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, ns2, ts2), TG_EDTYPE);
    ts_assert_has(tg_last_error(), "tensor 'layer.w' is f64 in the file, f32 here");
    ts2[1] = g.t[1];
    /* missing, extra, twice */
    const char *ns3[5] = {"scalar", "layer.w", "empty", "specials", "nope"};
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, ns3, ts2), TG_EINVAL);
    ts_assert_has(tg_last_error(), "no tensor 'nope' in the file (it holds 5)");
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 4, NULL, ts2), TG_EINVAL);
    ts_assert_has(tg_last_error(), "the file's tensor 'cube' is not among the 4 given");
    const char *ns4[5] = {"scalar", "layer.w", "empty", "specials", "scalar"};
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, ns4, ts2), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor 'scalar' is asked for twice");
    cr_assert_eq(tg_tensor_get(g.t[1], 0), 42, "nothing is written on error");
    /* one leaf under two names (a file of two 0-d f32 tensors "s1" and "s2", both of which fit
     * it) would take s2's value over s1's: refused */
    tg_tensor *s1 = tg_tensor_scalar(TG_F32, 1), *s2 = tg_tensor_scalar(TG_F32, 2);
    const char *pair_names[2] = {"s1", "s2"};
    const tg_tensor *pair[2] = {s1, s2};
    void *pbuf;
    size_t psize;
    cr_assert_eq(tg_tensors_save_buffer(2, pair_names, pair, &pbuf, &psize), TG_OK);
    tg_tensor *dst = tg_tensor_scalar(TG_F32, 7), *same[2] = {dst, dst};
    cr_assert_eq(tg_tensors_load_into_buffer(pbuf, psize, 2, pair_names, same), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensors_load_into_buffer: tensors 0 and 1 are the same leaf "
                                   "(as 's1' and 's2')");
    cr_assert_eq(tg_tensor_item(dst), 7, "nothing is written");
    tg_tensors_buffer_free(pbuf, psize);
    tg_tensor_free(s1);
    tg_tensor_free(s2);
    tg_tensor_free(dst);
    /* a tape tensor is not written into */
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_neg(tape, g.t[0]);
    tg_tensor *ts5[1] = {y};
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 1, ns, ts5), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor 0 is not a leaf");
    tg_tape_free(tape);
    /* and with everything right, by the tensors' own names */
    cr_assert_eq(tg_tensors_load_into_buffer(buf, size, 5, NULL, g.t), TG_OK, "%s",
                 tg_last_error());
    for (int i = 0; i < 5; i++)
        assert_same(g.t[i], f.t[i], f.names[i]);
    tg_tensor_free(w32);
    tg_tensor_free(w_f32);
    free_five(&g);
    tg_tensors_buffer_free(buf, size);
    free_five(&f);
}

/* On disk: saved atomically (nothing else left in the directory), loaded back, and the
 * messages name the file. */
Test(tensor_file, files_on_disk)
{
    char dir[] = "/tmp/tg_tensor_file_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], names[256];
    snprintf(path, sizeof path, "%s/net.tgt", dir);
    five f = make_five();
    cr_assert_eq(tg_tensors_save(path, 5, f.names, (const tg_tensor *const *)f.t), TG_OK, "%s",
                 tg_last_error());
    cr_assert_eq(ts_dir_names(dir, names, sizeof names), 1, "left behind: %s", names);
    tg_tensors *set = NULL;
    cr_assert_eq(tg_tensors_load(path, &set), TG_OK, "%s", tg_last_error());
    for (size_t i = 0; i < 5; i++)
        assert_same(tg_tensors_find(set, f.names[i]), f.t[i], f.names[i]);
    tg_tensors_free(set);
    five g = make_five();
    cr_assert_eq(tg_tensors_load_into(path, 5, f.names, g.t), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < 5; i++)
        assert_same(g.t[i], f.t[i], f.names[i]);
    /* corrupt one byte on disk */
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    fseek(fp, 40, SEEK_SET);
    fputc(0x55, fp);
    fclose(fp);
    set = (tg_tensors *)&set;
    cr_assert_eq(tg_tensors_load(path, &set), TG_EFORMAT);
    cr_assert_null(set);
    char want[200];
    snprintf(want, sizeof want, "tensors_load: %s: checksum mismatch", path);
    ts_assert_has(tg_last_error(), want);
    cr_assert_eq(tg_tensors_load_into(path, 5, f.names, g.t), TG_EFORMAT);
    snprintf(want, sizeof want, "tensors_load_into: %s: checksum mismatch", path);
    ts_assert_has(tg_last_error(), want);
    unlink(path);
    cr_assert_eq(tg_tensors_load(path, &set), TG_EIO);
    ts_assert_has(tg_last_error(), "cannot open");
    snprintf(path, sizeof path, "%s/no/such/dir.tgt", dir);
    cr_assert_eq(tg_tensors_save(path, 5, f.names, (const tg_tensor *const *)f.t), TG_EIO);
    ts_assert_has(tg_last_error(), "tensors_save: ");
    rmdir(dir);
    free_five(&g);
    free_five(&f);
}

/* examples/custom_ode keeps its fitted parameters (not an MLP) in a tensor file: another
 * program finds them there by name, k and c those of the observation (2 and 0.3). */
Test(tensor_file, custom_ode_saves_its_parameters, .timeout = 120)
{
    char dir[] = "/tmp/tg_tensor_ode_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], prog[4096];
    snprintf(path, sizeof path, "%s/pendulum.tgt", dir);
    snprintf(prog, sizeof prog, "%s/custom_ode", tp_env("TG_EXAMPLES_DIR"));
    const char *argv[] = {prog, path, NULL};
    tp_run r = tp_run_argv(argv, NULL);
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "as 'log_k_c' and read back");
    ts_assert_has(r.out, "(bit for bit)");
    tp_run_free(&r);
    tg_tensors *set = NULL;
    cr_assert_eq(tg_tensors_load(path, &set), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensors_count(set), 1);
    tg_tensor *q = tg_tensors_find(set, "log_k_c");
    cr_assert_not_null(q);
    cr_assert_eq(tg_tensor_dtype(q), TG_F64);
    cr_assert_eq(tg_tensor_numel(q), 2);
    ts_assert_close(exp(tg_tensor_get(q, 0)), 2.0, 1e-4, 0, "k");
    ts_assert_close(exp(tg_tensor_get(q, 1)), 0.3, 1e-4, 0, "c");
    tg_tensors_free(set);
    unlink(path);
    rmdir(dir);
}

static void *oom_buf;
static size_t oom_size;

static size_t scenario_load(size_t n, void *ud)
{
    (void)ud;
    tg_tensors *set = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_tensors_load_buffer(oom_buf, oom_size, &set);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "tensors_load_buffer", n);
        cr_assert_null(set);
    }
    tg_tensors_free(set);
    return st != TG_OK;
}

static size_t scenario_save(size_t n, void *ud)
{
    five *f = ud;
    void *buf = NULL;
    size_t size = 0;
    ts_alloc_fail_at(n);
    tg_status st = tg_tensors_save_buffer(5, f->names, (const tg_tensor *const *)f->t, &buf, &size);
    ts_alloc_fail_at(0);
    if (st != TG_OK)
        ts_assert_enomem(st, "tensors_save_buffer", n);
    else
        cr_assert_eq(size, oom_size);
    tg_tensors_buffer_free(buf, size);
    return st != TG_OK;
}

static size_t scenario_load_into(size_t n, void *ud)
{
    five *g = ud;
    ts_alloc_fail_at(n);
    tg_status st = tg_tensors_load_into_buffer(oom_buf, oom_size, 5, g->names, g->t);
    ts_alloc_fail_at(0);
    if (st != TG_OK)
        ts_assert_enomem(st, "tensors_load_into_buffer", n);
    return st != TG_OK;
}

Test(tensor_file, out_of_memory_leaks_nothing)
{
    ts_alloc_install();
    five f = make_five(), g = make_five();
    save_five(&f, &oom_buf, &oom_size);
    ts_oom_drive("tensors_load_buffer", scenario_load, NULL, (ts_oom_opts){.min_failing = 5});
    ts_oom_drive("tensors_save_buffer", scenario_save, &f, (ts_oom_opts){.min_failing = 2});
    ts_oom_drive("tensors_load_into_buffer", scenario_load_into, &g,
                 (ts_oom_opts){.min_failing = 2});
    tg_tensors_buffer_free(oom_buf, oom_size);
    free_five(&f);
    free_five(&g);
    ts_alloc_uninstall();
}

/* test_hostile.c: input written to break the library, gathered in one place: shapes whose
 * element count or byte size overflows size_t (refused before anything is allocated), sizes
 * that fit but cannot be allocated, huge tensor literals, nesting far past the parser's
 * limit, CSV text the fuzzer found, and model files that lie about their sizes. Each case
 * asserts its status and the message a user would read. (The tgx parser's depth limit, CSV
 * NaN/Inf/empty fields and single lying model fields have their own tests in test_expr.c,
 * test_data.c and test_model_file.c; this file adds what those do not cover.) */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "support/alloc.h"
#include "support/helpers.h"
#include "support/proc.h"

#define GiB ((size_t)1 << 30)

static void assert_msg(tg_status got, tg_status want, const char *msg, const char *what)
{
    cr_assert_eq(got, want, "%s: %s (%s), expected %s", what, tg_status_name(got),
                 tg_last_error(), tg_status_name(want));
    cr_assert_str_eq(tg_last_error(), msg, "%s", what);
}

/* ---- shapes that overflow size_t ---------------------------------------------------------- */

/* Every leaf constructor refuses a shape whose element count, or byte size, overflows
 * size_t, before it allocates anything (the hook counts attempts). */
Test(overflow, leaf_constructors_refuse_before_allocating)
{
    const size_t elems[2] = {(size_t)1 << 33, (size_t)1 << 33};   /* 2^66 elements */
    const size_t bytes[2] = {(size_t)1 << 61, 1};                 /* 2^64 bytes in f64 */
    const size_t four[4] = {65536, 65536, 65536, 65536};          /* 2^64 elements, rank 4 */
    double one = 1;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    ts_alloc_install();
    cr_assert_null(tg_tensor_zeros(TG_F32, 2, elems));
    cr_assert_eq(tg_last_status(), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "shape [8589934592,8589934592] has too many elements");
    cr_assert_null(tg_tensor_ones(TG_F64, 2, bytes));
    ts_assert_has(tg_last_error(), "shape [2305843009213693952,1] has too many elements");
    cr_assert_null(tg_tensor_full(TG_F32, 4, four, 1));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_null(tg_tensor_from_data(TG_F64, 2, elems, &one));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_null(tg_tensor_from_f64(TG_F32, 2, elems, &one));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_null(tg_tensor_wrap(TG_F64, 2, bytes, &one));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_null(tg_tensor_randn(TG_F64, 2, elems, &rng, 0, 1));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_null(tg_tensor_rand(TG_F32, 4, four, &rng, 0, 1));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    cr_assert_eq(ts_alloc.allocs, 0, "%zu allocation attempts for impossible shapes",
                 ts_alloc.allocs);
    ts_alloc_uninstall();
}

/* On a tape: constants and reshapes with overflowing shapes fail with the node named, and the
 * tape keeps the error until it is reset, after which it records normally. */
Test(overflow, tape_ops_refuse_and_the_tape_recovers)
{
    const size_t elems[2] = {(size_t)1 << 33, (size_t)1 << 33};
    double v[2] = {1, 2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, false);
    tg_tape *tape = tg_tape_new();
    cr_assert_null(tg_constant(tape, TG_F64, 2, elems, v));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE, "%s", tg_tape_error(tape));
    ts_assert_has(tg_tape_error(tape), "[8589934592,8589934592] has too many elements");
    cr_assert_null(tg_neg(tape, x), "the tape keeps its first error");
    tg_tape_reset(tape);
    cr_assert_null(tg_reshape(tape, x, 2, elems));
    assert_msg(tg_tape_status(tape), TG_ESHAPE,
               "reshape: [2] -> [8589934592,8589934592]: the new shape has more elements than "
               "fit in size_t (node 0)",
               "reshape");
    tg_tape_reset(tape);
    tg_tensor *y = tg_sum(tape, tg_neg(tape, x), TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_tensor_item(y), -3);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A model whose parameter count overflows is a bad spec, caught before allocation. */
Test(overflow, model_spec)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 1;
    s.sizes[0] = (size_t)1 << 33;
    s.sizes[1] = (size_t)1 << 33;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = NULL;
    ts_alloc_install();
    tg_status st = tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &m);
    assert_msg(st, TG_EINVAL,
               "model_new: layer 0 (8589934592 -> 8589934592) makes too many parameters",
               "model_new");
    cr_assert_null(m);
    cr_assert_eq(ts_alloc.allocs, 0);
    ts_alloc_uninstall();
}

/* Shapes that fit size_t but no memory: a clean TG_ENOMEM naming the size, nothing leaked.
 * (The hook refuses anything over 1 GiB, as a small machine would.) */
Test(overflow, fits_size_t_but_not_memory)
{
    ts_alloc_install();
    ts_alloc.max_size = GiB;
    const size_t big[2] = {(size_t)1 << 20, (size_t)1 << 20}; /* 8 TiB of f64 */
    cr_assert_null(tg_tensor_zeros(TG_F64, 2, big));
    cr_assert_eq(tg_last_status(), TG_ENOMEM, "%s", tg_last_error());
    ts_assert_has(tg_last_error(), "out of memory for 87960930");

    /* tgx: onehot with 2^53 classes asks for 2^57 bytes. */
    tg_tensor *labels = ts_vec(TG_F64, 2, (double[]){0, 1}, false);
    tg_tape *tape = tg_tape_new();
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse("onehot(y, 9007199254740992)", &prog), TG_OK, "%s",
                 tg_last_error());
    tg_binding env[1] = {{"y", labels}};
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 1, NULL));
    cr_assert_eq(tg_last_status(), TG_ENOMEM, "%s", tg_last_error());
    ts_assert_has(tg_last_error(), "error: 1:1-27: onehot: out of memory");
    /* The tape is usable once reset. */
    tg_tape_reset(tape);
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, 1, NULL);
    cr_assert_null(y);
    tg_tape_reset(tape);
    cr_assert_eq(tg_tensor_item(tg_sum(tape, labels, TG_ALL_AXES, false)), 1);
    tg_program_free(prog);
    tg_tape_free(tape);
    tg_tensor_free(labels);
    cr_assert_eq(ts_alloc.live, 0, "%lld blocks leaked", ts_alloc.live);
    ts_alloc_uninstall();
}

/* Counts larger than any tensor are refused by the tgx parser itself, with the reason. */
Test(overflow, tgx_counts_beyond_2_53)
{
    const char *cases[][2] = {
        {"onehot(y, 4611686018427387904)",
         "error: 1:11: the class count of 'onehot' is 4.61169e+18, more than 2^53 (no tensor "
         "is that large)"},
        {"reshape(y, [1e300, 1])",
         "error: 1:12: the shape of 'reshape' holds 1e+300, more than 2^53 (no tensor is that "
         "large)"},
        {"reshape(y, [4294967296, 4294967296])",
         "error: 1:12: the shape of 'reshape' has too many elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_program *prog = (tg_program *)&prog;
        tg_status st = tg_program_parse(cases[i][0], &prog);
        cr_assert_eq(st, TG_EFORMAT, "%s", cases[i][0]);
        cr_assert_null(prog);
        /* The first line of the message: the caret lines follow. */
        const char *msg = tg_last_error();
        size_t len = strcspn(msg, "\n");
        cr_assert(len == strlen(cases[i][1]) && strncmp(msg, cases[i][1], len) == 0,
                  "%s:\n%s\nexpected\n%s", cases[i][0], msg, cases[i][1]);
    }
}

/* ---- huge literals and deep nesting -------------------------------------------------------- */

/* A literal of a million elements is read and evaluated exactly; the same program under an
 * allocator that refuses its size fails with TG_ENOMEM and leaks nothing. */
Test(literals, a_million_elements)
{
    const size_t n = 1000000;
    char *src = malloc(n * 3 + 64);
    size_t len = (size_t)sprintf(src, "sum(x * [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(src + len, i ? ",%d" : "%d", (int)(i % 7));
    strcpy(src + len, "])");
    double want = 0;
    for (size_t i = 0; i < n; i++)
        want += (double)(i % 7);

    tg_tensor *x = ts_scalar(TG_F64, 2, true);
    tg_binding env[1] = {{"x", x}};
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse(src, &prog), TG_OK, "%s", tg_last_error());
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, 1, NULL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_item(y), 2 * want);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), want);
    tg_tape_free(tape);
    tg_program_free(prog);

    ts_alloc_install();
    ts_alloc.max_size = 4 << 20; /* the literal's 8 MB of doubles is refused */
    prog = (tg_program *)&prog;
    tg_status st = tg_program_parse(src, &prog);
    if (st == TG_OK) {
        tape = tg_tape_new();
        cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 1, NULL));
        tg_tape_free(tape);
        tg_program_free(prog);
    } else {
        cr_assert_null(prog);
    }
    cr_assert_eq(tg_last_status(), TG_ENOMEM, "%s", tg_last_error());
    ts_assert_has(tg_last_error(), "out of memory");
    cr_assert_gt(ts_alloc.failures, 0);
    cr_assert_eq(ts_alloc.live, 0, "%lld blocks leaked", ts_alloc.live);
    ts_alloc_uninstall();
    tg_tensor_free(x);
    free(src);
}

/* A million opening brackets: an error at the fifth (a literal has at most four
 * dimensions), not a stack overflow; the same for values given on the command line. */
Test(nesting, a_million_brackets)
{
    const size_t n = 1000000;
    char *deep = malloc(n + 2);
    memset(deep, '[', n);
    deep[n] = 'x';
    deep[n + 1] = '\0';
    tg_tensor *t = (tg_tensor *)&t;
    tg_expr_error err;
    cr_assert_eq(tg_expr_parse_value(deep, TG_F64, &err, &t), TG_EFORMAT);
    cr_assert_null(t);
    cr_assert_str_eq(err.message, "a tensor literal has at most 4 dimensions");
    cr_assert_eq(err.col, 5);
    /* In a program, parentheses around the brackets count toward the depth limit. */
    memset(deep, '(', n);
    tg_program *prog = (tg_program *)&prog;
    cr_assert_eq(tg_program_parse_n(deep, n + 1, &err, &prog), TG_EFORMAT);
    cr_assert_null(prog);
    ts_assert_has(err.message, "nested too deeply (more than 256 levels)");
    cr_assert_eq(err.col, 257);
    free(deep);
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static void csv_fails(const char *text, size_t len, const char *msg)
{
    tg_table *t = (tg_table *)&t;
    tg_status st = tg_table_parse_csv(text, len, "h.csv", &t);
    assert_msg(st, TG_EFORMAT, msg, text);
    cr_assert_null(t);
}

/* Found by fuzz_csv: a NUL byte in a header name was kept, silently cutting the name short
 * (here to the empty string, which the reader otherwise refuses). */
Test(csv, nul_in_header)
{
    csv_fails("\0\0a,b\n1,2\n", 10, "h.csv:1:1: NUL byte in the header");
    csv_fails("a,b\0c\n1,2\n", 10, "h.csv:1:4: NUL byte in the header");
    csv_fails("\"a\0\",b\n1,2\n", 11, "h.csv:1:3: NUL byte in the header");
    /* "a\0" and "a\0b" would have been two columns named "a". */
    csv_fails("a\0,a\0b\n1,2\n", 11, "h.csv:1:2: NUL byte in the header");
}

/* NaN, Inf and empty fields in the positions test_data.c does not try: the last field of the
 * last line without a newline, CRLF files, and a whole row of empty fields. */
Test(csv, non_finite_and_empty_at_the_edges)
{
    const char *a = "x,y\r\n1,2\r\n3,-nan";
    csv_fails(a, strlen(a), "h.csv:3:3: expected a finite number, found '-nan'");
    const char *b = "x,y\r\n1,2\r\n3,+INF\r\n";
    csv_fails(b, strlen(b), "h.csv:3:3: expected a finite number, found '+INF'");
    const char *c = "x,y,z\n1,2,3\n,,\n";
    csv_fails(c, strlen(c), "h.csv:3:1: expected a number, found an empty field");
    const char *d = "x,y\n1,2\n3,";
    csv_fails(d, strlen(d), "h.csv:3:3: expected a number, found an empty field");
    const char *e = "x,y\n1,2\n3,\t \r\n";
    csv_fails(e, strlen(e), "h.csv:3:5: expected a number, found an empty field");
    const char *f = "x,y\n1,2\n1e400,0\n";
    csv_fails(f, strlen(f), "h.csv:3:1: number out of range, found '1e400'");
}

/* Every file of the fuzzer's CSV corpus parses or fails with TG_EFORMAT naming the file. */
Test(csv, fuzz_corpus_replays_cleanly)
{
    const char *root = tp_env("TG_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus_csv", root);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    size_t files = 0, good = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tg_table *t = NULL;
        tg_status st = tg_table_read_csv(path, &t);
        if (st == TG_OK) {
            good++;
            for (size_t j = 0; j < tg_table_cols(t); j++)
                cr_assert_eq(tg_table_find(t, tg_table_col_name(t, j)), j, "%s", path);
        } else {
            cr_assert_eq(st, TG_EFORMAT, "%s: %s", path, tg_last_error());
            cr_assert_eq(strncmp(tg_last_error(), path, strlen(path)), 0, "%s", tg_last_error());
        }
        tg_table_free(t);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 10);
    cr_assert_geq(good, 3);
}

/* ---- model files that lie about sizes ---------------------------------------------------- */

/* A valid 1-layer f32 file (2 -> 3), no metadata. Layout (docs/model-format.md): spec at 24
 * (dtype, L = 1, sizes at 32 and 40, act at 48), metadata at 52 (task, n_classes, S, F,
 * has_target), tensor count at 84, tensors from 88. */
static unsigned char *one_layer_file(size_t *size)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 1;
    s.sizes[0] = 2;
    s.sizes[1] = 3;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK);
    void *buf;
    cr_assert_eq(tg_model_save_buffer(m, &buf, size), TG_OK);
    unsigned char *copy = malloc(*size + 64);
    memcpy(copy, buf, *size);
    tg_model_buffer_free(buf, *size);
    tg_model_free(m);
    return copy;
}

/* Sets the header's size to `size`, and a valid checksum over the bytes before it. */
static void reseal(unsigned char *b, size_t size)
{
    ts_put_le(b + 16, size, 8);
    ts_put_le(b + size - 8, XXH3_64bits(b, size - 8), 8);
}

static void load_fails(const unsigned char *b, size_t size, const char *needle)
{
    tg_model *m = (tg_model *)&m;
    ts_alloc_install();
    tg_status st = tg_model_load_buffer(b, size, &m);
    cr_assert_eq(st, TG_EFORMAT, "%s: %s", needle, tg_last_error());
    cr_assert_null(m);
    ts_assert_has(tg_last_error(), needle);
    /* A lying count never becomes an allocation: nothing is allocated before the whole file
     * has been checked. */
    cr_assert_eq(ts_alloc.allocs, 0, "%s: %zu allocations", needle, ts_alloc.allocs);
    ts_alloc_uninstall();
}

Test(model_file, lying_sizes)
{
    size_t size;
    unsigned char *b = one_layer_file(&size);
    cr_assert_eq(size, 88 + (4 + 13 + 4 + 4 + 16 + 24) + (4 + 11 + 4 + 4 + 8 + 12) + 8);
    char want[256];
    unsigned char *f = malloc(size + 64);

    /* The header's file size: larger than the data, the largest u64, and smaller. */
    memcpy(f, b, size);
    ts_put_le(f + 16, UINT64_MAX, 8);
    snprintf(want, sizeof want, "truncated at byte %zu (the header says the file is "
             "18446744073709551615 bytes)", size);
    load_fails(f, size, want);
    memcpy(f, b, size);
    ts_put_le(f + 16, 24, 8);
    snprintf(want, sizeof want, "%zu bytes, but the header says the file is 24 bytes "
             "(trailing data?)", size);
    load_fails(f, size, want);

    /* Layer sizes whose product overflows size_t, or whose bytes do, with a valid checksum. */
    memcpy(f, b, size);
    ts_put_le(f + 32, (uint64_t)1 << 33, 8);
    ts_put_le(f + 40, (uint64_t)1 << 33, 8);
    reseal(f, size);
    snprintf(want, sizeof want, "layer size 0 is 8589934592, more than the %zu the file can "
             "hold", size - 8);
    load_fails(f, size, want);
    memcpy(f, b, size);
    ts_put_le(f + 32, (uint64_t)1 << 62, 8);
    reseal(f, size);
    snprintf(want, sizeof want, "layer size 0 is 4611686018427387904, more than the %zu the "
             "file can hold", size - 8);
    load_fails(f, size, want);
    /* Each size alone fits, their product (the weight's element count) does not. */
    memcpy(f, b, size);
    ts_put_le(f + 32, 150, 8);
    ts_put_le(f + 40, 150, 8);
    reseal(f, size);
    load_fails(f, size, "need more parameters than the");

    /* The standardization count: 2^61 pairs of doubles would be 2^65 bytes. */
    memcpy(f, b, size);
    ts_put_le(f + 52 + 12, (uint64_t)1 << 61, 8);
    reseal(f, size);
    load_fails(f, size, "the standardization count is");

    /* The tensor count and a name length of 2^32 - 1. */
    memcpy(f, b, size);
    ts_put_le(f + 84, 0xFFFFFFFFu, 4);
    reseal(f, size);
    load_fails(f, size, "4294967295 tensors, the spec's 1 layers have 2");
    memcpy(f, b, size);
    ts_put_le(f + 88, 0xFFFFFFFFu, 4);
    reseal(f, size);
    load_fails(f, size, "is 4294967295 bytes long (at most 64)");

    /* A weight that claims more data than there is: shape [2, 2^40]. */
    memcpy(f, b, size);
    ts_put_le(f + 88 + 4 + 13 + 8 + 8, (uint64_t)1 << 40, 8);
    reseal(f, size);
    load_fails(f, size, "has shape [2,1099511627776], the spec implies [2,3]");

    /* On disk: the header claims more than the file holds. */
    char path[] = "/tmp/tg_hostile_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    memcpy(f, b, size);
    ts_put_le(f + 16, size + 1000, 8);
    cr_assert_eq(write(fd, f, size), (ssize_t)size);
    close(fd);
    tg_model *m = (tg_model *)&m;
    tg_status st = tg_model_load(path, &m);
    cr_assert_eq(st, TG_EFORMAT);
    cr_assert_null(m);
    snprintf(want, sizeof want, "model_load: %s: truncated at byte %zu (the header says the "
             "file is %zu bytes)", path, size, size + 1000);
    cr_assert_str_eq(tg_last_error(), want);
    unlink(path);

    /* And the untouched file still loads. */
    cr_assert_eq(tg_model_load_buffer(b, size, &m), TG_OK, "%s", tg_last_error());
    tg_model_free(m);
    free(f);
    free(b);
}

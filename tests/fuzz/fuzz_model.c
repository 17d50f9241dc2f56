/* fuzz_model.c: libFuzzer harness for the loaders of the two formats that share a frame,
 * model files and named tensor files (tests/fuzz/run.sh builds and runs it). Each input is
 * loaded from memory as a model and as a tensor file, each twice:
 *  - as it is, which exercises the header checks (magic, version, flags, size, checksum);
 *  - "repaired": the header's fixed fields (the format's magic), its file size and the
 *    trailing XXH3 checksum rewritten to match, so the mutations reach the body parser, which
 *    must reject every lie about counts, lengths, names and shapes on its own.
 * A model or tensor set that loads must save back to the very same bytes (each format has one
 * encoding per content); a model runs a forward pass, a tensor set loads into its own
 * tensors. Everything is freed, so LeakSanitizer sees any leak. */
#include <tapegrad.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_common.h"

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            __builtin_trap();                                                                  \
    } while (0)

#define HEADER 24
#define CHECKSUM 8

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void use_model(tg_model *m, const unsigned char *bytes, size_t size)
{
    const tg_mlp_spec *spec = tg_model_spec(m);
    CHECK(spec->n_layers >= 1 && spec->n_layers <= TG_MLP_MAX_LAYERS);

    /* One encoding per model: saving gives back the input. */
    void *buf = NULL;
    size_t len = 0;
    if (tg_model_save_buffer(m, &buf, &len) == TG_OK) {
        CHECK(len == size && memcmp(buf, bytes, size) == 0);
        tg_model_buffer_free(buf, len);
    }

    /* A forward pass over one row of ones; the loader bounded the sizes by the file's. */
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {1, spec->sizes[0]};
    tg_tensor *x = tg_tensor_ones(spec->dtype, 2, shape);
    if (tape && x) {
        tg_tensor *y = tg_model_forward(tape, m, x);
        if (y) {
            CHECK(tg_tensor_dim(y, 1) == spec->sizes[spec->n_layers]);
            tg_tensor *loss = tg_sum(tape, y, TG_ALL_AXES, false);
            if (loss)
                tg_backward(tape, loss);
        }
    }
    tg_tensor_free(x);
    tg_tape_free(tape);

    size_t n, classes;
    const double *mean, *std;
    CHECK(tg_model_standardization(m, &n, &mean, &std) == TG_OK);
    CHECK(n == 0 || n == spec->sizes[0]);
    tg_task task = tg_model_task(m, &classes);
    CHECK(task == TG_TASK_REGRESS ? classes == 0 : classes >= 2);
}

static void load(const unsigned char *bytes, size_t size)
{
    tg_model *m = NULL;
    tg_status st = tg_model_load_buffer(bytes, size, &m);
    if (st == TG_OK) {
        CHECK(m != NULL);
        use_model(m, bytes, size);
    } else {
        CHECK(m == NULL);
        CHECK(st == TG_EFORMAT || st == TG_ENOMEM);
        CHECK(strncmp(tg_last_error(), "model_load_buffer: ", 19) == 0);
    }
    tg_model_free(m);
}

static void use_tensors(tg_tensors *set, const unsigned char *bytes, size_t size)
{
    size_t n = tg_tensors_count(set);
    tg_tensor **ts = malloc((n ? n : 1) * sizeof *ts);
    if (!ts)
        return;
    for (size_t i = 0; i < n; i++) {
        ts[i] = tg_tensors_get(set, i);
        CHECK(ts[i] && tg_tensors_name(set, i) && tg_tensors_find(set, tg_tensors_name(set, i)));
        CHECK(tg_tensor_rank(ts[i]) >= 0 && tg_tensor_rank(ts[i]) <= TG_MAX_RANK);
    }
    void *buf = NULL;
    size_t len = 0;
    if (tg_tensors_save_buffer(n, NULL, (const tg_tensor *const *)ts, &buf, &len) == TG_OK) {
        CHECK(len == size && memcmp(buf, bytes, size) == 0);
        tg_tensors_buffer_free(buf, len);
    }
    tg_status st = tg_tensors_load_into_buffer(bytes, size, n, NULL, ts);
    CHECK(st == TG_OK || st == TG_ENOMEM);
    free(ts);
}

static void load_tensors(const unsigned char *bytes, size_t size)
{
    tg_tensors *set = NULL;
    tg_status st = tg_tensors_load_buffer(bytes, size, &set);
    if (st == TG_OK) {
        CHECK(set != NULL);
        use_tensors(set, bytes, size);
    } else {
        CHECK(set == NULL);
        CHECK(st == TG_EFORMAT || st == TG_ENOMEM);
        CHECK(strncmp(tg_last_error(), "tensors_load_buffer: ", 21) == 0);
    }
    tg_tensors_free(set);
}

/* The frame around bytes made to match, with `magic`: what a writer would have put there. */
static void repair(unsigned char *bytes, size_t size, const char *magic)
{
    memcpy(bytes, magic, 8);
    put_le(bytes + 8, 1, 4);
    put_le(bytes + 12, 0, 4);
    put_le(bytes + 16, size, 8);
    put_le(bytes + size - CHECKSUM, XXH3_64bits(bytes, size - CHECKSUM), 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_install_hook();
    fuzz_reset_budget();
    /* Exactly `size` bytes on the heap, so ASan catches a read one past the end. */
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    load(bytes, size);
    fuzz_reset_budget();
    load_tensors(bytes, size);

    if (size >= HEADER + CHECKSUM) {
        fuzz_reset_budget();
        repair(bytes, size, "TGMODEL");
        load(bytes, size);
        memcpy(bytes, data, size);
        fuzz_reset_budget();
        repair(bytes, size, "TGTENSR");
        load_tensors(bytes, size);
    }
    free(bytes);
    return 0;
}

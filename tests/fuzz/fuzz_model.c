/* fuzz_model.c: libFuzzer harness for the model-file loader (tests/fuzz/run.sh builds and
 * runs it). Each input is loaded twice from memory:
 *  - as it is, which exercises the header checks (magic, version, flags, size, checksum);
 *  - "repaired": the header's fixed fields, its file size and the trailing XXH3 checksum
 *    rewritten to match, so the mutations reach the body parser, which must reject every
 *    lie about counts, lengths, names and shapes on its own.
 * A model that loads must save back to the very same bytes (the format has one encoding
 * per model), and run a forward pass. Everything is freed, so LeakSanitizer sees any leak. */
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

    if (size >= HEADER + CHECKSUM) {
        fuzz_reset_budget();
        memcpy(bytes, "TGMODEL", 8);
        put_le(bytes + 8, 1, 4);
        put_le(bytes + 12, 0, 4);
        put_le(bytes + 16, size, 8);
        put_le(bytes + size - CHECKSUM, XXH3_64bits(bytes, size - CHECKSUM), 8);
        load(bytes, size);
    }
    free(bytes);
    return 0;
}

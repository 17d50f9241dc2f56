/* fuzz_tgx.c: libFuzzer harness for the tgx parser and evaluator (tests/fuzz/run.sh builds
 * and runs it). Each input is parsed as a program; if it parses, its inputs are bound to
 * small tensors chosen by name, it is evaluated on a tape (f64, or f32 for some inputs) and
 * differentiated; the same bytes are also fed to the value parser. Everything is freed, so
 * LeakSanitizer sees any leak on any path.
 *
 * An allocator hook bounds the memory one input may use (fuzz_common.h): programs that build
 * huge tensors then take the TG_ENOMEM paths instead of exhausting the fuzzer, and the
 * amount of arithmetic an input can ask for stays small enough to keep runs fast. */
#include <tapegrad.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static const double VALUES[6] = {0.5, -1.25, 2.0, -0.3, 0.9, 1.7};
static const double LABELS[2] = {0, 1};

/* The shapes inputs get, by a hash of their name: 0-d, vectors, matrices, and class ids. */
static const struct {
    int rank;
    size_t shape[2];
    const double *v;
    bool grad;
} KINDS[] = {
    {0, {1, 1}, VALUES, true}, {1, {3, 1}, VALUES, true},  {2, {2, 3}, VALUES, true},
    {2, {3, 2}, VALUES, true}, {2, {2, 2}, VALUES, true},  {1, {2, 1}, LABELS, false},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])
#define MAX_BOUND 16

static void evaluate(const tg_program *prog, tg_dtype dtype)
{
    size_t n = tg_program_input_count(prog);
    if (n > MAX_BOUND)
        n = MAX_BOUND; /* the rest stay unbound: the "no value" path */
    tg_binding env[MAX_BOUND];
    for (size_t i = 0; i < n; i++) {
        const char *name = tg_program_input_name(prog, i);
        size_t h = strlen(name) + (unsigned char)name[0];
        size_t k = h % N_KINDS;
        env[i].name = name;
        env[i].value = tg_tensor_from_f64(dtype, KINDS[k].rank, KINDS[k].shape, KINDS[k].v);
        if (env[i].value)
            tg_tensor_set_requires_grad(env[i].value, KINDS[k].grad);
    }
    tg_tape *tape = tg_tape_new();
    if (tape) {
        tg_expr_error err;
        tg_tensor *y = tg_program_eval(prog, tape, dtype, env, n, &err);
        if (y && tg_tensor_requires_grad(y)) {
            tg_tensor *seed = tg_tensor_ones(dtype, tg_tensor_rank(y), tg_tensor_shape(y));
            if (seed)
                tg_backward_seed(tape, y, seed);
            tg_tensor_free(seed);
        } else if (!y) {
            size_t len;
            const char *src = tg_program_source(prog, &len);
            char buf[256];
            tg_expr_error_format(&err, src, len, buf, sizeof buf);
        }
    }
    tg_tape_free(tape);
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(env[i].value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_install_hook();
    fuzz_reset_budget();
    const char *src = (const char *)data;
    tg_program *prog = NULL;
    tg_expr_error err;
    if (tg_program_parse_n(src, size, &err, &prog) == TG_OK) {
        evaluate(prog, size % 3 == 0 ? TG_F32 : TG_F64);
        tg_program_free(prog);
    } else {
        char buf[1024];
        tg_expr_error_format(&err, src, size, buf, sizeof buf);
    }
    fuzz_reset_budget();
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        tg_tensor *t = NULL;
        tg_expr_parse_value(text, TG_F64, &err, &t);
        tg_tensor_free(t);
        free(text);
    }
    return 0;
}

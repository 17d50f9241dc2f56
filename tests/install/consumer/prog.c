/* consumer/prog.c: a program that uses an installed tapegrad the way a user would, and calls
 * into every module once: a tape and an op (y = x^2 at 3: y = 9, dy/dx = 6, by hand), the
 * tape's fingerprint (xxHash), an MLP saved to a file and loaded back, an optimizer step, a
 * prediction, a named-tensor file written and read back, a tgx program, the dot text, a render to SVG when Graphviz is built in, and whether MPI is.
 * Built by tests/install/run.sh (README's pkg-config line, and find_package) and
 * tests/install/deb.sh (against the Debian package). Usage: consumer DIR (where it may write
 * files). Prints one line; exits 1 with the library's message on any failure. */
#include <tapegrad.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "consumer: %s failed: %s\n", #cond, tg_last_error());                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[4096];

    /* tape, op, backward, fingerprint */
    tg_tape *tape = tg_tape_new();
    CHECK(tape != NULL);
    tg_tensor *x = tg_tensor_scalar(TG_F64, 3.0);
    CHECK(x != NULL);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = tg_mul(tape, x, x); /* y = x^2 */
    CHECK(y != NULL && tg_backward(tape, y) == TG_OK);
    CHECK(tg_tape_fingerprint(tape) != 0);

    /* dot text, and a render when Graphviz is built in */
    char *dot = NULL;
    CHECK(tg_dot_string(tape, NULL, &dot, NULL) == TG_OK && strstr(dot, "digraph") != NULL);
    tg_dot_string_free(dot);
    const char *render = "no";
    if (tg_dot_can_render()) {
        snprintf(path, sizeof path, "%s/consumer.svg", dir);
        CHECK(tg_dot_render(tape, "svg", path, NULL) == TG_OK);
        render = "svg";
    }

    /* a model: made, one optimizer step, saved, loaded back */
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 1;
    spec.sizes[0] = 2;
    spec.sizes[1] = 1;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *model = NULL, *back = NULL;
    CHECK(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &model) == TG_OK);
    tg_optim *opt = NULL;
    CHECK(tg_model_optim_new(NULL, model, &opt) == TG_OK && tg_optim_step(opt) == TG_OK);
    snprintf(path, sizeof path, "%s/consumer.tgm", dir);
    CHECK(tg_model_save(model, path) == TG_OK && tg_model_load(path, &back) == TG_OK);
    CHECK(tg_model_numel(back) == 3);
    const double row[2] = {0.5, -1.0};
    double pred = 0;
    CHECK(tg_model_predict(back, row, 1, 2, &pred, 1) == TG_OK);

    /* the model's parameters as named tensors: written, then read back into the loaded model */
    snprintf(path, sizeof path, "%s/consumer.tgt", dir);
    const char *names[2] = {"w", "b"};
    tg_tensor *params[2] = {tg_model_param(model, 0), tg_model_param(model, 1)};
    tg_tensor *into[2] = {tg_model_param(back, 0), tg_model_param(back, 1)};
    CHECK(tg_tensors_save(path, 2, names, (const tg_tensor *const *)params) == TG_OK);
    CHECK(tg_tensors_load_into(path, 2, names, into) == TG_OK);

    /* a tgx program */
    tg_program *prog = NULL;
    CHECK(tg_program_parse("sin(a) + a", &prog) == TG_OK && tg_program_input_count(prog) == 1);

    printf("tapegrad %s: y=%g dy/dx=%g render=%s mpi=%s\n", tg_version(), tg_tensor_item(y),
           tg_tensor_grad_get(x, 0), render, tg_dist_available() ? "yes" : "no");
    tg_program_free(prog);
    tg_optim_free(opt);
    tg_model_free(back);
    tg_model_free(model);
    tg_tensor_free(x);
    tg_tape_free(tape);
    return 0;
}

/* gen_model_seeds.c: writes the seed corpus of fuzz_model: small valid model files covering
 * both dtypes, one to three layers, every activation, and each kind of metadata (none,
 * standardization, feature and target names, classification); and tensor files (both dtypes,
 * ranks 0 to 4, an empty tensor, non-finite values, none at all). tests/fuzz/run.sh runs it
 * into the working corpus, so the seeds always match the current format.
 *   gen_model_seeds DIR */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>

typedef struct seed {
    const char *name;
    tg_dtype dtype;
    int n_layers;
    size_t sizes[4];
    tg_activation act[3];
    int meta; /* bit 0: standardization, 1: feature names, 2: target name, 3: classify */
} seed;

static const seed SEEDS[] = {
    {"smallest", TG_F32, 1, {1, 1}, {TG_ACT_IDENTITY}, 0},
    {"f64_std_classify", TG_F64, 2, {3, 4, 2}, {TG_ACT_TANH, TG_ACT_IDENTITY}, 1 | 2 | 4 | 8},
    {"f32_three_layers", TG_F32, 3, {2, 3, 2, 1}, {TG_ACT_RELU, TG_ACT_SIGMOID, TG_ACT_TANH}, 4},
    {"f64_names_only", TG_F64, 1, {2, 3}, {TG_ACT_SIGMOID}, 2},
    {"f32_std_only", TG_F32, 2, {4, 2, 3}, {TG_ACT_RELU, TG_ACT_IDENTITY}, 1 | 8},
};

static int write_seed(const char *dir, const seed *s)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = s->n_layers;
    spec.dtype = s->dtype;
    for (int i = 0; i <= s->n_layers; i++)
        spec.sizes[i] = s->sizes[i];
    for (int i = 0; i < s->n_layers; i++)
        spec.act[i] = s->act[i];
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_model *m = NULL;
    if (tg_model_new(&spec, TG_INIT_HE_NORMAL, &rng, &m) != TG_OK)
        return 1;
    size_t d = spec.sizes[0];
    double mean[4] = {0.5, -1, 2, 0}, std[4] = {1, 0.25, 3, 1};
    const char *feats[4] = {"a", "bb", "ccc", "\"q\""};
    int bad = 0;
    if (s->meta & 1)
        bad |= tg_model_set_standardization(m, d, mean, std) != TG_OK;
    if (s->meta & 6)
        bad |= tg_model_set_columns(m, (s->meta & 2) ? feats : NULL,
                                    (s->meta & 4) ? "target" : NULL) != TG_OK;
    if (s->meta & 8)
        bad |= tg_model_set_task(m, TG_TASK_CLASSIFY, spec.sizes[s->n_layers] + 1) != TG_OK;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.tgm", dir, s->name);
    bad |= tg_model_save(m, path) != TG_OK;
    if (bad)
        fprintf(stderr, "gen_model_seeds: %s: %s\n", s->name, tg_last_error());
    tg_model_free(m);
    return bad;
}

/* Tensor-file seeds: both dtypes, ranks 0..4, an empty tensor, non-finite values. */
static int write_tensor_seeds(const char *dir)
{
    const size_t s1[1] = {3}, s2[2] = {2, 2}, s0[2] = {0, 4}, s4[4] = {1, 2, 1, 2};
    tg_tensor *t[5] = {tg_tensor_scalar(TG_F32, -1.5), tg_tensor_full(TG_F64, 1, s1, 2.25),
                       tg_tensor_zeros(TG_F32, 2, s0), tg_tensor_full(TG_F32, 2, s2, INFINITY),
                       tg_tensor_full(TG_F64, 4, s4, -0.0)};
    const char *names[5] = {"scale", "layer.bias", "empty", "mask", "kernel"};
    int bad = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/tensors_five.tgt", dir);
    bad |= tg_tensors_save(path, 5, names, (const tg_tensor *const *)t) != TG_OK;
    snprintf(path, sizeof path, "%s/tensors_one.tgt", dir);
    bad |= tg_tensors_save(path, 1, names + 1, (const tg_tensor *const *)t + 1) != TG_OK;
    snprintf(path, sizeof path, "%s/tensors_none.tgt", dir);
    bad |= tg_tensors_save(path, 0, NULL, NULL) != TG_OK;
    if (bad)
        fprintf(stderr, "gen_model_seeds: tensor files: %s\n", tg_last_error());
    for (int i = 0; i < 5; i++)
        tg_tensor_free(t[i]);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_model_seeds DIR\n");
        return 2;
    }
    int bad = 0;
    for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++)
        bad |= write_seed(argv[1], &SEEDS[i]);
    bad |= write_tensor_seeds(argv[1]);
    return bad;
}

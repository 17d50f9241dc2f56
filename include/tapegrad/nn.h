/* tapegrad/nn.h: neural-network building blocks on top of the public ops. Everything here is
 * a short composition of primitive ops, so its gradient comes from the tape and is checked
 * like any other. Results belong to the tape; errors follow tapegrad/ops.h (NULL, the tape
 * keeps the first error).
 *
 * Losses reduce with the mean over all elements (rows, for the cross-entropies). */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#include "common.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mean((pred - target)^2). The target has pred's shape, or one that broadcasts to it without
 * changing it (a (1, 3) or (3) target for a (N, 3) pred); any other is TG_ESHAPE naming both
 * shapes: a (3) target against a (3, 1) pred would broadcast both to (3, 3). The same rule
 * holds for the targets of tg_bce, tg_bce_logits and tg_cross_entropy_soft. */
TG_API tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target);
/* Binary cross-entropy on probabilities: -mean(t log p + (1-t) log(1-p)). p is clamped to
 * [eps, 1-eps] (eps = 1e-7 in f32, 1e-15 in f64) so saturated outputs give a large finite
 * loss, not NaN. Beyond the clamp the loss is constant in p, so its gradient there is zero:
 * a prediction confidently wrong past eps (sigmoid of a logit below about -16 in f32) stops
 * learning. Prefer tg_bce_logits, which is exact everywhere. */
TG_API tg_tensor *tg_bce(tg_tape *tape, tg_tensor *p, tg_tensor *target);
/* Binary cross-entropy on logits: -mean(t log sigmoid(z) + (1-t) log sigmoid(-z)), finite
 * with an exact gradient (sigmoid(z) - t, over the count) for any finite z, including +-1000.
 * An infinite z makes one log sigmoid -inf, and its factor (t or 1 - t), 0 for a target of 0
 * or 1, times it NaN. */
TG_API tg_tensor *tg_bce_logits(tg_tape *tape, tg_tensor *z, tg_tensor *target);
/* Categorical cross-entropy on logits (N,C) for integer class ids `labels` (N elements, any
 * rank with N elements, values 0..C-1 stored as numbers of the logits' dtype: TG_EDTYPE
 * otherwise, as for any op's two inputs): -mean_n log_softmax(z)[n, label_n].
 * Only the label's log-probability enters a row's loss: another class of logit -inf (masked)
 * leaves it finite. TG_EINVAL names the first label that is not an integer in range. */
TG_API tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *labels);
/* The same for one-hot or soft targets (N,C): -mean_n sum_c t[n,c] log_softmax(z)[n,c], each
 * term a product, so a target of 0 against a logit of -inf is 0 * -inf = NaN (for masked
 * classes, pass class ids to tg_cross_entropy). */
TG_API tg_tensor *tg_cross_entropy_soft(tg_tape *tape, tg_tensor *logits, tg_tensor *targets);
/* A constant of the labels' dtype and shape with one more axis, n_classes long, last: 1 at
 * [..., labels[...]] and 0 elsewhere, as PyTorch's one_hot (N labels give (N, n_classes), a
 * (2,2) tensor (2,2,n_classes), a 0-d one (n_classes)). Labels of TG_MAX_RANK axes are refused
 * (TG_ESHAPE: the result would have one more). TG_EINVAL names the first label (in row-major
 * order) that is not an integer in 0..n_classes-1. */
TG_API tg_tensor *tg_onehot(tg_tape *tape, tg_tensor *labels, size_t n_classes);

/* ---- layers and models ------------------------------------------------------------------
 * A model is an MLP: layers of Linear (x @ W + b, W of shape (in, out)) each followed by an
 * activation. Its parameters are leaves owned by the model and stored in ONE contiguous
 * block (and their gradients in another), so optimizers and gradient all-reduce work on
 * flat arrays. Parameters are named "layer0.weight", "layer0.bias", "layer1.weight", ... */

typedef enum tg_activation {
    TG_ACT_IDENTITY = 0, /* x: none (the usual output layer) */
    TG_ACT_SIGMOID = 1,  /* sigmoid(x) = 1 / (1 + e^-x) */
    TG_ACT_TANH = 2,     /* tanh x */
    TG_ACT_RELU = 3,     /* max(x, 0) */
} tg_activation;

/* Linear: x @ w + b for x (rows, in), w (in, out) and b (out), broadcast over rows; returns
 * (rows, out). TG_ESHAPE names the three shapes when they do not fit. */
TG_API tg_tensor *tg_linear(tg_tape *tape, tg_tensor *x, tg_tensor *w, tg_tensor *b);

/* "identity", "sigmoid", "tanh", "relu"; and back (TG_EINVAL for an unknown name). */
TG_API const char *tg_activation_name(tg_activation act);
TG_API tg_status tg_activation_parse(const char *name, tg_activation *out);
/* Applies the activation (identity records nothing and returns x). */
TG_API tg_tensor *tg_activate(tg_tape *tape, tg_tensor *x, tg_activation act);

/* How tg_init_weight (and so tg_model_new) draws a weight of shape (in, out). */
typedef enum tg_init {
    TG_INIT_XAVIER_UNIFORM = 0, /* U(-a, a), a = sqrt(6 / (in + out)) */
    TG_INIT_XAVIER_NORMAL = 1,  /* N(0, 2 / (in + out)) */
    TG_INIT_HE_UNIFORM = 2,     /* U(-a, a), a = sqrt(6 / in) */
    TG_INIT_HE_NORMAL = 3,      /* N(0, 2 / in) */
} tg_init;

/* Fills a (in, out) weight leaf from the seeded RNG: one draw per element in row-major order
 * (tg_rng_uniform as a * (2u - 1), or tg_rng_normal times the standard deviation), so a seed
 * gives the same weights everywhere. TG_EINVAL unless w is a 2-D leaf, or for an unknown init. */
TG_API tg_status tg_init_weight(tg_tensor *w, tg_init init, tg_rng *rng);

#define TG_MLP_MAX_LAYERS 16

/* The architecture: sizes[0] inputs, then sizes[i+1] units for layer i, each followed by
 * act[i]. An options-style struct: start from TG_MLP_SPEC_INIT. */
typedef struct tg_mlp_spec {
    int n_layers;
    size_t sizes[TG_MLP_MAX_LAYERS + 1];
    tg_activation act[TG_MLP_MAX_LAYERS];
    tg_dtype dtype;
} tg_mlp_spec;

#define TG_MLP_SPEC_INIT {0, {0}, {TG_ACT_IDENTITY}, TG_F32}

/* A model: an MLP, its spec, its parameters and their gradients (leaves it owns, in two
 * contiguous blocks) and the metadata below. Opaque. Made by tg_model_new, tg_model_load,
 * tg_model_load_buffer, tg_checkpoint_load or tg_trainer_export, it is the caller's, freed with
 * tg_model_free (which frees its parameters too); tg_trainer_model's belongs to the trainer. */
typedef struct tg_model tg_model;

/* A new MLP with weights from `init` and zero biases: layer 0's weight is drawn first, then
 * layer 1's, ... (tg_init_weight's order within each); biases draw nothing. Entries of sizes
 * and act past n_layers are ignored (the model's copy of the spec has them zeroed). Parameters
 * are leaves owned by the model (never tg_tensor_free them) that require grad.
 * *out is the caller's (tg_model_free). TG_EINVAL for a bad spec (no layers, too many, a zero
 * size, unknown activation or dtype, a parameter count that overflows), TG_ENOMEM. */
TG_API tg_status tg_model_new(const tg_mlp_spec *spec, tg_init init, tg_rng *rng,
                              tg_model **out);
TG_API void tg_model_free(tg_model *model);
TG_API const tg_mlp_spec *tg_model_spec(const tg_model *model);

/* Records the forward pass of x (rows, sizes[0]) on the tape: h = act(h @ W + b) per layer;
 * returns (rows, sizes[n_layers]). TG_ESHAPE/TG_EDTYPE (kept on the tape) when x does not fit. */
TG_API tg_tensor *tg_model_forward(tg_tape *tape, tg_model *model, tg_tensor *x);

/* Parameters, in a fixed order (layer0.weight, layer0.bias, layer1.weight, ...). */
TG_API size_t tg_model_param_count(const tg_model *model);
TG_API tg_tensor *tg_model_param(const tg_model *model, size_t i);
TG_API const char *tg_model_param_name(const tg_model *model, size_t i);
/* Total number of parameter elements. */
TG_API size_t tg_model_numel(const tg_model *model);
/* The contiguous blocks: tg_model_numel elements of the spec's dtype each. The gradient
 * block is what backward accumulates into (each parameter's grad points inside it). The
 * parameter block is a pointer to write through: it counts as a write to every parameter
 * (versions, tapegrad/tensor.h); read through tg_tensor_data_const of the parameters. */
TG_API void *tg_model_param_data(tg_model *model);
TG_API void *tg_model_grad_data(tg_model *model);
/* Sets every parameter gradient to zero (one memset over the block). */
TG_API void tg_model_zero_grad(tg_model *model);
/* An optimizer over the model's parameters: the same as tg_optim_new(opt, params, count, out)
 * with params[i] = tg_model_param(model, i) for i in 0..count-1, in that order, which is the
 * order checkpoints (tapegrad/checkpoint.h) expect. opt NULL means TG_OPTIM_OPTIONS_INIT. The
 * model must outlive the optimizer; *out is the caller's (tg_optim_free). TG_EINVAL for a
 * NULL model or out and for bad options (tg_optim_new's message), TG_ENOMEM. */
TG_API tg_status tg_model_optim_new(const tg_optim_options *opt, tg_model *model,
                                    tg_optim **out);

/* What a model does. Model files store these numbers (a u32, docs/model-format.md), so they
 * never change; tapegrad/train.h's tg_train_task uses the same ones, plus its AUTO. */
typedef enum tg_task {
    TG_TASK_REGRESS = 0, /* regression: the outputs are the predicted values (0 classes) */
    TG_TASK_CLASSIFY = 1 /* classification into n_classes >= 2 classes: the outputs are one
                          * logit per class, the prediction the class of the largest */
} tg_task;

/* Optional metadata carried by model files, so `predict` can reproduce training's input
 * pipeline: per-feature standardization (x - mean) / std, the task, class count and column
 * names. Copies are made; NULL clears. A failed set leaves the old values in place.
 * Standardization: n must be sizes[0], every value finite and std > 0 (TG_EINVAL). */
TG_API tg_status tg_model_set_standardization(tg_model *model, size_t n, const double *mean,
                                              const double *std);
/* Pointers valid until the next set or free; *n receives the count (0 when none). */
TG_API tg_status tg_model_standardization(const tg_model *model, size_t *n, const double **mean,
                                          const double **std);
/* The task (default TG_TASK_REGRESS with 0 classes). Regression stores n_classes as 0;
 * classification needs n_classes >= 2. TG_EINVAL for an unknown task. */
TG_API tg_status tg_model_set_task(tg_model *model, tg_task task, size_t n_classes);
TG_API tg_task tg_model_task(const tg_model *model, size_t *n_classes);

/* ---- predictions ----------------------------------------------------------------------
 * What `tapegrad predict` does, for a program: n raw feature rows in, one prediction a row
 * out. x holds n * n_features doubles, row-major, in the units of the data (a tg_dataset's x,
 * or rows gathered from a tg_table): the model's stored standardization is applied, the
 * forward pass runs in the model's dtype on a scratch tape that records no gradients (freed
 * before returning, along with an input buffer of at most 1024 rows), and the outputs are read
 * by the task:
 *   regression:      every output, sizes[n_layers] values a row;
 *   classification:  one value a row, the class index (0..n_classes-1, as a double): the
 *                    largest logit's (the first of equal ones) when there is one output per
 *                    class; with 2 classes and a single output (a logit z, trained with
 *                    tg_bce_logits), 1 when z > 0, i.e. sigmoid(z) > 0.5, else 0.
 * The parameters are read, never written, and nothing is kept between calls. n = 0 is allowed
 * (x and out may then be NULL). A row's values may differ in the last bits with n (the rows
 * that go through together, up to 1024): products of different sizes take different GEMM
 * paths, which round differently (a fused multiply-add per term, or a multiply and an add);
 * for a given n they are the same from run to run. Errors, with nothing promised about out:
 *   TG_EINVAL  model, or x or out with n > 0, NULL; out_len below what the rows need (the
 *              message gives both counts); a feature that is NaN or infinite, or that does
 *              not fit an f32 model once standardized (naming the row, 0-based, and the
 *              feature); a classifier whose output count fits neither reading above;
 *   TG_ESHAPE  n_features is not sizes[0] (naming both counts);
 *   TG_ENUMERIC  an output that is NaN or infinite (a diverged model, or features far
 *              outside the training data), naming the row;
 *   TG_ENOMEM. */
TG_API tg_status tg_model_predict(tg_model *model, const double *x, size_t n, size_t n_features,
                                  double *out, size_t out_len);
/* Values per row that tg_model_predict writes: sizes[n_layers] for regression, 1 for
 * classification; 0 for a NULL model or a classifier whose outputs fit no reading. */
TG_API size_t tg_model_predict_width(const tg_model *model);
/* A classifier's class probabilities: n_classes values a row into proba (proba_len >= n *
 * n_classes): the softmax of the logits, or (sigmoid(-z), sigmoid(z)) for 2 classes from one
 * logit z. They are computed in the model's dtype. Otherwise as tg_model_predict; a regression
 * model is TG_EINVAL. */
TG_API tg_status tg_model_predict_proba(tg_model *model, const double *x, size_t n,
                                        size_t n_features, double *proba, size_t proba_len);

/* Column names of the features (an array of sizes[0] strings) and of the target; NULL clears
 * (each independently). Names are at most 4096 bytes (TG_EINVAL). The getters return NULL
 * when no name is set (or i is out of range). */
TG_API tg_status tg_model_set_columns(tg_model *model, const char *const *features,
                                      const char *target);
TG_API const char *tg_model_feature_name(const tg_model *model, size_t i);
TG_API const char *tg_model_target_name(const tg_model *model);

/* Model files (docs/model-format.md): little-endian, versioned, every tensor's name, dtype,
 * shape and data, the spec and metadata, and an XXH3-64 checksum of all bytes before it.
 * Saving writes a temporary file and renames it over `path` (never a half-written file); a
 * `path` that exists and is not a regular file (a directory, a FIFO, a device) is refused with
 * TG_EIO and left alone, and a symbolic link is followed, the file it leads to replaced.
 * Loading validates every field and size before use: TG_EIO (cannot open/read, with the OS
 * reason) or TG_EFORMAT (bad magic, unknown version, checksum mismatch, truncated at byte N,
 * shape too large, ...), never a crash, never a partly loaded model. */
TG_API tg_status tg_model_save(const tg_model *model, const char *path);
TG_API tg_status tg_model_load(const char *path, tg_model **out);
/* The same on memory buffers. *out_buf from save_buffer is the caller's: release it with
 * tg_model_buffer_free(buf, size) (it comes from the allocator hook, tg_set_allocator). */
TG_API tg_status tg_model_save_buffer(const tg_model *model, void **out_buf, size_t *out_size);
TG_API void tg_model_buffer_free(void *buf, size_t size);
TG_API tg_status tg_model_load_buffer(const void *buf, size_t size, tg_model **out);

#ifdef __cplusplus
}
#endif

#endif

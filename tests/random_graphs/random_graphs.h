/* random_graphs.h: what the parts of test_random_graphs (test_random_graphs.c and the sources
 * in tests/random_graphs) share: a graph (values over earlier values), recording it onto a
 * tape (graph.c), printing it as a tgx program and a command line (tgx.c), the generator's
 * state and helpers (gen.c), and the generators that GENERATORS (test_random_graphs.c) keys
 * by op (gen_elementwise.c, gen_binary.c, gen_index.c). */
#ifndef TG_TEST_RANDOM_GRAPHS_H
#define TG_TEST_RANDOM_GRAPHS_H

#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../support/helpers.h"

/* clang-format off */
#define MAX_VALUES 400
#define MAX_INPUTS 6
#define MAX_NUMEL 1024 /* elements in any one value */
#define POOL 65536     /* constant elements in one graph */
#define KINK 1e-3      /* closest an operand may come to a kink */
#define BOUND 1e4      /* largest magnitude a value may reach */
#define TOL 1e-5
#define INPUT (-1)     /* the op of a value that is an input */
#define MAX_JOIN 4     /* operands of a concat or stack */
/* clang-format on */

/* One value of the graph: an input, or an op of the table over earlier values. */
typedef struct value {
    int op;                 /* a tg_op, or INPUT */
    int a, b;               /* operands (indices of earlier values), -1 for none */
    int more[MAX_JOIN - 2]; /* concat, stack, where, index_add: operands after a and b, -1 */
    int n_args;             /* concat, stack: how many operands (where: 3) */
    tg_attrs at;            /* its attributes; reshape's shape is rank and shape below */
    int rank;               /* the shape of reshape's result, of an input or a constant */
    size_t shape[TG_MAX_RANK];
    int input;   /* INPUT: its index */
    size_t data; /* TG_OP_CONST: offset of its values in the graph's pool */
} value;

typedef struct graph {
    uint64_t seed;
    int n; /* values */
    value v[MAX_VALUES];
    int n_inputs;
    tg_tensor *inputs[MAX_INPUTS];
    int out;
    size_t n_pool;
    double pool[POOL];
} graph;

/* The number of elements of a shape. */
size_t numel_of(int rank, const size_t *shape);

/* ---- graph.c ---- */

/* TG_OP_CUSTOM in a graph: xtanh(x) = x * tanh(x), elementwise. */
extern const tg_custom_op XTANH;

/* Records g's values onto tape into t[0..n), the inputs bound to xs: every op through tg_apply,
 * as the op table describes it. Returns the output, or NULL (the error kept on the tape). */
tg_tensor *record(tg_tape *tape, const graph *g, tg_tensor *const *xs, tg_tensor **t);

/* ---- tgx.c ---- */

/* g as a tgx program (t: its values, recorded), every op a call of its function; malloc'd. */
char *to_tgx(const graph *g, tg_tensor *const *t);
/* The arguments of `tapegrad grad --check` that replay g as prog, NULL-terminated; free_args
 * frees them. command_line: them as one shell line (malloc'd). */
char **replay_args(const graph *g, const char *prog);
void free_args(char **args);
char *command_line(char *const *args);

/* ---- gen.c: the generator's state and the helpers of the generators ---- */

typedef struct gen {
    graph *g;
    tg_rng rng;
    tg_tape *tape;
    tg_tensor *t[MAX_VALUES]; /* the values, recorded (valid until the next add_value) */
    bool rejected;            /* near a kink, or a value out of bounds */
} gen;

int below(gen *s, int n);
double uniform(gen *s, double lo, double hi);
double max_abs(const tg_tensor *x);
int add_value(gen *s, const value *v);
value node(int op, int a, int b);
int apply(gen *s, tg_op op, int a, int b);
int new_leaf(gen *s, int rank, const size_t *shape, bool constant);
void random_shape(gen *s, int *rank, size_t *shape);
void broadcast_partner(gen *s, int rank, const size_t *shape, int *r2, size_t *s2);
int new_partner(gen *s, int a, int one_in);
bool broadcasts(const tg_tensor *a, const tg_tensor *b);
int pick(gen *s);
int positive(gen *s, int a);
void keep_off(gen *s, const tg_tensor *x, double at);
void keep_max_apart(gen *s, const tg_tensor *x, int axis);
int random_axis(gen *s, int rank, bool allow_all);

/* ---- the generators: how a step applies each op (GENERATORS) ---- */

/* gen_elementwise.c: elementwise, linear algebra and reductions */
void gen_plain(gen *s, tg_op op, int a);
void gen_scalar(gen *s, tg_op op, int a);
void gen_binary(gen *s, tg_op op, int a);
void gen_mul(gen *s, tg_op op, int a);
void gen_const(gen *s, tg_op op, int a);
void gen_positive(gen *s, tg_op op, int a);
void gen_pow(gen *s, tg_op op, int a);
void gen_kink(gen *s, tg_op op, int a);
void gen_clamp(gen *s, tg_op op, int a);
void gen_matmul(gen *s, tg_op op, int a);
void gen_transpose(gen *s, tg_op op, int a);
void gen_reshape(gen *s, tg_op op, int a);
void gen_axis(gen *s, tg_op op, int a);
void gen_max(gen *s, tg_op op, int a);
/* gen_binary.c: binary math, comparisons, where, prod, detach; elementwise math */
void gen_minmax(gen *s, tg_op op, int a);
void gen_atan2(gen *s, tg_op op, int a);
void gen_pow_tensor(gen *s, tg_op op, int a);
void gen_compare(gen *s, tg_op op, int a);
void gen_where(gen *s, tg_op op, int a);
void gen_prod(gen *s, tg_op op, int a);
void gen_detach(gen *s, tg_op op, int a);
void gen_interval(gen *s, tg_op op, int a);
void gen_above1(gen *s, tg_op op, int a);
void gen_steps(gen *s, tg_op op, int a);
/* gen_index.c: shape, indexing and joins */
void gen_slice(gen *s, tg_op op, int a);
void gen_select(gen *s, tg_op op, int a);
void gen_join(gen *s, tg_op op, int a);
void gen_take(gen *s, tg_op op, int a);
void gen_permute(gen *s, tg_op op, int a);

#endif

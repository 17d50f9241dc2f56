/* inputs.h: the random inputs the table-driven derivative checks share (test_gradcheck,
 * test_gradgradcheck): kinds of values that keep an op away from its kinks and domain edges,
 * shapes 0-d to 4-D with brace initializers, and the shape sets the op cases run over. */
#ifndef TG_TEST_INPUTS_H
#define TG_TEST_INPUTS_H

#include "tapegrad.h"

typedef enum kind {
    K_NORMAL,   /* N(0, 1) */
    K_POS,      /* uniform [0.5, 2]: sqrt, log, pow with non-integer exponents */
    K_AWAY,     /* |x| in [0.05, 2], random sign: relu, abs, sign (away from the kink at 0) */
    K_DENOM,    /* |x| in [0.5, 2], random sign: divisors */
    K_DISTINCT, /* distinct values at least 0.2 apart, shuffled: max, min (no ties) */
    K_UNIT,     /* uniform (-0.9, 0.9): asin, acos, atanh, log1p, tan */
    K_ABOVE1,   /* uniform [1.1, 3]: acosh */
    K_FRAC,     /* k + u, k an integer in [-3, 2], u uniform [0.1, 0.9]: floor, ceil */
} kind;

typedef struct shp {
    int rank;
    size_t d[TG_MAX_RANK];
} shp;

/* Brace initializers (usable in static tables); in expressions write (shp)S2(2, 3). */
/* clang-format off */
#define S0 {0, {0}}
#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}
/* clang-format on */
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* An f64 input of shape s whose values are of kind k (rng draws them); never NULL (a failure
 * to make it fails the test). */
tg_tensor *make_input(tg_rng *rng, shp s, kind k);

/* Moves every element of t onto the grid 0.25 k + offset, plus up to 0.05: an input snapped
 * with offset 0 and one with 0.125 are at least 0.075 apart wherever they meet (no ties
 * between minimum's or maximum's operands). Returns t. */
tg_tensor *snap(tg_tensor *t, double offset, tg_rng *rng);

/* The shape of t, formatted into buf, for failure messages. */
const char *fmt_shp(char *buf, size_t size, const tg_tensor *t);

/* Shapes for elementwise unary ops: 0-d through 4-D, with size-1 axes. */
extern const shp UNARY_SHAPES[7];
/* Pairs for binary ops: equal shapes 0-d..4-D, and broadcasting either way and both ways. */
typedef struct shp_pair {
    shp a, b;
} shp_pair;
extern const shp_pair BCAST_PAIRS[15];
/* Shapes for a binary op applied to (x, x). */
extern const shp FAN_SHAPES[4];

/* Indices for take and index_add along `axis` of x (negative from the end): vals[0..m), m the
 * size of shape is (at most 24), integers in -dim..dim-1, and, when m > 1, the last repeating
 * the first (repeats accumulate). */
void random_indices(tg_rng *rng, shp x, int axis, shp is, double *vals);
/* The shape take(x, idx, axis) has, idx of shape is: index_add's src. */
shp taken_shp(shp x, int axis, shp is);

#endif

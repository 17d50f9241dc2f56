/* graph.c (test_random_graphs): the custom op of the graphs (xtanh) and recording a graph
 * onto a tape, every op through tg_apply as the op table describes it. */
#include "random_graphs.h"

size_t numel_of(int rank, const size_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

/* ---- the custom op ----------------------------------------------------------------------
 * TG_OP_CUSTOM is drawn as one user-defined op, xtanh(x) = x * tanh(x), elementwise: recorded
 * with tg_custom (tg_apply refuses custom ops) and written in the tgx program as the same
 * function of built-in ops, `t * tanh(t)`, so the replay checks its values too. */
static tg_status xtanh_forward(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]);
    double *y = c->y;
    for (size_t i = 0, n = tg_tensor_numel(c->out); i < n; i++)
        y[i] = x[i] * tanh(x[i]);
    return TG_OK;
}

/* dx += dy * (tanh(x) + x (1 - tanh(x)^2)) */
static tg_status xtanh_vjp(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]), *dy = c->dy;
    double *dx = c->dx[0];
    for (size_t i = 0, n = tg_tensor_numel(c->out); dx && i < n; i++) {
        double t = tanh(x[i]);
        dx[i] += dy[i] * (t + x[i] * (1 - t * t));
    }
    return TG_OK;
}

const tg_custom_op XTANH = {.name = "xtanh", .forward = xtanh_forward, .vjp = xtanh_vjp};

/* ---- replaying a graph onto a tape ------------------------------------------------------ */

/* Records g's values onto tape into t[0..n), the inputs bound to xs: every op through tg_apply,
 * as the op table describes it. Returns the output, or NULL (the error kept on the tape). */
tg_tensor *record(tg_tape *tape, const graph *g, tg_tensor *const *xs, tg_tensor **t)
{
    for (int i = 0; i < g->n; i++) {
        const value *v = &g->v[i];
        tg_tensor *r;
        if (v->op == INPUT) {
            r = xs[v->input];
        } else if (v->op == TG_OP_CONST) {
            r = tg_constant(tape, TG_F64, v->rank, v->shape, g->pool + v->data);
        } else if (v->op == TG_OP_CUSTOM) {
            tg_tensor *x = t[v->a];
            r = tg_custom(tape, &XTANH, NULL, &x, 1, tg_tensor_rank(x), tg_tensor_shape(x));
        } else {
            tg_tensor *in[MAX_JOIN] = {v->a >= 0 ? t[v->a] : NULL, v->b >= 0 ? t[v->b] : NULL};
            int arity = tg_op_arity((tg_op)v->op);
            if (arity == TG_VARIADIC || arity == 3) { /* concat, stack; where, index_add */
                arity = arity == 3 ? 3 : v->n_args;
                for (int k = 2; k < arity; k++)
                    in[k] = t[v->more[k - 2]];
            }
            tg_attrs at = v->at;
            at.rank = v->rank;
            at.shape = v->shape;
            r = tg_apply(tape, (tg_op)v->op, in, (size_t)arity, &at);
        }
        if (!r)
            return NULL;
        t[i] = r;
    }
    return t[g->out];
}

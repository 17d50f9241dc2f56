/* tapegrad.h: the umbrella header of tapegrad, a tape-based reverse-mode automatic
 * differentiation engine in C11. Include this, or only the module headers you need:
 *
 *   tapegrad/common.h      status codes and the thread's last error, dtypes, the allocator
 *                          hook, the RNG, the thread count, and who owns what
 *   tapegrad/tensor.h      tensors: leaves you make and own, tape tensors; shape, data, grad
 *   tapegrad/tape.h        the tape: recording, tg_backward, tg_grad, reset, anomaly mode
 *   tapegrad/ops.h         the primitive ops (tg_add, tg_matmul, tg_tanh, tg_sum, ...)
 *   tapegrad/check.h       gradient checking by central finite differences
 *   tapegrad/diff.h        derivatives as ops, to any order: tg_grad_graph, tg_jvp, tg_vjp,
 *                          tg_hvp, tg_jacobian, tg_hessian
 *   tapegrad/nn.h          losses, activations, initializers, the MLP model and its files
 *   tapegrad/io.h          a tape's graph as Graphviz dot text, or rendered (SVG, PNG, PDF);
 *                          named tensor files
 *   tapegrad/optim.h       optimizers, learning-rate schedules, gradient clipping
 *   tapegrad/data.h        CSV tables, splits, standardization, shuffling, batches
 *   tapegrad/train.h       the supervised training loop: an MLP trained on a table
 *   tapegrad/expr.h        tgx, a small language for composite functions (docs/tgx.md)
 *   tapegrad/checkpoint.h  checkpoints to resume training (docs/checkpoint-format.md)
 *   tapegrad/dist.h        data-parallel training on MPI (when built with it)
 *   tapegrad/minimize.h    L-BFGS, Newton and gradient descent on any tape-built function */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "tapegrad/common.h"
#include "tapegrad/tensor.h"
#include "tapegrad/tape.h"
#include "tapegrad/ops.h"
#include "tapegrad/check.h"
#include "tapegrad/diff.h"
#include "tapegrad/nn.h"
#include "tapegrad/io.h"
#include "tapegrad/optim.h"
#include "tapegrad/data.h"
#include "tapegrad/train.h"
#include "tapegrad/expr.h"
#include "tapegrad/checkpoint.h"
#include "tapegrad/dist.h"
#include "tapegrad/minimize.h"

#endif

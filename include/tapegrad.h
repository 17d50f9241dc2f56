/* tapegrad.h: the umbrella header. Include this, or the module headers you need.
 * The library is a tape-based reverse-mode automatic differentiation engine in C11:
 * tensors (tapegrad/tensor.h), the tape and backward (tapegrad/tape.h), the primitive ops
 * (tapegrad/ops.h), gradient checking (tapegrad/check.h) and losses (tapegrad/nn.h). */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "tapegrad/common.h"
#include "tapegrad/tensor.h"
#include "tapegrad/tape.h"
#include "tapegrad/ops.h"
#include "tapegrad/check.h"
#include "tapegrad/nn.h"
#include "tapegrad/io.h"
#include "tapegrad/optim.h"
#include "tapegrad/data.h"
#include "tapegrad/train.h"
#include "tapegrad/expr.h"
#include "tapegrad/checkpoint.h"
#include "tapegrad/dist.h"

#endif

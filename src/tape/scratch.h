/* scratch.h: the one piece of the tape's internals that modules above the ops may use (nn's
 * onehot, tgx's literals): memory that lives until the tape's next reset, to build a
 * constant's values in place and record them with tg_constant, with no heap allocation in a
 * loop that records the same graph step after step. */
#ifndef TAPEGRAD_TAPE_SCRATCH_H
#define TAPEGRAD_TAPE_SCRATCH_H

#include "tapegrad.h"

/* `bytes` of the tape's arena (16-byte aligned; 64 from 64 bytes on), valid until
 * tg_tape_reset; NULL when out of memory, with the tape's error set, naming `who`. */
void *tg_tape__scratch(tg_tape *tape, size_t bytes, const char *who);

#endif

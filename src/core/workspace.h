/* workspace.h: one scratch buffer per thread, for kernels whose scratch is too large for the
 * stack (the GEMM's packed panels). It grows on demand and is then reused, so steady-state
 * calls allocate nothing. */
#ifndef TAPEGRAD_CORE_WORKSPACE_H
#define TAPEGRAD_CORE_WORKSPACE_H

#include "core/core.h"

/* `bytes` of the calling thread's workspace, TG_DATA_ALIGN-aligned, or NULL when it cannot
 * grow (the caller then takes a path that needs none). The contents are not kept from one
 * call to the next: the previous pointer is invalid after a call that grows it. */
void *tg__workspace(size_t bytes);
/* Frees the calling thread's workspace. tg_tape_free calls it (every kernel that uses one
 * runs on behalf of a tape, so freeing all of one's objects frees every byte, as the
 * allocator-counting tests demand); a thread's exit and the library's unloading free it
 * too. */
void tg__workspace_release(void);

#endif

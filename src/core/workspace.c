/* workspace.c: the per-thread scratch buffer of workspace.h. It comes from the allocator hook
 * and remembers the hook (and its user data) that made it, so it goes back to the same
 * allocator even if the hook has changed since. It is released by tg__workspace_release
 * (from tg_tape_free), when its thread exits (a pthread key destructor) and, for the thread
 * that ends the process, by the library's destructor, so leak checkers find nothing at exit.
 * Pool workers write into their share of the caller's buffer and own none. */
#include "core/workspace.h"

#include <pthread.h>

typedef struct workspace {
    unsigned char *base;
    size_t size;
    tg_alloc_fn fn;
    void *ud;
} workspace;

static _Thread_local workspace tls_ws;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static bool ws_key_ok;

static void ws_release(workspace *w)
{
    if (w->base)
        w->fn(w->ud, w->base, w->size, 0);
    *w = (workspace){0};
}

static void ws_thread_exit(void *w)
{
    ws_release(w);
}

static void ws_key_create(void)
{
    ws_key_ok = pthread_key_create(&ws_key, ws_thread_exit) == 0;
}

__attribute__((destructor)) static void ws_teardown(void)
{
    ws_release(&tls_ws);
    if (ws_key_ok) {
        pthread_key_delete(ws_key);
        ws_key_ok = false;
    }
}

void tg__workspace_release(void)
{
    ws_release(&tls_ws);
}

void *tg__workspace(size_t bytes)
{
    workspace *w = &tls_ws;
    if (bytes > SIZE_MAX / 2)
        return NULL;
    const size_t need = bytes + TG_DATA_ALIGN;
    if (w->size < need) {
        pthread_once(&ws_once, ws_key_create);
        if (!ws_key_ok)
            return NULL;
        ws_release(w);
        void *ud;
        tg_alloc_fn fn = tg_get_allocator(&ud);
        /* whole 256 KiB steps, so a run of slightly growing problems grows it once or twice */
        const size_t size = (need + ((size_t)1 << 18) - 1) & ~(((size_t)1 << 18) - 1);
        unsigned char *p = fn(ud, NULL, 0, size);
        if (!p)
            return NULL;
        *w = (workspace){p, size, fn, ud};
        pthread_setspecific(ws_key, w);
    }
    const uintptr_t a = ((uintptr_t)w->base + TG_DATA_ALIGN - 1) & ~(uintptr_t)(TG_DATA_ALIGN - 1);
    return (void *)a;
}

/* bench_proc.c: the child processes of `tapegrad bench` (W4's `tapegrad train`, W3dist's
 * MPI jobs of this very program): finding the MPI launcher and starting a job under it with
 * the settings it needs, and reading back what a child printed or why it failed. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- reading what a child printed ------------------------------------------------------------ */

/* The last line of a child's output that starts with `prefix`, parsed as one JSON value (the
 * whole line) into v; false when there is none or it is no JSON. */
bool bench_json_line(const char *out, const char *prefix, json_value *v)
{
    const char *line = NULL;
    for (const char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            line = p;
    char *copy = line ? strndup(line, strcspn(line, "\n")) : NULL;
    bool ok = copy && json_parse_all(copy, v);
    free(copy);
    return ok;
}

/* The last line of a child's stderr with something to say, for a one-line message: banner
 * lines of dashes (mpirun frames its messages with them) and empty lines do not count. */
static const char *last_line(char *s)
{
    char *end = s + strlen(s);
    for (;;) {
        while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
            *--end = '\0';
        char *line = end;
        while (line > s && line[-1] != '\n')
            line--;
        if (line == s || strspn(line, "- ") != strlen(line))
            return line;
        end = line;
    }
}

/* Why a child failed, in one line: the last "tapegrad ..." line of its stderr (a rank's
 * message among mpirun's own lines), else its last line with something to say. */
const char *bench_child_reason(char *err)
{
    char *found = NULL;
    for (char *p = err; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, "tapegrad ", 9) == 0)
            found = p;
    if (!found)
        return last_line(err);
    found[strcspn(found, "\n")] = '\0';
    return found;
}

/* ---- MPI jobs of this program ---------------------------------------------------------------- */

/* `name` as given when it holds a '/', else the first executable of that name on the PATH;
 * NULL when there is none. */
static const char *which(const char *name, char *buf, size_t size)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? name : NULL;
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        int n = snprintf(buf, size, "%.*s/%s", (int)len, path, name);
        if (len && n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
            return buf;
        path += len + (path[len] == ':');
    }
    return NULL;
}

/* The MPI launcher: --mpirun, else the one found with MPI when tapegrad was built, else
 * mpirun or mpiexec on the PATH. NULL when none is there. */
const char *bench_find_mpirun(const bench *b, char *buf, size_t size)
{
    if (b->o->mpirun)
        return which(b->o->mpirun, buf, size);
#ifdef TAPEGRAD_MPIEXEC
    if (access(TAPEGRAD_MPIEXEC, X_OK) == 0)
        return TAPEGRAD_MPIEXEC;
#endif
    const char *found = which("mpirun", buf, size);
    return found ? found : which("mpiexec", buf, size);
}

bool bench_run_mpi(const char *mpirun, int ranks, int threads, const char *const *args,
                   double timeout_s, proc_result *r, const char *what, char *why, size_t size)
{
    memset(r, 0, sizeof *r);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1) {
        snprintf(why, size, "%s: cannot find this program's path: %s", what,
                 n < 0 ? strerror(errno) : "too long");
        return false;
    }
    self[n] = '\0';
    enum { MAX_ARGS = 32 };
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    const char *argv[MAX_ARGS] = {mpirun, "-np", np, self};
    int k = 4;
    for (int i = 0; args[i] && k < MAX_ARGS - 1; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    /* Open MPI's settings go by environment, which other MPIs ignore (their command-line
     * spellings differ): ranks may outnumber the cores, are not pinned to one (the one-process
     * runs are not either, and on a shared machine a pinned rank cannot move off a busy
     * core), and may run as root (containers). A setting the caller made stays. */
    char tn[32];
    snprintf(tn, sizeof tn, "TG_NUM_THREADS=%d", threads);
    const char *env[8] = {tn};
    int e = 1;
    if (!getenv("OMPI_MCA_rmaps_base_oversubscribe"))
        env[e++] = "OMPI_MCA_rmaps_base_oversubscribe=1";
    if (!getenv("OMPI_MCA_hwloc_base_binding_policy"))
        env[e++] = "OMPI_MCA_hwloc_base_binding_policy=none";
    if (geteuid() == 0) {
        env[e++] = "OMPI_ALLOW_RUN_AS_ROOT=1";
        env[e++] = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    }
    env[e] = NULL;
    const proc_opts how = {.env = env, .timeout_s = timeout_s};
    if (!proc_run(argv, &how, r)) {
        snprintf(why, size, "%s: cannot run %s: %s", what, mpirun, strerror(errno));
        return false;
    }
    return true;
}

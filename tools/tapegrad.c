/* tapegrad.c: the `tapegrad` command: main and the table of subcommands. Each subcommand
 * lives in its own file (cmd_NAME.c) and uses the shared helpers of cli.h.
 *
 * Exit status, for every subcommand: 0 success, 1 the work failed (a program error, an
 * unreadable file, a failed check), 2 the command line is malformed. */
#include "cli.h"
#include "kernels/gemm.h" /* which GEMM kernels this build and this CPU have, for --version */

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"grad", cmd_grad, "value and gradients of a tgx program"},
    {"train", cmd_train, "train a network on a CSV file"},
    {"predict", cmd_predict, "apply a trained model to a CSV file"},
    {"minimize", cmd_minimize, "minimize a tgx program over its inputs"},
    {"bench", cmd_bench, "time the library on fixed workloads"},
};

static void print_usage(FILE *f)
{
    fputs("usage: tapegrad <command> [options]\n"
          "       tapegrad -h | --help | help [COMMAND] | -V | --version\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\n'tapegrad <command> --help' (or 'tapegrad help <command>') describes a command.\n", f);
}

/* --version: the version, then what this build and this machine bring, one "name: value"
 * line each, so a bug report that quotes it says which code paths ran. */
static void print_version(FILE *f)
{
    fprintf(f, "tapegrad %s\n", tg_version());
    fprintf(f, "graphviz: %s\n",
            tg_dot_can_render() ? "yes (tg_dot_render, --render)" : "no (dot text only)");
    fprintf(f, "mpi: %s\n", tg_dist_available() ? "yes (tapegrad/dist.h, --distributed)" : "no");
    fprintf(f, "blas: %s\n",
            tg__gemm_available(TG_GEMM_BLAS) ? "openblas (large products)" : "none");
    /* Every packed kernel this build has and this CPU runs, then the one large products take
     * (gemm.c chooses at run time: AVX-512F, its wide tile on Zen 4, else AVX2+FMA, else
     * portable C). */
    fputs("gemm kernels:", f);
    const tg_gemm_path kernels[] = {TG_GEMM_PORTABLE, TG_GEMM_AVX2, TG_GEMM_AVX512,
                                    TG_GEMM_AVX512_WIDE};
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (tg__gemm_available(kernels[i]))
            fprintf(f, " %s", tg__gemm_path_name(kernels[i]));
    fprintf(f, " (large products: %s)\n", tg__gemm_path_name(tg__gemm_path(1024, 1024, 1024)));
    fprintf(f, "threads: %d\n", tg_get_num_threads());
#if defined(__clang__)
    fprintf(f, "compiler: clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    fprintf(f, "compiler: gcc %s\n", __VERSION__);
#endif
#ifdef NDEBUG
    fputs("assertions: off\n", f);
#else
    fputs("assertions: on\n", f);
#endif
}

/* Output that did not reach its destination (a full disk, a closed stdout) is a failure
 * whatever the subcommand: checked here, once, after every one of them. */
static int finish(const char *cmd, int rc)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tapegrad%s%s: cannot write the output: %s\n", cmd ? " " : "",
                cmd ? cmd : "", errno ? strerror(errno) : "write error");
        return rc == EXIT_OK ? EXIT_FAIL : rc;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 3)
            return usage_error(NULL, "unexpected argument '%s' after '%s %s'", argv[3], cmd,
                               argv[2]);
        if (argc > 2 && strcmp(argv[2], "help") != 0) { /* help COMMAND, or --help COMMAND */
            char help[] = "--help";
            char *args[] = {argv[2], help, NULL};
            for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
                if (strcmp(argv[2], COMMANDS[i].name) == 0)
                    return finish(argv[2], COMMANDS[i].run(2, args));
            return usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        print_usage(stdout);
        return finish(NULL, EXIT_OK);
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        if (argc > 2)
            return usage_error(NULL, "unexpected argument '%s' after '%s'", argv[2], cmd);
        print_version(stdout);
        return finish(NULL, EXIT_OK);
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0)
            return finish(cmd, COMMANDS[i].run(argc - 1, argv + 1));
    if (cmd[0] == '-')
        return usage_error(NULL, "unknown option '%s'", cmd);
    return usage_error(NULL, "unknown command '%s'", cmd);
}

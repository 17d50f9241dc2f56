/* cmd_train.c: `tapegrad train`, an MLP trained on a CSV file through the library's training
 * loop (tapegrad/train.h): options, progress, results, and the model, plot and graph it can
 * write. Its distributed runs and checkpoints are train_dist.c's. */
#include "cli.h"
#include "common/clock.h"
#include "plot_svg.h"
#include "train_dist.h"

#include <tapegrad/io.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A message of the training loop without its "train: " prefix: complain() already says
 * "tapegrad train: ". */
static const char *loop_message(void)
{
    const char *m = tg_last_error();
    return strncmp(m, "train: ", 7) == 0 ? m + 7 : m;
}

/* The default learning rate of each optimizer: Adam's steps are scaled by its moments, plain
 * and momentum SGD's by the raw gradient, which on standardized data wants a larger rate. */
static double default_lr(tg_optim_kind kind)
{
    return kind == TG_OPTIM_SGD || kind == TG_OPTIM_MOMENTUM ? 0.05 : 0.003;
}

static const char TRAIN_USAGE[] =
    "usage: tapegrad train DATA.csv --target COLUMN [options]\n"
    "\n"
    "Trains a multilayer perceptron on a CSV file of numbers with a header row: COLUMN is the\n"
    "target, every other column a feature. The rows are split into training and test rows by\n"
    "the seed, the features standardized with the training rows' mean and standard deviation,\n"
    "and the network trained with mini-batches in a new seeded order every epoch. Progress\n"
    "goes to stderr (a bar on a terminal, else a line per epoch); the results to stdout.\n"
    "DATA.csv '-' reads standard input.\n"
    "\n"
    "  --target COLUMN     the column to predict (required)\n"
    "  --task auto|classify|regress\n"
    "                      auto (default) classifies when the targets are the integers\n"
    "                      0..K-1, each of them present, and regresses otherwise\n"
    "  --layers N[,N...]   hidden layer sizes (default 64; 'none' for a linear model)\n"
    "  --act relu|tanh|sigmoid|identity\n"
    "                      activation of the hidden layers (default relu)\n"
    "  --optim sgd|momentum|adam|adamw\n"
    "                      optimizer (default adam)\n"
    "  --lr X              learning rate (default 0.003 for adam and adamw, 0.05 for sgd and\n"
    "                      momentum)\n"
    "  --weight-decay X    L2 penalty (adamw: decoupled decay) (default 0.001)\n"
    "  --epochs N          passes over the training rows (default 30)\n"
    "  --batch N           rows per step (default 32)\n"
    "  --test-split F      fraction of rows held out for testing, 0 <= F < 1 (default 0.2)\n"
    "  --seed S            split, initial weights and batch order (default 42)\n"
    "  --dtype f32|f64     precision (default f32)\n"
    "  --save MODEL        save the trained model, with its standardization, for predict\n"
    "  --plot FILE.svg     draw loss and accuracy (or RMSE) per epoch, train and test\n"
    "  --dot FILE          write one training step of the trained network as Graphviz dot;\n"
    "                      '-' writes it to stdout and the results to stderr\n"
    "  --render FILE       draw that graph with Graphviz; FILE ends in .svg, .png or .pdf\n"
    "  --json              print one JSON object at the end and no progress:\n"
    "                      {\"task\", \"classes\", \"train\": {\"loss\", \"accuracy\"|\"rmse\",\n"
    "                      \"rows\"}, \"test\": {...}, \"epochs\", \"seconds\", \"params\", "
    "\"dtype\"}\n"
    "%s"
    "  -h, --help          show this help\n"
    "\n"
    "Classification minimizes cross-entropy and reports accuracy; regression minimizes the\n"
    "mean squared error of the standardized target and reports the RMSE in the target's\n"
    "units. 'seconds' is the wall time from start to the end of training.\n"
    "\n"
    "Exit status: 0 success; 1 unreadable data, unknown column, failed training or output;\n"
    "2 bad usage.\n"
    "\n"
    "Example:\n"
    "  tapegrad train examples/data/digits.csv --target digit --save digits.tgm\n"
    "  mpirun -np 4 tapegrad train digits.csv --target digit --batch 16 --distributed\n";

typedef struct train_args {
    const char *data, *target, *save, *plot, *dot, *render;
    bool json, lr_given;
    tg_train_options opt;
    train_dist dist; /* --distributed, --checkpoint, --resume */
} train_args;

/* A whole-string number; false when s is not one. */
static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*out);
}

static int parse_layers(const char *v, tg_train_options *o)
{
    o->n_hidden = 0;
    if (strcmp(v, "none") == 0)
        return EXIT_OK;
    const char *p = v;
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9')
            return usage_error("train",
                               "--layers: expected sizes like 64,32 or 'none', not "
                               "'%s'",
                               v);
        errno = 0;
        unsigned long long n = strtoull(p, &end, 10);
        if (errno || n == 0 || n > 1000000)
            return usage_error("train",
                               "--layers: a layer size must be 1 to 1000000, not "
                               "'%.*s'",
                               (int)(end - p), p);
        if (o->n_hidden == TG_MLP_MAX_LAYERS - 1)
            return usage_error("train", "--layers: at most %d hidden layers",
                               TG_MLP_MAX_LAYERS - 1);
        o->hidden[o->n_hidden++] = (size_t)n;
        if (*end == ',' && end[1])
            end++;
        else if (*end)
            return usage_error("train",
                               "--layers: expected sizes like 64,32 or 'none', not "
                               "'%s'",
                               v);
        p = end;
    }
    if (o->n_hidden == 0)
        return usage_error("train", "--layers: no sizes given (use 'none' for no hidden layer)");
    return EXIT_OK;
}

static int train_parse(int argc, char **argv, train_args *a)
{
    a->opt = (tg_train_options)TG_TRAIN_OPTIONS_INIT;
    static const char *const with_value[] = {
        "--target", "--task",  "--layers",     "--act",         "--optim", "--lr",
        "--epochs", "--batch", "--test-split", "--seed",        "--save",  "--dtype",
        "--plot",   "--dot",   "--render",     "--weight-decay"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            printf(TRAIN_USAGE, TRAIN_DIST_USAGE);
            return -1;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(arg, "--distributed") == 0) {
            train_dist_option(&a->dist, arg, NULL);
            continue;
        }
        if (!looks_like_option(arg) || strcmp(arg, "-") == 0) {
            if (a->data)
                return usage_error("train", "one data file only ('%s' and '%s')", a->data, arg);
            a->data = arg;
            continue;
        }
        const char *opt = NULL;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !opt; k++)
            if (match_option(arg, with_value[k], &v))
                opt = with_value[k];
        bool dist_opt = false;
        for (size_t k = 0; TRAIN_DIST_OPTIONS[k] && !opt; k++)
            if (match_option(arg, TRAIN_DIST_OPTIONS[k], &v))
                opt = TRAIN_DIST_OPTIONS[k], dist_opt = true;
        if (!opt)
            return usage_error("train", "unknown option '%s'", arg);
        if (!v) {
            if (i + 1 >= argc)
                return usage_error("train", "option '%s' needs a value", opt);
            v = argv[++i];
        }
        tg_train_options *o = &a->opt;
        unsigned long long n;
        double x;
        if (dist_opt) {
            int st = train_dist_option(&a->dist, opt, v);
            if (st != EXIT_OK)
                return st;
        } else if (strcmp(opt, "--target") == 0) {
            a->target = v;
        } else if (strcmp(opt, "--task") == 0) {
            if (tg_train_task_parse(v, &o->task) != TG_OK)
                return usage_error("train",
                                   "--task must be auto, classify or regress, not "
                                   "'%s'",
                                   v);
        } else if (strcmp(opt, "--layers") == 0) {
            int st = parse_layers(v, o);
            if (st != EXIT_OK)
                return st;
        } else if (strcmp(opt, "--act") == 0) {
            if (tg_activation_parse(v, &o->act) != TG_OK)
                return usage_error("train",
                                   "--act must be relu, tanh, sigmoid or identity, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(opt, "--optim") == 0) {
            if (tg_optim_kind_parse(v, &o->optim.kind) != TG_OK)
                return usage_error("train",
                                   "--optim must be sgd, momentum, adam or adamw, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(opt, "--lr") == 0) {
            if (!parse_double(v, &o->optim.lr) || o->optim.lr <= 0)
                return usage_error("train", "--lr must be a number > 0, not '%s'", v);
            a->lr_given = true;
        } else if (strcmp(opt, "--weight-decay") == 0) {
            if (!parse_double(v, &o->optim.weight_decay) || o->optim.weight_decay < 0)
                return usage_error("train", "--weight-decay must be a number >= 0, not '%s'", v);
        } else if (strcmp(opt, "--epochs") == 0) {
            if (!parse_size(v, 1000000, &n) || n == 0)
                return usage_error("train",
                                   "--epochs must be an integer from 1 to 1000000, "
                                   "not '%s'",
                                   v);
            o->epochs = (int)n;
        } else if (strcmp(opt, "--batch") == 0) {
            if (!parse_size(v, 1u << 24, &n) || n == 0)
                return usage_error("train", "--batch must be an integer from 1 to %u, not '%s'",
                                   1u << 24, v);
            o->batch = (size_t)n;
        } else if (strcmp(opt, "--test-split") == 0) {
            if (!parse_double(v, &x) || x < 0 || x >= 1)
                return usage_error("train", "--test-split must be a number in [0, 1), not '%s'", v);
            o->test_split = x;
        } else if (strcmp(opt, "--seed") == 0) {
            if (!parse_size(v, UINT64_MAX, &n))
                return usage_error("train", "--seed must be an integer >= 0, not '%s'", v);
            o->seed = (uint64_t)n;
        } else if (strcmp(opt, "--dtype") == 0) {
            if (!parse_dtype(v, &o->dtype))
                return usage_error("train", "--dtype must be f32 or f64, not '%s'", v);
        } else if (strcmp(opt, "--save") == 0) {
            a->save = v;
        } else if (strcmp(opt, "--plot") == 0) {
            a->plot = v;
        } else if (strcmp(opt, "--dot") == 0) {
            a->dot = v;
        } else {
            a->render = v;
        }
    }
    if (!a->data)
        return usage_error("train", "no data file given");
    if (!a->target)
        return usage_error("train", "no target column given (--target COLUMN)");
    if (!a->lr_given)
        a->opt.optim.lr = default_lr(a->opt.optim.kind);
    if (a->json && a->dot && strcmp(a->dot, "-") == 0)
        return usage_error("train", "--dot - and --json both want stdout");
    if (a->dist.distributed && strcmp(a->data, "-") == 0) /* mpirun feeds rank 0 alone */
        return usage_error("train", "--distributed reads DATA.csv on every rank: not '-'");
    if (a->plot && !has_extension(a->plot, ".svg")) /* SVG is all it writes */
        return usage_error("train", "--plot writes SVG: use a name ending in .svg, not '%s'",
                           a->plot);
    if (a->dist.every && !a->dist.checkpoint) /* it would be ignored without a word */
        return usage_error("train", "--checkpoint-every needs --checkpoint FILE");
    const named_path out[] = {{"--save", a->save},
                              {"--plot", a->plot},
                              {"--dot", a->dot},
                              {"--render", a->render},
                              {"--checkpoint", a->dist.checkpoint}};
    const int rc = check_outputs("train", out, 5, &(named_path){"data file", a->data});
    return rc != EXIT_OK ? rc : check_render_path("train", a->render);
}

/* ---- progress ---------------------------------------------------------------------------- */

typedef struct progress {
    bool tty, quiet;
    tg_task task;
    int first_epoch; /* epochs completed before this run (a resume's), whose time is not in
                      * the epochs' seconds */
} progress;

/* "4.2 s", "12:30", "1:02:03" */
static void clock_text(char *buf, size_t size, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (s < 59.5)
        snprintf(buf, size, "%.1f s", s > 0 ? s : 0.0);
    else if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

static void metric_text(char *buf, size_t size, tg_task task, const tg_train_scores *s)
{
    if (task == TG_TASK_CLASSIFY)
        snprintf(buf, size, "accuracy %.4f", s->accuracy);
    else
        snprintf(buf, size, "RMSE %.4g", s->rmse);
}

static tg_status on_epoch(const tg_train_epoch *e, void *ud)
{
    progress *p = ud;
    if (p->quiet)
        return TG_OK;
    char tm[32], te[32];
    metric_text(tm, sizeof tm, p->task, &e->train);
    metric_text(te, sizeof te, p->task, &e->test);
    bool has_test = !isnan(e->test.loss);
    if (!p->tty) {
        int width = snprintf(NULL, 0, "%d", e->epochs); /* the epoch column lines up */
        fprintf(stderr, "epoch %*d/%d  train loss %.4f %s", width, e->epoch, e->epochs,
                e->train.loss, tm);
        if (has_test)
            fprintf(stderr, "  test loss %.4f %s", e->test.loss, te);
        fprintf(stderr, "  %.2f s\n", e->seconds);
        return TG_OK;
    }
    /* One line rewritten in place: the bar, the latest scores, and the time left at the
     * pace so far. */
    enum { WIDTH = 20 };
    char bar[WIDTH + 1];
    int filled = (int)((long long)e->epoch * WIDTH / e->epochs);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    char left[32];
    const double per_epoch = e->seconds / (e->epoch - p->first_epoch);
    clock_text(left, sizeof left, per_epoch * (e->epochs - e->epoch));
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] train loss %.4f  %s %s  %s left", e->epoch, e->epochs,
            bar, e->train.loss, has_test ? "test" : "train", has_test ? te : tm, left);
    if (e->epoch == e->epochs)
        fputc('\n', stderr);
    fflush(stderr);
    return TG_OK;
}

/* ---- outputs ------------------------------------------------------------------------------ */

static void json_scores(FILE *f, tg_task task, const tg_train_scores *s, size_t rows)
{
    if (rows == 0) {
        fputs("null", f);
        return;
    }
    fputs("{\"loss\": ", f);
    json_number(f, s->loss);
    fputs(task == TG_TASK_CLASSIFY ? ", \"accuracy\": " : ", \"rmse\": ", f);
    json_number(f, task == TG_TASK_CLASSIFY ? s->accuracy : s->rmse);
    fprintf(f, ", \"rows\": %zu}", rows);
}

static void text_scores(FILE *f, const char *label, tg_task task, const tg_train_scores *s,
                        size_t rows)
{
    if (rows == 0)
        return;
    if (task == TG_TASK_CLASSIFY)
        fprintf(f, "%-6s loss %.4f, accuracy %.4f (%.0f of %zu)\n", label, s->loss, s->accuracy,
                s->accuracy * (double)rows, rows);
    else
        fprintf(f, "%-6s loss %.4f (standardized), RMSE %.6g (%zu rows)\n", label, s->loss, s->rmse,
                rows);
}

/* "64 -> 64 relu -> 10" */
static void arch_text(char *buf, size_t size, const tg_mlp_spec *spec)
{
    size_t n = (size_t)snprintf(buf, size, "%zu", spec->sizes[0]);
    for (int l = 0; l < spec->n_layers && n < size; l++) {
        n += (size_t)snprintf(buf + n, size - n, " -> %zu", spec->sizes[l + 1]);
        if (spec->act[l] != TG_ACT_IDENTITY && n < size)
            n += (size_t)snprintf(buf + n, size - n, " %s", tg_activation_name(spec->act[l]));
    }
}

static int write_plot(const train_args *a, tg_trainer *t, tg_task task, const char *data_name)
{
    size_t run;
    const tg_train_epoch *h = tg_trainer_history(t, &run);
    /* x is the epoch: those a resume skipped (not in the history) are NaN, left blank */
    const size_t n = run ? (size_t)h[run - 1].epoch : 0;
    const size_t cap = n ? n : 1; /* one NaN per series at least: sl[0] is read below */
    double *v = malloc(4 * cap * sizeof *v);
    if (!v) {
        complain("train", "--plot: out of memory");
        return EXIT_FAIL;
    }
    double *tl = v, *sl = v + n, *tm = v + 2 * n, *sm = v + 3 * n;
    for (size_t i = 0; i < 4 * cap; i++)
        v[i] = NAN;
    bool classify = task == TG_TASK_CLASSIFY;
    for (size_t k = 0; k < run; k++) {
        const size_t i = (size_t)h[k].epoch - 1;
        tl[i] = h[k].train.loss;
        sl[i] = h[k].test.loss;
        tm[i] = classify ? h[k].train.accuracy : h[k].train.rmse;
        sm[i] = classify ? h[k].test.accuracy : h[k].test.rmse;
    }
    const char *blue = "#1f77b4", *orange = "#e6550d";
    plot_series loss[2] = {{"train", tl, n, blue, false}, {"test", sl, n, orange, true}};
    plot_series metric[2] = {{"train", tm, n, blue, false}, {"test", sm, n, orange, true}};
    size_t n_series = isnan(sl[n ? n - 1 : 0]) ? 1 : 2; /* no test rows: no test curves */
    plot_panel panels[2] = {
        {"Loss", "epoch", classify ? "cross-entropy" : "mean squared error (standardized)", loss,
         n_series, true, false},
        {classify ? "Accuracy" : "RMSE", "epoch",
         classify ? "fraction of rows right" : "RMSE (target units)", metric, n_series, !classify,
         classify},
    };
    char title[512];
    snprintf(title, sizeof title, "tapegrad train %s --target %s", data_name, a->target);
    out_file out;
    bool opened = out_open("train", "--plot", a->plot, &out);
    bool ok = opened && plot_svg_write(out.f, title, panels, 2);
    int err = errno;
    free(v);
    if (!opened || !out_close(&out, ok))
        return EXIT_FAIL;
    if (!ok) {
        complain("train", "--plot: cannot write '%s': %s", a->plot, strerror(err));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* --dot and --render: one training step of the trained network, with its gradients. */
static int write_graph(const train_args *a, tg_trainer *t, const char *title)
{
    tg_tape *tape = tg_tape_new();
    if (!tape || !tg_trainer_record(t, tape)) {
        complain("train", "recording the graph: %s", tg_last_error());
        tg_tape_free(tape);
        return EXIT_FAIL;
    }
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    opt.title = title;
    int rc = EXIT_OK;
    if (a->dot) {
        bool to_stdout = strcmp(a->dot, "-") == 0;
        out_file out = {stdout, NULL, NULL, NULL, NULL, NULL};
        if (!to_stdout && !out_open("train", "--dot", a->dot, &out)) {
            rc = EXIT_FAIL;
        } else {
            tg_status st = tg_dot_write(tape, out.f, &opt);
            if (st != TG_OK)
                complain("train", "--dot: cannot write '%s': %s", a->dot, tg_last_error());
            bool closed = to_stdout || out_close(&out, st == TG_OK); /* even after a failure */
            if (st != TG_OK || !closed)
                rc = EXIT_FAIL;
        }
    }
    if (rc == EXIT_OK && a->render) {
        const char *format = strrchr(a->render, '.') + 1;
        if (tg_dot_render(tape, format, a->render, &opt) != TG_OK) {
            complain("train", "--render: %s", tg_last_error());
            rc = EXIT_FAIL;
        }
    }
    tg_tape_free(tape);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int cmd_train(int argc, char **argv)
{
    double start = monotonic_seconds();
    train_args a;
    memset(&a, 0, sizeof a);
    int rc = train_parse(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;

    tg_table *table = NULL;
    tg_trainer *t = NULL;
    tg_model *model = NULL;
    rc = EXIT_FAIL;
    if (train_dist_start(&a.dist, &a.opt) != EXIT_OK)
        goto done;
    /* Distributed, rank 0 alone prints and writes; the others train and check. */
    bool rank0 = a.dist.rank == 0;
    if (!rank0)
        a.save = a.plot = a.dot = a.render = NULL;
    /* Every file the run will write can be: known now, not after the training. */
    bool written = out_probe("train", "--save", a.save) && out_probe("train", "--plot", a.plot) &&
                   out_probe("train", "--dot", a.dot) && out_probe("train", "--render", a.render) &&
                   (!rank0 || out_probe("train", "--checkpoint", a.dist.checkpoint));
    if (train_dist_outputs(&a.dist, written) != EXIT_OK)
        goto done;
    /* A rank that cannot make its trainer tells the others (train_dist_unready). */
    if (tg_table_read_csv(data_path(a.data), &table) != TG_OK) {
        complain("train", "%s", tg_last_error());
        train_dist_unready(&a.dist);
        goto done;
    }
    progress p = {isatty(fileno(stderr)) == 1, a.json || !rank0, TG_TASK_REGRESS, 0};
    a.opt.on_epoch = on_epoch;
    a.opt.on_epoch_ud = &p;
    if (tg_trainer_new(table, a.target, &a.opt, &t) != TG_OK) {
        complain("train", "%s", loop_message());
        train_dist_unready(&a.dist);
        goto done;
    }
    if (a.save) { /* a target the saved model could not hold is known now, not after training */
        if (tg_trainer_export(t, &model) != TG_OK) {
            complain("train", "--save: %s", tg_last_error());
            train_dist_unready(&a.dist);
            goto done;
        }
        tg_model_free(model);
        model = NULL;
    }
    if (train_dist_ready(&a.dist, t, a.json) != EXIT_OK)
        goto done;
    p.first_epoch = tg_trainer_epoch_index(t);
    tg_train_result r;
    tg_trainer_result(t, &r);
    p.task = r.task;
    const tg_mlp_spec *spec = tg_model_spec(tg_trainer_model(t));
    char arch[256];
    arch_text(arch, sizeof arch, spec);
    /* The text results go to stdout, but for --dot -, which takes it for the graph alone
     * (--json and --dot - are refused together). */
    const bool dot_to_stdout = a.dot && strcmp(a.dot, "-") == 0;
    FILE *res = dot_to_stdout ? stderr : stdout;
    if (!a.json && rank0) {
        fprintf(res, "data:  %s, %zu rows, %zu features, target '%s': ", a.data,
                r.n_train + r.n_test, r.n_features, a.target);
        if (r.task == TG_TASK_CLASSIFY)
            fprintf(res, "classification, %zu classes\n", r.n_classes);
        else
            fprintf(res, "regression\n");
        fprintf(res, "split: %zu training rows, %zu test rows (seed %llu)\n", r.n_train, r.n_test,
                (unsigned long long)a.opt.seed);
        fprintf(res, "model: %s, %zu parameters, %s; %s, lr %g, %d epochs of batch %zu\n", arch,
                r.params, tg_dtype_name(a.opt.dtype), tg_optim_kind_name(a.opt.optim.kind),
                a.opt.optim.lr, a.opt.epochs, a.opt.batch);
        fflush(res);
    }
    if (tg_trainer_run(t, &r) != TG_OK) {
        if (p.tty && !p.quiet)
            fputc('\n', stderr);
        complain("train", "%s", a.dist.stopped ? a.dist.stopped : loop_message());
        train_dist_finish(&a.dist, NULL); /* the other ranks hear of it, if they have not */
        goto done;
    }
    if (train_dist_finish(&a.dist, t) != EXIT_OK)
        goto done;
    if (!rank0) {
        rc = EXIT_OK;
        goto done;
    }
    double seconds = monotonic_seconds() - start;
    if (a.json) {
        printf("{\"task\": \"%s\", \"classes\": %zu, \"train\": ",
               r.task == TG_TASK_CLASSIFY ? "classify" : "regress", r.n_classes);
        json_scores(stdout, r.task, &r.train, r.n_train);
        fputs(", \"test\": ", stdout);
        json_scores(stdout, r.task, &r.test, r.n_test);
        printf(", \"epochs\": %d, \"seconds\": ", r.epochs);
        json_number(stdout, seconds);
        printf(", \"params\": %zu, \"dtype\": \"%s\"", r.params, tg_dtype_name(a.opt.dtype));
        if (a.dist.distributed)
            printf(", \"ranks\": %d", a.dist.world);
        printf("}\n");
    } else {
        text_scores(res, "train:", r.task, &r.train, r.n_train);
        text_scores(res, "test:", r.task, &r.test, r.n_test);
        fprintf(res, "time:  %.2f s\n", seconds);
        if (a.dist.distributed)
            fprintf(res, "ranks: %d, global batch %zu; parameters identical on every rank\n",
                    a.dist.world, a.opt.batch * (size_t)a.dist.world);
    }
    if (a.save) {
        if (tg_trainer_export(t, &model) != TG_OK || tg_model_save(model, a.save) != TG_OK) {
            complain("train", "--save: %s", tg_last_error());
            goto done;
        }
        if (!a.json)
            fprintf(res, "saved: %s\n", a.save);
    }
    if (a.plot) {
        if (write_plot(&a, t, r.task, base_name(a.data)) != EXIT_OK)
            goto done;
        if (!a.json)
            fprintf(res, "plot:  %s\n", a.plot);
    }
    if (a.dot || a.render) {
        char title[512];
        snprintf(title, sizeof title, "%s: %s, one training step after %d epochs",
                 base_name(a.data), arch, r.epochs);
        if (write_graph(&a, t, title) != EXIT_OK)
            goto done;
        if (!a.json && a.dot && !dot_to_stdout)
            fprintf(res, "graph: %s\n", a.dot);
        if (!a.json && a.render)
            fprintf(res, "graph: %s\n", a.render);
    }
    rc = fflush(stdout) == 0 && fflush(res) == 0 ? EXIT_OK : EXIT_FAIL;
done:
    if (rc != EXIT_OK)
        train_dist_fail(&a.dist);
    tg_model_free(model);
    tg_trainer_free(t);
    tg_table_free(table);
    train_dist_end(&a.dist);
    return rc;
}

/* train_dist.c: `tapegrad train --distributed` on MPI (tapegrad/dist.h) and checkpoints
 * (tapegrad/checkpoint.h): every rank reads the CSV and builds the same trainer with its own
 * rank, so each takes its shard of every global batch; the gradient hook averages the
 * gradient block over the ranks; only rank 0 writes checkpoints; a resumed run gets its
 * parameters, optimizer state and position from rank 0. */
#include "train_dist.h"

#include "cli.h"
#include "common/clock.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char TRAIN_DIST_USAGE[] =
    "  --distributed       data-parallel training under mpirun: every rank reads DATA.csv and\n"
    "                      trains on its shard of each global batch of ranks x --batch rows;\n"
    "                      gradients are averaged over the ranks every step; rank 0 alone\n"
    "                      prints, saves and writes checkpoints\n"
    "  --checkpoint FILE   write a checkpoint (model, optimizer state, epoch, step, RNG) to\n"
    "                      FILE every --checkpoint-every steps and at the end, atomically\n"
    "  --checkpoint-every N\n"
    "                      steps between checkpoints (default 100)\n"
    "  --resume FILE       continue the run that wrote checkpoint FILE: the same data,\n"
    "                      options and number of ranks, checked (--epochs may grow)\n";

const char *const TRAIN_DIST_OPTIONS[] = {"--checkpoint", "--checkpoint-every", "--resume", NULL};

int train_dist_option(train_dist *d, const char *opt, const char *value)
{
    if (strcmp(opt, "--distributed") == 0) {
        d->distributed = true;
    } else if (strcmp(opt, "--checkpoint") == 0) {
        d->checkpoint = value;
    } else if (strcmp(opt, "--resume") == 0) {
        d->resume = value;
    } else {
        unsigned long long n;
        if (!parse_size(value, ULLONG_MAX, &n) || n == 0)
            return usage_error("train", "--checkpoint-every must be an integer >= 1, not '%s'",
                               value);
        d->every = n;
    }
    return EXIT_OK;
}

/* ---- hooks ------------------------------------------------------------------------------- */

typedef struct position {
    int epoch;
    size_t batch;
    bool any;
} position;

static position last; /* the latest step taken: where the final checkpoint resumes */

/* grad is NULL when this rank failed (its step before the exchange, or its clipping,
 * optimizer or evaluation after the last one when a step follows: train.h): the exchange with
 * a NULL model tells the other ranks, which return TG_EIO naming this one (dist.h), instead of
 * waiting for it. Then, or on any other verdict of the exchange, every rank fails here
 * together, and the ranks can leave the job normally: only an MPI error leaves them out of
 * step. */
static tg_status average_grads(tg_model *model, void *grad, size_t numel, tg_dtype dtype, void *ud)
{
    (void)numel, (void)dtype;
    train_dist *d = ud;
    double t0 = monotonic_seconds();
    tg_status st = tg_dist_allreduce_grads(d->dist, grad ? model : NULL);
    d->allreduce_seconds += monotonic_seconds() - t0;
    d->allreduces++;
    if (st != TG_OK)
        d->no_rank_waits = tg_dist_in_step(d->dist);
    return st;
}

static tg_status save_checkpoint(train_dist *d, tg_trainer *t)
{
    tg_checkpoint_progress p;
    tg_trainer_progress(t, last.epoch, last.batch, &p);
    return tg_checkpoint_save(d->checkpoint, tg_trainer_model(t), tg_trainer_optim(t), &p);
}

/* Rank 0's status st (ignored on the others) to every rank, through a broadcast all of them
 * make at the same point: a failure of rank 0 alone (a file only it writes) then stops every
 * rank there, each able to leave the job normally, the others saying `stopped`. Without
 * --distributed, st. */
static tg_status rank0_verdict(train_dist *d, tg_status st, const char *stopped)
{
    if (!d->dist)
        return st;
    int32_t verdict = st;
    tg_status bst = tg_dist_broadcast(d->dist, &verdict, sizeof verdict);
    if (bst != TG_OK) {
        d->no_rank_waits = tg_dist_in_step(d->dist); /* a verdict every rank returned */
        return bst;
    }
    if (verdict != TG_OK) {
        d->no_rank_waits = true;
        if (d->rank != 0)
            d->stopped = stopped;
    }
    return (tg_status)verdict;
}

/* Every rank takes part when a checkpoint is due (they step together), so that one rank 0
 * could not write stops them all at this step. */
static tg_status on_step(tg_trainer *t, int epoch, size_t batch, void *ud)
{
    train_dist *d = ud;
    last = (position){epoch, batch, true};
    if (tg_optim_steps(tg_trainer_optim(t)) % d->every != 0)
        return TG_OK;
    return rank0_verdict(d, d->rank == 0 ? save_checkpoint(d, t) : TG_OK,
                         "stopped: rank 0 could not write the checkpoint");
}

int train_dist_start(train_dist *d, tg_train_options *opt)
{
    d->rank = 0, d->world = 1;
    if (!d->every)
        d->every = 100;
    if (d->distributed) {
        if (tg_dist_init(&d->dist) != TG_OK) {
            complain("train", "--distributed: %s", tg_last_error());
            return EXIT_FAIL;
        }
        d->rank = tg_dist_rank(d->dist);
        d->world = tg_dist_size(d->dist);
        opt->rank = d->rank;
        opt->world = d->world;
        opt->grad_hook = average_grads;
        opt->grad_hook_ud = d;
    }
    if (d->checkpoint) {
        opt->on_step = on_step;
        opt->on_step_ud = d;
    }
    return EXIT_OK;
}

/* ---- before training ------------------------------------------------------------------- */

int train_dist_outputs(train_dist *d, bool written)
{
    tg_status st = rank0_verdict(d, written ? TG_OK : TG_EIO,
                                 "stopped: rank 0 cannot write the files it was given");
    if (st == TG_OK || (d->rank == 0 && !written)) /* rank 0 said why */
        return st == TG_OK ? EXIT_OK : EXIT_FAIL;
    if (d->stopped)
        complain("train", "%s", d->stopped);
    else
        complain("train", "--distributed: %s", tg_last_error());
    return EXIT_FAIL;
}

/* Every rank must be training the same run: the library compares the ranks' settings (model,
 * optimizer, epochs, batch, seed, ...), standardization statistics and data before the first
 * collective call of training, and names what differs on every rank. */
static int check_ranks(train_dist *d, tg_trainer *t)
{
    if (tg_dist_check_trainer(d->dist, t) == TG_OK)
        return EXIT_OK;
    /* Every rank came to this verdict together (unless after an MPI error): they can all stop
     * without MPI_Abort. */
    d->no_rank_waits = tg_dist_in_step(d->dist);
    const char *m = tg_last_error();
    complain("train", "%s", strncmp(m, "train: ", 7) == 0 ? m + 7 : m);
    return EXIT_FAIL;
}

void train_dist_unready(train_dist *d)
{
    if (!d->dist)
        return;
    (void)tg_dist_check_trainer(d->dist, NULL); /* TG_EINVAL here, TG_EIO naming it elsewhere */
    d->no_rank_waits = tg_dist_in_step(d->dist);
}

/* The resumed state, as rank 0 read it; broadcast as bytes (every rank runs this build). */
typedef struct resumed {
    int32_t status; /* rank 0's tg_status */
    tg_checkpoint_progress progress;
    uint64_t steps;
    double lr;
} resumed;

static int resume(train_dist *d, tg_trainer *t, bool quiet)
{
    tg_model *m = tg_trainer_model(t);
    tg_optim *o = tg_trainer_optim(t);
    resumed r;
    memset(&r, 0, sizeof r);
    if (d->rank == 0) {
        /* Compares every setting the checkpoint records with this run's, then restores the
         * parameters, the optimizer and the position. */
        r.status = tg_trainer_restore(t, d->resume, &r.progress);
        if (r.status != TG_OK)
            complain("train", "--resume: %s", tg_last_error());
        r.steps = tg_optim_steps(o);
        r.lr = tg_optim_lr(o);
    }
    if (d->dist) {
        tg_status st = tg_dist_broadcast(d->dist, &r, sizeof r);
        if (st == TG_OK && r.status == TG_OK)
            st = tg_dist_broadcast_params(d->dist, m);
        if (st == TG_OK && r.status == TG_OK)
            st = tg_dist_broadcast(d->dist, tg_optim_state(o), tg_optim_state_size(o));
        if (st != TG_OK) {
            d->no_rank_waits = tg_dist_in_step(d->dist); /* a verdict every rank returned */
            complain("train", "--resume: %s", tg_last_error());
            return EXIT_FAIL;
        }
        if (r.status == TG_OK && d->rank != 0) {
            tg_optim_set_steps(o, r.steps);
            tg_optim_set_lr(o, r.lr);
        }
    }
    if (r.status != TG_OK) {
        d->no_rank_waits = true; /* every rank has rank 0's verdict */
        return EXIT_FAIL;
    }
    const tg_checkpoint_progress *p = &r.progress;
    /* Rank 0 is there already; the settings agree on every rank, so this cannot fail. */
    if (d->rank != 0 && tg_trainer_set_position(t, (int)p->epoch, (size_t)p->batch) != TG_OK) {
        complain("train", "--resume: %s", tg_last_error());
        return EXIT_FAIL;
    }
    last = (position){(int)p->epoch, (size_t)p->batch, true};
    if (d->rank == 0 && !quiet)
        fprintf(stderr, "resuming from %s: epoch %llu after step %llu of it (%llu steps taken)\n",
                d->resume, (unsigned long long)p->epoch + 1, (unsigned long long)p->batch,
                (unsigned long long)r.steps);
    return EXIT_OK;
}

int train_dist_ready(train_dist *d, tg_trainer *t, bool quiet)
{
    if (d->dist && check_ranks(d, t) != EXIT_OK)
        return EXIT_FAIL;
    if (d->resume)
        return resume(d, t, quiet);
    /* The same seed makes the same parameters on every rank; rank 0's are sent all the same,
     * so that ranks whose libm rounds the initializer otherwise still start alike. */
    if (d->dist && tg_dist_broadcast_params(d->dist, tg_trainer_model(t)) != TG_OK) {
        d->no_rank_waits = tg_dist_in_step(d->dist); /* a verdict every rank returned */
        complain("train", "--distributed: %s", tg_last_error());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- after training -------------------------------------------------------------------- */

int train_dist_finish(train_dist *d, tg_trainer *t)
{
    if (!t) { /* a run that failed here after its last exchange: the others compare next */
        if (d->dist && !d->no_rank_waits && tg_dist_in_step(d->dist)) {
            (void)tg_dist_check_params(d->dist, NULL, NULL); /* they return naming this rank */
            d->no_rank_waits = tg_dist_in_step(d->dist);
        }
        return EXIT_FAIL;
    }
    if (d->dist) {
        uint64_t hash;
        tg_status st = tg_dist_check_params(d->dist, tg_trainer_model(t), &hash);
        /* the verdict is every rank's (unless after an MPI error), and the last collective call */
        d->no_rank_waits = tg_dist_in_step(d->dist);
        if (st != TG_OK) {
            /* parameters that differ: rank 0 says so for all; a rank that failed: each other */
            if (d->rank == 0 || st == TG_EIO)
                complain("train", "--distributed: %s", tg_last_error());
            return EXIT_FAIL;
        }
    }
    if (d->checkpoint && d->rank == 0 && last.any &&
        tg_optim_steps(tg_trainer_optim(t)) % d->every != 0 && save_checkpoint(d, t) != TG_OK) {
        complain("train", "--checkpoint: %s", tg_last_error());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

void train_dist_fail(train_dist *d)
{
    if (d->dist && d->world > 1 && !d->no_rank_waits) {
        fflush(stdout);
        fflush(stderr);
        tg_dist_abort(d->dist, EXIT_FAIL);
    }
}

void train_dist_end(train_dist *d)
{
    tg_dist_free(d->dist);
    d->dist = NULL;
}

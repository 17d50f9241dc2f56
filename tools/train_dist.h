/* train_dist.h: what `tapegrad train` adds for distributed runs and checkpoints
 * (--distributed, --checkpoint FILE, --checkpoint-every N, --resume FILE), kept apart from
 * cmd_train.c so the command's own code stays about training one model. */
#ifndef TAPEGRAD_TOOLS_TRAIN_DIST_H
#define TAPEGRAD_TOOLS_TRAIN_DIST_H

#include <tapegrad.h>
#include <tapegrad/train.h>

typedef struct train_dist {
    bool distributed;
    const char *checkpoint, *resume;
    unsigned long long every; /* steps between checkpoints */
    tg_dist *dist;            /* when distributed */
    int rank, world;          /* 0 and 1 for one process */
    bool no_rank_waits;       /* every rank came to the same verdict (a check, a training
                               * step, a rank that failed telling the others), or the job's
                               * collective calls are over: a failure need not abort it */
    const char *stopped;      /* set on the other ranks when rank 0 alone failed (a file
                               * it writes): what they say instead of their last error */
    double allreduce_seconds; /* time spent averaging gradients */
    unsigned long long allreduces;
} train_dist;

/* The usage text of these options, for the command's help. */
extern const char TRAIN_DIST_USAGE[];

/* Options with a value this module takes ("--checkpoint", ...), NULL-terminated. */
extern const char *const TRAIN_DIST_OPTIONS[];

/* Takes `--distributed` (value NULL) or one of TRAIN_DIST_OPTIONS with its value: EXIT_OK, or
 * a usage error (printed; EXIT_USAGE). */
int train_dist_option(train_dist *d, const char *opt, const char *value);

/* Before the trainer is made: joins the MPI job when distributed (every rank then trains its
 * shard, and the gradient hook averages over the ranks) and installs the checkpoint hook.
 * EXIT_OK or EXIT_FAIL (said). */
int train_dist_start(train_dist *d, tg_train_options *opt);

/* After the files rank 0 will write were probed (`written`: whether it can write them; the
 * other ranks write none): rank 0's verdict to every rank, so that when it cannot, every rank
 * stops here together (the others say d->stopped). EXIT_OK or EXIT_FAIL (said). */
int train_dist_outputs(train_dist *d, bool written);

/* After the trainer is made: checks that every rank is training the same run (its settings,
 * statistics and data: tg_dist_check_trainer), then resumes from --resume (rank 0 reads the
 * checkpoint, which must be this run's (tg_trainer_restore compares the settings), and
 * broadcasts parameters, optimizer state and position; `quiet`: no note on stderr), or else
 * broadcasts rank 0's initial parameters. EXIT_OK or EXIT_FAIL (said). */
int train_dist_ready(train_dist *d, tg_trainer *t, bool quiet);

/* Instead of train_dist_ready, on a rank that could not make its trainer (its CSV, its
 * target, ...; said): it still joins the ranks' check with no trainer, so that every rank
 * stops there together, the others naming this rank, instead of waiting for it. */
void train_dist_unready(train_dist *d);

/* After training: checks that every rank ends with identical parameters (the last collective
 * call: after it, only rank 0 works on) and writes the last checkpoint. EXIT_OK or EXIT_FAIL
 * (said). With t NULL, after this rank's training failed (said): when the other ranks have not
 * heard of it (it failed after the last exchange: train.h), it joins their check with no
 * parameters, so that they stop there naming it; EXIT_FAIL. */
int train_dist_finish(train_dist *d, tg_trainer *t);

/* A failure on one rank: ends the whole job (the other ranks would wait forever) when
 * distributed over more than one rank; nothing otherwise, when every rank came to the same
 * verdict (a check of the settings, which a rank without a trainer joins too; a step that
 * failed on any rank fails on every rank at its gradient exchange; a checkpoint rank 0 could
 * not write, at the broadcast of its verdict; a rank whose training failed after the last
 * exchange, at train_dist_finish's check), or after that check (no rank waits for another
 * then: they all leave MPI normally). After an MPI error it ends the job. */
void train_dist_fail(train_dist *d);

/* Leaves the MPI job (the library finalizes MPI). */
void train_dist_end(train_dist *d);

#endif

/* clock.h: the one clock the tools time things with: seconds on the monotonic clock, which
 * never jumps (NTP, a changed date), so differences are durations. The library keeps its own
 * copy in src/nn/train.c: it must not depend on the tools. */
#ifndef TAPEGRAD_TOOLS_COMMON_CLOCK_H
#define TAPEGRAD_TOOLS_COMMON_CLOCK_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC): only differences mean anything. */
double monotonic_seconds(void);

#endif

/* A fixed pool of worker threads for data-parallel loops. The calling
 * thread takes part as worker 0, so a pool of 1 runs everything inline.
 * Workers spin briefly between jobs (a decode step issues hundreds of small
 * jobs, and waking a sleeping thread costs more than the job) and then sleep
 * on a condition variable, so an idle pool costs no CPU. */
#ifndef VMED_BASE_THREADS_H
#define VMED_BASE_THREADS_H

#include "base/error.h"

typedef struct ThreadPool ThreadPool;

/* The work function: worker ith of nth does its share of ctx. */
typedef void (*ParallelFn)(void *ctx, int ith, int nth);

int pool_create(ThreadPool **out, int n_threads, Error *err);
void pool_free(ThreadPool *p);
int pool_size(const ThreadPool *p);
/* Runs fn on every worker and returns when all have finished. p may be
 * NULL: fn then runs once as worker 0 of 1. */
void pool_run(ThreadPool *p, ParallelFn fn, void *ctx);

/* fn(ctx, lo, hi) over [0, n) cut into one contiguous range per worker;
 * inline, as one range, when n < 2 or p is NULL. For the row-wise steps
 * between matrix products (norms, activations, residual sums): a few
 * percent of one thread's time, they would run alone beside a threaded
 * product. */
typedef void (*RangeFn)(void *ctx, long lo, long hi);
void pool_for(ThreadPool *p, long n, RangeFn fn, void *ctx);

/* Splits [0, n) into nth near-equal parts; part ith is [*lo, *hi). */
void split_range(long n, int ith, int nth, long *lo, long *hi);

/* Number of CPUs this process may run on. */
int cpu_count(void);

#endif

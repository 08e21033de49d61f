#include "base/threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static void cpu_relax(void) { _mm_pause(); }
#else
static void cpu_relax(void) {}
#endif

/* How long a worker polls for the next job before it sleeps. */
#define SPIN_ITERATIONS 20000

typedef struct {
    ThreadPool *pool;
    int ith;
    pthread_t thread;
} Worker;

struct ThreadPool {
    int n;
    Worker *workers;
    ParallelFn fn;
    void *ctx;
    atomic_int generation; /* bumped once per job */
    atomic_int pending;    /* workers still running the current job */
    atomic_int stop;
    atomic_int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static void *worker_main(void *arg) {
    Worker *w = arg;
    ThreadPool *p = w->pool;
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ITERATIONS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        p->fn(p->ctx, w->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

int pool_create(ThreadPool **out, int n_threads, Error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return error_set(err, "thread count %d is out of range 1..1024", n_threads);
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory creating a thread pool");
    p->n = n_threads;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return error_set(err, "out of memory creating a thread pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            p->n = i; /* only these exist; stop them */
            pool_free(p);
            return error_set(err, "cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return 0;
}

void pool_free(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

int pool_size(const ThreadPool *p) { return p ? p->n : 1; }

void pool_run(ThreadPool *p, ParallelFn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) cpu_relax();
}

typedef struct {
    long n;
    RangeFn fn;
    void *ctx;
} ForJob;

static void for_worker(void *ctx, int ith, int nth) {
    ForJob *J = ctx;
    long lo, hi;
    split_range(J->n, ith, nth, &lo, &hi);
    if (lo < hi) J->fn(J->ctx, lo, hi);
}

void pool_for(ThreadPool *p, long n, RangeFn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n == 1 || n < 2) {
        fn(ctx, 0, n);
        return;
    }
    ForJob J = {n, fn, ctx};
    pool_run(p, for_worker, &J);
}

void split_range(long n, int ith, int nth, long *lo, long *hi) {
    long base = n / nth, extra = n % nth;
    *lo = ith * base + (ith < extra ? ith : extra);
    *hi = *lo + base + (ith < extra ? 1 : 0);
}

int cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

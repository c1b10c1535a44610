#include "par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/err.h"

/* A waiting thread spins this long for the next par_for before it sleeps:
 * the kernels of one training step follow each other within tens of
 * microseconds, and a sleep and wake-up through the kernel costs as much.
 * On a machine busy with other work the spin is short enough not to
 * matter. */
#define PAR_SPIN_US 200

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Spins until (*v == val) == equal (returns 1) or PAR_SPIN_US pass (0). */
static int spin_until(atomic_uint *v, unsigned val, int equal)
{
    int64_t t0 = clock_mono_us();
    for (int i = 1;; i++) {
        if ((atomic_load_explicit(v, memory_order_acquire) == val) == equal)
            return 1;
        cpu_relax();
        if (i % 64 == 0 && clock_mono_us() - t0 > PAR_SPIN_US)
            return 0;
    }
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new generation of work, or a stop */
    pthread_cond_t done; /* the last busy thread finished */
    pthread_t tid[PAR_MAX_THREADS];
    int nthreads;        /* including the caller */
    int stop_above;      /* threads with an index >= this exit */
    /* the current par_for */
    par_fn fn;
    void *ctx;
    int tasks;
    atomic_int next;     /* next task to take */
    atomic_uint busy;    /* pool threads still working on this generation */
    atomic_uint gen;     /* bumped for every par_for */
    unsigned start_gen[PAR_MAX_THREADS]; /* gen when each thread started */
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .nthreads = 1,
    .stop_above = PAR_MAX_THREADS,
};

static _Thread_local int in_task;

static void run_tasks(int thread)
{
    in_task = 1;
    for (;;) {
        int t = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed);
        if (t >= pool.tasks)
            break;
        pool.fn(pool.ctx, t, thread);
    }
    in_task = 0;
}

static void *thread_main(void *arg)
{
    const int self = (int)(long)arg;
    unsigned seen = pool.start_gen[self];
    for (;;) {
        unsigned g = seen;
        if (spin_until(&pool.gen, seen, 0))
            g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load(&pool.gen)) == seen &&
                   self < pool.stop_above)
                pthread_cond_wait(&pool.wake, &pool.lock);
            int quit = self >= pool.stop_above;
            pthread_mutex_unlock(&pool.lock);
            if (quit)
                return NULL;
        }
        seen = g;
        if (self >= pool.stop_above)
            return NULL;
        run_tasks(self);
        if (atomic_fetch_sub_explicit(&pool.busy, 1, memory_order_acq_rel) ==
            1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
}

int par_threads(void)
{
    return pool.nthreads;
}

int par_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > PAR_MAX_THREADS)
        n = PAR_MAX_THREADS;
    if (n < pool.nthreads) {
        /* Every pool thread stops (a survivor woken by the stop would take
         * it for work) and the pool then starts afresh. */
        pthread_mutex_lock(&pool.lock);
        pool.stop_above = 1;
        atomic_fetch_add(&pool.gen, 1);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
        for (int i = 1; i < pool.nthreads; i++)
            pthread_join(pool.tid[i], NULL);
        pool.nthreads = 1;
        pool.stop_above = PAR_MAX_THREADS;
    }
    while (pool.nthreads < n) {
        pool.start_gen[pool.nthreads] = atomic_load(&pool.gen);
        if (pthread_create(&pool.tid[pool.nthreads], NULL, thread_main,
                           (void *)(long)pool.nthreads) != 0)
            return TFQ_ENOMEM;
        pool.nthreads++;
    }
    return 0;
}

void par_for(int tasks, par_fn fn, void *ctx)
{
    if (tasks <= 0)
        return;
    if (pool.nthreads == 1 || tasks == 1 || in_task) {
        for (int t = 0; t < tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.tasks = tasks;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.busy, (unsigned)pool.nthreads - 1);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_tasks(0);
    if (atomic_load_explicit(&pool.busy, memory_order_acquire) != 0 &&
        !spin_until(&pool.busy, 0, 1)) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.busy) != 0)
            pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
}

/* Chunks per thread in par_range: a few, so that a thread slowed by other
 * work on the machine leaves its share to the others. */
#define PAR_RANGE_CHUNKS 4

typedef struct {
    par_range_fn fn;
    void *ctx;
    long total;
    int chunks;
} range_job;

static void range_task(void *ctx, int task, int thread)
{
    (void)thread;
    range_job *j = ctx;
    long lo = j->total * task / j->chunks, hi = j->total * (task + 1) / j->chunks;
    if (hi > lo)
        j->fn(j->ctx, lo, hi);
}

void par_range(long total, long min_chunk, par_range_fn fn, void *ctx)
{
    if (total <= 0)
        return;
    long chunks = (long)pool.nthreads * PAR_RANGE_CHUNKS;
    if (min_chunk > 0 && total / min_chunk < chunks)
        chunks = total / min_chunk;
    if (chunks <= 1 || pool.nthreads == 1 || in_task) {
        fn(ctx, 0, total);
        return;
    }
    range_job j = {.fn = fn, .ctx = ctx, .total = total, .chunks = (int)chunks};
    par_for((int)chunks, range_task, &j);
}

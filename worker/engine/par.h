/* The engine's training threads: one fixed pool that every parallel kernel
 * shares (convolutions split over images or output channels, pooling and
 * ReLU over planes).  The calling thread works as thread 0, so a pool of N
 * threads starts N - 1 of its own.  par_for called from inside a task runs
 * its tasks serially on that thread. */
#ifndef TFQ_ENGINE_PAR_H
#define TFQ_ENGINE_PAR_H

#define PAR_MAX_THREADS 256

/* fn(ctx, task, thread): task in [0, tasks), thread in [0, par_threads()). */
typedef void (*par_fn)(void *ctx, int task, int thread);

/* Sets the pool to n threads (clamped to 1..PAR_MAX_THREADS), starting or
 * stopping threads as needed.  Returns 0, or TFQ_ENOMEM when a thread could
 * not be started (the pool then keeps the threads it has).  Not to be
 * called while a par_for runs. */
int par_set_threads(int n);

/* The pool's size (1 until par_set_threads says otherwise). */
int par_threads(void);

/* Runs fn for every task in [0, tasks) across the pool and returns when all
 * have finished.  Which thread runs which task is not fixed, so a task must
 * write only what no other task writes. */
void par_for(int tasks, par_fn fn, void *ctx);

/* fn(ctx, lo, hi): one chunk [lo, hi) of a range. */
typedef void (*par_range_fn)(void *ctx, long lo, long hi);

/* Cuts [0, total) into a few chunks per thread, none shorter than
 * min_chunk (the work under which a chunk costs more to hand out than to
 * do), and runs fn on each across the pool. */
void par_range(long total, long min_chunk, par_range_fn fn, void *ctx);

#endif

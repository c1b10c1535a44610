#include "job.h"

#include <time.h>

#include "../common/rng.h"


static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int job_run_sleep(const job_spec *s, int attempt, const job_hooks *h,
                  volatile sig_atomic_t *stop, tfq_error *e)
{
    if (s->kind != JOB_SLEEP)
        return tfq_error_set(e, TFQ_EINVAL, "not a sleep job");
    const int steps = 10;
    int64_t done = 0;
    for (int step = 1; step <= steps; step++) {
        int64_t until = s->sleep_ms * step / steps;
        while (done < until) {
            if (stop != NULL && *stop)
                return tfq_error_set(e, TFQ_EINTR, "stopped after %lld ms",
                                     (long long)done);
            int64_t slice = until - done < JOB_TICK_MS
                                ? until - done : JOB_TICK_MS;
            sleep_ms(slice);
            done += slice;
            if (h != NULL && h->tick != NULL)
                h->tick(h->ud);
        }
        if (h != NULL && h->progress != NULL)
            h->progress(h->ud, step, steps, 0.0, 0.0, 0.0,
                        (double)(s->sleep_ms - done) / 1000.0);
    }
    uint64_t key = rng_key(s->seed, 0x6661696c /* "fail" */, (uint64_t)attempt);
    if (s->fail_prob > 0.0 && rng_uniform(key, 0) < s->fail_prob)
        return tfq_error_set(e, TFQ_EIO, "sleep job failed on purpose "
                             "(fail_prob %g, attempt %d)", s->fail_prob,
                             attempt);
    return 0;
}

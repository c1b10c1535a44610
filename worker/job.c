#include "job.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/rng.h"


static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A sleep job's checkpoint: one line of text. */
#define SLEEP_CKPT_FORMAT "tfq sleep checkpoint 1 epoch %d\n"

int job_run_sleep(const job_spec *s, int attempt, const uint8_t *resume,
                  size_t resume_bytes, const job_hooks *h,
                  volatile sig_atomic_t *stop, tfq_error *e)
{
    if (s->kind != JOB_SLEEP)
        return tfq_error_set(e, TFQ_EINVAL, "not a sleep job");
    const int steps = JOB_SLEEP_EPOCHS;
    int first = 1;
    if (resume != NULL) {
        char text[64];
        int epoch = -1;
        size_t n = resume_bytes < sizeof text - 1 ? resume_bytes
                                                  : sizeof text - 1;
        memcpy(text, resume, n);
        text[n] = '\0';
        char again[64];
        if (sscanf(text, SLEEP_CKPT_FORMAT, &epoch) != 1 || epoch < 0 ||
            epoch > steps ||
            (snprintf(again, sizeof again, SLEEP_CKPT_FORMAT, epoch),
             strlen(again) != resume_bytes || memcmp(again, resume, resume_bytes)))
            return tfq_error_set(e, TFQ_EFORMAT, "resume checkpoint is not a "
                                 "sleep job's (%zu bytes)", resume_bytes);
        first = epoch + 1;
    }
    int64_t done = s->sleep_ms * (first - 1) / steps;
    for (int step = first; step <= steps; step++) {
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
        if (h != NULL && h->checkpoint != NULL) {
            char blob[64];
            int n = snprintf(blob, sizeof blob, SLEEP_CKPT_FORMAT, step);
            h->checkpoint(h->ud, step, (const uint8_t *)blob, (size_t)n);
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

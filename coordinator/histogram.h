/* A histogram of durations, in seconds, with fixed bucket bounds: what the
 * store fills as it commits (store_time_commits) and the metrics text
 * shows.  Plain numbers, no knowledge of any exposition format. */
#ifndef TFQ_COORDINATOR_HISTOGRAM_H
#define TFQ_COORDINATOR_HISTOGRAM_H

#include <stdint.h>

/* Upper bounds of the buckets, in seconds: 0.5 ms to 5 s, a 1-2.5-5
 * ladder, where a commit's fsync on anything from NVMe to a busy spinning
 * disk falls. */
#define HISTOGRAM_BOUNDS                                                    \
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,  \
     2.5, 5.0}
#define HISTOGRAM_BUCKETS 13

typedef struct {
    double le[HISTOGRAM_BUCKETS];       /* upper bounds, increasing */
    uint64_t below[HISTOGRAM_BUCKETS];  /* observations <= le[i] (cumulative) */
    uint64_t count;                     /* every observation (+Inf) */
    double sum;                         /* their total, seconds */
} histogram;

static inline void histogram_init(histogram *h)
{
    static const double le[HISTOGRAM_BUCKETS] = HISTOGRAM_BOUNDS;
    *h = (histogram){0};
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        h->le[i] = le[i];
}

static inline void histogram_observe(histogram *h, double seconds)
{
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        if (seconds <= h->le[i])
            h->below[i]++;
    h->count++;
    h->sum += seconds;
}

#endif

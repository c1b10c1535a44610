/* The metrics read: the coordinator's counters and the store's gauges as
 * the Prometheus text exposition format, version 0.0.4 (HELP and TYPE
 * before each metric's samples; label values escaped). */
#include "coord_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text; failed set once an allocation fails. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} mtext;

static void put(mtext *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(mtext *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL,
                          t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->p != NULL && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 8192;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A label value as the format wants it: backslash, double quote and
 * newline escaped (a grid's name is the user's text). */
static void put_label(mtext *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(t, "\\\\");
        else if (*v == '"')
            put(t, "\\\"");
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

static void put_head(mtext *t, const char *name, const char *type,
                     const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_gauge(mtext *t, const char *name, const char *help,
                      int64_t v)
{
    put_head(t, name, "gauge", help);
    put(t, "%s %lld\n", name, (long long)v);
}

static void put_counter(mtext *t, const char *name, const char *help,
                        uint64_t v)
{
    put_head(t, name, "counter", help);
    put(t, "%s %llu\n", name, (unsigned long long)v);
}

static void jobs_by(void *arg, const char *grid, const char *state,
                    int64_t n)
{
    mtext *t = arg;
    put(t, "tfq_jobs{grid=\"");
    put_label(t, grid);
    put(t, "\",state=\"%s\"} %lld\n", state, (long long)n);
}

/* Requests and error replies by kind: every kind the coordinator serves,
 * and "invalid" for frames that did not decode (their errors answer no
 * kind). */
static void put_by_kind(mtext *t, const char *name, const char *help,
                        const uint64_t *by_kind)
{
    put_head(t, name, "counter", help);
    for (int k = PROTO_KIND_NONE; k < PROTO_KIND_COUNT; k++)
        if (k == PROTO_KIND_NONE || handlers_serves((proto_kind)k))
            put(t, "%s{kind=\"%s\"} %llu\n", name,
                k == PROTO_KIND_NONE ? "invalid"
                                     : proto_kind_name((proto_kind)k),
                (unsigned long long)by_kind[k]);
}

static void put_histogram(mtext *t, const char *name, const char *help,
                          const histogram *h)
{
    put_head(t, name, "histogram", help);
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i],
            (unsigned long long)h->below[i]);
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n",
        name, (unsigned long long)h->count, name, h->sum, name,
        (unsigned long long)h->count);
}

int metrics_text(coord *c, char **text, tfq_error *e)
{
    mtext t = {0};
    store_gauges g;
    const coord_stats *s = &c->stats;
    *text = NULL;
    put_head(&t, "tfq_jobs", "gauge", "Jobs by grid and state.");
    int rc = store_gauges_get(c->st, coord_now_ms(),
                              handlers_gone_after_ms(c), &g, jobs_by, &t, e);
    if (rc != 0) {
        free(t.p);
        return rc;
    }
    put_gauge(&t, "tfq_queue_depth", "Jobs ready to lease, every grid.",
              g.ready);
    put_head(&t, "tfq_workers", "gauge", "Workers by state, as the workers "
             "read says: live (running an attempt), idle, gone.");
    put(&t, "tfq_workers{state=\"live\"} %lld\n"
            "tfq_workers{state=\"idle\"} %lld\n"
            "tfq_workers{state=\"gone\"} %lld\n",
        (long long)g.workers_live, (long long)g.workers_idle,
        (long long)g.workers_gone);
    put_gauge(&t, "tfq_checkpoint_bytes", "Bytes of the checkpoints stored.",
              g.checkpoint_bytes);
    put_by_kind(&t, "tfq_requests_total", "Messages handled, by kind.",
                s->requests);
    put_by_kind(&t, "tfq_request_errors_total", "Error replies, by the kind "
                "they answer.", s->errors);
    put_counter(&t, "tfq_leases_lost_total", "Attempts lost: their worker "
                "sent no heartbeat for the liveness window.", s->leases_lost);
    put_counter(&t, "tfq_results_stale_total", "Results refused: their "
                "attempt was no longer running.", s->results_stale);
    put_histogram(&t, "tfq_store_commit_seconds", "Time of each store "
                  "commit that changed something.", &s->commits);
    put_head(&t, "tfq_start_time_seconds", "gauge", "When the coordinator "
             "started, seconds since the Unix epoch.");
    put(&t, "tfq_start_time_seconds %.3f\n", (double)s->start_ms / 1000.0);
    if (t.failed) {
        free(t.p);
        return tfq_error_set(e, TFQ_ENOMEM, "metrics: out of memory");
    }
    *text = t.p;
    return 0;
}

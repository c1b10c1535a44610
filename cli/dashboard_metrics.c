/* The dashboard's own counters, for /metrics beside the coordinator's. */
#include <stdio.h>
#include <string.h>

#include "dashboard_int.h"

void dash_count(dashboard *d, const char *route, int status)
{
    pthread_mutex_lock(&d->count_lock);
    int i = 0;
    while (i < d->ncounters && (d->counters[i].status != status ||
                                strcmp(d->counters[i].route, route) != 0))
        i++;
    if (i == d->ncounters && i < DASH_MAX_COUNTERS) /* routes are few */
        d->counters[d->ncounters++] = (dash_counter){route, status, 0};
    if (i < d->ncounters)
        d->counters[i].count++;
    pthread_mutex_unlock(&d->count_lock);
}

void dash_write_metrics(dashboard *d, FILE *out)
{
    pthread_mutex_lock(&d->count_lock);
    fputs("# HELP tfq_dashboard_http_requests_total HTTP requests the "
          "dashboard answered, by route and status code.\n"
          "# TYPE tfq_dashboard_http_requests_total counter\n", out);
    for (int i = 0; i < d->ncounters; i++)
        fprintf(out, "tfq_dashboard_http_requests_total{route=\"%s\","
                "code=\"%d\"} %llu\n", d->counters[i].route,
                d->counters[i].status,
                (unsigned long long)d->counters[i].count);
    pthread_mutex_unlock(&d->count_lock);
}

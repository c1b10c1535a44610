#include "metric.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int metric_parse(const char *text, metric *m)
{
    memset(m, 0, sizeof *m);
    size_t len = strlen(text);
    if (len >= sizeof m->name)
        return -1;
    if (strcmp(text, "final") == 0) {
        m->kind = METRIC_FINAL;
    } else if (strcmp(text, "best") == 0) {
        m->kind = METRIC_BEST;
    } else {
        if (strncmp(text, "top", 3) != 0 || text[3] < '1' || text[3] > '9')
            return -1;
        char *end;
        errno = 0;
        long k = strtol(text + 3, &end, 10);
        if (errno != 0 || *end != '\0' || k > METRIC_MAX_K)
            return -1;
        m->kind = METRIC_TOPK;
        m->k = (int)k;
    }
    memcpy(m->name, text, len + 1);
    return 0;
}

void metric_topk_name(int k, char name[METRIC_NAME_BYTES])
{
    snprintf(name, METRIC_NAME_BYTES, "top%d", k);
}

const char *metric_or_default(const char *name)
{
    return name != NULL && name[0] != '\0' ? name : METRIC_DEFAULT;
}

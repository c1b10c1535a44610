#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_level = -1;

static tfq_log_level level_from_env(void)
{
    const char *v = getenv("TFQ_LOG");
    if (v == NULL)
        return TFQ_LOG_INFO;
    if (strcmp(v, "debug") == 0)
        return TFQ_LOG_DEBUG;
    if (strcmp(v, "warn") == 0)
        return TFQ_LOG_WARN;
    if (strcmp(v, "error") == 0)
        return TFQ_LOG_ERROR;
    return TFQ_LOG_INFO;
}

void tfq_log_set_level(tfq_log_level level)
{
    s_level = (int)level;
}

tfq_log_level tfq_log_get_level(void)
{
    if (s_level < 0)
        s_level = (int)level_from_env();
    return (tfq_log_level)s_level;
}

void tfq_log(tfq_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < tfq_log_get_level())
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ",
                  ts.tv_nsec / 1000000L, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

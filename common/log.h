/* Logging to stderr with a timestamp and level.  Safe to call from any
 * thread; one line is written with one write so lines never interleave. */
#ifndef TFQ_COMMON_LOG_H
#define TFQ_COMMON_LOG_H

typedef enum {
    TFQ_LOG_DEBUG = 0,
    TFQ_LOG_INFO = 1,
    TFQ_LOG_WARN = 2,
    TFQ_LOG_ERROR = 3,
} tfq_log_level;

/* Messages below level are dropped.  Default: TFQ_LOG_INFO, or the value of
 * the environment variable TFQ_LOG (debug|info|warn|error) when set. */
void tfq_log_set_level(tfq_log_level level);
tfq_log_level tfq_log_get_level(void);

void tfq_log(tfq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) tfq_log(TFQ_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) tfq_log(TFQ_LOG_INFO, __VA_ARGS__)
#define log_warn(...) tfq_log(TFQ_LOG_WARN, __VA_ARGS__)
#define log_error(...) tfq_log(TFQ_LOG_ERROR, __VA_ARGS__)

#endif

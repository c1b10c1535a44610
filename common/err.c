#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *tfq_strerror(int code)
{
    switch (code) {
    case TFQ_OK:
        return "ok";
#define TFQ__ERR_CASE(name, value, msg) \
    case TFQ_E##name:                   \
        return msg;
        TFQ_ERRNO_MAP(TFQ__ERR_CASE)
#undef TFQ__ERR_CASE
    default:
        return "unknown error";
    }
}

int tfq_error_set(tfq_error *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int tfq_error_wrap(tfq_error *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    char prefix[TFQ_ERROR_MSG_BYTES];
    char old[TFQ_ERROR_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    if (e->code == 0)
        e->code = code;
    /* Keep the end of the old message when both do not fit. */
    const char *rest = old[0] ? old : tfq_strerror(e->code);
    size_t plen = strnlen(prefix, sizeof e->msg / 2);
    memcpy(e->msg, prefix, plen);
    snprintf(e->msg + plen, sizeof e->msg - plen, ": %.*s",
             (int)(sizeof e->msg - plen - 3), rest);
    return e->code;
}

void tfq_error_clear(tfq_error *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}

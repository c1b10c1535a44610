#include "text.h"

#include <ctype.h>
#include <string.h>

char *text_trim(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    char *end = p + strlen(p);
    while (end > p && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return p;
}

char *text_next_line(char **rest)
{
    char *line = *rest;
    if (*line == '\0')
        return NULL;
    char *nl = strchr(line, '\n');
    if (nl != NULL) {
        *nl = '\0';
        *rest = nl + 1;
    } else {
        *rest = line + strlen(line);
    }
    return line;
}

int text_check_nul(const char *text, size_t bytes, tfq_error *e)
{
    const char *nul = memchr(text, '\0', bytes);
    if (nul == NULL)
        return 0;
    int line = 1;
    for (const char *p = text; p < nul; p++)
        line += *p == '\n';
    return tfq_error_set(e, TFQ_EINVAL, "line %d (byte offset %zu): a NUL "
                         "byte: a text file has none", line,
                         (size_t)(nul - text));
}

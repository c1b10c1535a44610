/* Small text helpers shared by the parsers of job specs, job files and key
 * files. */
#ifndef TFQ_COMMON_TEXT_H
#define TFQ_COMMON_TEXT_H

#include <stddef.h>

#include "err.h"

/* Cuts the white space off both ends of p in place; returns the first
 * character that is not white space (inside p). */
char *text_trim(char *p);

/* The next line of the text at *rest, cut off in place (its '\n' becomes
 * NUL; a '\r' before it stays, for text_trim), *rest moved past it; NULL
 * at the end of the text.  Unlike strtok_r it returns empty lines too, so
 * a caller counting lines counts every line of the file. */
char *text_next_line(char **rest);

/* 0 when the bytes of a text file hold no NUL byte; else TFQ_EINVAL with
 * "line L (byte offset O): a NUL byte: ..." naming the first one (a C
 * string would end there and the rest be silently lost). */
int text_check_nul(const char *text, size_t bytes, tfq_error *e);

#endif

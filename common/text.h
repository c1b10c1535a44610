/* Small text helpers shared by the parsers of job specs, job files and key
 * files. */
#ifndef TFQ_COMMON_TEXT_H
#define TFQ_COMMON_TEXT_H

/* Cuts the white space off both ends of p in place; returns the first
 * character that is not white space (inside p). */
char *text_trim(char *p);

#endif

/* tfq submit's base: {A: FILE, B: FILE}: the imported base nets of a grid,
 * made into tfq checkpoints, hashed, and uploaded to the coordinator's
 * checkpoint store before the grid is submitted. */
#ifndef TFQ_CLI_SUBMIT_BASE_H
#define TFQ_CLI_SUBMIT_BASE_H

#include <stddef.h>
#include <stdint.h>

#include "common/client.h"
#include "coordinator/gridspec.h"

typedef struct {
    uint8_t *ckpt[2]; /* task A's, B's checkpoint bytes; NULL: none */
    size_t bytes[2];
    char sha[2][HASH_HEX_BYTES]; /* their SHA-256, hex */
    char *text;       /* the grid file with the hashes; NULL: no base: */
} submit_base;

/* For each base file of g: reads it (a safetensors file or a tfq .ckpt),
 * checks it against the grid's net and that task's inputs and classes,
 * sets g->base_sha, and keeps the checkpoint in b; then b->text is text
 * with the hashes in place of the file names.  Nothing to do without
 * base: files.  Errors name the file and what does not fit. */
int submit_base_prepare(gridspec *g, const char *text, submit_base *b,
                        tfq_error *e);

/* Uploads b's checkpoints the coordinator does not have yet (store
 * "ckpt"), printing a line for each. */
int submit_upload_base(client *c, const submit_base *b, tfq_error *e);

void submit_base_release(submit_base *b);

#endif

/* Checkpoints: a net's parameters and optimizer state plus where training
 * stands, in a versioned binary format.
 *
 *   offset  bytes  field
 *   0       8      magic "TFQCKPT\0"
 *   8       4      format version (CKPT_VERSION), little-endian u32
 *   12      ...    meta: net description, input shape, classes, epoch,
 *                  step in epoch, global step, seed, partial-epoch loss,
 *                  per-epoch metrics, data fingerprint, frozen layers;
 *                  from version 2 the input normalisation (i32 channels c,
 *                  then c f32 means, c f32 standard deviations)
 *   ...     4      tensor count, then per tensor: name, ndim, dims, f32 data
 *   end-32  32     SHA-256 of every byte before it
 *
 * All integers and floats are little-endian.  A file is written to a
 * temporary name, synced and renamed, so a reader never sees half of one.
 * Reading checks magic, version, checksum and every length before use, and
 * refuses a checkpoint whose net does not match with a message saying what
 * differs. */
#ifndef TFQ_ENGINE_CKPT_H
#define TFQ_ENGINE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/settings.h"
#include "data.h"
#include "net.h"

#define CKPT_MAGIC "TFQCKPT"
#define CKPT_VERSION 2u
#define CKPT_VERSION_MIN 1u /* version 1: no normalisation (norm.c 0) */
#define CKPT_MAX_EVALS SETTINGS_MAX_EPOCHS

typedef struct {
    char net_text[NETSPEC_TEXT_BYTES]; /* canonical net description */
    netspec_shape in;
    int classes;
    int epoch;         /* completed epochs */
    int step_in_epoch; /* batches done in the current epoch */
    int64_t step;      /* batches done in all */
    uint64_t seed;
    double loss_sum;   /* sum of batch losses * images in this epoch */
    int64_t loss_count; /* images those losses cover */
    int frozen;        /* learned layers frozen while training */
    int nevals;        /* entries in the two arrays below */
    float test_acc[CKPT_MAX_EVALS];   /* after each epoch */
    float train_loss[CKPT_MAX_EVALS]; /* mean over each epoch */
    char fingerprint[HASH_HEX_BYTES]; /* data set the net was trained on */
    data_norm norm;    /* the input normalisation the net was trained
                          with; norm.c 0: not known (version 1, or an
                          import without it) */
} ckpt_meta;

typedef struct ckpt ckpt;

/* Fills the net fields of meta (description, shapes) from m. */
void ckpt_meta_from_net(ckpt_meta *meta, const net *m);

/* Serialises meta and every learned layer's weights, biases and momentum.
 * *buf is malloc'd and owned by the caller. */
int ckpt_encode(const ckpt_meta *meta, const net *m, uint8_t **buf,
                size_t *bytes, tfq_error *e);

/* ckpt_encode to path, atomically. */
int ckpt_write(const char *path, const ckpt_meta *meta, const net *m,
               tfq_error *e);

/* Writes bytes to path atomically: a temporary file beside it, synced and
 * renamed into place.  TFQ_EIO naming the path and the system's reason. */
int ckpt_file_write(const char *path, const uint8_t *buf, size_t bytes,
                    tfq_error *e);

/* The whole file at path in a new buffer *out (the caller frees it) of
 * *out_bytes bytes; TFQ_ENOENT, or TFQ_EIO for a file over max_bytes or
 * one that cannot be read. */
int ckpt_file_read(const char *path, size_t max_bytes, uint8_t **out,
                   size_t *out_bytes, tfq_error *e);

/* Parses and verifies a serialised checkpoint; `what` names it in errors
 * (a path, or "checkpoint of job 12").  Returns NULL with e set on failure. */
ckpt *ckpt_decode(const uint8_t *buf, size_t bytes, const char *what,
                  tfq_error *e);

/* Reads and verifies the checkpoint file at path. */
ckpt *ckpt_read(const char *path, tfq_error *e);

void ckpt_destroy(ckpt **c);

const ckpt_meta *ckpt_get_meta(const ckpt *c);

/* The tensor called name ("layer3.weight", "layer3.bias"; see
 * ckpt_encode): its shape dims[0..*ndim) and its values, *data pointing at
 * the count little-endian f32 inside c (not aligned: memcpy them).
 * Returns 0, or TFQ_ENOENT when c has no such tensor. */
int ckpt_tensor(const ckpt *c, const char *name, int dims[4], int *ndim,
                const uint8_t **data);

/* Loads every parameter and momentum tensor into m, for resuming; m's net
 * description, input shape and classes must equal the checkpoint's. */
int ckpt_restore(const ckpt *c, net *m, tfq_error *e);

/* Copies the weights and biases of learned layers 1..n into m (momentum
 * left at zero), for transfer; each copied tensor's shape must match. */
int ckpt_copy_layers(const ckpt *c, net *m, int n, tfq_error *e);

#endif

/* Image data sets: readers for IDX (MNIST, Fashion-MNIST; gzip or plain) and
 * the CIFAR-10 / CIFAR-100 binary formats, class subsets, and the per-batch
 * conversion from bytes to normalised floats.
 *
 * Images stay as bytes in memory (one byte per pixel per channel); a batch
 * is converted to floats only when it is used (trained on or evaluated).
 * Every reader validates sizes and magic numbers and fails with a message
 * that names the file and the problem; none of them crashes on bad input. */
#ifndef TFQ_ENGINE_DATA_H
#define TFQ_ENGINE_DATA_H

#include <stdint.h>

#include "common/data_kind.h"
#include "common/err.h"
#include "common/hash.h"

/* A labelled image set. */
typedef struct {
    int n;           /* number of images */
    int c, h, w;     /* channels, height, width of each image */
    int num_classes; /* labels are 0 .. num_classes-1 */
    uint8_t *x;      /* (n, c, h, w) pixel bytes */
    uint8_t *y;      /* (n) labels */
} data_set;

/* Per-channel normalisation: x_float = (byte / 255 - mean) / std. */
typedef struct {
    int c;
    float mean[3]; /* (c) */
    float std[3];  /* (c) */
} data_norm;

/* Loads the training and test sets of a data set directory:
 *  - DATA_KIND_IDX: train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each either plain or
 *    with a .gz suffix (plain preferred when both exist);
 *  - DATA_KIND_CIFAR10: data_batch_1.bin .. data_batch_5.bin, test_batch.bin
 *    (records: 1 label byte + 3072 pixel bytes, plane-major RGB 32x32);
 *  - DATA_KIND_CIFAR100: train.bin, test.bin (records: coarse label, fine label,
 *    3072 pixel bytes); the coarse label is used.
 * fingerprint (may be NULL) receives the hex SHA-256 over the names and
 * SHA-256 digests of the files read, in a fixed order, so any change to any
 * file changes it.  On failure nothing is allocated in train/test. */
int data_load(data_kind kind, const char *dir, data_set *train,
              data_set *test, char fingerprint[HASH_HEX_BYTES],
              tfq_error *e);

/* Reads one IDX image file and its label file (each plain or gzip, detected
 * by the gzip magic, not the name).  Checks the magic numbers (0x00000803
 * images, 0x00000801 labels), that the counts agree, that the files are not
 * truncated and that no label is >= 256.  num_classes = max label + 1. */
int data_idx_read(const char *images_path, const char *labels_path,
                  data_set *out, tfq_error *e);

/* Reads CIFAR binary record files and concatenates them (paths[0..npaths)).
 * label_offset 0 and record_label_bytes 1 for CIFAR-10; for CIFAR-100,
 * record_label_bytes 2 and label_offset 0 selects the coarse label.  A file
 * whose size is not a multiple of the record size is refused. */
int data_cifar_read(const char *const *paths, int npaths,
                    int record_label_bytes, int label_offset,
                    int num_classes, data_set *out, tfq_error *e);

/* Keeps only the images whose label is one of classes[0..nclasses) and
 * relabels them to the position in that list (classes[k] -> k), keeping
 * their order.  A class listed twice or outside 0..num_classes-1 is
 * TFQ_EINVAL. */
int data_subset(const data_set *src, const int *classes, int nclasses,
                data_set *out, tfq_error *e);

/* Frees what a data_set owns and zeroes it; NULL and zeroed sets are fine. */
void data_release(data_set *d);

/* Per-channel mean and standard deviation of d's pixels (as byte/255). */
void data_norm_compute(const data_set *d, data_norm *norm);

/* Converts images idx[0..n) of d into out in channel-major batch layout
 * out[(ch * n + i) * h * w + p] = (x / 255 - mean[ch]) / std[ch], and their
 * labels into labels[i] (labels may be NULL).  The layout puts every image's
 * plane of one channel side by side, which is what the convolution engine
 * consumes. */
void data_batch(const data_set *d, const data_norm *norm, const int *idx,
                int n, float *out, int *labels);

#endif

/* The kinds of image data set tfq reads, by name: what a job spec's
 * "dataset" and a grid's "dataset:" say.  The readers are in
 * worker/engine/data.h. */
#ifndef TFQ_COMMON_DATA_KIND_H
#define TFQ_COMMON_DATA_KIND_H

#include "err.h"

typedef enum {
    DATA_KIND_IDX = 0,    /* MNIST / Fashion-MNIST IDX files */
    DATA_KIND_CIFAR10 = 1,
    DATA_KIND_CIFAR100 = 2, /* coarse (20 super-class) labels */
} data_kind;

/* Parses "idx", "mnist", "fashion-mnist", "cifar10", "cifar100"; returns 0
 * and sets *kind, or TFQ_EINVAL. */
int data_kind_parse(const char *name, data_kind *kind);
const char *data_kind_name(data_kind kind);

/* Where the data sets are unless told otherwise: a grid's data set in
 * DATA_KIND_ROOT/<its dataset name>; tfq train's and a worker's data
 * directory is DATA_KIND_DEFAULT_DIR. */
#define DATA_KIND_ROOT "/usr/share/datasets"
#define DATA_KIND_DEFAULT_DIR DATA_KIND_ROOT "/fashion-mnist"

#endif

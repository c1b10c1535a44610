/* Weights that leave tfq and come back: a checkpoint's learned tensors
 * under the layer names of its net, in PyTorch's layouts, written as
 * safetensors or .npz, and a safetensors file made into a checkpoint.
 *
 * Names: learned layer g (netspec.h numbers conv and fc operations 1.. in
 * order) is "conv<g>" or "fc<g>", after its kind, with tensors
 * "<layer>.weight" and "<layer>.bias": the reference net's are conv1 ..
 * conv5, fc6, fc7, fc8.  Layouts (float32, little-endian, row-major):
 *   conv weight (out, in, k, k)  PyTorch's Conv2d OIHW
 *   fc weight   (out, in)        Linear; after a conv or pool layer `in`
 *                                runs over (channel, row, column), which
 *                                is torch.flatten of an NCHW batch
 *   bias        (out)
 * tfq's own layout is the same (conv.h, fc.h), so nothing is transposed.
 *
 * safetensors: 8 bytes little-endian N, N bytes of JSON header, the data.
 * The header's keys are "__metadata__" (string to string) and then the
 * tensors sorted by name, each {"dtype": "F32", "shape": [...],
 * "data_offsets": [begin, end]} with the offsets contiguous from 0 in
 * that order; it is padded with spaces so the data starts 8-byte aligned.
 * .npz: a zip of "<tensor>.npy" (npy format 1.0, '<f4') and
 * "__metadata__.json", the metadata as one JSON object of strings. */
#ifndef TFQ_CLI_WEIGHTS_H
#define TFQ_CLI_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/netspec.h"
#include "worker/engine/ckpt.h"

#define WEIGHTS_MAX_TENSORS (2 * NETSPEC_MAX_OPS)
#define WEIGHTS_MAX_META 32
#define WEIGHTS_NAME_BYTES 64
#define WEIGHTS_MAX_DIMS 8
/* The safetensors reference refuses larger headers (a JSON bomb). */
#define WEIGHTS_MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define WEIGHTS_FORMAT "tfq-weights 1"

typedef struct {
    char name[WEIGHTS_NAME_BYTES];
    int ndim;
    int64_t dims[WEIGHTS_MAX_DIMS]; /* (dims[0], .., dims[ndim-1]) */
    int64_t count;                  /* product of dims */
    float *data;                    /* (count) values, owned by the set */
} weights_tensor;

typedef struct {
    char key[WEIGHTS_NAME_BYTES];
    char *value; /* owned */
} weights_meta;

/* Tensors and string metadata; zero it (or weights_release it) before use. */
typedef struct {
    int ntensors;
    weights_tensor t[WEIGHTS_MAX_TENSORS];
    int nmeta;
    weights_meta meta[WEIGHTS_MAX_META];
} weights_set;

void weights_release(weights_set *w);

/* Sets metadata key to value (a copy), replacing what it had. */
int weights_meta_put(weights_set *w, const char *key, const char *value,
                     tfq_error *e);

/* The value of key, or NULL. */
const char *weights_meta_get(const weights_set *w, const char *key);

/* The name of learned layer g of kind k: "conv3", "fc6". */
void weights_layer_name(netspec_op_kind k, int g,
                        char out[WEIGHTS_NAME_BYTES]);

/* The weights and biases of c under their layer names, and metadata:
 * format, tfq_version, layout, net, input (CxHxW), classes, fingerprint,
 * norm_mean and norm_std (per channel, comma-separated, when known),
 * metric "final" and metric_value (the last test accuracy, when there is
 * one).  Fails on a checkpoint whose net text does not parse. */
int weights_from_ckpt(const ckpt *c, weights_set *w, tfq_error *e);

/* 0 when path ends in .safetensors or .npz, else TFQ_EINVAL saying so. */
int weights_check_path(const char *path, tfq_error *e);

/* Writes w to path, as safetensors or .npz after its suffix (.safetensors,
 * .npz; anything else is TFQ_EINVAL). */
int weights_write(const weights_set *w, const char *path, tfq_error *e);

/* The .npz of w at path (libzip), entries in w's order. */
int weights_npz_write(const weights_set *w, const char *path, tfq_error *e);

/* The safetensors bytes of w in a new buffer *buf (the caller frees it). */
int weights_safetensors_encode(const weights_set *w, uint8_t **buf,
                               size_t *bytes, tfq_error *e);

/* Parses a safetensors file's bytes (untrusted: every length, offset and
 * shape is checked; what names it in errors) into w.  Only F32 tensors
 * are read; another dtype, a header that is not a JSON object, offsets
 * out of range, overlapping or leaving holes are TFQ_EFORMAT with a
 * message naming the tensor. */
int weights_safetensors_decode(const uint8_t *buf, size_t bytes,
                               const char *what, weights_set *w,
                               tfq_error *e);

/* Reads the safetensors file at path into w. */
int weights_read(const char *path, weights_set *w, tfq_error *e);

/* A checkpoint of the net spec for inputs in and `classes` classes
 * holding w's tensors (momentum zero), in a new buffer *buf: every tensor
 * the net has must be in w with its shape, and w must have no other;
 * errors name the tensor and both shapes ("conv1.weight: the file has
 * [16,1,5,5], the net wants [32,1,5,5]").  The metadata's fingerprint,
 * normalisation and final metric, when w has them, go into the
 * checkpoint's meta. */
int weights_to_ckpt(const weights_set *w, const netspec *spec,
                    netspec_shape in, int classes, uint8_t **buf,
                    size_t *bytes, tfq_error *e);

/* The file at path as a tfq checkpoint for the net spec, inputs in and
 * `classes` classes, in a new buffer *buf: a tfq checkpoint (its bytes as
 * they are, after checking its net, inputs and classes) or a safetensors
 * file (weights_to_ckpt).  Errors name path. */
int weights_load_as_ckpt(const char *path, const netspec *spec,
                         netspec_shape in, int classes, uint8_t **buf,
                         size_t *bytes, tfq_error *e);

/* Parses "CxHxW" (or "HxW", one channel); 0 or TFQ_EINVAL. */
int weights_parse_shape(const char *s, netspec_shape *out);

#endif

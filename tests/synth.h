/* Small synthetic image sets for tests that train: learnable in a few
 * epochs, generated from a seed, no files. */
#ifndef TFQ_TESTS_SYNTH_H
#define TFQ_TESTS_SYNTH_H

#include <stdint.h>

#include "worker/engine/data.h"

#define SYNTH_HW 28
#define SYNTH_CLASSES 4
#define SYNTH_TRAIN 256 /* images in synth_sets' training set */
#define SYNTH_TEST 128  /* and in its test set */

typedef struct {
    data_set train, test;
} synth_sets;

/* The normalisation that suits these images. */
extern const data_norm synth_norm;

/* n noisy 1x28x28 images of SYNTH_CLASSES classes: class k is a bright 10x10
 * square in quadrant k, at a jittered position, on a noisy background.
 * Aborts when out of memory. */
void synth_make(data_set *d, int n, uint64_t seed);

/* A training and a test set (seeds 1 and 2), and their release. */
void synth_sets_make(synth_sets *d);
void synth_sets_release(synth_sets *d);

#endif

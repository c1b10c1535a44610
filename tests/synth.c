#include "synth.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

const data_norm synth_norm = {.c = 1, .mean = {0.5f}, .std = {0.3f}};

void synth_make(data_set *d, int n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = 1;
    d->h = d->w = SYNTH_HW;
    d->num_classes = SYNTH_CLASSES;
    d->x = malloc((size_t)n * SYNTH_HW * SYNTH_HW);
    d->y = malloc((size_t)n);
    if (d->x == NULL || d->y == NULL)
        abort();
    uint64_t key = rng_key(seed, 0x73796e74 /* "synt" */, 0);
    for (int i = 0; i < n; i++) {
        int k = i % SYNTH_CLASSES;
        uint64_t base = (uint64_t)i * (SYNTH_HW * SYNTH_HW + 2);
        int oy = (k / 2) * 14 + (int)rng_below(key, base, 4);
        int ox = (k % 2) * 14 + (int)rng_below(key, base + 1, 4);
        uint8_t *img = d->x + (size_t)i * SYNTH_HW * SYNTH_HW;
        for (int p = 0; p < SYNTH_HW * SYNTH_HW; p++) {
            int y = p / SYNTH_HW, x = p % SYNTH_HW;
            int in = y >= oy && y < oy + 10 && x >= ox && x < ox + 10;
            int noise = (int)rng_below(key, base + 2 + (uint64_t)p, 90);
            img[p] = (uint8_t)(in ? 160 + noise : noise);
        }
        d->y[i] = (uint8_t)k;
    }
}

void synth_sets_make(synth_sets *d)
{
    synth_make(&d->train, SYNTH_TRAIN, 1);
    synth_make(&d->test, SYNTH_TEST, 2);
}

void synth_sets_release(synth_sets *d)
{
    data_release(&d->train);
    data_release(&d->test);
}

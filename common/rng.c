#include "rng.h"

#include <math.h>

double rng_normal(uint64_t key, uint64_t i)
{
    /* 53-bit uniforms; u1 is kept away from 0 so log() stays finite. */
    double u1 = ((double)(rng_u64(key, 2 * i) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(rng_u64(key, 2 * i + 1) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

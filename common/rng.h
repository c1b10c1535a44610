/* Counter-based random numbers.  Every random draw in training is a pure
 * function of (seed, stream, counter), so a run resumed from a checkpoint at
 * any step draws exactly what the uninterrupted run would have drawn, with
 * no generator state to save. */
#ifndef TFQ_COMMON_RNG_H
#define TFQ_COMMON_RNG_H

#include <stdint.h>

/* splitmix64's finaliser: a bijective 64-bit mixer. */
static inline uint64_t rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A key for one stream of draws: combine a seed with up to two labels. */
static inline uint64_t rng_key(uint64_t seed, uint64_t a, uint64_t b)
{
    return rng_mix(rng_mix(rng_mix(seed) ^ a) ^ b);
}

/* The i-th draw of a stream, as 64 bits. */
static inline uint64_t rng_u64(uint64_t key, uint64_t i)
{
    return rng_mix(key ^ rng_mix(i));
}

/* Uniform in [0, 1) with 24 bits of precision. */
static inline float rng_uniform(uint64_t key, uint64_t i)
{
    return (float)(rng_u64(key, i) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n) (n > 0); the bias is below 2^-32 for n < 2^32. */
static inline uint32_t rng_below(uint64_t key, uint64_t i, uint32_t n)
{
    return (uint32_t)(((rng_u64(key, i) >> 32) * (uint64_t)n) >> 32);
}

/* Standard normal draw (Box-Muller on two uniforms of the stream). */
double rng_normal(uint64_t key, uint64_t i);

#endif

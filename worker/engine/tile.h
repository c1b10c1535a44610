/* 4 x 4 transposes of floats, for the layout changes around the direct
 * convolution (pixels x channels blocks into channel planes, channel
 * planes into pixels x channels rows).  Written with vector shuffles
 * (GCC's or clang's): unpack and move instructions on SSE2 and wider, plain
 * moves elsewhere.
 * Rows may sit anywhere (no alignment needed). */
#ifndef TFQ_ENGINE_TILE_H
#define TFQ_ENGINE_TILE_H

typedef float tile_v4 __attribute__((vector_size(16), aligned(4)));
typedef float tile_v4a __attribute__((vector_size(16)));
typedef int tile_i4 __attribute__((vector_size(16)));

/* Lanes i0 .. i3 of a and b side by side (0-3: a's, 4-7: b's), in GCC's
 * spelling or clang's. */
#ifdef __clang__
#define TILE_SHUFFLE(a, b, i0, i1, i2, i3) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
#define TILE_SHUFFLE(a, b, i0, i1, i2, i3) \
    __builtin_shuffle(a, b, (tile_i4){i0, i1, i2, i3})
#endif

/* d[j][i] = s[i][j] for i, j < 4: s rows sld floats apart, d rows dld. */
static inline void tile_transpose4(const float *s, long sld, float *d,
                                   long dld)
{
    const tile_v4a r0 = *(const tile_v4 *)s, r1 = *(const tile_v4 *)(s + sld);
    const tile_v4a r2 = *(const tile_v4 *)(s + 2 * sld);
    const tile_v4a r3 = *(const tile_v4 *)(s + 3 * sld);
    const tile_v4a t0 = TILE_SHUFFLE(r0, r1, 0, 4, 1, 5);
    const tile_v4a t1 = TILE_SHUFFLE(r0, r1, 2, 6, 3, 7);
    const tile_v4a t2 = TILE_SHUFFLE(r2, r3, 0, 4, 1, 5);
    const tile_v4a t3 = TILE_SHUFFLE(r2, r3, 2, 6, 3, 7);
    *(tile_v4 *)d = TILE_SHUFFLE(t0, t2, 0, 1, 4, 5);
    *(tile_v4 *)(d + dld) = TILE_SHUFFLE(t0, t2, 2, 3, 6, 7);
    *(tile_v4 *)(d + 2 * dld) = TILE_SHUFFLE(t1, t3, 0, 1, 4, 5);
    *(tile_v4 *)(d + 3 * dld) = TILE_SHUFFLE(t1, t3, 2, 3, 6, 7);
}

/* The same, each value of d kept only where m (laid out as d, rows mld
 * apart) is above 0, and zeroed elsewhere (a ReLU's backward pass). */
static inline void tile_transpose4_masked(const float *s, long sld, float *d,
                                          long dld, const float *m, long mld)
{
    float t[16];
    tile_transpose4(s, sld, t, 4);
    for (int j = 0; j < 4; j++) {
        const tile_v4a v = *(const tile_v4 *)(t + 4 * j);
        const tile_v4a mv = *(const tile_v4 *)(m + j * mld);
        *(tile_v4 *)(d + j * dld) =
            (tile_v4a)((tile_i4)v & (tile_i4)(mv > (tile_v4a){0}));
    }
}

#endif

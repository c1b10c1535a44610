/* AVX2 + FMA: 8-lane vectors and 16 registers.  A forward block holds at
 * most 12 accumulators (4 pixels x 3 vectors, 6 x 2, or 7 / 12 x 1) next to
 * its weight vectors and the broadcast input: 16 registers at most.  The
 * weight-gradient blocks hold at most 10 (5 taps x 2 vectors, or 3 x 3).
 * Compiled with -mavx2 -mfma; run only where kern.c found both. */
#define KERN_NAME "avx2"
#define KERN_SET kern_set_avx2
#define KERN_LANES 8
#define KERN_FWD(X) X(1, 4) X(2, 4) X(3, 4) X(1, 6) X(2, 6) X(1, 7) X(1, 12)
#define KERN_DW(X) X(1, 3, 1) X(2, 3, 1) X(3, 3, 1) X(1, 3, 3) \
                   X(1, 5, 1) X(2, 5, 1)
#include "kern_tmpl.h"

/* AVX-512F: 16-lane vectors and 32 registers, with the broadcast folded
 * into the multiply-add's memory operand.  A forward block holds up to 28
 * accumulators (14 pixels x 2 vectors) or 24 (8 x 3) beside its weight
 * vectors; a weight-gradient block up to 27 (a whole 3x3 kernel x 3
 * vectors) or 25 (a whole 5x5 kernel x 1).  Compiled with -mavx512f
 * -mfma; run only where kern.c found the CPU and the OS support them. */
#define KERN_NAME "avx512"
#define KERN_SET kern_set_avx512
#define KERN_LANES 16
#define KERN_FWD(X) X(1, 7) X(2, 7) X(3, 7) X(1, 8) X(2, 8) X(3, 8) \
                    X(1, 14) X(2, 14)
#define KERN_DW(X) X(1, 3, 1) X(2, 3, 1) X(3, 3, 1) X(4, 3, 1)    \
                   X(1, 3, 3) X(2, 3, 3) X(3, 3, 3)                \
                   X(1, 5, 1) X(2, 5, 1) X(3, 5, 1) X(4, 5, 1)    \
                   X(1, 5, 5)
#include "kern_tmpl.h"

/* The portable kernel set: 4-lane vectors, which GCC and Clang lower to the
 * baseline SIMD of any target (SSE2 on x86-64, NEON on AArch64) or to plain
 * scalar code.  Blocks sized for 16 vector registers: at most 12
 * accumulators, plus the weight vectors and a broadcast. */
#define KERN_NAME "generic"
#define KERN_SET kern_set_generic
#define KERN_LANES 4
#define KERN_FWD(X) X(1, 4) X(2, 4) X(3, 4) X(1, 6) X(2, 6) X(1, 7) X(1, 12)
#define KERN_DW(X) X(1, 3, 1) X(2, 3, 1) X(3, 3, 1) X(1, 3, 3) \
                   X(1, 5, 1) X(2, 5, 1)
#include "kern_tmpl.h"

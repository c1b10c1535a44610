#include "kern.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KERN_X86 1
#include <cpuid.h>
#endif

extern const kern_set kern_set_generic;
#ifdef KERN_X86
extern const kern_set kern_set_avx2;
extern const kern_set kern_set_avx512;
#endif

static const kern_set *const all_sets[] = {
    &kern_set_generic,
#ifdef KERN_X86
    &kern_set_avx2,
    &kern_set_avx512,
#endif
};
#define NSETS ((int)(sizeof all_sets / sizeof all_sets[0]))

static const kern_set *active;

#ifdef KERN_X86
/* XCR0: which register states the OS saves on a context switch. */
static unsigned long long xcr0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

/* What the CPU reports (cpuid) and the OS enables (xgetbv): AVX2 and FMA
 * need the YMM state saved, AVX-512F the opmask and ZMM states too. */
static int cpu_runs(const kern_set *s)
{
    if (s == &kern_set_generic)
        return 1;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx || !fma)
        return 0;
    const unsigned long long x = xcr0();
    if ((x & 0x6) != 0x6) /* SSE and YMM state */
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
    if (s == &kern_set_avx2)
        return avx2;
    if (s == &kern_set_avx512)
        return avx2 && avx512f && (x & 0xe6) == 0xe6; /* opmask, ZMM */
    return 0;
}
#else
static int cpu_runs(const kern_set *s)
{
    return s == &kern_set_generic;
}
#endif

const kern_set *const *kern_all(int *count)
{
    *count = NSETS;
    return all_sets;
}

const kern_set *kern_find(const char *name)
{
    for (int i = 0; i < NSETS; i++)
        if (strcmp(all_sets[i]->name, name) == 0)
            return cpu_runs(all_sets[i]) ? all_sets[i] : NULL;
    return NULL;
}

static const kern_set *best(void)
{
    for (int i = NSETS - 1; i > 0; i--)
        if (cpu_runs(all_sets[i]))
            return all_sets[i];
    return all_sets[0];
}

int kern_select(const char *name, tfq_error *e)
{
    if (name == NULL || strcmp(name, "auto") == 0) {
        active = best();
        return 0;
    }
    int known = 0;
    for (int i = 0; i < NSETS; i++)
        known |= strcmp(all_sets[i]->name, name) == 0;
    const kern_set *s = kern_find(name);
    if (s != NULL) {
        active = s;
        return 0;
    }
    char have[64] = "";
    for (int i = 0; i < NSETS; i++)
        if (cpu_runs(all_sets[i])) {
            if (have[0] != '\0')
                strcat(have, ", ");
            strcat(have, all_sets[i]->name);
        }
    if (!known)
        return tfq_error_set(e, TFQ_EINVAL,
                             "unknown kernel set '%s' (this build has: "
                             "generic%s; this CPU runs: %s)", name,
#ifdef KERN_X86
                             ", avx2, avx512",
#else
                             "",
#endif
                             have);
    return tfq_error_set(e, TFQ_EINVAL,
                         "kernel set '%s' needs instructions this CPU (or "
                         "its OS) lacks; it runs: %s", name, have);
}

int kern_init(tfq_error *e)
{
    const char *v = getenv("TFQ_KERNELS");
    if (v == NULL || v[0] == '\0') {
        active = best();
        return 0;
    }
    if (kern_select(v, e) != 0) {
        active = best();
        return tfq_error_wrap(e, TFQ_EINVAL, "TFQ_KERNELS=%s", v);
    }
    return 0;
}

const kern_set *kern_active(void)
{
    if (active == NULL) {
        tfq_error e = {0};
        kern_init(&e);
    }
    return active;
}

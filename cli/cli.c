#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/datacache.h"

void cli_duration(double seconds, char buf[CLI_DURATION_BYTES])
{
    long long t = seconds > 0 ? (long long)(seconds + 0.5) : 0;
    if (!(seconds < 1e15)) /* NaN, infinite or past any machine's life */
        snprintf(buf, CLI_DURATION_BYTES, "-");
    else if (t >= 86400)
        snprintf(buf, CLI_DURATION_BYTES, "%lldd%02lldh", t / 86400,
                 t / 3600 % 24);
    else if (t >= 3600)
        snprintf(buf, CLI_DURATION_BYTES, "%lldh%02lldm", t / 3600,
                 t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, CLI_DURATION_BYTES, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(buf, CLI_DURATION_BYTES, "%llds", t);
}

int cli_int(const char *cmd, const char *flag, const char *v, long lo,
            long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "tfq %s: %s: bad value '%s' (expected an integer "
                "from %ld to %ld)\n", cmd, flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_double(const char *cmd, const char *flag, const char *v, double lo,
               double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x >= lo && x <= hi)) {
        fprintf(stderr, "tfq %s: %s: bad value '%s' (expected a number "
                "from %g to %g)\n", cmd, flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_u64(const char *cmd, const char *flag, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
        fprintf(stderr, "tfq %s: %s: bad value '%s' (expected a "
                "non-negative integer)\n", cmd, flag, v);
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

int cli_mkdir_p(const char *dir, tfq_error *e)
{
    return datacache_mkdir_p(dir, e);
}


const char *cli_connect_default(void)
{
    const char *ep = getenv("TFQ_CONNECT");
    return ep != NULL && *ep != '\0' ? ep : CLIENT_DEFAULT_ENDPOINT;
}

int cli_outcome(const proto_msg *r)
{
    /* failed counts blocked and cancelled too (PROTOCOL.md status_reply);
     * a cancelled job is not a failure: it was stopped on request. */
    return r->failed - r->cancelled > 0 ? CLI_FAILED : CLI_OK;
}

int cli_no_more_args(const char *cmd, int argc, char **argv)
{
    if (optind >= argc)
        return 0;
    fprintf(stderr, "tfq %s: unexpected argument '%s'\n", cmd, argv[optind]);
    return -1;
}

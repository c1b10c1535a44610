/* tfq dashboard: a read-only HTTP server (libmicrohttpd) of the queue for
 * browsers: the page's files (dashboard/, embedded at build time), a JSON
 * API over the coordinator's read requests and the Prometheus text of
 * /metrics (schema/HTTP.md).  It is a client of the coordinator like any
 * other (common/client.h), asking it at most once a second for each
 * distinct request. */
#ifndef TFQ_CLI_DASHBOARD_H
#define TFQ_CLI_DASHBOARD_H

#include <stddef.h>

#include "common/err.h"

typedef struct dashboard dashboard;

typedef struct {
    const char *connect;   /* the coordinator's endpoint */
    const char *host;      /* a numeric IPv4 or IPv6 address to listen on */
    int port;              /* 0: a free one (dashboard_port says which) */
    const char *token;     /* every request must carry it; NULL: none */
    const char *tls_cert;  /* PEM text of the certificate and key: HTTPS;
                              NULL: plain HTTP */
    const char *tls_key;
} dashboard_config;

/* Starts serving as c says (strings copied), on threads of its own.  NULL
 * with the reason in e: TFQ_EINVAL for an address that is not one,
 * TFQ_ENOTSUP when TLS is asked for and libmicrohttpd has none, TFQ_EIO
 * when the address cannot be listened on (in use, not this machine's). */
dashboard *dashboard_new(const dashboard_config *c, tfq_error *e);

/* The port it listens on. */
int dashboard_port(const dashboard *d);

/* Stops serving (waits for the requests in hand) and frees d; NULL-safe,
 * and *d becomes NULL. */
void dashboard_destroy(dashboard **d);

/* Whether host, a numeric address, is a loopback one (127.0.0.0/8, ::1);
 * -1 when it is not an address. */
int dashboard_is_loopback(const char *host);

#endif

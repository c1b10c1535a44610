/* The dashboard's parts (dashboard.h): the server and its routes
 * (dashboard.c), the coordinator behind a cache (dashboard_coord.c), the
 * API's answers (dashboard_api.c) and its own counters
 * (dashboard_metrics.c). */
#ifndef TFQ_CLI_DASHBOARD_INT_H
#define TFQ_CLI_DASHBOARD_INT_H

#include <pthread.h>
#include <stdint.h>

#include "common/client.h"
#include "dashboard.h"

/* The coordinator is asked at most this often per distinct request. */
#define DASH_CACHE_MS 1000
/* Distinct requests remembered; the oldest makes room. */
#define DASH_CACHE_ENTRIES 64
/* A key: the route and every parameter (each at most 256 bytes). */
#define DASH_KEY_BYTES 4096
/* A reply later than this is taken as the coordinator being away: short,
 * so that no HTTP thread waits long behind a dead coordinator. */
#define DASH_REPLY_TIMEOUT_MS 1000
/* Once it did not answer, it is asked again only after this long; until
 * then every request is answered "unreachable" at once. */
#define DASH_RETRY_MS 1000
/* Counters of requests by route and status kept at most (routes x codes). */
#define DASH_MAX_COUNTERS 128

/* One HTTP answer: status, Content-Type and body (owned). */
typedef struct {
    int status;
    const char *type; /* a static string */
    char *body;
    size_t bytes;
} dash_reply;

typedef struct {
    char key[DASH_KEY_BYTES];
    int64_t at_ms;  /* when filled (monotonic); 0: empty */
    int filling;    /* a thread is asking the coordinator for it */
    dash_reply r;
} dash_entry;

typedef struct {
    const char *route;
    int status;
    uint64_t count;
} dash_counter;

struct dashboard {
    struct MHD_Daemon *mhd;
    int port;
    char *token; /* NULL: none */
    char *tls_cert, *tls_key;
    char endpoint[256];

    pthread_mutex_t coord_lock; /* the client, one request at a time */
    client *client;
    int64_t failed_ms;          /* last failure (monotonic); 0: none */
    char failure[TFQ_ERROR_MSG_BYTES]; /* what it was */

    pthread_mutex_t cache_lock;
    pthread_cond_t filled;
    dash_entry cache[DASH_CACHE_ENTRIES];

    pthread_mutex_t count_lock;
    dash_counter counters[DASH_MAX_COUNTERS];
    int ncounters;
};

/* ---- dashboard_coord.c -------------------------------------------------- */

int dash_coord_init(dashboard *d, const char *endpoint, tfq_error *e);
void dash_coord_release(dashboard *d);

/* The strings of a reply that dash_request keeps (job_info's). */
typedef struct {
    char grid[PROTO_MAX_NAME_BYTES + 1], name[PROTO_MAX_NAME_BYTES + 1];
} dash_names;

/* Sends m and takes its reply: every page's items joined (pages: m is a
 * paged read) or the one reply's items, as a new string *items the caller
 * frees ("[]" when the reply has none); the reply's numbers in *reply, its
 * strings cleared (its grid and name copied into names unless NULL).
 * TFQ_EIO when the coordinator is unreachable (also at
 * once, within DASH_RETRY_MS of a failure), TFQ_EPERM when it refused us,
 * else the code and message of its error reply. */
int dash_request(dashboard *d, const proto_msg *m, int pages,
                 proto_msg *reply, char **items, dash_names *names,
                 tfq_error *e);

/* The answer built by build(d, arg, out) for key, asked for at most once
 * every DASH_CACHE_MS: a copy (the caller frees out->body) of the cached
 * one while it is fresh; while another thread builds the same key, its
 * answer, once there. */
typedef void (*dash_build_fn)(dashboard *d, const void *arg, dash_reply *out);
void dash_cached(dashboard *d, const char *key, dash_build_fn build,
                 const void *arg, dash_reply *out);

void dash_cache_release(dashboard *d);

/* ---- dashboard_api.c ---------------------------------------------------- */

/* The answer of an /api/ route or /metrics (path: the URL's path) to conn's
 * request, out->status 404 when there is no such route; returns the
 * route's name for the counters (a static string, "other" for none). */
struct MHD_Connection;
const char *dash_api(dashboard *d, struct MHD_Connection *conn, const char *path,
              dash_reply *out);

/* out: status and {"error": msg} as JSON. */
void dash_error(dash_reply *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* out: status 200, type, and the text of the memory stream (taken). */
void dash_ok(dash_reply *out, const char *type, char *body, size_t bytes);

/* ---- dashboard_metrics.c ------------------------------------------------ */

/* Counts one answer of route with status. */
void dash_count(dashboard *d, const char *route, int status);

/* The server's own counters in the Prometheus text format on out. */
void dash_write_metrics(dashboard *d, FILE *out);

#endif

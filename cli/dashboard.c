/* tfq dashboard's HTTP server (dashboard.h): libmicrohttpd with a thread
 * per connection, the headers every answer carries, the token, and the
 * page's embedded files. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dashboard_int.h"

typedef struct {
    const char *path, *type;
    const unsigned char *data;
    size_t bytes;
} embedded_file;

#include "dashboard_files.h" /* s_embedded: tools/embed_files.py */

/* Connections served at once (a thread each) and how long one may idle. */
#define DASH_MAX_CONNECTIONS 256
#define DASH_IDLE_S 30

static const char s_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'";

int dashboard_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return -1;
}

/* Whether the request carries "Authorization: Bearer TOKEN", compared in
 * time that does not depend on where it differs. */
static int authorized(const dashboard *d, struct MHD_Connection *conn)
{
    if (d->token == NULL)
        return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *got = h + 7;
    size_t n = strlen(d->token), m = strlen(got);
    unsigned diff = n != m;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)d->token[i] ^ (unsigned char)got[i < m ? i : 0];
    return diff == 0;
}

static const embedded_file *find_file(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < sizeof s_embedded / sizeof s_embedded[0]; i++)
        if (strcmp(s_embedded[i].path, path) == 0)
            return &s_embedded[i];
    return NULL;
}

/* The answer to method on path, and the route it is counted under (a
 * static string); *file: it is one of the page's files. */
static const char *answer(dashboard *d, struct MHD_Connection *conn,
                          const char *path, const char *method,
                          dash_reply *r, int *file)
{
    const embedded_file *f = NULL;
    const char *route = "other";
    *file = 0;
    if (!authorized(d, conn)) {
        dash_error(r, 401, "a token is required: Authorization: Bearer "
                   "TOKEN (the page takes it from #token=...)");
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        dash_error(r, 405, "method %s not allowed: the dashboard is "
                   "read-only (GET, HEAD)", method);
    } else if (strncmp(path, "/api/", 5) == 0 ||
               strcmp(path, "/metrics") == 0) {
        route = dash_api(d, conn, path, r);
    } else if ((f = find_file(path)) == NULL) {
        dash_error(r, 404, "no such page: %s", path);
    } else {
        char *body = malloc(f->bytes + 1);
        if (body == NULL) {
            dash_error(r, 500, "out of memory");
        } else {
            memcpy(body, f->data, f->bytes);
            dash_ok(r, f->type, body, f->bytes);
            *file = 1;
        }
        route = f->path;
    }
    return route;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    dashboard *d = cls;
    if (*req_cls == NULL) { /* the headers: answer once the body is in */
        *req_cls = d;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* a body is not read: the answer is 405 */
        *upload_data_size = 0;
        return MHD_YES;
    }
    dash_reply r = {0};
    int file;
    const char *route = answer(d, conn, url, method, &r, &file);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r.bytes, r.body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.type);
    MHD_add_response_header(resp, "Content-Security-Policy", s_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    /* The page's files may be kept but are checked again (a new binary
     * brings new ones); nothing else is kept. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            file ? "no-cache" : "no-store");
    if (r.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer");
    if (r.status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    dash_count(d, route, r.status);
    return rc;
}

/* The address to listen on: host (numeric) and port into *ss. */
static int listen_addr(const dashboard_config *c, struct sockaddr_storage *ss,
                       int *ipv6, tfq_error *e)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    *ipv6 = 0;
    if (inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)c->port);
        *ipv6 = 1;
    } else {
        return tfq_error_set(e, TFQ_EINVAL, "'%s' is not a numeric IPv4 or "
                             "IPv6 address", c->host);
    }
    return TFQ_OK;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Starts libmicrohttpd on d as c says. */
static int start(dashboard *d, const dashboard_config *c, tfq_error *e)
{
    struct sockaddr_storage ss;
    int ipv6;
    int rc = listen_addr(c, &ss, &ipv6, e);
    if (rc != 0)
        return rc;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    int tls = c->tls_cert != NULL;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return tfq_error_set(e, TFQ_ENOTSUP, "this libmicrohttpd has no TLS "
                             "(built without GnuTLS)");
    struct MHD_OptionItem tls_opts[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, d->tls_key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, d->tls_cert},
        {MHD_OPTION_END, 0, NULL},
    };
    d->mhd = MHD_start_daemon(
        flags | (tls ? MHD_USE_TLS : 0), (uint16_t)c->port, NULL, NULL,
        on_request, d, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)DASH_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)DASH_IDLE_S,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (d->mhd == NULL)
        return tfq_error_set(e, TFQ_EIO, "cannot listen on %s port %d%s "
                             "(in use, or not an address of this machine)",
                             c->host, c->port,
                             tls ? ", or the TLS certificate or key is "
                                   "not PEM or not a pair" : "");
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info != NULL ? info->port : c->port;
    return TFQ_OK;
}

dashboard *dashboard_new(const dashboard_config *c, tfq_error *e)
{
    dashboard *d = calloc(1, sizeof *d);
    if (d == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&d->count_lock, NULL);
    d->token = dup_or_null(c->token);
    d->tls_cert = dup_or_null(c->tls_cert);
    d->tls_key = dup_or_null(c->tls_key);
    int rc = (c->token != NULL && d->token == NULL) ||
                     (c->tls_cert != NULL && d->tls_cert == NULL) ||
                     (c->tls_key != NULL && d->tls_key == NULL)
                 ? tfq_error_set(e, TFQ_ENOMEM, "out of memory")
                 : dash_coord_init(d, c->connect, e);
    if (rc == 0)
        rc = start(d, c, e);
    if (rc != 0)
        dashboard_destroy(&d);
    return d;
}

int dashboard_port(const dashboard *d)
{
    return d->port;
}

void dashboard_destroy(dashboard **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    dashboard *d = *dp;
    if (d->mhd != NULL)
        MHD_stop_daemon(d->mhd);
    dash_coord_release(d);
    pthread_mutex_destroy(&d->count_lock);
    free(d->token);
    free(d->tls_cert);
    free(d->tls_key);
    free(d);
    *dp = NULL;
}

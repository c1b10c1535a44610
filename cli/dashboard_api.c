/* The dashboard's /api/ routes and /metrics (schema/HTTP.md): each reads
 * its parameters, asks the coordinator through the cache and answers
 * JSON (or SVG, or the Prometheus text). */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dashboard_api.h"
#include "report_json.h"

#define JSON_TYPE "application/json"

void dash_error(dash_reply *out, int status, const char *fmt, ...)
{
    char msg[TFQ_ERROR_MSG_BYTES + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dash_out o;
    out->status = status;
    out->type = JSON_TYPE;
    out->body = NULL;
    out->bytes = 0;
    if (dash_out_open(&o) != 0)
        return;
    fputs("{\"error\": ", o.f);
    report_json_string(o.f, msg);
    fputs("}\n", o.f);
    dash_out_json(&o, out);
    out->status = status;
}

void dash_ok(dash_reply *out, const char *type, char *body, size_t bytes)
{
    out->status = 200;
    out->type = type;
    out->body = body;
    out->bytes = bytes;
}

int dash_out_open(dash_out *o)
{
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    return o->f != NULL ? 0 : TFQ_ENOMEM;
}

/* The text, with '<', '>' and '&' written as JSON escapes (\u003c ...):
 * they occur only inside strings, and so no HTML is ever read into a
 * JSON answer, however a browser takes it. */
static char *harden(const char *s, size_t len, size_t *bytes)
{
    size_t extra = 0;
    for (size_t i = 0; i < len; i++)
        extra += (s[i] == '<' || s[i] == '>' || s[i] == '&') * 5;
    char *out = malloc(len + extra + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '<' || s[i] == '>' || s[i] == '&')
            p += sprintf(p, "\\u%04x", (unsigned char)s[i]);
        else
            *p++ = s[i];
    *p = '\0';
    *bytes = (size_t)(p - out);
    return out;
}

void dash_out_json(dash_out *o, dash_reply *out)
{
    int bad = ferror(o->f);
    fclose(o->f);
    size_t bytes = 0;
    char *body = bad ? NULL : harden(o->buf, o->len, &bytes);
    free(o->buf);
    if (body == NULL) {
        /* The one answer that needs no memory. */
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        out->status = 500;
        out->type = JSON_TYPE;
        out->body = strdup(oom);
        out->bytes = out->body != NULL ? sizeof oom - 1 : 0;
        return;
    }
    dash_ok(out, JSON_TYPE, body, bytes);
}

void dash_coord_error(dash_reply *out, int rc, const tfq_error *e)
{
    if (rc == TFQ_EIO || rc == TFQ_EPERM)
        dash_error(out, 503, "coordinator unreachable: %s", e->msg);
    else if (rc == TFQ_ENOENT)
        dash_error(out, 404, "%s", e->msg);
    else if (rc == TFQ_EINVAL || rc == TFQ_EFORMAT || rc == TFQ_ERANGE)
        dash_error(out, 400, "%s", e->msg);
    else
        dash_error(out, 502, "%s", e->msg);
}

int dash_out_begin(int rc, const tfq_error *e, dash_out *o, dash_reply *out)
{
    if (rc != 0) {
        dash_coord_error(out, rc, e);
        return -1;
    }
    if (dash_out_open(o) != 0) {
        dash_error(out, 500, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- parameters --------------------------------------------------------- */

typedef struct {
    const dash_route *route;
    dash_args *args;
    char bad[160]; /* the first parameter refused; "" none */
} collect_ctx;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    collect_ctx *c = cls;
    (void)kind;
    int i = 0;
    while (c->route->params[i] != NULL && strcmp(c->route->params[i], key))
        i++;
    /* Another parameter (a page's cache-buster) is passed over: it is
     * not in the cache's key either, so it cannot defeat the cache. */
    if (c->bad[0] != '\0' || c->route->params[i] == NULL)
        return MHD_YES;
    if (c->args->v[i] != NULL)
        snprintf(c->bad, sizeof c->bad, "parameter '%s' given twice", key);
    else if (value != NULL && strlen(value) > DASH_MAX_VALUE_BYTES)
        snprintf(c->bad, sizeof c->bad, "parameter '%s': over %d bytes",
                 key, DASH_MAX_VALUE_BYTES);
    else if (value != NULL && value[0] != '\0')
        c->args->v[i] = value; /* empty: as if not given */
    else
        c->args->v[i] = "";
    return MHD_YES;
}

/* The route's parameters of conn's request into a (empty ones NULL) and
 * the cache key; 0, or an answer 400 in out. */
static int read_args(struct MHD_Connection *conn, const dash_route *route,
                     dash_args *a, char *key, size_t bytes, dash_reply *out)
{
    memset(a, 0, sizeof *a);
    a->route = route;
    collect_ctx c = {route, a, ""};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect, &c);
    if (c.bad[0] != '\0') {
        dash_error(out, 400, "%s: %s", route->path, c.bad);
        return -1;
    }
    size_t len = (size_t)snprintf(key, bytes, "%s", route->path);
    for (int i = 0; route->params[i] != NULL; i++) {
        if (a->v[i] != NULL && a->v[i][0] == '\0')
            a->v[i] = NULL;
        if (a->v[i] != NULL && len < bytes)
            len += (size_t)snprintf(key + len, bytes - len, "&%d=%zu:%s", i,
                                    strlen(a->v[i]), a->v[i]);
    }
    if (len >= bytes)
        key[0] = '\0'; /* cut short it could name another: not cached */
    return 0;
}

int dash_arg_int(const dash_args *a, int i, long lo, long hi, long dflt,
                 long *v, dash_reply *out)
{
    if (a->v[i] == NULL) {
        *v = dflt;
        return 0;
    }
    char *end;
    long x = strtol(a->v[i], &end, 10);
    if (end == a->v[i] || *end != '\0' || x < lo || x > hi) {
        dash_error(out, 400, "%s: parameter '%s': '%s' is not an integer "
                   "from %ld to %ld", a->route->path, a->route->params[i],
                   a->v[i], lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

int dash_arg_required(const dash_args *a, int i, dash_reply *out)
{
    if (a->v[i] != NULL)
        return 0;
    dash_error(out, 400, "%s: parameter '%s' is required", a->route->path,
               a->route->params[i]);
    return -1;
}

const char *dash_api(dashboard *d, struct MHD_Connection *conn,
                     const char *path, dash_reply *out)
{
    const dash_route *r = dash_routes;
    while (r->path != NULL && strcmp(r->path, path) != 0)
        r++;
    if (r->path == NULL) {
        dash_error(out, 404, "no such route: %s (schema/HTTP.md lists them)",
                   path);
        return "other";
    }
    dash_args a;
    char key[DASH_KEY_BYTES];
    if (read_args(conn, r, &a, key, sizeof key, out) != 0)
        return r->path;
    if (r->check != NULL && r->check(&a, out) != 0)
        return r->path;
    if (r->uncached || key[0] == '\0')
        r->build(d, &a, out);
    else
        dash_cached(d, key, r->build, &a, out);
    return r->path;
}

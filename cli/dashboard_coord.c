/* The dashboard's coordinator: one client behind a lock, remembered
 * failures, and the cache of answers (dashboard_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "dashboard_int.h"

int dash_coord_init(dashboard *d, const char *endpoint, tfq_error *e)
{
    snprintf(d->endpoint, sizeof d->endpoint, "%s", endpoint);
    client_opts o = {.endpoint = d->endpoint,
                     .reply_timeout_ms = DASH_REPLY_TIMEOUT_MS};
    d->client = client_open(&o, e);
    if (d->client == NULL)
        return e->code != 0 ? e->code : TFQ_EIO;
    pthread_mutex_init(&d->coord_lock, NULL);
    pthread_mutex_init(&d->cache_lock, NULL);
    pthread_cond_init(&d->filled, NULL);
    return TFQ_OK;
}

void dash_coord_release(dashboard *d)
{
    if (d->client == NULL)
        return;
    client_destroy(&d->client);
    dash_cache_release(d);
    pthread_mutex_destroy(&d->coord_lock);
    pthread_mutex_destroy(&d->cache_lock);
    pthread_cond_destroy(&d->filled);
}

/* dash_request with coord_lock held. */
static int request_locked(dashboard *d, const proto_msg *m, int pages,
                          proto_msg *reply, char **items, tfq_error *e)
{
    int64_t now = clock_mono_ms();
    if (d->failed_ms != 0 && now - d->failed_ms < DASH_RETRY_MS)
        return tfq_error_set(e, TFQ_EIO, "%s", d->failure);
    int rc;
    if (pages) {
        rc = client_request_pages(d->client, m, reply, items, e);
    } else {
        rc = client_request(d->client, m, reply, e);
        if (rc == 0) {
            *items = strdup(reply->items != NULL ? reply->items : "[]");
            if (*items == NULL)
                rc = tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        }
    }
    if (rc == TFQ_EIO || rc == TFQ_EPERM) {
        d->failed_ms = clock_mono_ms();
        snprintf(d->failure, sizeof d->failure, "%s", e->msg);
        /* client_call starts over after a timeout; a refusal stays until
         * we do, and the coordinator may have been given our key since. */
        if (rc == TFQ_EPERM) {
            tfq_error oe = {0};
            client_reconnect(d->client, &oe);
        }
        /* A reply that times out mid-pages leaves the rest unasked. */
        return rc;
    }
    if (rc == 0 || reply->kind == PROTO_ERROR)
        d->failed_ms = 0;
    return rc;
}

int dash_request(dashboard *d, const proto_msg *m, int pages,
                 proto_msg *reply, char **items, dash_names *names,
                 tfq_error *e)
{
    *items = NULL;
    pthread_mutex_lock(&d->coord_lock);
    int rc = request_locked(d, m, pages, reply, items, e);
    if (rc == 0 && names != NULL) {
        snprintf(names->grid, sizeof names->grid, "%s",
                 reply->grid != NULL ? reply->grid : "");
        snprintf(names->name, sizeof names->name, "%s",
                 reply->name != NULL ? reply->name : "");
    }
    /* The reply's strings point into the client's buffer: not past here. */
    reply->grid = reply->items = reply->msg = reply->name = NULL;
    reply->state = reply->worker = reply->spec = reply->result = NULL;
    reply->error = NULL;
    pthread_mutex_unlock(&d->coord_lock);
    if (rc != 0) {
        free(*items);
        *items = NULL;
    }
    return rc;
}

/* ---- the cache ---------------------------------------------------------- */

/* The entry of key, or NULL; cache_lock held. */
static dash_entry *find(dashboard *d, const char *key)
{
    for (int i = 0; i < DASH_CACHE_ENTRIES; i++)
        if (d->cache[i].at_ms != 0 || d->cache[i].filling)
            if (strcmp(d->cache[i].key, key) == 0)
                return &d->cache[i];
    return NULL;
}

/* An entry to fill: an empty one, else the oldest not being filled; NULL
 * when every one is being filled.  cache_lock held. */
static dash_entry *victim(dashboard *d)
{
    dash_entry *best = NULL;
    for (int i = 0; i < DASH_CACHE_ENTRIES; i++) {
        dash_entry *x = &d->cache[i];
        if (!x->filling && (best == NULL || x->at_ms < best->at_ms))
            best = x;
    }
    return best;
}

static void copy_reply(const dash_reply *from, dash_reply *to)
{
    *to = *from;
    to->body = malloc(from->bytes + 1);
    if (to->body == NULL) {
        dash_error(to, 500, "out of memory");
        return;
    }
    if (from->bytes > 0)
        memcpy(to->body, from->body, from->bytes);
    to->body[from->bytes] = '\0';
}

void dash_cached(dashboard *d, const char *key, dash_build_fn build,
                 const void *arg, dash_reply *out)
{
    pthread_mutex_lock(&d->cache_lock);
    dash_entry *x;
    for (;;) {
        x = find(d, key);
        if (x != NULL && !x->filling &&
            clock_mono_ms() - x->at_ms < DASH_CACHE_MS) {
            copy_reply(&x->r, out);
            pthread_mutex_unlock(&d->cache_lock);
            return;
        }
        if (x == NULL || !x->filling)
            break;
        pthread_cond_wait(&d->filled, &d->cache_lock);
    }
    if (x == NULL)
        x = victim(d);
    if (x == NULL) { /* every entry in hand: answer without the cache */
        pthread_mutex_unlock(&d->cache_lock);
        build(d, arg, out);
        return;
    }
    free(x->r.body);
    memset(x, 0, sizeof *x);
    snprintf(x->key, sizeof x->key, "%s", key);
    x->filling = 1;
    pthread_mutex_unlock(&d->cache_lock);
    dash_reply r = {0};
    build(d, arg, &r);
    pthread_mutex_lock(&d->cache_lock);
    x->r = r;
    x->filling = 0;
    x->at_ms = clock_mono_ms();
    copy_reply(&x->r, out);
    pthread_cond_broadcast(&d->filled);
    pthread_mutex_unlock(&d->cache_lock);
}

void dash_cache_release(dashboard *d)
{
    for (int i = 0; i < DASH_CACHE_ENTRIES; i++) {
        free(d->cache[i].r.body);
        d->cache[i].r.body = NULL;
        d->cache[i].at_ms = 0;
    }
}

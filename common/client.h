/* One request to the coordinator from a command-line client. */
#ifndef TFQ_CLI_CLIENT_H
#define TFQ_CLI_CLIENT_H

#include "common/proto.h"

/* Where clients and workers look for the coordinator unless told. */
#define CLIENT_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"

/* A client gives up on a coordinator that has not answered in this long. */
#define CLIENT_TIMEOUT_MS 10000

typedef struct client client;

client *client_new(const char *endpoint, tfq_error *e);
void client_destroy(client **c);

/* Sends m and waits for the reply (valid until the next request).  An
 * "error" reply is returned as its code with its message in e. */
int client_request(client *c, const proto_msg *m, proto_msg *reply,
                   tfq_error *e);

/* Sends m, a status, results or workers request, and then the request of
 * each page that follows (m with "after" set to the reply's "next") until
 * a reply's "next" is 0, and joins the pages' items into one JSON array,
 * *items, a new string the caller frees.  *reply is the last page's reply
 * (valid until the next request).  A reply whose items are not an array,
 * or whose "next" does not move forward, is TFQ_EFORMAT.  The pages are
 * separate reads (see PROTOCOL.md): no row comes twice, but the counts of
 * a status reply may not match the running items gathered. */
int client_request_pages(client *c, const proto_msg *m, proto_msg *reply,
                         char **items, tfq_error *e);

/* One "results" read, every page: the JSON array of the jobs of grid (""
 * for every grid) that the coordinator at endpoint answers, in a new
 * string the caller frees.  NULL on failure, with the reason in e. */
char *client_results(const char *endpoint, const char *grid, tfq_error *e);

#endif

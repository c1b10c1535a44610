/* The coordinator: a daemon on a libuv loop that keeps every grid, job and
 * attempt in the store (SQLite, the only writer) and serves workers and
 * clients over one ZeroMQ ROUTER socket (schema/PROTOCOL.md).  The socket
 * is watched through its file descriptor, so one thread serves everyone; a
 * malformed message gets an error reply and nothing else changes. */
#ifndef TFQ_COORDINATOR_COORD_H
#define TFQ_COORDINATOR_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Heartbeats: a worker sends one every COORD_HEARTBEAT_MS while it holds a
 * job; one silent for COORD_LIVENESS heartbeats loses its lease.  3-5 is
 * the usual liveness (the ZeroMQ guide's Paranoid Pirate uses 3): long
 * enough to ride out a busy worker, short enough to requeue promptly. */
#define COORD_HEARTBEAT_MS 1000
#define COORD_LIVENESS 4

typedef struct {
    const char *state_dir; /* holds tfq.db */
    const char *bind;      /* e.g. tcp://127.0.0.1:5555 */
    int heartbeat_ms;      /* 0: COORD_HEARTBEAT_MS */
    int liveness;          /* 0: COORD_LIVENESS */
    /* CURVE: with curve_key (this coordinator's secret key file) only CURVE
     * peers whose public key is in allow_workers (may take jobs) or
     * allow_clients (may submit, cancel, retry) are served; at least one
     * list is needed. */
    const char *curve_key;
    const char *allow_workers;
    const char *allow_clients;
    /* Serve a store that holds fewer commits than its mirror says were
     * made (DIR/tfq.seq: its WAL lost, an older copy restored), with a
     * warning, instead of refusing to start. */
    int accept_rollback;
} coord_config;

typedef struct coord coord;

/* Takes the state directory (DIR/tfq.lock: one coordinator per
 * directory), opens the store (checking that it is whole and holds every
 * commit DIR/tfq.seq says was made, applying migrations, reconciling
 * attempts left running by a previous coordinator), binds the socket.
 * What it creates is private to its user (0700 directories, 0600 files
 * under the process's umask).  NULL with e set when the state directory
 * is unusable or held by another coordinator, the store is corrupt or has
 * lost commits, or the address is unusable. */
coord *coord_new(const coord_config *cfg, tfq_error *e);

/* Serves until SIGINT or SIGTERM (or coord_stop); returns 0. */
int coord_run(coord *c);

/* Handles frame as one message received from routing id id[0 ..
 * id_bytes) with every role (no CURVE), in a batch of its own: the same
 * path as a message read from the socket, without the read (for the
 * fuzzer, fuzz/fuzz_handlers.c); a submit is waited for until its work
 * thread has parsed it and it is stored and answered.  Replies go out on
 * the socket, which drops those to a peer it does not know.  Returns 0, or
 * the store's error when
 * the batch's transaction could not begin (the message is then handled
 * outside one, as the loop does). */
int coord_feed(coord *c, const void *id, size_t id_bytes, const void *frame,
               size_t bytes);

/* The ZeroMQ context of the coordinator's socket, through which peers in
 * the same process reach an inproc:// address it is bound to.  Their
 * sockets must be closed before coord_destroy, which terminates it. */
void *coord_zmq_context(coord *c);

void coord_stop(coord *c);
void coord_destroy(coord **c);

#endif

/* Who may speak for a lease: the token handed out with each job and the
 * holder the store keeps for it. */
#define _GNU_SOURCE
#include "coord_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"

/* Lease tokens for n leases: 32 random bytes each, as 64 hex digits, handed
 * to the worker with its job and never stored (the store keeps the holder,
 * a hash).  One system call for a whole batch. */
int lease_tokens(char (*out)[HASH_HEX_BYTES], int n)
{
    uint8_t raw[COORD_MAX_LEASE * HASH_BYTES];
    size_t want = (size_t)n * HASH_BYTES, got = 0;
    while (got < want) {
        ssize_t k = getrandom(raw + got, want - got, 0);
        if (k < 0 && errno != EINTR)
            return -1;
        if (k > 0)
            got += (size_t)k;
    }
    for (int i = 0; i < n; i++)
        hash_hex(raw + (size_t)i * HASH_BYTES, out[i]);
    return 0;
}

/* The CURVE key fingerprint of the peer, or "" without CURVE. */
static const char *key_of(const peer *p)
{
    const char *sp = strrchr(p->user, ' ');
    return sp ? sp + 1 : "";
}

/* Who holds a lease: its token (the first 128 bits, as 32 hex digits) and,
 * under CURVE, the fingerprint of the key that took it.  A routing id is
 * not proof: any peer may claim one.  Kept as it is, not hashed: the store
 * is readable by the coordinator's user only, who could change it anyway,
 * and a plain comparison costs nothing per message. */
void lease_holder(const peer *p, const char *token, char out[HASH_HEX_BYTES])
{
    const char *key = key_of(p);
    size_t n = strnlen(token, 32), k = strnlen(key, 16);
    memcpy(out, token, n); /* by hand: snprintf was most of a lease's cost */
    if (k > 0) {
        out[n++] = ':';
        memcpy(out + n, key, k);
        n += k;
    }
    out[n] = '\0';
}

/* A refusal of a message about a lease the peer does not hold, logged with
 * the peer, its address and key, and answered. */
void lease_refuse(coord *c, const peer *p, const proto_msg *m, int rc,
                  const char *why)
{
    if (rc == TFQ_EPERM)
        log_warn("refused %s of job %lld attempt %d from %s at %s (CURVE key "
                 "%s): %s", proto_kind_name(m->kind), (long long)m->job,
                 m->attempt, p->name, p->address[0] ? p->address : "?",
                 key_of(p)[0] ? key_of(p) : "none", why);
    coord_reply_error(c, p, rc, why, m->kind);
}

/* The holder m speaks for, from its lease token and the peer's key; when m
 * carries no token, answers TFQ_EPERM and returns 0.  The protocol lets the
 * token be absent so that the refusal is about the lease, not the message's
 * format. */
int lease_holder_of_msg(coord *c, const peer *p, const proto_msg *m,
                        char holder[HASH_HEX_BYTES])
{
    if (m->lease[0] != '\0') {
        lease_holder(p, m->lease, holder);
        return 1;
    }
    lease_refuse(c, p, m, TFQ_EPERM, "no lease token: only the holder of a "
                 "lease, with the token its job came with, may report on it");
    return 0;
}

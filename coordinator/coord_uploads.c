/* Checkpoints: uploads arriving in chunks from the holder of a lease,
 * checked (size, quotas, free space, hash, content) and stored under their
 * hash in DIR/ckpt, and downloads of stored ones a chunk at a time. */
#include "coord_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"

/* Uploads one peer may have in progress at once. */
#define COORD_MAX_UPLOADS_PEER 2

/* The bytes all uploads in progress may declare together. */
#define COORD_UPLOAD_BUDGET ((int64_t)4 << 30)

/* Room kept free on the state file system for the store: a checkpoint
 * that would leave less is refused with TFQ_ENOSPC.  The larger of a
 * floor and a share of the file system, capped. */
#define COORD_RESERVE_MIN ((int64_t)256 << 10)
#define COORD_RESERVE_MAX ((int64_t)256 << 20)
#define COORD_RESERVE_SHARE 20 /* 1/20 = 5% */

static void upload_drop(upload *u)
{
    if (u->f != NULL) {
        fclose(u->f);
        unlink(u->tmp);
    }
    free(u->spec);
    memset(u, 0, sizeof *u);
}

void uploads_drop_attempt(coord *c, int64_t job, int attempt)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (u->used && u->job == job && u->attempt == attempt)
            upload_drop(u);
    }
}

void uploads_drop_all(coord *c)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++)
        if (c->uploads[i].used)
            upload_drop(&c->uploads[i]);
}

void uploads_sweep(coord *c, int64_t now, int64_t silent_ms)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        tfq_error e = {0};
        if (!u->used)
            continue;
        int stale = now - u->last_ms > silent_ms;
        if (stale || store_check_lease(c->st, u->job, u->attempt, u->holder,
                                       &e) != 0) {
            log_warn("checkpoint upload of job %lld attempt %d from %s "
                     "dropped: %s", (long long)u->job, u->attempt, u->peer,
                     stale ? "no chunk within the liveness window" : e.msg);
            upload_drop(u);
        }
    }
}

void uploads_clean(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".upload-", 8) != 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    if (n > 0)
        log_info("removed %d unfinished checkpoint upload%s left in %s", n,
                 n == 1 ? "" : "s", dir);
}

/* The upload this chunk continues, or NULL. */
static upload *upload_find(coord *c, const proto_msg *m)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (u->used && u->job == m->job && u->attempt == m->attempt &&
            strcmp(u->sha256, m->sha256) == 0)
            return u;
    }
    return NULL;
}

/* A free slot for a new upload, making room by dropping the oldest. */
static upload *upload_slot(coord *c)
{
    upload *oldest = NULL;
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (!u->used)
            return u;
        if (oldest == NULL || u->started_ms < oldest->started_ms)
            oldest = u;
    }
    log_warn("too many checkpoint uploads: dropping job %lld's",
             (long long)oldest->job);
    upload_drop(oldest);
    return oldest;
}

/* Whether a new upload may start: the sender holds the lease, the size
 * fits the job's net, the peer's and the coordinator's quotas and the free
 * disk space.  Fills spec with the job's configuration. */
static int upload_admit(coord *c, const peer *p, const proto_msg *m,
                        const char *holder, jobspec *spec, tfq_error *e)
{
    int rc = store_check_lease(c->st, m->job, m->attempt, holder, e);
    if (rc != 0)
        return rc;
    char *text = NULL;
    int64_t max = 0;
    rc = store_job_spec(c->st, m->job, &text, e);
    if (rc == 0)
        rc = jobspec_parse(text, spec, e);
    free(text);
    if (rc == 0)
        rc = jobspec_get_engine()->ckpt_max_bytes(spec, &max, e);
    if (rc != 0)
        return tfq_error_wrap(e, rc, "job %lld", (long long)m->job);
    int epochs = spec->kind == JOBSPEC_SLEEP ? JOBSPEC_SLEEP_EPOCHS : spec->epochs;
    if (m->total > max)
        return tfq_error_set(e, TFQ_ERANGE, "a checkpoint of %lld bytes was "
                             "announced; job %lld's net implies at most %lld",
                             (long long)m->total, (long long)m->job,
                             (long long)max);
    if (m->epoch > epochs)
        return tfq_error_set(e, TFQ_ERANGE, "a checkpoint after epoch %d was "
                             "announced; job %lld has %d epochs", m->epoch,
                             (long long)m->job, epochs);
    int mine = 0;
    int64_t pending = 0;
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        const upload *u = &c->uploads[i];
        if (!u->used)
            continue;
        mine += strcmp(u->peer, p->name) == 0;
        pending += u->total - u->got;
    }
    if (mine >= COORD_MAX_UPLOADS_PEER)
        return tfq_error_set(e, TFQ_ERANGE, "%s already has %d checkpoint "
                             "uploads in progress, the most one peer may",
                             p->name, mine);
    if (pending + m->total > COORD_UPLOAD_BUDGET)
        return tfq_error_set(e, TFQ_ERANGE, "checkpoint uploads in progress "
                             "already take %lld MiB; try again later",
                             (long long)(pending >> 20));
    struct statvfs fs;
    if (statvfs(c->ckpt_dir, &fs) == 0) {
        int64_t size = (int64_t)fs.f_blocks * (int64_t)fs.f_frsize;
        int64_t avail = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
        int64_t keep = size / COORD_RESERVE_SHARE;
        keep = keep < COORD_RESERVE_MIN   ? COORD_RESERVE_MIN
               : keep > COORD_RESERVE_MAX ? COORD_RESERVE_MAX
                                          : keep;
        if (avail - pending - m->total < keep)
            return tfq_error_set(e, TFQ_ENOSPC, "%s has %lld KiB free; a "
                                 "checkpoint of %lld KiB would leave less "
                                 "than the %lld KiB kept for the store",
                                 c->ckpt_dir, (long long)(avail >> 10),
                                 (long long)(m->total >> 10),
                                 (long long)(keep >> 10));
    }
    return 0;
}

/* The code for a failed write: TFQ_ENOSPC when the disk is full. */
static int write_error(tfq_error *e, const char *path)
{
    int err = errno;
    return tfq_error_set(e, err == ENOSPC || err == EDQUOT ? TFQ_ENOSPC
                                                           : TFQ_EIO,
                         "%s: %s", path, strerror(err));
}

/* Checks the finished upload (hash, then content against the job), writes
 * it under its hash and records it. */
static int upload_finish(coord *c, upload *u, tfq_error *e)
{
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256_final(&u->hash, digest);
    hash_hex(digest, hex);
    if (strcmp(hex, u->sha256) != 0)
        return tfq_error_set(e, TFQ_ECHECKSUM, "checkpoint arrived with hash "
                             "%.12s, announced %.12s", hex, u->sha256);
    if (fflush(u->f) != 0 || fsync(fileno(u->f)) != 0)
        return write_error(e, u->tmp);
    uint8_t *buf = malloc(u->total > 0 ? (size_t)u->total : 1);
    if (buf == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    int rc = 0;
    rewind(u->f);
    if (fread(buf, 1, (size_t)u->total, u->f) != (size_t)u->total)
        rc = tfq_error_set(e, TFQ_EIO, "%s: cannot read it back", u->tmp);
    if (rc == 0)
        rc = jobspec_get_engine()->ckpt_check(u->spec, buf, (size_t)u->total,
                                              u->epoch, e);
    free(buf);
    if (rc != 0)
        return tfq_error_wrap(e, rc, "checkpoint of job %lld",
                              (long long)u->job);
    fclose(u->f);
    u->f = NULL;
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", c->ckpt_dir, u->sha256);
    if (rename(u->tmp, path) != 0)
        return write_error(e, path);
    return store_checkpoint_add(c->st, u->job, u->attempt, u->holder,
                                u->epoch, u->sha256, u->total,
                                coord_now_ms(), e);
}

/* Starts an upload for the first chunk of a checkpoint. */
static upload *upload_start(coord *c, const peer *p, const proto_msg *m,
                            const char *holder, tfq_error *e)
{
    jobspec *spec = malloc(sizeof *spec);
    if (spec == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    if (upload_admit(c, p, m, holder, spec, e) != 0) {
        free(spec);
        return NULL;
    }
    uploads_drop_attempt(c, m->job, m->attempt); /* one at a time each */
    upload *u = upload_slot(c);
    u->used = 1;
    u->job = m->job;
    u->attempt = m->attempt;
    u->epoch = m->epoch;
    u->total = m->total;
    u->started_ms = u->last_ms = coord_now_ms();
    u->spec = spec;
    memcpy(u->holder, holder, sizeof u->holder);
    snprintf(u->peer, sizeof u->peer, "%s", p->name);
    memcpy(u->sha256, m->sha256, sizeof u->sha256);
    hash_sha256_init(&u->hash);
    snprintf(u->tmp, sizeof u->tmp, "%s/.upload-%lld-%d-%.16s", c->ckpt_dir,
             (long long)m->job, m->attempt, m->sha256);
    u->f = fopen(u->tmp, "w+b");
    if (u->f == NULL) {
        write_error(e, u->tmp);
        upload_drop(u);
        return NULL;
    }
    return u;
}

void uploads_put(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!lease_holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    upload *u = upload_find(c, m);
    if (u != NULL && strcmp(u->holder, holder) != 0) {
        lease_refuse(c, p, m, TFQ_EPERM, "this checkpoint upload belongs to "
                     "another peer's lease (the lease token does not match)");
        return;
    }
    if (u == NULL && m->offset != 0) {
        coord_reply_error(c, p, TFQ_EINVAL, "checkpoint chunk out of order "
                          "(no upload in progress at this offset)",
                          PROTO_CKPT_PUT);
        return;
    }
    if (u == NULL && (u = upload_start(c, p, m, holder, &e)) == NULL) {
        if (e.code != TFQ_EPERM)
            log_warn("checkpoint of job %lld attempt %d epoch %d from %s "
                     "refused: %s", (long long)m->job, m->attempt, m->epoch,
                     p->name, e.msg);
        lease_refuse(c, p, m, e.code, e.msg);
        return;
    }
    if (m->offset != u->got || m->total != u->total || m->epoch != u->epoch ||
        (int64_t)m->data_bytes > u->total - u->got) {
        upload_drop(u);
        coord_reply_error(c, p, TFQ_EINVAL, "checkpoint chunk does not "
                          "continue its upload (offset, total or epoch "
                          "changed)",
                          PROTO_CKPT_PUT);
        return;
    }
    if (m->data_bytes > 0 &&
        (fwrite(m->data, 1, m->data_bytes, u->f) != m->data_bytes ||
         fflush(u->f) != 0)) {
        int rc = write_error(&e, u->tmp);
        log_warn("checkpoint of job %lld attempt %d not written: %s",
                 (long long)m->job, m->attempt, e.msg);
        upload_drop(u);
        coord_reply_error(c, p, rc, e.msg, PROTO_CKPT_PUT);
        return;
    }
    hash_sha256_update(&u->hash, m->data, m->data_bytes);
    u->got += (int64_t)m->data_bytes;
    u->last_ms = coord_now_ms();
    if (u->got == u->total) {
        int rc = upload_finish(c, u, &e);
        upload_drop(u);
        if (rc != 0) {
            log_warn("checkpoint of job %lld attempt %d epoch %d refused: %s",
                     (long long)m->job, m->attempt, m->epoch, e.msg);
            coord_reply_error(c, p, rc, e.msg, PROTO_CKPT_PUT);
            return;
        }
    }
    coord_reply_kind(c, p, PROTO_ACK);
}

void uploads_get(coord *c, const peer *p, const proto_msg *m)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", c->ckpt_dir, m->sha256);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        coord_reply_error(c, p, TFQ_ENOENT, "no checkpoint with that hash",
                          PROTO_CKPT_GET);
        return;
    }
    uint8_t *buf = c->chunk;
    struct stat st;
    size_t n = 0;
    int ok = fstat(fileno(f), &st) == 0 && m->offset <= st.st_size &&
             fseeko(f, (off_t)m->offset, SEEK_SET) == 0;
    if (ok) {
        n = fread(buf, 1, sizeof c->chunk, f);
        ok = !ferror(f);
    }
    fclose(f);
    if (!ok) {
        coord_reply_error(c, p, TFQ_ERANGE, "offset past the checkpoint's end",
                          PROTO_CKPT_GET);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_CKPT_CHUNK);
    memcpy(r.sha256, m->sha256, sizeof r.sha256);
    r.offset = m->offset;
    r.total = (int64_t)st.st_size;
    r.data = buf;
    r.data_bytes = n;
    coord_reply(c, p, &r);
}

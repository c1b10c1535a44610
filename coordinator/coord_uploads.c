/* Blobs: uploads arriving in chunks, checked (size, quotas, free space,
 * hash or fingerprint, content) and stored under their id, and downloads
 * of stored ones a chunk at a time.  Two kinds of upload share the chunk
 * path: a worker's checkpoint for its lease (ckpt_put, stored in DIR/ckpt
 * and recorded for the attempt), and a client's blob (blob_put: a data
 * pack in DIR/data, or a checkpoint in DIR/ckpt). */
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
    blob_check_release(&u->check);
    free(u->spec);
    memset(u, 0, sizeof *u);
}

void uploads_drop_attempt(coord *c, int64_t job, int attempt)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (u->used && u->leased && u->job == job && u->attempt == attempt)
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
        if (stale && !u->leased)
            log_warn("%s upload %.12s from %s dropped after %lld of %lld "
                     "bytes: no chunk within the liveness window",
                     blob_store_name(u->store), u->id, u->peer,
                     (long long)u->got, (long long)u->total);
        else if (stale || (u->leased &&
                           store_check_lease(c->st, u->job, u->attempt,
                                             u->holder, &e) != 0))
            log_warn("checkpoint upload of job %lld attempt %d from %s "
                     "dropped: %s", (long long)u->job, u->attempt, u->peer,
                     stale ? "no chunk within the liveness window" : e.msg);
        else
            continue;
        upload_drop(u);
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
        log_info("removed %d unfinished upload%s left in %s", n,
                 n == 1 ? "" : "s", dir);
}


/* The directory of a store. */
static const char *store_dir(const coord *c, blob_store s)
{
    return s == BLOB_DATA ? c->data_dir : c->ckpt_dir;
}

/* The path of blob id of store s. */
static void blob_path(const coord *c, blob_store s, const char *id,
                      char *out, size_t bytes)
{
    char name[80];
    blob_file_name(s, id, name, sizeof name);
    snprintf(out, bytes, "%s/%s", store_dir(c, s), name);
}

/* The upload this chunk continues, or NULL: a checkpoint of the same
 * attempt and hash (leased), or a blob of the same store and id from the
 * same peer. */
static upload *upload_find(coord *c, const peer *p, const proto_msg *m,
                           int leased, blob_store s)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (!u->used || u->leased != leased)
            continue;
        if (leased ? u->job == m->job && u->attempt == m->attempt &&
                         strcmp(u->id, m->sha256) == 0
                   : u->store == s && strcmp(u->id, m->id) == 0 &&
                         strcmp(u->peer, p->name) == 0)
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
    log_warn("too many uploads: dropping %s's %s upload %.12s", oldest->peer,
             blob_store_name(oldest->store), oldest->id);
    upload_drop(oldest);
    return oldest;
}

/* Whether an upload of total bytes into dir fits: the peer's and the
 * coordinator's quotas of uploads in progress, and the free disk space
 * less the reserve kept for the store. */
static int upload_room(coord *c, const peer *p, int64_t total,
                       const char *dir, tfq_error *e)
{
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
        return tfq_error_set(e, TFQ_ERANGE, "%s already has %d uploads in "
                             "progress, the most one peer may", p->name,
                             mine);
    if (pending + total > COORD_UPLOAD_BUDGET)
        return tfq_error_set(e, TFQ_ERANGE, "uploads in progress already "
                             "take %lld MiB, and %lld MiB more would pass "
                             "the %lld MiB allowed; try again later",
                             (long long)(pending >> 20),
                             (long long)(total >> 20),
                             (long long)(COORD_UPLOAD_BUDGET >> 20));
    struct statvfs fs;
    if (statvfs(dir, &fs) == 0) {
        int64_t size = (int64_t)fs.f_blocks * (int64_t)fs.f_frsize;
        int64_t avail = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
        int64_t keep = size / COORD_RESERVE_SHARE;
        keep = keep < COORD_RESERVE_MIN   ? COORD_RESERVE_MIN
               : keep > COORD_RESERVE_MAX ? COORD_RESERVE_MAX
                                          : keep;
        if (avail - pending - total < keep)
            return tfq_error_set(e, TFQ_ENOSPC, "%s has %lld KiB free; an "
                                 "upload of %lld KiB would leave less than "
                                 "the %lld KiB kept for the store", dir,
                                 (long long)(avail >> 10),
                                 (long long)(total >> 10),
                                 (long long)(keep >> 10));
    }
    return 0;
}

/* Whether a worker's checkpoint may start: the sender holds the lease,
 * the size fits the job's net and the epoch its epochs, and there is
 * room.  Fills spec with the job's configuration. */
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
    return upload_room(c, p, m->total, c->ckpt_dir, e);
}

/* The code for a failed write: TFQ_ENOSPC when the disk is full. */
static int write_error(tfq_error *e, const char *path)
{
    int err = errno;
    return tfq_error_set(e, err == ENOSPC || err == EDQUOT ? TFQ_ENOSPC
                                                           : TFQ_EIO,
                         "%s: %s", path, strerror(err));
}

/* Takes a slot for an upload of total bytes of blob id into store s and
 * opens its temporary file. */
static upload *upload_open(coord *c, const peer *p, blob_store s,
                           const char *id, int64_t total, tfq_error *e)
{
    upload *u = upload_slot(c);
    u->used = 1;
    u->store = s;
    u->total = total;
    u->started_ms = u->last_ms = coord_now_ms();
    snprintf(u->peer, sizeof u->peer, "%s", p->name);
    snprintf(u->id, sizeof u->id, "%s", id);
    blob_check_init(&u->check, s);
    snprintf(u->tmp, sizeof u->tmp, "%s/.upload-%d-%.16s", store_dir(c, s),
             (int)(u - c->uploads), id);
    u->f = fopen(u->tmp, "w+b");
    if (u->f == NULL) {
        write_error(e, u->tmp);
        upload_drop(u);
        return NULL;
    }
    return u;
}

/* Writes one chunk of u and feeds its check, after checking that it
 * continues the upload (offset, total, epoch).  On failure the upload is
 * dropped and the error is what to answer. */
static int upload_chunk(upload *u, const proto_msg *m, tfq_error *e)
{
    int rc = 0;
    if (m->offset != u->got || m->total != u->total ||
        (u->leased && m->epoch != u->epoch) ||
        (int64_t)m->data_bytes > u->total - u->got)
        rc = tfq_error_set(e, TFQ_EINVAL, "chunk does not continue its "
                           "upload (offset, total or epoch changed)");
    else if (m->data_bytes > 0 &&
             (fwrite(m->data, 1, m->data_bytes, u->f) != m->data_bytes ||
              fflush(u->f) != 0))
        rc = write_error(e, u->tmp);
    else
        rc = blob_check_update(&u->check, m->data, m->data_bytes, e);
    if (rc == 0 && u->store == BLOB_DATA &&
        u->check.seen >= DATAPACK_HEADER_BYTES &&
        datapack_file_bytes(&u->check.pack.h) != u->total)
        rc = tfq_error_set(e, TFQ_EFORMAT, "the data pack's header says "
                           "%lld bytes, the upload announced %lld",
                           (long long)datapack_file_bytes(&u->check.pack.h),
                           (long long)u->total);
    if (rc != 0) {
        log_warn("%s upload %.12s from %s refused at offset %lld: %s",
                 blob_store_name(u->store), u->id, u->peer,
                 (long long)m->offset, e->msg);
        upload_drop(u);
        return rc;
    }
    u->got += (int64_t)m->data_bytes;
    u->last_ms = coord_now_ms();
    return 0;
}

/* Checks the finished upload (the id, then for a worker's checkpoint its
 * content against the job), moves it under its id and, for a worker's
 * checkpoint, records it.  The caller drops the upload. */
static int upload_finish(coord *c, upload *u, tfq_error *e)
{
    int rc = blob_check_final(&u->check, u->id, e);
    if (rc != 0)
        return rc;
    if (fflush(u->f) != 0 || fsync(fileno(u->f)) != 0)
        return write_error(e, u->tmp);
    if (u->leased) {
        uint8_t *buf = malloc(u->total > 0 ? (size_t)u->total : 1);
        if (buf == NULL)
            return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        rewind(u->f);
        if (fread(buf, 1, (size_t)u->total, u->f) != (size_t)u->total)
            rc = tfq_error_set(e, TFQ_EIO, "%s: cannot read it back", u->tmp);
        if (rc == 0)
            rc = jobspec_get_engine()->ckpt_check(u->spec, buf,
                                                  (size_t)u->total, u->epoch,
                                                  e);
        free(buf);
        if (rc != 0)
            return tfq_error_wrap(e, rc, "checkpoint of job %lld",
                                  (long long)u->job);
    }
    fclose(u->f);
    u->f = NULL;
    char path[4300];
    blob_path(c, u->store, u->id, path, sizeof path);
    if (rename(u->tmp, path) != 0)
        return write_error(e, path);
    if (!u->leased) {
        log_info("stored %s %.12s (%lld bytes) from %s",
                 blob_store_name(u->store), u->id, (long long)u->total,
                 u->peer);
        return 0;
    }
    return store_checkpoint_add(c->st, u->job, u->attempt, u->holder,
                                u->epoch, u->id, u->total, coord_now_ms(), e);
}

/* Starts a worker's checkpoint upload at its first chunk. */
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
    upload *u = upload_open(c, p, BLOB_CKPT, m->sha256, m->total, e);
    if (u == NULL) {
        free(spec);
        return NULL;
    }
    u->leased = 1;
    u->check.magic = 0; /* the job's own check judges its content */
    u->job = m->job;
    u->attempt = m->attempt;
    u->epoch = m->epoch;
    u->spec = spec;
    memcpy(u->holder, holder, sizeof u->holder);
    return u;
}

/* Ends a chunk: the finish after the last one, then the answer. */
static void upload_answer(coord *c, const peer *p, upload *u, proto_kind re)
{
    tfq_error e = {0};
    if (u->got == u->total) {
        int rc = upload_finish(c, u, &e);
        upload_drop(u);
        if (rc != 0) {
            log_warn("%s upload refused: %s", proto_kind_name(re), e.msg);
            coord_reply_error(c, p, rc, e.msg, re);
            return;
        }
    }
    coord_reply_kind(c, p, PROTO_ACK);
}

void uploads_put(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!lease_holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    upload *u = upload_find(c, p, m, 1, BLOB_CKPT);
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
    if (upload_chunk(u, m, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_CKPT_PUT);
        return;
    }
    upload_answer(c, p, u, PROTO_CKPT_PUT);
}

/* Whether blob id of store s is stored, and its size. */
static int blob_stat(const coord *c, blob_store s, const char *id,
                     int64_t *bytes)
{
    char path[4300];
    struct stat st;
    blob_path(c, s, id, path, sizeof path);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    *bytes = (int64_t)st.st_size;
    return 1;
}

/* The store a blob message names, or an error reply and -1. */
static int store_of(coord *c, const peer *p, const proto_msg *m,
                    blob_store *s)
{
    tfq_error e = {0};
    if (blob_store_parse(m->store, s, &e) == 0)
        return 0;
    coord_reply_error(c, p, e.code, e.msg, m->kind);
    return -1;
}

void uploads_blob_has(coord *c, const peer *p, const proto_msg *m)
{
    blob_store s;
    if (store_of(c, p, m, &s) != 0)
        return;
    proto_msg r;
    proto_msg_init(&r, PROTO_BLOB_INFO);
    r.store = blob_store_name(s);
    memcpy(r.id, m->id, sizeof r.id);
    r.present = blob_stat(c, s, m->id, &r.bytes);
    coord_reply(c, p, &r);
}

/* Starts a client's blob upload at its first chunk, after checking its
 * size and the room for it. */
static upload *blob_start(coord *c, const peer *p, blob_store s,
                          const proto_msg *m, tfq_error *e)
{
    int64_t max = s == BLOB_DATA ? DATAPACK_MAX_BYTES : PROTO_MAX_CKPT_BYTES;
    if (m->total > max) {
        tfq_error_set(e, TFQ_ERANGE, "a %s blob of %lld bytes was announced; "
                      "at most %lld", blob_store_name(s), (long long)m->total,
                      (long long)max);
        return NULL;
    }
    if (upload_room(c, p, m->total, store_dir(c, s), e) != 0)
        return NULL;
    return upload_open(c, p, s, m->id, m->total, e);
}

void uploads_blob_put(coord *c, const peer *p, const proto_msg *m)
{
    blob_store s;
    tfq_error e = {0};
    int64_t bytes = 0;
    if (store_of(c, p, m, &s) != 0)
        return;
    upload *u = upload_find(c, p, m, 0, s);
    if (u == NULL && m->offset != 0) {
        coord_reply_error(c, p, TFQ_EINVAL, "blob chunk out of order (no "
                          "upload in progress at this offset)",
                          PROTO_BLOB_PUT);
        return;
    }
    if (u == NULL && blob_stat(c, s, m->id, &bytes)) {
        proto_msg r;
        proto_msg_init(&r, PROTO_ACK);
        r.present = true;
        coord_reply(c, p, &r);
        return;
    }
    if (u == NULL && (u = blob_start(c, p, s, m, &e)) == NULL) {
        log_warn("%s upload %.12s from %s refused: %s", blob_store_name(s),
                 m->id, p->name, e.msg);
        coord_reply_error(c, p, e.code, e.msg, PROTO_BLOB_PUT);
        return;
    }
    if (upload_chunk(u, m, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_BLOB_PUT);
        return;
    }
    upload_answer(c, p, u, PROTO_BLOB_PUT);
}

void uploads_get(coord *c, const peer *p, const proto_msg *m)
{
    blob_store s = BLOB_CKPT;
    const char *id = m->kind == PROTO_CKPT_GET ? m->sha256 : m->id;
    if (m->kind == PROTO_BLOB_GET && store_of(c, p, m, &s) != 0)
        return;
    char path[4300];
    blob_path(c, s, id, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        coord_reply_error(c, p, TFQ_ENOENT, s == BLOB_DATA
                          ? "no such blob on the coordinator: no data set "
                            "with that fingerprint was uploaded"
                          : "no checkpoint with that hash", m->kind);
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
        coord_reply_error(c, p, TFQ_ERANGE, "offset past the blob's end",
                          m->kind);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, m->kind == PROTO_CKPT_GET ? PROTO_CKPT_CHUNK
                                                 : PROTO_BLOB_CHUNK);
    memcpy(r.sha256, id, sizeof r.sha256);
    memcpy(r.id, id, sizeof r.id);
    r.store = blob_store_name(s);
    r.offset = m->offset;
    r.total = (int64_t)st.st_size;
    r.data = buf;
    r.data_bytes = n;
    coord_reply(c, p, &r);
}

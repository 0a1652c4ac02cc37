/* transfer.c - result files arriving in chunks: temporary files, hashing, checks (transfer.h).
 *
 * One transfer per lease (render_id, lease_token); one temporary file per result file, named
 * outputs/.transfers/<render_id>-<lease_token>-<file>.part. The states of one file:
 *
 *               CHUNK at offset 0, lease current
 *    (absent) ---------------------------------> RECEIVING (holds bytes [0, have))
 *                                                  |    ^
 *            CHUNK at offset <= have: the new part |    | CHUNK at offset > have: not written;
 *            is appended and hashed; CHUNK_ACK     |    | CHUNK_ACK resend=1 have (the worker
 *            have                                  |    | goes back to have)
 *                                                  v    |
 *                                   have == size: COMPLETE (sha256 final)
 *
 * and of one transfer, with the function that makes each move:
 *
 *    OPEN --RESULT, every file COMPLETE with the claimed size and sha256 (mg_transfer_attach)-->
 *         ATTACHED --the store fsyncs and renames, commits or refuses (mg_transfer_done)--> gone
 *    OPEN --RESULT with files short (mg_transfer_attach)--> OPEN, CHUNK_ACK resend=1 per short file
 *    OPEN --RESULT with a size or sha256 mismatch (mg_transfer_attach)--> the attempt fails,
 *         files removed (mg_transfer_done)
 *    OPEN --a chunk or RESULT whose lease is not current (mg_transfer_chunk / _attach)-->
 *         REFUSED: files removed; later chunks of that lease are refused without a second
 *         rejection; forgotten after S_REFUSED_KEEP_MS (mg_transfer_sweep)
 *    OPEN --the lease ended: expired, worker lost, cancelled, leased again (mg_transfer_sweep,
 *         each second)--> gone, files removed
 *    coordinator start (mg_transfer_new): every file in .transfers is removed; the workers' next
 *         chunks find nothing and are told resend=1 from 0, and a RESULT the same for each file.
 *
 * Duplicate chunks (resent after a timeout or a reconnect) are idempotent: bytes below have are
 * never written again. Bytes are hashed in order as they are appended, so the check at RESULT
 * reads nothing back. sync_file_range starts each chunk's writeback at once, so the fsync before
 * the rename (store.c) has little left to do and dirty pages stay bounded.
 */
#include "transfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "../common/util.h"

#define S_REFUSED_KEEP_MS 60000 /* chunks still in flight when a lease is refused arrive within this */

typedef struct {
    int open;           /* its temporary file exists */
    uint64_t size;      /* as the chunks say */
    uint64_t have;      /* bytes [0, have) are written and hashed */
    mg_sha256_t sha;    /* of those bytes */
    char hex[65];       /* the final sha256, once have == size */
} s_file_t;

typedef struct {
    int64_t render_id;
    char token[40];
    int refused;
    int64_t refused_ms;
    s_file_t files[MG_MAX_RESULT_FILES];
    char *paths[MG_MAX_RESULT_FILES]; /* owned: temp paths handed to the store (attach) */
} s_xfer_t;

struct mg_transfer {
    char dir[4200];     /* outputs/.transfers */
    s_xfer_t **x;       /* owned */
    int n, cap;
};

/* The lease token becomes part of a file name: 32 hex digits from the store, anything
 * alphanumeric up to 39 characters accepted. */
static int s_token_ok(const char *token)
{
    size_t n = strlen(token);
    if (n == 0 || n > 39) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 0;
    }
    return 1;
}

static void s_path(const mg_transfer_t *t, const s_xfer_t *x, int file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%" PRId64 "-%s-%02d.part", t->dir, x->render_id, x->token, file);
}

static s_xfer_t *s_find(const mg_transfer_t *t, int64_t render_id, const char *token, int *idx)
{
    for (int i = 0; i < t->n; i++)
        if (t->x[i]->render_id == render_id && strcmp(t->x[i]->token, token) == 0) {
            if (idx) *idx = i;
            return t->x[i];
        }
    return NULL;
}

static s_xfer_t *s_add(mg_transfer_t *t, int64_t render_id, const char *token)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        s_xfer_t **x = realloc(t->x, (size_t)cap * sizeof *x);
        if (!x) return NULL;
        t->x = x;
        t->cap = cap;
    }
    s_xfer_t *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->render_id = render_id;
    mg_strlcpy(x->token, token, sizeof x->token);
    t->x[t->n++] = x;
    return x;
}

/* Removes the transfer's temporary files; returns the bytes they held. */
static uint64_t s_unlink_files(const mg_transfer_t *t, s_xfer_t *x)
{
    uint64_t bytes = 0;
    for (int i = 0; i < MG_MAX_RESULT_FILES; i++) {
        if (!x->files[i].open) continue;
        char path[4400];
        s_path(t, x, i, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) mg_warn("cannot remove %s: %s", path, strerror(errno));
        bytes += x->files[i].have;
        x->files[i].open = 0;
    }
    return bytes;
}

static void s_remove(mg_transfer_t *t, int idx)
{
    s_xfer_t *x = t->x[idx];
    for (int i = 0; i < MG_MAX_RESULT_FILES; i++) free(x->paths[i]);
    free(x);
    t->x[idx] = t->x[--t->n];
}

static void s_refuse(mg_transfer_t *t, s_xfer_t *x, int64_t now_ms)
{
    s_unlink_files(t, x);
    x->refused = 1;
    x->refused_ms = now_ms;
}

/* Writes n bytes at off (creating the file, truncated, when create is set) and starts their
 * writeback. 0 or -1 (errno). */
static int s_write_at(const char *path, int create, uint64_t off, const unsigned char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            errno = e;
            return -1;
        }
        done += (size_t)w;
    }
#ifdef SYNC_FILE_RANGE_WRITE
    if (n > 0) sync_file_range(fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
#endif
    return close(fd);
}

static void s_chunk_ack(void *router, const mg_msg_t *m, int64_t render_id, const char *token, int file,
                        uint64_t have, int64_t seq, int resend)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", render_id);
    mg_kv_set(&kv, "lease_token", token);
    mg_kv_set_i64(&kv, "file", file);
    mg_kv_set_u64(&kv, "have", have);
    mg_kv_set_i64(&kv, "seq", seq);
    if (resend) mg_kv_set_i64(&kv, "resend", 1);
    mg_msg_t out;
    mg_msg_init(&out);
    int rc = mg_msg_add(&out, m->data[0], m->size[0]) | mg_msg_add_str(&out, MG_PROTO_WORKER) |
             mg_msg_add_str(&out, MG_WCMD_CHUNK_ACK) | mg_msg_add_kv(&out, &kv);
    if (rc != 0 || mg_msg_send(&out, router, 0) != 0)
        mg_warn("cannot send CHUNK_ACK for render %" PRId64 ": %s", render_id, zmq_strerror(errno));
    mg_msg_clear(&out);
    mg_kv_clear(&kv);
}

mg_transfer_t *mg_transfer_new(const char *outputs_dir, char *err, size_t errlen)
{
    mg_transfer_t *t = calloc(1, sizeof *t);
    if (!t) {
        mg_set_error(err, errlen, "out of memory");
        return NULL;
    }
    if ((size_t)snprintf(t->dir, sizeof t->dir, "%s/.transfers", outputs_dir) >= sizeof t->dir ||
        mg_mkdir_p(t->dir, 0755) != 0) {
        mg_set_error(err, errlen, "cannot create the transfers folder %s: %s", t->dir, strerror(errno));
        free(t);
        return NULL;
    }
    DIR *d = opendir(t->dir);
    if (!d) {
        mg_set_error(err, errlen, "cannot read the transfers folder %s: %s", t->dir, strerror(errno));
        free(t);
        return NULL;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) removed++;
        else mg_warn("cannot remove %s/%s: %s", t->dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (removed > 0)
        mg_info("removed %d temporary file(s) of unfinished transfers from %s (their workers send them again)",
                removed, t->dir);
    return t;
}

void mg_transfer_destroy(mg_transfer_t **t_p)
{
    if (!t_p || !*t_p) return;
    mg_transfer_t *t = *t_p;
    while (t->n > 0) {
        s_unlink_files(t, t->x[t->n - 1]);
        s_remove(t, t->n - 1);
    }
    free(t->x);
    free(t);
    *t_p = NULL;
}

int mg_transfer_chunk(mg_transfer_t *t, mg_store_t *s, void *router, const mg_msg_t *m, const mg_kv_t *kv,
                      int64_t now_ms, char *why, size_t whylen)
{
    int64_t render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get_or(kv, "lease_token", "");
    int64_t file = mg_kv_get_i64(kv, "file", -1);
    uint64_t offset = mg_kv_get_u64(kv, "offset", UINT64_MAX);
    uint64_t size = mg_kv_get_u64(kv, "size", UINT64_MAX);
    int64_t seq = mg_kv_get_i64(kv, "seq", 0);
    size_t len = m->n == 5 ? m->size[4] : 0;
    if (m->n != 5) {
        mg_set_error(why, whylen, "malformed CHUNK: %zu frames after the command, expected a kv and the bytes",
                     m->n > 3 ? m->n - 3 : 0);
        return MG_TRANSFER_BAD;
    }
    if (render_id <= 0 || !s_token_ok(token)) {
        mg_set_error(why, whylen, "malformed CHUNK: no valid render_id and lease_token");
        return MG_TRANSFER_BAD;
    }
    if (file < 0 || file >= MG_MAX_RESULT_FILES || size > (uint64_t)MG_MAX_RESULT_FILE_BYTES ||
        len > MG_CHUNK_MAX_BYTES || offset > size || len > size - offset) {
        mg_set_error(why, whylen,
                     "malformed CHUNK for render %" PRId64 ": file %" PRId64 " (0..%d), offset %" PRIu64
                     " + %zu bytes, size %" PRIu64 " (chunks up to %d bytes, files up to %lld)",
                     render_id, file, MG_MAX_RESULT_FILES - 1, offset, len, size, MG_CHUNK_MAX_BYTES,
                     (long long)MG_MAX_RESULT_FILE_BYTES);
        return MG_TRANSFER_BAD;
    }
    s_xfer_t *x = s_find(t, render_id, token, NULL);
    if (x && x->refused) {
        mg_set_error(why, whylen, "stale lease token for render %" PRId64 " (its chunks are refused)", render_id);
        return MG_TRANSFER_STALE_AGAIN;
    }
    /* Fencing: every chunk is checked against the lease, so nothing of a stale worker lands. */
    int64_t expires = 0;
    int recorded = 0;
    int rc = mg_store_lease_check(s, render_id, token, &expires, &recorded);
    if (rc == MG_STORE_ERR) {
        mg_set_error(why, whylen, "cannot read the lease of render %" PRId64, render_id);
        return MG_TRANSFER_ERR;
    }
    if (rc != MG_STORE_OK) {
        if (recorded) return MG_TRANSFER_RECORDED;
        if (!x && !(x = s_add(t, render_id, token))) {
            mg_set_error(why, whylen, "out of memory");
            return MG_TRANSFER_ERR;
        }
        s_refuse(t, x, now_ms);
        mg_set_error(why, whylen, "stale lease token for render %" PRId64 " (chunk refused)", render_id);
        return MG_TRANSFER_STALE;
    }
    /* An upload is progress: keep the lease alive as PROGRESS would, with one write per half lease. */
    if (expires - now_ms < mg_store_policy(s)->lease_ms / 2) mg_store_renew(s, render_id, token, now_ms);
    if (!x && !(x = s_add(t, render_id, token))) {
        mg_set_error(why, whylen, "out of memory");
        return MG_TRANSFER_ERR;
    }
    s_file_t *f = &x->files[file];
    char path[4400];
    s_path(t, x, (int)file, path, sizeof path);
    if (f->open && f->size != size) { /* the worker started this file over with another size */
        if (unlink(path) != 0 && errno != ENOENT) mg_warn("cannot remove %s: %s", path, strerror(errno));
        f->open = 0;
    }
    if (!f->open) {
        f->size = size;
        f->have = 0;
        f->hex[0] = 0;
        mg_sha256_init(&f->sha);
    }
    if (offset > f->have) { /* a gap: the worker goes back to what is here */
        s_chunk_ack(router, m, render_id, token, (int)file, f->have, seq, 1);
        return MG_TRANSFER_OK;
    }
    uint64_t skip = f->have - offset; /* bytes of this chunk already written: a duplicate */
    if (skip < len || !f->open) {
        const unsigned char *p = (const unsigned char *)m->data[4] + (skip < len ? skip : len);
        size_t n = skip < len ? len - (size_t)skip : 0;
        if (s_write_at(path, !f->open, f->have, p, n) != 0) {
            mg_set_error(why, whylen, "cannot write %s: %s", path, strerror(errno));
            return MG_TRANSFER_ERR;
        }
        f->open = 1;
        mg_sha256_update(&f->sha, p, n);
        f->have += n;
    }
    if (f->have == f->size && !f->hex[0]) mg_sha256_final_hex(&f->sha, f->hex);
    s_chunk_ack(router, m, render_id, token, (int)file, f->have, seq, 0);
    return MG_TRANSFER_OK;
}

int mg_transfer_attach(mg_transfer_t *t, mg_store_t *s, void *router, const mg_msg_t *m, int64_t seq,
                       mg_result_t *r, char *why, size_t whylen)
{
    if (!s_token_ok(r->lease_token)) {
        mg_set_error(why, whylen, "render %" PRId64 ": malformed lease token", r->render_id);
        return MG_TRANSFER_BAD;
    }
    s_xfer_t *x = s_find(t, r->render_id, r->lease_token, NULL);
    if (x && x->refused) {
        mg_set_error(why, whylen, "stale lease token for render %" PRId64 " (its chunks were refused)",
                     r->render_id);
        return MG_TRANSFER_STALE_AGAIN;
    }
    int n_short = 0;
    for (int i = 0; i < r->n_files; i++) {
        mg_result_file_t *rf = &r->files[i];
        s_file_t *f = x ? &x->files[i] : NULL;
        if (rf->len == 0 && !(f && f->open)) { /* an empty file needs no chunk */
            char path[4400];
            if (!x && !(x = s_add(t, r->render_id, r->lease_token))) {
                mg_set_error(why, whylen, "out of memory");
                return MG_TRANSFER_ERR;
            }
            f = &x->files[i];
            s_path(t, x, i, path, sizeof path);
            if (s_write_at(path, 1, 0, NULL, 0) != 0) {
                mg_set_error(why, whylen, "cannot write %s: %s", path, strerror(errno));
                return MG_TRANSFER_ERR;
            }
            f->open = 1;
            f->size = f->have = 0;
            mg_sha256_init(&f->sha);
            mg_sha256_final_hex(&f->sha, f->hex);
        }
        if (!f || !f->open || f->have < f->size) {
            n_short++;
            continue;
        }
        if (f->size != rf->len) {
            mg_set_error(why, whylen, "render %" PRId64 ": file %d (%s): %" PRIu64 " bytes arrived, the RESULT says %zu",
                         r->render_id, i + 1, rf->format, f->size, rf->len);
            return MG_TRANSFER_BAD;
        }
        if (!rf->sha256 || strcmp(f->hex, rf->sha256) != 0) {
            mg_set_error(why, whylen, "render %" PRId64 ": %s bytes do not match their sha256 (corrupted in transit)",
                         r->render_id, rf->format);
            return MG_TRANSFER_BAD;
        }
    }
    if (n_short > 0) {
        int64_t expires = 0;
        int recorded = 0;
        int rc = mg_store_lease_check(s, r->render_id, r->lease_token, &expires, &recorded);
        if (rc == MG_STORE_ERR) {
            mg_set_error(why, whylen, "cannot read the lease of render %" PRId64, r->render_id);
            return MG_TRANSFER_ERR;
        }
        if (rc != MG_STORE_OK) {
            if (recorded) return MG_TRANSFER_RECORDED;
            if (!x && !(x = s_add(t, r->render_id, r->lease_token))) {
                mg_set_error(why, whylen, "out of memory");
                return MG_TRANSFER_ERR;
            }
            s_refuse(t, x, mg_now_ms());
            mg_set_error(why, whylen, "stale lease token for render %" PRId64, r->render_id);
            return MG_TRANSFER_STALE;
        }
        for (int i = 0; i < r->n_files; i++) {
            s_file_t *f = x ? &x->files[i] : NULL;
            if (!f || !f->open || f->have < f->size)
                s_chunk_ack(router, m, r->render_id, r->lease_token, i, f && f->open ? f->have : 0, seq, 1);
        }
        mg_set_error(why, whylen, "%d of %d file(s) incomplete: asked for the rest", n_short, r->n_files);
        return MG_TRANSFER_RESEND;
    }
    for (int i = 0; i < r->n_files; i++) {
        if (!x->paths[i]) {
            char path[4400];
            s_path(t, x, i, path, sizeof path);
            if (!(x->paths[i] = strdup(path))) {
                mg_set_error(why, whylen, "out of memory");
                return MG_TRANSFER_ERR;
            }
        }
        r->files[i].tmp_path = x->paths[i];
    }
    return MG_TRANSFER_OK;
}

void mg_transfer_done(mg_transfer_t *t, int64_t render_id, const char *token)
{
    int idx;
    s_xfer_t *x = s_find(t, render_id, token, &idx);
    if (!x || x->refused) return;
    s_unlink_files(t, x); /* files the store renamed are gone already */
    s_remove(t, idx);
}

void mg_transfer_sweep(mg_transfer_t *t, mg_store_t *s, int64_t now_ms)
{
    for (int i = 0; i < t->n;) {
        s_xfer_t *x = t->x[i];
        if (x->refused) {
            if (now_ms - x->refused_ms > S_REFUSED_KEEP_MS) {
                s_remove(t, i);
                continue;
            }
        } else {
            int64_t expires;
            int recorded;
            if (mg_store_lease_check(s, x->render_id, x->token, &expires, &recorded) == MG_STORE_STALE) {
                uint64_t bytes = s_unlink_files(t, x);
                mg_info("render %" PRId64 ": lease ended mid-transfer; %" PRIu64 " byte(s) received so far removed",
                        x->render_id, bytes);
                s_remove(t, i);
                continue;
            }
        }
        i++;
    }
}

int mg_transfer_count(const mg_transfer_t *t)
{
    int n = 0;
    for (int i = 0; i < t->n; i++) n += !t->x[i]->refused;
    return n;
}

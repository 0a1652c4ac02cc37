/* fetch.c - `mgctl fetch JOB` (see fetch.h): FILES lists the job's outputs, then each file
 * comes over in FETCH ranges of MG_FETCH_MAX_BYTES into NAME.part, is checked against the
 * sha256 the coordinator recorded, fsynced and renamed into place.
 *
 * It has its own DEALER socket rather than client.c's request helper, for two reasons: a
 * FETCH reply ends in a raw payload frame (not a kv row), and S_WINDOW requests are kept in
 * flight so that a transfer is not one network round trip per 4 MiB. One peer, one TCP
 * connection and a single-threaded coordinator: replies come back in request order, and
 * each names its offset, which is checked.
 */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/output.h"
#include "common/json.h"
#include "common/kv.h"
#include "common/protocol.h"
#include "common/util.h"

#define S_WINDOW 4 /* FETCH requests in flight: 16 MiB, enough to keep a LAN link busy */

enum { S_EXIT_OK = 0, S_EXIT_ERROR = 1, S_EXIT_USAGE = 2, S_EXIT_UNREACHABLE = 3 };

typedef struct {
    void *ctx, *sock;
    const mg_fetch_opts_t *o;
    FILE *err;
} s_conn_t;

typedef struct {
    int64_t files, fetched, skipped, failed, bytes_fetched;
} s_totals_t;

/* ---- requests ---------------------------------------------------------------------------- */

static int s_send(s_conn_t *c, const char *cmd, const mg_kv_t *args)
{
    mg_msg_t m;
    mg_msg_init(&m);
    int rc = mg_msg_add_str(&m, MG_PROTO_CLIENT) | mg_msg_add_str(&m, cmd) | mg_msg_add_kv(&m, args);
    if (rc == 0) rc = mg_msg_send(&m, c->sock, 0);
    int e = errno;
    mg_msg_clear(&m);
    if (rc == 0) return 0;
    if (e == EAGAIN) {
        fprintf(c->err, "mgctl: no answer from the coordinator at %s after %d ms (is mg-coordinator running? "
                        "see docs/cli.md)\n", c->o->endpoint, c->o->timeout_ms);
        return S_EXIT_UNREACHABLE;
    }
    fprintf(c->err, "mgctl: cannot send %s: %s\n", cmd, zmq_strerror(e));
    return S_EXIT_ERROR;
}

/* Waits for one reply into m and decodes its info. 0 for OK; otherwise prints why and
 * returns the exit code (ERR 1, timeout 3, a malformed reply 1). */
static int s_recv(s_conn_t *c, const char *cmd, mg_msg_t *m, mg_kv_t *info)
{
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, c->o->timeout_ms);
    if (n == 0) {
        fprintf(c->err, "mgctl: no answer from the coordinator at %s after %d ms (is mg-coordinator running? "
                        "see docs/cli.md; a cut transfer resumes where it stopped)\n", c->o->endpoint,
                c->o->timeout_ms);
        return S_EXIT_UNREACHABLE;
    }
    if (n < 0 || mg_msg_recv(m, c->sock, 0) != 0) {
        fprintf(c->err, "mgctl: waiting for the %s reply failed: %s\n", cmd, zmq_strerror(errno));
        return S_EXIT_ERROR;
    }
    if (m->n < 3 || !mg_msg_is(m, 0, MG_PROTO_CLIENT) || mg_msg_kv(m, 2, info) != 0 ||
        !(mg_msg_is(m, 1, "OK") || mg_msg_is(m, 1, "ERR"))) {
        fprintf(c->err, "mgctl: bad reply to %s from %s (not an %s OK/ERR reply: is it an mg coordinator of "
                        "this version?)\n", cmd, c->o->endpoint, MG_PROTO_CLIENT);
        return S_EXIT_ERROR;
    }
    if (mg_msg_is(m, 1, "OK")) return 0;
    fprintf(c->err, "mgctl: %s (%s)\n", mg_kv_get_or(info, "message", "refused with no message"),
            mg_kv_get_or(info, "code", "?"));
    return S_EXIT_ERROR;
}

/* ---- local files ------------------------------------------------------------------------- */

/* A file name from the coordinator becomes a path under DEST: refuse anything that could
 * land outside it (absolute, "..", empty components). */
static int s_safe_rel(const char *rel)
{
    if (!*rel || rel[0] == '/') return 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

static int s_mkdir_parent(const char *path)
{
    char dir[4200];
    mg_strlcpy(dir, path, sizeof dir);
    return mg_mkdir_p(dirname(dir), 0755);
}

static int s_fsync_parent(const char *path)
{
    char dir[4200];
    mg_strlcpy(dir, path, sizeof dir);
    return mg_fsync_dir(dirname(dir));
}

/* sha256 of the first len bytes of fd, into h. 0 or -1. */
static int s_hash_prefix(int fd, int64_t len, mg_sha256_t *h)
{
    static unsigned char buf[1 << 20];
    for (int64_t off = 0; off < len;) {
        size_t want = (size_t)(len - off < (int64_t)sizeof buf ? len - off : (int64_t)sizeof buf);
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        mg_sha256_update(h, buf, (size_t)r);
        off += r;
    }
    return 0;
}

static int s_write_all(int fd, const void *data, size_t len, int64_t off)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

static void s_human(int64_t n, char *buf, size_t len)
{
    if (n >= 1000000) snprintf(buf, len, "%.1f MB", (double)n / 1e6);
    else if (n >= 1000) snprintf(buf, len, "%.1f kB", (double)n / 1e3);
    else snprintf(buf, len, "%" PRId64 " B", n);
}

/* ---- one file ---------------------------------------------------------------------------- */

enum { S_FETCHED, S_SKIPPED, S_FAILED };

/* Brings row's file to DEST. Returns S_FETCHED / S_SKIPPED / S_FAILED (this file only, the
 * reason printed), or -exit code when the whole run must stop (no answer, socket error). */
static int s_fetch_file(s_conn_t *c, const mg_kv_t *row, const char *dest, s_totals_t *t)
{
    const char *rel = mg_kv_get_or(row, "file", "");
    const char *want = mg_kv_get_or(row, "sha256", "");
    int64_t bytes = mg_kv_get_i64(row, "bytes", -1);
    int64_t id = mg_kv_get_i64(row, "output_id", 0);
    if (!s_safe_rel(rel) || bytes < 0 || strlen(want) != 64) {
        fprintf(c->err, "mgctl: the coordinator listed output %" PRId64 " as '%s' (%" PRId64 " bytes): not a "
                        "safe relative file name, skipped\n", id, rel, bytes);
        return S_FAILED;
    }
    char final[4200], part[4300], have[65];
    snprintf(final, sizeof final, "%s/%s", dest, rel);
    snprintf(part, sizeof part, "%s.part", final);
    struct stat sb;
    if (stat(final, &sb) == 0 && sb.st_size == bytes && mg_sha256_file_hex(final, have) == 0 &&
        strcmp(have, want) == 0) {
        if (!c->o->json) fprintf(c->err, "  skipped  %s (already here, sha256 ok)\n", rel);
        return S_SKIPPED;
    }
    if (s_mkdir_parent(final) != 0) {
        fprintf(c->err, "mgctl: cannot create the folder of %s: %s\n", final, strerror(errno));
        return S_FAILED;
    }
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fprintf(c->err, "mgctl: cannot open %s: %s\n", part, strerror(errno));
        if (fd >= 0) close(fd);
        return S_FAILED;
    }
    /* A .part from a cut transfer: keep its bytes and ask only for the rest. Its prefix is
     * hashed here, and the whole file's sha256 decides at the end. */
    int64_t resumed = sb.st_size <= bytes ? (int64_t)sb.st_size : 0;
    if (sb.st_size > bytes && ftruncate(fd, 0) != 0) resumed = -1;
    mg_sha256_t h;
    mg_sha256_init(&h);
    if (resumed < 0 || s_hash_prefix(fd, resumed, &h) != 0) {
        fprintf(c->err, "mgctl: cannot read %s: %s (delete it and run mgctl fetch again)\n", part, strerror(errno));
        close(fd);
        return S_FAILED;
    }
    int64_t sent = resumed, done = resumed, last_note = mg_mono_ms();
    int inflight = 0, rc = 0, bad = 0;
    int tty = !c->o->json && isatty(fileno(c->err));
    mg_msg_t m;
    mg_msg_init(&m);
    while (done < bytes || inflight > 0) {
        while (!bad && inflight < S_WINDOW && sent < bytes) {
            int64_t len = bytes - sent < MG_FETCH_MAX_BYTES ? bytes - sent : MG_FETCH_MAX_BYTES;
            mg_kv_t a;
            mg_kv_init(&a);
            mg_kv_set_i64(&a, "output_id", id);
            mg_kv_set_i64(&a, "offset", sent);
            mg_kv_set_i64(&a, "length", len);
            rc = s_send(c, MG_CMD_FETCH, &a);
            mg_kv_clear(&a);
            if (rc) goto out;
            sent += len;
            inflight++;
        }
        if (inflight == 0) break;
        mg_kv_t info;
        mg_kv_init(&info);
        int r = s_recv(c, MG_CMD_FETCH, &m, &info);
        inflight--;
        if (r == S_EXIT_ERROR && m.n >= 2 && mg_msg_is(&m, 1, "ERR")) {
            bad = 1; /* this file only; the replies still in flight are read and dropped */
        } else if (r) {
            mg_kv_clear(&info);
            rc = r;
            goto out;
        } else if (!bad) {
            int64_t off = mg_kv_get_i64(&info, "offset", -1);
            size_t len = m.n >= 4 ? m.size[3] : 0;
            if (off != done || (int64_t)len != mg_kv_get_i64(&info, "length", -1) || len == 0 ||
                strcmp(mg_kv_get_or(&info, "sha256", ""), want) != 0) {
                fprintf(c->err, "mgctl: %s: the coordinator answered offset %" PRId64 " (%zu bytes, sha256 %.12s...) "
                                "where offset %" PRId64 " of sha256 %.12s... was asked: the file changed there, run "
                                "mgctl fetch again\n", rel, off, len, mg_kv_get_or(&info, "sha256", ""), done, want);
                bad = 1;
            } else if (s_write_all(fd, m.data[3], len, done) != 0) {
                fprintf(c->err, "mgctl: cannot write %s: %s\n", part, strerror(errno));
                bad = 1;
            } else {
                mg_sha256_update(&h, m.data[3], len);
                done += (int64_t)len;
                t->bytes_fetched += (int64_t)len;
                if (tty && mg_mono_ms() - last_note >= 500) {
                    last_note = mg_mono_ms();
                    fprintf(c->err, "\r  %s  %d%%\033[K", rel, (int)(100.0 * (double)done / (double)bytes));
                }
            }
        }
        mg_kv_clear(&info);
    }
    if (tty) fprintf(c->err, "\r\033[K");
    if (bad) {
        rc = 0;
        close(fd);
        fd = -1;
        mg_msg_clear(&m);
        return S_FAILED; /* the .part keeps what was written: the next run resumes */
    }
    mg_sha256_final_hex(&h, have);
    if (strcmp(have, want) != 0) {
        close(fd);
        fd = -1;
        unlink(part);
        fprintf(c->err, "mgctl: %s: sha256 %.16s... after download, %.16s... expected%s; deleted, not kept under "
                        "its name: run mgctl fetch again\n", rel, have, want,
                resumed > 0 ? " (resumed from a .part whose first bytes were damaged)" : "");
        mg_msg_clear(&m);
        return S_FAILED;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        fprintf(c->err, "mgctl: cannot sync %s: %s\n", part, strerror(errno));
        mg_msg_clear(&m);
        return S_FAILED;
    }
    fd = -1;
    if (rename(part, final) != 0 || s_fsync_parent(final) != 0) {
        fprintf(c->err, "mgctl: cannot move %s into place: %s\n", part, strerror(errno));
        mg_msg_clear(&m);
        return S_FAILED;
    }
    if (!c->o->json) {
        char hb[32];
        s_human(bytes, hb, sizeof hb);
        fprintf(c->err, "  fetched  %s (%s%s)\n", rel, hb, resumed > 0 ? ", resumed" : "");
    }
    mg_msg_clear(&m);
    return S_FETCHED;
out:
    if (fd >= 0) close(fd);
    mg_msg_clear(&m);
    return -rc;
}

/* ---- manifest ---------------------------------------------------------------------------- */

/* Is s a JSON number as written (so it can go into the manifest as it came)? */
static int s_json_number(const char *s)
{
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
    else return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == 0;
}

static void s_json_numkey(mg_strbuf_t *sb, const char *key, const char *v)
{
    mg_json_key(sb, key);
    if (v && s_json_number(v)) mg_json_raw(sb, v);
    else mg_json_str(sb, NULL);
}

static int s_write_manifest(const char *path, const mg_kv_t *rows, const int *present, size_t n)
{
    mg_strbuf_t doc;
    mg_sb_init(&doc);
    mg_sb_puts(&doc, "[");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!present[i]) continue;
        const mg_kv_t *r = &rows[i];
        mg_strbuf_t sb; /* one object per line: diffable, and greppable by file name */
        mg_sb_init(&sb);
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "file"); mg_json_str(&sb, mg_kv_get_or(r, "file", ""));
        mg_json_key(&sb, "kind"); mg_json_str(&sb, mg_kv_get_or(r, "kind", ""));
        mg_json_key(&sb, "part"); mg_json_str(&sb, mg_kv_get_or(r, "part", ""));
        mg_json_key(&sb, "format"); mg_json_str(&sb, mg_kv_get_or(r, "format", ""));
        mg_json_key(&sb, "sha256"); mg_json_str(&sb, mg_kv_get_or(r, "sha256", ""));
        s_json_numkey(&sb, "bytes", mg_kv_get(r, "bytes"));
        s_json_numkey(&sb, "duration_s", mg_kv_get(r, "duration_s"));
        s_json_numkey(&sb, "integrated_lufs", mg_kv_get(r, "integrated_lufs"));
        s_json_numkey(&sb, "render_id", mg_kv_get(r, "render_id"));
        /* a 64-bit seed does not survive a JSON reader's double: a string, as in --json */
        mg_json_key(&sb, "seed"); mg_json_str(&sb, mg_kv_get_or(r, "seed", ""));
        mg_json_key(&sb, "cue"); mg_json_str(&sb, mg_kv_get_or(r, "cue", ""));
        s_json_numkey(&sb, "variation", mg_kv_get(r, "variation"));
        mg_json_obj_close(&sb);
        mg_sb_puts(&doc, first ? "\n  " : ",\n  ");
        if (sb.buf) mg_sb_append(&doc, sb.buf, sb.len);
        doc.oom |= sb.oom;
        mg_sb_free(&sb);
        first = 0;
    }
    mg_sb_puts(&doc, first ? "]\n" : "\n]\n");
    if (doc.oom) {
        mg_sb_free(&doc);
        errno = ENOMEM;
        return -1;
    }
    int rc = mg_write_file_atomic(path, doc.buf, doc.len);
    mg_sb_free(&doc);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

static int s_check_kinds(const char *kinds, FILE *err)
{
    for (const char *p = kinds; *p;) {
        size_t n = strcspn(p, ",");
        if (!((n == 3 && strncmp(p, "mix", 3) == 0) || (n == 4 && strncmp(p, "stem", 4) == 0) ||
              (n == 4 && strncmp(p, "midi", 4) == 0))) {
            fprintf(err, "mgctl: --kind: unknown kind '%.*s' (a comma-separated list of mix, stem, midi)\n",
                    (int)(n < 40 ? n : 40), p);
            return -1;
        }
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

int mg_fetch_run(const mg_fetch_opts_t *o, FILE *out, FILE *err)
{
    const char *kinds = o->kinds ? o->kinds : "";
    if (s_check_kinds(kinds, err) != 0) return S_EXIT_USAGE;
    s_conn_t c = {.o = o, .err = err};
    c.ctx = zmq_ctx_new();
    c.sock = c.ctx ? zmq_socket(c.ctx, ZMQ_DEALER) : NULL;
    if (!c.sock || mg_socket_setup(c.sock, o->timeout_ms) != 0 || zmq_connect(c.sock, o->endpoint) != 0) {
        fprintf(err, "mgctl: cannot connect to '%s': %s (expected tcp://HOST:PORT or ipc://PATH)\n", o->endpoint,
                zmq_strerror(errno));
        if (c.sock) zmq_close(c.sock);
        if (c.ctx) zmq_ctx_term(c.ctx);
        return S_EXIT_USAGE;
    }
    int64_t t0 = mg_mono_ms();
    mg_kv_t args, info;
    mg_kv_init(&args);
    mg_kv_init(&info);
    mg_kv_set(&args, "job_id", o->job_id);
    mg_kv_set(&args, "kinds", kinds);
    mg_msg_t m;
    mg_msg_init(&m);
    mg_kv_t *rows = NULL;
    int *present = NULL;
    size_t n = 0;
    s_totals_t t = {0};
    char dest[4096];
    int rc = s_send(&c, MG_CMD_FILES, &args);
    if (!rc) rc = s_recv(&c, MG_CMD_FILES, &m, &info);
    if (rc) goto done;
    n = m.n - 3;
    rows = calloc(n + 1, sizeof *rows);
    present = calloc(n + 1, sizeof *present);
    if (!rows || !present) {
        fprintf(err, "mgctl: out of memory (%zu files)\n", n);
        rc = S_EXIT_ERROR;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (mg_msg_kv(&m, 3 + i, &rows[i]) != 0) {
            fprintf(err, "mgctl: bad reply to FILES: row %zu is not a kv record\n", i + 1);
            rc = S_EXIT_ERROR;
            goto done;
        }
    mg_msg_clear(&m);
    const char *out_dir = mg_kv_get_or(&info, "output_dir", "");
    if (o->dest && *o->dest) mg_strlcpy(dest, o->dest, sizeof dest);
    else if (*out_dir && s_safe_rel(out_dir) && !strchr(out_dir, '/')) snprintf(dest, sizeof dest, "./%s", out_dir);
    else snprintf(dest, sizeof dest, "./job-%s", o->job_id);
    if (mg_mkdir_p(dest, 0755) != 0) {
        fprintf(err, "mgctl: cannot create %s: %s\n", dest, strerror(errno));
        rc = S_EXIT_ERROR;
        goto done;
    }
    t.files = (int64_t)n;
    if (!o->json) {
        char hb[32];
        s_human(mg_kv_get_i64(&info, "bytes", 0), hb, sizeof hb);
        fprintf(err, "job %s (%s, %s): %zu file%s, %s -> %s\n", o->job_id, mg_kv_get_or(&info, "campaign", "?"),
                mg_kv_get_or(&info, "state", "?"), n, n == 1 ? "" : "s", hb, dest);
    }
    for (size_t i = 0; i < n; i++) {
        int r = s_fetch_file(&c, &rows[i], dest, &t);
        if (r < 0) {
            rc = -r;
            goto manifest;
        }
        present[i] = r != S_FAILED;
        t.fetched += r == S_FETCHED;
        t.skipped += r == S_SKIPPED;
        t.failed += r == S_FAILED;
    }
    if (t.failed) rc = S_EXIT_ERROR;
manifest:;
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dest);
    if (s_write_manifest(mpath, rows, present, n) != 0) {
        fprintf(err, "mgctl: cannot write %s: %s\n", mpath, strerror(errno));
        if (!rc) rc = S_EXIT_ERROR;
    }
    double secs = (double)(mg_mono_ms() - t0) / 1000.0;
    if (o->json) {
        mg_kv_t s;
        mg_kv_init(&s);
        mg_kv_set(&s, "job_id", o->job_id);
        mg_kv_set(&s, "dest", dest);
        mg_kv_set(&s, "manifest", mpath);
        mg_kv_set_i64(&s, "files", t.files);
        mg_kv_set_i64(&s, "fetched", t.fetched);
        mg_kv_set_i64(&s, "skipped", t.skipped);
        mg_kv_set_i64(&s, "failed", t.failed);
        mg_kv_set_i64(&s, "bytes", t.bytes_fetched);
        mg_kv_setf(&s, "seconds", "%.3f", secs);
        mg_kv_set(&s, "state", mg_kv_get_or(&info, "state", ""));
        mg_out_json_object(out, &s);
        fputc('\n', out);
        mg_kv_clear(&s);
    } else {
        char hb[32];
        s_human(t.bytes_fetched, hb, sizeof hb);
        fprintf(out, "job %s: %" PRId64 " file%s in %s: %" PRId64 " fetched (%s in %.2f s, %.1f MB/s), %" PRId64
                     " skipped, %" PRId64 " failed; manifest %s\n", o->job_id, t.files, t.files == 1 ? "" : "s", dest,
                t.fetched, hb, secs, secs > 0 ? (double)t.bytes_fetched / 1e6 / secs : 0.0, t.skipped, t.failed,
                mpath);
        if (strcmp(mg_kv_get_or(&info, "state", ""), "active") == 0)
            fprintf(err, "note: job %s is still active: run mgctl fetch again when it is done for the rest\n",
                    o->job_id);
    }
done:
    for (size_t i = 0; rows && i < n; i++) mg_kv_clear(&rows[i]);
    free(rows);
    free(present);
    mg_msg_clear(&m);
    mg_kv_clear(&args);
    mg_kv_clear(&info);
    zmq_close(c.sock);
    zmq_ctx_term(c.ctx);
    return rc;
}

/* fetch.c - `mgctl fetch JOB` (see fetch.h): FILES lists the job's files, then each file
 * comes over in FETCH ranges of MG_FETCH_MAX_BYTES into NAME.part, is checked against the
 * sha256 the coordinator recorded, fsynced and renamed into place.
 *
 * It has its own DEALER socket rather than client.c's request helper, for two reasons: a
 * FETCH reply ends in a raw payload frame (not a kv row), and S_WINDOW requests are kept in
 * flight so that a transfer is not one network round trip per range. One peer, one TCP
 * connection and a single-threaded coordinator: replies come back in request order, and
 * each names its offset, which is checked.
 *
 *   per file:  final verified? -> skipped
 *              else .part (resumed from its length) -> ranges -> sha256 of the whole file
 *                   ok -> fsync, rename to the final name, fsync the folder -> fetched
 *                   bad, had resumed -> start again from byte 0, once
 *                   bad -> .part deleted -> failed
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

/* FETCH requests in flight: 16 MiB, enough to cover a LAN link's round trip, and a bound
 * on what one client queues at the coordinator. */
#define S_WINDOW 4

enum { S_EXIT_OK = 0, S_EXIT_ERROR = 1, S_EXIT_USAGE = 2, S_EXIT_UNREACHABLE = 3 };

typedef struct {
    void *ctx, *sock;
    const mg_fetch_opts_t *o;
    FILE *err;
} s_conn_t;

/* What happened to one file of the job. */
typedef enum {
    S_FILE_FETCHED,  /* downloaded (wholly, or the rest of a .part) and verified */
    S_FILE_SKIPPED,  /* already in DEST with the right sha256 */
    S_FILE_FAILED,   /* not there: the reason was printed */
    S_FILE_KEPT,     /* not asked for (--kind), but in DEST and verified: in the manifest */
    S_FILE_ABSENT,   /* not asked for and not in DEST */
} s_file_status_t;

static const char *const s_status_names[] = {"fetched", "skipped", "failed", "kept", "absent"};

typedef struct {
    s_file_status_t status;
    int64_t fetched_bytes; /* over the wire */
    int64_t resumed_bytes; /* taken from a .part instead */
} s_file_result_t;

/* ---- kinds ------------------------------------------------------------------------------- */

int mg_fetch_parse_kinds(const char *list, unsigned *kinds, char *err, size_t errlen)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        {"mix", MG_FETCH_KIND_MIX}, {"stem", MG_FETCH_KIND_STEM}, {"stems", MG_FETCH_KIND_STEM},
        {"midi", MG_FETCH_KIND_MIDI},
    };
    *kinds = 0;
    if (!list || !*list) {
        *kinds = MG_FETCH_KIND_ALL;
        return 0;
    }
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        char item[48];
        snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item - 1 ? n : sizeof item - 1), p);
        unsigned bit = 0;
        const char *near = NULL;
        int best = 3;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (strcmp(item, names[i].name) == 0) bit = names[i].bit;
            int d = mg_edit_distance(item, names[i].name);
            if (d < best) best = d, near = names[i].name;
        }
        if (!bit) {
            if (!*item) mg_set_error(err, errlen, "--kind '%s': an empty kind (a comma-separated list of mix, stem, midi)", list);
            else if (near) mg_set_error(err, errlen, "--kind: unknown kind '%s' (did you mean '%s'? kinds: mix, stem, midi)", item, near);
            else mg_set_error(err, errlen, "--kind: unknown kind '%s' (a comma-separated list of mix, stem, midi)", item);
            return -1;
        }
        *kinds |= bit;
        p += n;
        if (!*p) break;
        p++;
    }
    return 0;
}

static unsigned s_kind_bit(const char *kind)
{
    if (strcmp(kind, "mix") == 0) return MG_FETCH_KIND_MIX;
    if (strcmp(kind, "stem") == 0) return MG_FETCH_KIND_STEM;
    if (strcmp(kind, "midi") == 0) return MG_FETCH_KIND_MIDI;
    return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

static void s_no_answer(s_conn_t *c)
{
    fprintf(c->err, "mgctl: no answer from the coordinator at %s after %d ms (is mg-coordinator running? see "
                    "docs/cli.md; run mgctl fetch again to resume)\n", c->o->endpoint, c->o->timeout_ms);
}

/* 0, or the exit code after printing why. */
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
        s_no_answer(c);
        return S_EXIT_UNREACHABLE;
    }
    fprintf(c->err, "mgctl: cannot send %s: %s\n", cmd, zmq_strerror(e));
    return S_EXIT_ERROR;
}

/* Waits for one reply into m and decodes its info frame. Returns 0 for OK, 1 for ERR (info
 * has code and message; nothing printed), or minus the exit code after printing why (no
 * answer -3, a malformed reply or socket error -1). */
static int s_recv(s_conn_t *c, const char *cmd, mg_msg_t *m, mg_kv_t *info)
{
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, c->o->timeout_ms);
    if (n == 0) {
        s_no_answer(c);
        return -S_EXIT_UNREACHABLE;
    }
    if (n < 0 || mg_msg_recv(m, c->sock, 0) != 0) {
        fprintf(c->err, "mgctl: waiting for the %s reply failed: %s\n", cmd, zmq_strerror(errno));
        return -S_EXIT_ERROR;
    }
    if (m->n < 3 || !mg_msg_is(m, 0, MG_PROTO_CLIENT) || mg_msg_kv(m, 2, info) != 0 ||
        !(mg_msg_is(m, 1, MG_REPLY_OK) || mg_msg_is(m, 1, MG_REPLY_ERR))) {
        fprintf(c->err, "mgctl: bad reply to %s from %s (not an %s OK/ERR reply: is it an mg coordinator of "
                        "this version?)\n", cmd, c->o->endpoint, MG_PROTO_CLIENT);
        return -S_EXIT_ERROR;
    }
    return mg_msg_is(m, 1, MG_REPLY_OK) ? 0 : 1;
}

static void s_print_err_reply(s_conn_t *c, const char *what, const mg_kv_t *info)
{
    fprintf(c->err, "mgctl: %s%s%s (%s)\n", what ? what : "", what ? ": " : "",
            mg_kv_get_or(info, "message", "refused with no message"), mg_kv_get_or(info, "code", "?"));
}

/* ---- local files ------------------------------------------------------------------------- */

/* A file name from the coordinator becomes a path under DEST: refuse anything that could
 * land outside it (absolute, "..", "." or empty components). */
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

/* Feeds the first len bytes of fd to h. 0, or -1 (errno; EIO when the file is shorter). */
static int s_hash_prefix(int fd, int64_t len, mg_sha256_t *h)
{
    static unsigned char buf[1 << 20];
    for (int64_t off = 0; off < len;) {
        size_t want = (size_t)(len - off < (int64_t)sizeof buf ? len - off : (int64_t)sizeof buf);
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) errno = EIO;
        if (r <= 0) return -1;
        mg_sha256_update(h, buf, (size_t)r);
        off += r;
    }
    return 0;
}

/* Is path a regular file of exactly bytes bytes whose sha256 is want? */
static int s_verified(const char *path, int64_t bytes, const char *want)
{
    struct stat sb;
    char have[65];
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == bytes && mg_sha256_file_hex(path, have) == 0 &&
           strcmp(have, want) == 0;
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

/* Downloads bytes [from, bytes) of output id into fd (the .part) with S_WINDOW requests in
 * flight, feeding h and counting into *fetched. Returns 0 when every byte arrived, 1 when
 * this file failed (reason printed, the .part keeps what was written), or minus the exit
 * code when the whole run must stop (no answer, socket error). */
static int s_download(s_conn_t *c, const char *rel, int64_t id, const char *want, int fd, const char *part,
                      int64_t from, int64_t bytes, mg_sha256_t *h, int64_t *fetched)
{
    int64_t sent = from, done = from, last_note = mg_mono_ms();
    int inflight = 0, bad = 0, rc = 0;
    int tty = !c->o->json && isatty(fileno(c->err));
    mg_msg_t m;
    mg_msg_init(&m);
    while (inflight > 0 || (!bad && done < bytes)) {
        while (!bad && inflight < S_WINDOW && sent < bytes) {
            int64_t len = bytes - sent < MG_FETCH_MAX_BYTES ? bytes - sent : MG_FETCH_MAX_BYTES;
            mg_kv_t a;
            mg_kv_init(&a);
            mg_kv_set_i64(&a, "output_id", id);
            mg_kv_set_i64(&a, "offset", sent);
            mg_kv_set_i64(&a, "length", len);
            int s = s_send(c, MG_CMD_FETCH, &a);
            mg_kv_clear(&a);
            if (s) {
                rc = -s;
                goto out;
            }
            sent += len;
            inflight++;
        }
        mg_kv_t info;
        mg_kv_init(&info);
        int r = s_recv(c, MG_CMD_FETCH, &m, &info);
        inflight--;
        if (r < 0) {
            mg_kv_clear(&info);
            rc = r;
            goto out;
        }
        /* After the first problem the replies still in flight are read and dropped: the
         * next request on this socket must get its own reply. */
        if (bad) {
        } else if (r == 1) {
            s_print_err_reply(c, rel, &info);
            bad = 1;
        } else {
            int64_t off = mg_kv_get_i64(&info, "offset", -1);
            size_t len = m.n >= 4 ? m.size[3] : 0;
            if (off != done || (int64_t)len != mg_kv_get_i64(&info, "length", -1) || len == 0 ||
                done + (int64_t)len > bytes || strcmp(mg_kv_get_or(&info, "sha256", ""), want) != 0) {
                fprintf(c->err, "mgctl: %s: the coordinator answered offset %" PRId64 " (%zu bytes, sha256 %.12s...) "
                                "where offset %" PRId64 " of sha256 %.12s... was asked: the file changed there, run "
                                "mgctl fetch again\n", rel, off, len, mg_kv_get_or(&info, "sha256", ""), done, want);
                bad = 1;
            } else if (s_write_all(fd, m.data[3], len, done) != 0) {
                fprintf(c->err, "mgctl: cannot write %s: %s\n", part, strerror(errno));
                bad = 1;
            } else {
                mg_sha256_update(h, m.data[3], len);
                done += (int64_t)len;
                *fetched += (int64_t)len;
                if (tty && mg_mono_ms() - last_note >= 500) {
                    last_note = mg_mono_ms();
                    fprintf(c->err, "\r  %s  %d%%\033[K", rel, (int)(100.0 * (double)done / (double)bytes));
                }
            }
        }
        mg_kv_clear(&info);
    }
    rc = bad;
out:
    if (tty) fprintf(c->err, "\r\033[K");
    mg_msg_clear(&m);
    return rc;
}

/* Brings row's file into dest. Returns 0 with *res filled in (S_FILE_FETCHED, _SKIPPED,
 * _FAILED with the reason printed), or minus the exit code when the run must stop. */
static int s_fetch_file(s_conn_t *c, const mg_kv_t *row, const char *dest, s_file_result_t *res)
{
    const char *rel = mg_kv_get_or(row, "file", "");
    const char *want = mg_kv_get_or(row, "sha256", "");
    int64_t bytes = mg_kv_get_i64(row, "bytes", -1);
    int64_t id = mg_kv_get_i64(row, "output_id", 0);
    memset(res, 0, sizeof *res);
    res->status = S_FILE_FAILED;
    char final[4200], part[4300];
    if (!s_safe_rel(rel) || bytes < 0 || strlen(want) != 64 ||
        snprintf(final, sizeof final, "%s/%s", dest, rel) >= (int)sizeof final) {
        fprintf(c->err, "mgctl: the coordinator listed output %" PRId64 " as '%s' (%" PRId64 " bytes): not a "
                        "safe relative file name, not fetched\n", id, rel, bytes);
        return 0;
    }
    snprintf(part, sizeof part, "%s.part", final);
    struct stat sb;
    if (s_verified(final, bytes, want)) {
        unlink(part); /* a leftover of an earlier cut transfer */
        res->status = S_FILE_SKIPPED;
        return 0;
    }
    /* Whatever is under the final name now is not the recorded file: it goes, so that a
     * failure below cannot leave a wrong file looking like a fetched one. */
    if (unlink(final) == 0) fprintf(c->err, "mgctl: %s did not match its sha256: replaced\n", final);
    if (s_mkdir_parent(final) != 0) {
        fprintf(c->err, "mgctl: cannot create the folder of %s: %s\n", final, strerror(errno));
        return 0;
    }
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fprintf(c->err, "mgctl: cannot open %s: %s\n", part, strerror(errno));
        if (fd >= 0) close(fd);
        return 0;
    }
    /* A .part from a cut transfer: keep its bytes and ask only for the rest. Its prefix is
     * hashed here; the whole file's sha256 decides at the end. A .part longer than the file
     * is not from this file. */
    int64_t from = sb.st_size <= bytes ? (int64_t)sb.st_size : 0;
    if (sb.st_size > bytes && ftruncate(fd, 0) != 0) from = -1;
    for (int attempt = 0;; attempt++) {
        mg_sha256_t h;
        mg_sha256_init(&h);
        if (from < 0 || s_hash_prefix(fd, from, &h) != 0) {
            fprintf(c->err, "mgctl: cannot read %s: %s (delete it and run mgctl fetch again)\n", part,
                    strerror(errno));
            close(fd);
            return 0;
        }
        res->resumed_bytes = from;
        int r = s_download(c, rel, id, want, fd, part, from, bytes, &h, &res->fetched_bytes);
        if (r != 0) {
            close(fd);
            return r < 0 ? r : 0;
        }
        char have[65];
        mg_sha256_final_hex(&h, have);
        if (strcmp(have, want) == 0) break;
        if (from > 0 && attempt == 0) {
            /* The .part's first bytes were damaged (a crash before they reached the disk,
             * say): once more from the start. */
            fprintf(c->err, "mgctl: %s: the resumed file's sha256 does not match; fetching it again from the start\n",
                    rel);
            if (ftruncate(fd, 0) != 0) from = -1;
            else from = 0;
            continue;
        }
        close(fd);
        unlink(part);
        fprintf(c->err, "mgctl: %s: sha256 %.16s... after download, %.16s... recorded by the coordinator; deleted, "
                        "not kept under its name (the coordinator's copy differs from what it recorded: check it "
                        "with mgctl audit verify there)\n", rel, have, want);
        return 0;
    }
    if (fsync(fd) != 0) {
        fprintf(c->err, "mgctl: cannot sync %s: %s\n", part, strerror(errno));
        close(fd);
        return 0;
    }
    close(fd);
    if (rename(part, final) != 0 || s_fsync_parent(final) != 0) {
        fprintf(c->err, "mgctl: cannot move %s into place: %s\n", part, strerror(errno));
        return 0;
    }
    res->status = S_FILE_FETCHED;
    return 0;
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

/* A number field: the coordinator's value as a JSON number, null when it has none. */
static void s_json_numkey(mg_strbuf_t *sb, const char *key, const char *v)
{
    mg_json_key(sb, key);
    if (v && s_json_number(v)) mg_json_raw(sb, v);
    else mg_json_str(sb, NULL);
}

static void s_json_strkey(mg_strbuf_t *sb, const char *key, const char *v)
{
    mg_json_key(sb, key);
    mg_json_str(sb, v ? v : "");
}

/* DEST/manifest.json: the job, then one object per file present in DEST (fetched, skipped
 * or kept), one per line so that it diffs and greps by file name. Written atomically. */
static int s_write_manifest(const char *path, const mg_kv_t *info, const char *job_id, const mg_kv_t *rows,
                            const s_file_result_t *res, size_t n)
{
    mg_strbuf_t doc;
    mg_sb_init(&doc);
    mg_sb_printf(&doc, "{\"job_id\": %s, ", s_json_number(job_id) ? job_id : "null");
    mg_sb_puts(&doc, "\"campaign\": ");
    mg_json_escape(&doc, mg_kv_get_or(info, "campaign", ""));
    mg_sb_puts(&doc, ", \"files\": [");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        s_file_status_t st = res[i].status;
        if (st != S_FILE_FETCHED && st != S_FILE_SKIPPED && st != S_FILE_KEPT) continue;
        const mg_kv_t *r = &rows[i];
        mg_strbuf_t sb;
        mg_sb_init(&sb);
        mg_json_obj_open(&sb);
        s_json_strkey(&sb, "file", mg_kv_get(r, "file"));
        s_json_strkey(&sb, "kind", mg_kv_get(r, "kind"));
        s_json_strkey(&sb, "part", mg_kv_get(r, "part"));
        s_json_strkey(&sb, "format", mg_kv_get(r, "format"));
        s_json_strkey(&sb, "sha256", mg_kv_get(r, "sha256"));
        s_json_numkey(&sb, "bytes", mg_kv_get(r, "bytes"));
        s_json_numkey(&sb, "duration_s", mg_kv_get(r, "duration_s"));
        s_json_numkey(&sb, "sample_rate", mg_kv_get(r, "sample_rate"));
        s_json_numkey(&sb, "channels", mg_kv_get(r, "channels"));
        s_json_numkey(&sb, "integrated_lufs", mg_kv_get(r, "integrated_lufs"));
        s_json_numkey(&sb, "render_id", mg_kv_get(r, "render_id"));
        /* a 64-bit seed does not survive a JSON reader's double: a string, as in --json */
        s_json_strkey(&sb, "seed", mg_kv_get(r, "seed"));
        s_json_strkey(&sb, "cue", mg_kv_get(r, "cue"));
        s_json_numkey(&sb, "variation", mg_kv_get(r, "variation"));
        mg_json_obj_close(&sb);
        mg_sb_puts(&doc, first ? "\n  " : ",\n  ");
        if (sb.buf) mg_sb_append(&doc, sb.buf, sb.len);
        doc.oom |= sb.oom;
        mg_sb_free(&sb);
        first = 0;
    }
    mg_sb_puts(&doc, first ? "]}\n" : "\n]}\n");
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

int mg_fetch_run(const mg_fetch_opts_t *o, FILE *out, FILE *err)
{
    unsigned kinds = o->kinds ? o->kinds : MG_FETCH_KIND_ALL;
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
    mg_msg_t m;
    mg_msg_init(&m);
    mg_kv_t *rows = NULL;
    s_file_result_t *res = NULL;
    size_t n = 0;
    int64_t asked = 0, fetched = 0, skipped = 0, failed = 0, kept = 0, wire = 0, resumed = 0, asked_bytes = 0;
    char dest[4096], mpath[4200];
    /* Every file of the job is listed, whatever --kind says: the manifest describes all of
     * the job's files in DEST, also those an earlier run with another --kind brought. */
    int rc = s_send(&c, MG_CMD_FILES, &args);
    if (!rc) {
        int r = s_recv(&c, MG_CMD_FILES, &m, &info);
        if (r == 1) s_print_err_reply(&c, NULL, &info);
        rc = r < 0 ? -r : r;
    }
    if (rc) goto done;
    n = m.n - 3;
    rows = calloc(n + 1, sizeof *rows);
    res = calloc(n + 1, sizeof *res);
    if (!rows || !res) {
        fprintf(err, "mgctl: out of memory (%zu files)\n", n);
        rc = S_EXIT_ERROR;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        res[i].status = S_FILE_ABSENT;
        if (mg_msg_kv(&m, 3 + i, &rows[i]) != 0) {
            fprintf(err, "mgctl: bad reply to FILES: row %zu is not a kv record\n", i + 1);
            rc = S_EXIT_ERROR;
            goto done;
        }
    }
    mg_msg_clear(&m);
    const char *out_dir = mg_kv_get_or(&info, "output_dir", "");
    if (o->dest && *o->dest) mg_strlcpy(dest, o->dest, sizeof dest);
    else if (*out_dir && s_safe_rel(out_dir) && !strchr(out_dir, '/')) snprintf(dest, sizeof dest, "./%s", out_dir);
    else snprintf(dest, sizeof dest, "./job-%s", o->job_id);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dest);
    if (mg_mkdir_p(dest, 0755) != 0) {
        fprintf(err, "mgctl: cannot create %s: %s\n", dest, strerror(errno));
        rc = S_EXIT_ERROR;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (s_kind_bit(mg_kv_get_or(&rows[i], "kind", "")) & kinds) {
            asked++;
            asked_bytes += mg_kv_get_i64(&rows[i], "bytes", 0);
        }
    if (!o->json) {
        char hb[32];
        s_human(asked_bytes, hb, sizeof hb);
        fprintf(out, "job %s (%s, %s, %s of %s renders done): %" PRId64 " file%s, %s -> %s\n", o->job_id,
                mg_kv_get_or(&info, "campaign", "?"), mg_kv_get_or(&info, "state", "?"),
                mg_kv_get_or(&info, "renders_done", "?"), mg_kv_get_or(&info, "renders", "?"), asked,
                asked == 1 ? "" : "s", hb, dest);
        fflush(out);
    }
    for (size_t i = 0; i < n; i++) {
        const mg_kv_t *row = &rows[i];
        if (!(s_kind_bit(mg_kv_get_or(row, "kind", "")) & kinds)) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dest, mg_kv_get_or(row, "file", ""));
            if (s_safe_rel(mg_kv_get_or(row, "file", "")) &&
                s_verified(path, mg_kv_get_i64(row, "bytes", -1), mg_kv_get_or(row, "sha256", "")))
                res[i].status = S_FILE_KEPT, kept++;
            continue;
        }
        int r = s_fetch_file(&c, row, dest, &res[i]);
        if (r < 0) {
            rc = -r;
            break;
        }
        fetched += res[i].status == S_FILE_FETCHED;
        skipped += res[i].status == S_FILE_SKIPPED;
        failed += res[i].status == S_FILE_FAILED;
        wire += res[i].fetched_bytes;
        if (res[i].status == S_FILE_FETCHED) resumed += res[i].resumed_bytes;
        if (!o->json && res[i].status != S_FILE_FAILED) {
            char hb[32], rb[32];
            s_human(mg_kv_get_i64(row, "bytes", 0), hb, sizeof hb);
            s_human(res[i].resumed_bytes, rb, sizeof rb);
            fprintf(out, "  %-8s %s (%s%s%s%s)\n", s_status_names[res[i].status], mg_kv_get_or(row, "file", ""), hb,
                    res[i].status == S_FILE_SKIPPED ? ", sha256 ok" : "",
                    res[i].status == S_FILE_FETCHED && res[i].resumed_bytes > 0 ? ", resumed after " : "",
                    res[i].status == S_FILE_FETCHED && res[i].resumed_bytes > 0 ? rb : "");
            fflush(out);
        }
    }
    if (!rc && failed) rc = S_EXIT_ERROR;
    if (s_write_manifest(mpath, &info, o->job_id, rows, res, n) != 0) {
        fprintf(err, "mgctl: cannot write %s: %s\n", mpath, strerror(errno));
        if (!rc) rc = S_EXIT_ERROR;
    }
    double secs = (double)(mg_mono_ms() - t0) / 1000.0;
    double mbps = secs > 0 ? (double)wire / 1e6 / secs : 0.0;
    if (o->json) {
        mg_kv_t s;
        mg_kv_init(&s);
        mg_kv_set(&s, "job_id", o->job_id);
        mg_kv_set(&s, "campaign", mg_kv_get_or(&info, "campaign", ""));
        mg_kv_set(&s, "state", mg_kv_get_or(&info, "state", ""));
        mg_kv_set(&s, "renders", mg_kv_get_or(&info, "renders", ""));
        mg_kv_set(&s, "renders_done", mg_kv_get_or(&info, "renders_done", ""));
        mg_kv_set(&s, "dest", dest);
        mg_kv_set(&s, "manifest", mpath);
        mg_kv_set_i64(&s, "files", asked);
        mg_kv_set_i64(&s, "fetched", fetched);
        mg_kv_set_i64(&s, "skipped", skipped);
        mg_kv_set_i64(&s, "failed", failed);
        mg_kv_set_i64(&s, "kept", kept);
        mg_kv_set_i64(&s, "bytes", wire);
        mg_kv_set_i64(&s, "resumed_bytes", resumed);
        mg_kv_setf(&s, "seconds", "%.3f", secs);
        mg_kv_setf(&s, "mb_per_s", "%.1f", mbps);
        mg_kv_t *fr = calloc(asked + 1, sizeof *fr);
        size_t k = 0;
        for (size_t i = 0; fr && i < n; i++) {
            if (!(s_kind_bit(mg_kv_get_or(&rows[i], "kind", "")) & kinds)) continue;
            mg_kv_init(&fr[k]);
            static const char *const keys[] = {"file", "kind", "part", "format", "bytes", "sha256", "render_id"};
            for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
                mg_kv_set(&fr[k], keys[j], mg_kv_get_or(&rows[i], keys[j], ""));
            /* a file not reached before the run stopped is still "absent" */
            mg_kv_set(&fr[k], "status", s_status_names[res[i].status]);
            mg_kv_set_i64(&fr[k], "fetched_bytes", res[i].fetched_bytes);
            mg_kv_set_i64(&fr[k], "resumed_bytes", res[i].resumed_bytes);
            k++;
        }
        if (rc != S_EXIT_UNREACHABLE) mg_out_json_reply(out, &s, fr, k);
        for (size_t i = 0; i < k; i++) mg_kv_clear(&fr[i]);
        free(fr);
        mg_kv_clear(&s);
    } else {
        char hb[32];
        s_human(wire, hb, sizeof hb);
        fprintf(out, "job %s: %" PRId64 " fetched (%s in %.2f s, %.1f MB/s), %" PRId64 " skipped, %" PRId64
                     " failed; manifest %s\n", o->job_id, fetched, hb, secs, mbps, skipped, failed, mpath);
        if (strcmp(mg_kv_get_or(&info, "state", ""), "active") == 0)
            fprintf(err, "note: job %s is still active: only its done renders' files were fetched; run mgctl fetch "
                         "again when it is done for the rest\n", o->job_id);
    }
done:
    for (size_t i = 0; rows && i < n; i++) mg_kv_clear(&rows[i]);
    free(rows);
    free(res);
    mg_msg_clear(&m);
    mg_kv_clear(&args);
    mg_kv_clear(&info);
    zmq_close(c.sock);
    zmq_ctx_term(c.ctx);
    return rc;
}

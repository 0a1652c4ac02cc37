/* fetch.c - FILES and FETCH: how `mgctl fetch` copies a job's deliverables from the
 * coordinator to any machine over the client socket (see fetch.h; docs/protocol.md, "FILES and FETCH").
 *
 * The coordinator's loop is single-threaded, so FETCH reads a bounded range (at most
 * MG_FETCH_MAX_BYTES) with one pread and returns: a large transfer is many short requests
 * interleaved with the workers' traffic, never one long blocking send.
 */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "db.h"

int mg_fetch_is_command(const char *cmd)
{
    return strcmp(cmd, MG_CMD_FILES) == 0 || strcmp(cmd, MG_CMD_FETCH) == 0;
}

static int s_fail(char *code, size_t codelen, const char *c, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int s_fail(char *code, size_t codelen, const char *c, char *err, size_t errlen, const char *fmt, ...)
{
    mg_strlcpy(code, c, codelen);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* kinds: comma-separated subset of mix,stem,midi ("" = all). 0, or -1 naming the bad item. */
static int s_check_kinds(const char *kinds, char *bad, size_t badlen)
{
    const char *p = kinds;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (!((n == 3 && strncmp(p, "mix", 3) == 0) || (n == 4 && strncmp(p, "stem", 4) == 0) ||
              (n == 4 && strncmp(p, "midi", 4) == 0))) {
            snprintf(bad, badlen, "%.*s", (int)(n < 40 ? n : 40), p);
            return -1;
        }
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

static int s_files(mg_store_t *s, const mg_kv_t *args, mg_kv_t *info, mg_msg_t *frames, char *code, size_t codelen,
                   char *err, size_t errlen)
{
    sqlite3 *db = s->db;
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    const char *kinds = mg_kv_get_or(args, "kinds", "");
    char bad[48];
    if (s_check_kinds(kinds, bad, sizeof bad) != 0)
        return s_fail(code, codelen, "bad_request", err, errlen, "unknown file kind '%s' (mix, stem, midi)", bad);
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT campaign, output_dir, state FROM jobs WHERE id = ?", "i", job_id);
    if (!st) return s_fail(code, codelen, "internal", err, errlen, "cannot read job %" PRId64, job_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return s_fail(code, codelen, "not_found", err, errlen, "no job %" PRId64 " (see mgctl list)", job_id);
    }
    mg_kv_set_i64(info, "job_id", job_id);
    mg_kv_set(info, "campaign", (const char *)sqlite3_column_text(st, 0));
    mg_kv_set(info, "output_dir", (const char *)sqlite3_column_text(st, 1));
    mg_kv_set(info, "state", (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    mg_kv_set_i64(info, "renders", mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE job_id = ?", "i", job_id));
    mg_kv_set_i64(info, "renders_done",
                  mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE job_id = ? AND state = 'done'", "i", job_id));
    /* Only done renders: their rows and files were committed together, so every listed file
     * is whole. file: the path below the job's own folder, which is what the client
     * recreates under its destination. The loudness is the render's, measured on the mix: a
     * stem or a MIDI file has none of its own. */
    st = mg_db_prepare(db,
        "SELECT o.id AS output_id, o.render_id, o.path, "
        "CASE WHEN substr(o.path, 1, length(j.output_dir) + 1) = j.output_dir || '/' "
        "THEN substr(o.path, length(j.output_dir) + 2) ELSE o.path END AS file, "
        "o.kind, o.part, o.format, o.sha256, o.bytes, o.duration_s, o.sample_rate, o.channels, "
        "CASE o.kind WHEN 'mix' THEN json_extract(p.record_json, '$.integrated_lufs') END AS integrated_lufs, "
        "r.seed, c.name AS cue, r.variation + 1 AS variation "
        "FROM outputs o JOIN renders r ON r.id = o.render_id JOIN jobs j ON j.id = r.job_id "
        "JOIN cues c ON c.id = r.cue_id LEFT JOIN provenance p ON p.render_id = o.render_id "
        "WHERE r.job_id = ?1 AND r.state = 'done' AND (?2 = '' OR instr(',' || ?2 || ',', ',' || o.kind || ',') > 0) "
        "ORDER BY o.render_id, CASE o.kind WHEN 'mix' THEN 0 WHEN 'stem' THEN 1 ELSE 2 END, o.part, o.format",
        "is", job_id, kinds);
    if (!st) return s_fail(code, codelen, "internal", err, errlen, "cannot list the files of job %" PRId64, job_id);
    int rc;
    int64_t n = 0, bytes = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        mg_kv_t row;
        mg_kv_init(&row);
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            mg_kv_set(&row, sqlite3_column_name(st, c), t ? (const char *)t : "");
        }
        bytes += sqlite3_column_int64(st, 8);
        n++;
        int added = mg_msg_add_kv(frames, &row);
        mg_kv_clear(&row);
        if (added != 0) {
            sqlite3_finalize(st);
            return s_fail(code, codelen, "internal", err, errlen, "out of memory listing job %" PRId64, job_id);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return s_fail(code, codelen, "internal", err, errlen, "cannot list the files of job %" PRId64 ": %s", job_id,
                      sqlite3_errmsg(db));
    mg_kv_set_i64(info, "files", n);
    mg_kv_set_i64(info, "bytes", bytes);
    return 0;
}

/* The absolute path of an outputs row, only if it resolves to a regular file inside the
 * outputs folder: a row whose path climbs out ("../", absolute) or a symlink that leads out
 * is refused, so FETCH can never be turned into a way to read other files. */
static int s_climbs_out(const char *rel)
{
    if (!*rel || rel[0] == '/') return 1;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
        p += n;
        if (*p == '/') p++;
    }
    return 0;
}

static int s_resolve(const mg_store_t *s, const char *rel, char *abs, size_t abslen, char *why, size_t whylen)
{
    if (s_climbs_out(rel)) {
        snprintf(why, whylen, "its recorded path '%s' is not inside the outputs folder", rel);
        return -1;
    }
    char root[PATH_MAX], joined[PATH_MAX * 2];
    if (!realpath(s->outputs_dir, root)) {
        snprintf(why, whylen, "the outputs folder %s is unreadable: %s", s->outputs_dir, strerror(errno));
        return -1;
    }
    if (snprintf(joined, sizeof joined, "%s/%s", root, rel) >= (int)sizeof joined) {
        snprintf(why, whylen, "its recorded path is too long (%zu bytes)", strlen(rel));
        return -1;
    }
    if (!realpath(joined, abs)) {
        snprintf(why, whylen, "%.2000s is missing on the coordinator: %s", joined, strerror(errno));
        return -1;
    }
    size_t n = strlen(root);
    if (strncmp(abs, root, n) != 0 || abs[n] != '/' || strlen(abs) >= abslen) {
        snprintf(why, whylen, "%.1000s resolves to %.1000s, outside the outputs folder %.1000s", joined, abs, root);
        return -1;
    }
    return 0;
}

static int s_fetch(mg_store_t *s, const mg_kv_t *args, mg_kv_t *info, mg_msg_t *frames, char *code, size_t codelen,
                   char *err, size_t errlen)
{
    int64_t id = mg_kv_get_i64(args, "output_id", 0);
    int64_t offset = mg_kv_get_i64(args, "offset", 0);
    int64_t length = mg_kv_get_i64(args, "length", MG_FETCH_MAX_BYTES);
    if (offset < 0 || length < 0)
        return s_fail(code, codelen, "bad_request", err, errlen, "offset and length must be >= 0");
    if (length > MG_FETCH_MAX_BYTES) length = MG_FETCH_MAX_BYTES;
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT o.path, o.sha256, o.bytes FROM outputs o JOIN renders r ON r.id = o.render_id "
        "WHERE o.id = ? AND r.state = 'done'", "i", id);
    if (!st) return s_fail(code, codelen, "internal", err, errlen, "cannot read output %" PRId64, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return s_fail(code, codelen, "not_found", err, errlen,
                      "no output %" PRId64 " of a done render (FILES lists a job's output ids)", id);
    }
    char rel[4096], sha[65];
    mg_strlcpy(rel, (const char *)sqlite3_column_text(st, 0), sizeof rel);
    mg_strlcpy(sha, (const char *)sqlite3_column_text(st, 1), sizeof sha);
    int64_t bytes = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    char abs[PATH_MAX], why[PATH_MAX * 3];
    if (s_resolve(s, rel, abs, sizeof abs, why, sizeof why) != 0)
        return s_fail(code, codelen, "not_found", err, errlen, "output %" PRId64 " cannot be served: %s", id, why);
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); /* abs is canonical: no link left to follow */
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        if (fd >= 0) close(fd);
        return s_fail(code, codelen, "internal", err, errlen, "cannot open %s: %s", abs,
                      fd < 0 ? strerror(e) : "not a regular file");
    }
    if ((int64_t)sb.st_size != bytes) {
        close(fd);
        return s_fail(code, codelen, "internal", err, errlen,
                      "%s is %lld bytes on disk but %" PRId64 " were recorded: it changed after mg wrote it "
                      "(check it with mgctl verify)", abs, (long long)sb.st_size, bytes);
    }
    if (offset > bytes) {
        close(fd);
        return s_fail(code, codelen, "bad_request", err, errlen,
                      "offset %" PRId64 " is past the end of output %" PRId64 " (%" PRId64 " bytes)", offset, id, bytes);
    }
    if (length > bytes - offset) length = bytes - offset;
    void *buf = malloc(length ? (size_t)length : 1);
    if (!buf) {
        close(fd);
        return s_fail(code, codelen, "internal", err, errlen, "out of memory (%" PRId64 " bytes)", length);
    }
    size_t got = 0;
    while (got < (size_t)length) {
        ssize_t r = pread(fd, (char *)buf + got, (size_t)length - got, (off_t)(offset + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return s_fail(code, codelen, "internal", err, errlen, "cannot read %s at %" PRId64 ": %s", abs,
                          offset + (int64_t)got, r == 0 ? "file shrank" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    mg_kv_set_i64(info, "output_id", id);
    mg_kv_set(info, "path", rel);
    mg_kv_set(info, "sha256", sha);
    mg_kv_set_i64(info, "bytes", bytes);
    mg_kv_set_i64(info, "offset", offset);
    mg_kv_set_i64(info, "length", length);
    if (mg_msg_add_owned(frames, &buf, (size_t)length) != 0) {
        free(buf);
        return s_fail(code, codelen, "internal", err, errlen, "out of memory");
    }
    return 0;
}

int mg_fetch_handle(mg_store_t *s, const char *cmd, const mg_kv_t *args, mg_kv_t *info, mg_msg_t *frames,
                    char *code, size_t codelen, char *err, size_t errlen)
{
    if (strcmp(cmd, MG_CMD_FILES) == 0) return s_files(s, args, info, frames, code, codelen, err, errlen);
    return s_fetch(s, args, info, frames, code, codelen, err, errlen);
}

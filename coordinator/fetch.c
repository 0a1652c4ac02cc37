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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "query.h"

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

static int s_files(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    const char *kinds = mg_kv_get_or(args, "kinds", "");
    char bad[48];
    if (s_check_kinds(kinds, bad, sizeof bad) != 0)
        return mg_reply_fail(r, "bad_request", "unknown file kind '%s' (mix, stem, midi)", bad);
    return mg_query_files(s, job_id, kinds, r);
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

static int s_resolve(const char *outputs_dir, const char *rel, char *abs, size_t abslen, char *why, size_t whylen)
{
    if (s_climbs_out(rel)) {
        snprintf(why, whylen, "its recorded path '%s' is not inside the outputs folder", rel);
        return -1;
    }
    char root[PATH_MAX], joined[PATH_MAX * 2];
    if (!realpath(outputs_dir, root)) {
        snprintf(why, whylen, "the outputs folder %s is unreadable: %s", outputs_dir, strerror(errno));
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

static int s_fetch(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    int64_t id = mg_kv_get_i64(args, "output_id", 0);
    int64_t offset = mg_kv_get_i64(args, "offset", 0);
    int64_t length = mg_kv_get_i64(args, "length", MG_FETCH_MAX_BYTES);
    if (offset < 0 || length < 0) return mg_reply_fail(r, "bad_request", "offset and length must be >= 0");
    if (length > MG_FETCH_MAX_BYTES) length = MG_FETCH_MAX_BYTES;
    char rel[4096], sha[65];
    int64_t bytes = 0;
    int found = mg_query_output(s, id, rel, sizeof rel, sha, &bytes);
    if (found < 0) return mg_reply_fail(r, "internal", "cannot read output %" PRId64, id);
    if (found == 0)
        return mg_reply_fail(r, "not_found", "no output %" PRId64 " of a done render (FILES lists a job's output ids)",
                             id);
    char abs[PATH_MAX], why[PATH_MAX * 3];
    if (s_resolve(mg_store_outputs_dir(s), rel, abs, sizeof abs, why, sizeof why) != 0)
        return mg_reply_fail(r, "not_found", "output %" PRId64 " cannot be served: %s", id, why);
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); /* abs is canonical: no link left to follow */
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        if (fd >= 0) close(fd);
        return mg_reply_fail(r, "internal", "cannot open %s: %s", abs, fd < 0 ? strerror(e) : "not a regular file");
    }
    if ((int64_t)sb.st_size != bytes) {
        close(fd);
        return mg_reply_fail(r, "internal",
                             "%s is %lld bytes on disk but %" PRId64 " were recorded: it changed after mg wrote it "
                             "(check it with mgctl verify)", abs, (long long)sb.st_size, bytes);
    }
    if (offset > bytes) {
        close(fd);
        return mg_reply_fail(r, "bad_request",
                             "offset %" PRId64 " is past the end of output %" PRId64 " (%" PRId64 " bytes)", offset, id, bytes);
    }
    if (length > bytes - offset) length = bytes - offset;
    void *buf = malloc(length ? (size_t)length : 1);
    if (!buf) {
        close(fd);
        return mg_reply_fail(r, "internal", "out of memory (%" PRId64 " bytes)", length);
    }
    size_t got = 0;
    while (got < (size_t)length) {
        ssize_t k = pread(fd, (char *)buf + got, (size_t)length - got, (off_t)(offset + (int64_t)got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return mg_reply_fail(r, "internal", "cannot read %s at %" PRId64 ": %s", abs, offset + (int64_t)got,
                                 k == 0 ? "file shrank" : strerror(e));
        }
        got += (size_t)k;
    }
    close(fd);
    mg_kv_set_i64(&r->info, "output_id", id);
    mg_kv_set(&r->info, "path", rel);
    mg_kv_set(&r->info, "sha256", sha);
    mg_kv_set_i64(&r->info, "bytes", bytes);
    mg_kv_set_i64(&r->info, "offset", offset);
    mg_kv_set_i64(&r->info, "length", length);
    if (mg_msg_add_owned(&r->rows, &buf, (size_t)length) != 0) {
        free(buf);
        return mg_reply_fail(r, "internal", "out of memory");
    }
    return 0;
}

int mg_fetch_handle(mg_store_t *s, const char *cmd, const mg_kv_t *args, mg_reply_t *r)
{
    if (strcmp(cmd, MG_CMD_FILES) == 0) return s_files(s, args, r);
    return s_fetch(s, args, r);
}

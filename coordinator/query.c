/* query.c - the store's read-only queries (see query.h): what mgctl's status, list, workers,
 * schedule list, audit, verify and watch show, and the lookups of fetch.c and schedule.c.
 *
 * It reads through the store's connection (store_internal.h) and never writes: no
 * transaction is opened here, each SELECT sees the last commit. Most replies are tables:
 * s_rows turns every result row into one kv frame, column names as keys, so the SQL's column
 * aliases are the protocol's field names (docs/protocol.md).
 */
#include "query.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "db.h"
#include "provenance.h"
#include "schedule.h"
#include "sign.h"
#include "store_internal.h"

void mg_reply_init(mg_reply_t *r)
{
    mg_kv_init(&r->info);
    mg_msg_init(&r->rows);
    r->failed = 0;
}

void mg_reply_clear(mg_reply_t *r)
{
    mg_kv_clear(&r->info);
    mg_msg_clear(&r->rows);
}

int mg_reply_fail(mg_reply_t *r, const char *code, const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mg_kv_clear(&r->info);
    mg_kv_set(&r->info, "code", code);
    mg_kv_set(&r->info, "message", msg);
    mg_msg_clear(&r->rows);
    r->failed = 1;
    return -1;
}

/* Appends one row frame per result row of st (column names as keys); finalizes st. Returns
 * the number of rows, or -1 with the reply failed (st NULL: the prepare failed). */
static int s_rows(mg_store_t *s, mg_reply_t *r, sqlite3_stmt *st)
{
    if (!st) return mg_reply_fail(r, "internal", "query failed: %s", sqlite3_errmsg(s->db));
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        mg_kv_t row;
        mg_kv_init(&row);
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            mg_kv_set(&row, sqlite3_column_name(st, c), t ? (const char *)t : "");
        }
        mg_msg_add_kv(&r->rows, &row);
        mg_kv_clear(&row);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return mg_reply_fail(r, "internal", "query failed: %s", sqlite3_errmsg(s->db));
    return n;
}

/* Copies the first row of st into info (column names as keys); finalizes st. 1 found, 0 none. */
static int s_info_row(mg_reply_t *r, sqlite3_stmt *st)
{
    if (!st) return 0;
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            mg_kv_set(&r->info, sqlite3_column_name(st, c), t ? (const char *)t : "");
        }
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

/* The request's row limit: dflt when absent or outside 1..100000. */
static int64_t s_limit(const mg_kv_t *args, int64_t dflt)
{
    int64_t l = mg_kv_get_i64(args, "limit", dflt);
    return l <= 0 || l > 100000 ? dflt : l;
}

static int s_done(int rows) { return rows < 0 ? -1 : 0; }

/* ---- jobs and renders ------------------------------------------------------------------ */

int mg_query_status(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    if (!s_info_row(r, mg_db_prepare(s->db, "SELECT * FROM job_progress WHERE job_id = ?", "i", job_id)))
        return mg_reply_fail(r, "not_found", "no job %" PRId64, job_id);
    if (mg_kv_get_i64(args, "rows", 1) == 0) return 0;
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s/", s->outputs_dir);
    return s_done(s_rows(s, r, mg_db_prepare(s->db,
        "SELECT r.id AS render_id, c.name AS cue, r.variation + 1 AS variation, r.seed, r.state, r.attempts, "
        "coalesce(r.lease_worker, (SELECT worker FROM attempts a WHERE a.render_id = r.id ORDER BY attempt_no DESC "
        "LIMIT 1), '') AS worker, coalesce(r.last_error, '') AS error, "
        "coalesce((SELECT group_concat(? || path, ',') FROM outputs o WHERE o.render_id = r.id), '') AS outputs "
        "FROM renders r JOIN cues c ON c.id = r.cue_id WHERE r.job_id = ? ORDER BY r.id LIMIT ?",
        "sii", prefix, job_id, s_limit(args, 100000))));
}

int mg_query_jobs(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    return s_done(s_rows(s, r, mg_db_prepare(s->db,
        "SELECT job_id, campaign, client, state, priority, total, queued, leased, done, failed, cancelled, "
        "created_ms, finished_ms FROM job_progress WHERE (?1 IS NULL OR state = ?1) ORDER BY job_id DESC LIMIT ?2",
        "si", mg_kv_get(args, "state"), s_limit(args, 50))));
}

int mg_query_renders(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT r.id AS render_id, r.job_id, c.name AS cue, r.variation + 1 AS variation, r.seed, r.state, "
        "r.attempts, coalesce(r.lease_worker, '') AS worker, coalesce(r.last_error, '') AS error "
        "FROM renders r JOIN cues c ON c.id = r.cue_id "
        "WHERE (?1 IS NULL OR r.job_id = ?1) AND (?2 IS NULL OR r.state = ?2) AND (?3 IS NULL OR c.name = ?3) "
        "ORDER BY r.id LIMIT ?4", "nssi", mg_kv_get(args, "state"), mg_kv_get(args, "cue"), s_limit(args, 200));
    if (st && mg_kv_get(args, "job_id")) sqlite3_bind_int64(st, 1, mg_kv_get_i64(args, "job_id", 0));
    return s_done(s_rows(s, r, st));
}

/* ---- workers and schedules ---------------------------------------------------------------- */

int mg_query_workers(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    return s_done(s_rows(s, r, mg_db_prepare(s->db,
        "SELECT name AS worker, host, backend, device, capacity, state, "
        "(SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = w.name) AS leases, "
        "(SELECT count(*) FROM attempts WHERE worker = w.name AND outcome = 'done') AS renders_done, "
        "last_seen_ms FROM workers w WHERE (?1 IS NULL OR state = ?1) ORDER BY state DESC, last_seen_ms DESC LIMIT ?2",
        "si", mg_kv_get(args, "state"), s_limit(args, 200))));
}

/* Not s_rows: next_due_ms is computed from the cron expression, not stored. */
int mg_query_schedules(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT id, name, cron, state, last_due_ms, (SELECT count(*) FROM schedule_runs WHERE schedule_id = s.id AND "
        "outcome = 'submitted'), source_name FROM schedules s ORDER BY id", "");
    if (!st) return mg_reply_fail(r, "internal", "query failed");
    while (sqlite3_step(st) == SQLITE_ROW) {
        mg_kv_t row;
        mg_kv_init(&row);
        const char *cron = (const char *)sqlite3_column_text(st, 2);
        mg_kv_set(&row, "schedule_id", (const char *)sqlite3_column_text(st, 0));
        mg_kv_set(&row, "name", (const char *)sqlite3_column_text(st, 1));
        mg_kv_set(&row, "cron", cron);
        mg_kv_set(&row, "state", (const char *)sqlite3_column_text(st, 3));
        mg_kv_set_i64(&row, "next_due_ms", mg_sched_next_due(cron, sqlite3_column_int64(st, 4)));
        mg_kv_set(&row, "runs", (const char *)sqlite3_column_text(st, 5));
        mg_kv_set(&row, "file", (const char *)sqlite3_column_text(st, 6));
        mg_msg_add_kv(&r->rows, &row);
        mg_kv_clear(&row);
    }
    sqlite3_finalize(st);
    return 0;
}

int mg_query_active_schedules(mg_store_t *s, mg_sched_row_t **rows_out, size_t *n_out)
{
    *rows_out = NULL;
    *n_out = 0;
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT id, last_due_ms, cron, name, source_name, source_text FROM schedules WHERE state = 'active'", "");
    if (!st) return -1;
    mg_sched_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            mg_sched_row_t *nr = realloc(rows, cap * sizeof *nr);
            if (!nr) break;
            rows = nr;
        }
        mg_sched_row_t *r = &rows[n++];
        r->id = sqlite3_column_int64(st, 0);
        r->last_due_ms = sqlite3_column_int64(st, 1);
        r->cron = strdup((const char *)sqlite3_column_text(st, 2));
        r->name = strdup((const char *)sqlite3_column_text(st, 3));
        r->source_name = strdup((const char *)sqlite3_column_text(st, 4));
        r->source_text = strdup((const char *)sqlite3_column_text(st, 5));
    }
    sqlite3_finalize(st);
    *rows_out = rows;
    *n_out = n;
    return 0;
}

void mg_query_schedules_free(mg_sched_row_t **rows_p, size_t n)
{
    if (!rows_p || !*rows_p) return;
    for (size_t i = 0; i < n; i++) {
        free((*rows_p)[i].cron);
        free((*rows_p)[i].name);
        free((*rows_p)[i].source_name);
        free((*rows_p)[i].source_text);
    }
    free(*rows_p);
    *rows_p = NULL;
}

/* ---- audit and verify ------------------------------------------------------------------------ */

int mg_query_audit(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    sqlite3 *db = s->db;
    const char *q = mg_kv_get_or(args, "query", "renders");
    int64_t limit = s_limit(args, 1000);
    const char *job = mg_kv_get(args, "job_id");
    int64_t job_id = job ? mg_kv_get_i64(args, "job_id", 0) : -1;
    sqlite3_stmt *st = NULL;
    if (strcmp(q, "renders") == 0)
        st = mg_db_prepare(db, "SELECT * FROM audit_renders WHERE (?1 < 0 OR job_id = ?1) ORDER BY render_id, format "
                               "LIMIT ?2", "ii", job_id, limit);
    else if (strcmp(q, "failures") == 0)
        st = mg_db_prepare(db, "SELECT * FROM audit_failures WHERE (?1 < 0 OR job_id = ?1) ORDER BY render_id, "
                               "attempt_no LIMIT ?2", "ii", job_id, limit);
    else if (strcmp(q, "models") == 0)
        st = mg_db_prepare(db,
            "SELECT m.id AS model_id, m.name, m.version, m.sha256, m.license, "
            "coalesce((SELECT group_concat(a.source || ' (' || a.license || ')', '; ') FROM attribution a "
            "WHERE a.model_id = m.id), '') AS training_data, "
            "(SELECT count(*) FROM provenance p WHERE p.model_id = m.id) AS renders FROM models m ORDER BY m.id LIMIT ?",
            "i", limit);
    else if (strcmp(q, "workers") == 0)
        st = mg_db_prepare(db,
            "SELECT worker, count(*) AS attempts, sum(outcome = 'done') AS done, sum(outcome = 'failed') AS failed, "
            "sum(outcome IN ('expired', 'lost')) AS lost, sum(outcome = 'rejected') AS rejected FROM attempts "
            "GROUP BY worker ORDER BY worker LIMIT ?", "i", limit);
    else if (strcmp(q, "provenance") == 0)
        st = mg_db_prepare(db,
            "SELECT seq, render_id, worker, backend, device, prev_hash, record_hash, created_ms FROM provenance "
            "WHERE (?1 < 0 OR render_id IN (SELECT id FROM renders WHERE job_id = ?1)) ORDER BY seq LIMIT ?2",
            "ii", job_id, limit);
    else
        return mg_reply_fail(r, "bad_request",
                             "unknown audit query '%s' (renders, models, failures, workers, provenance)", q);
    return s_done(s_rows(s, r, st));
}

/* The key to check signatures with: args' public_key when given, else the coordinator's.
 * 1 with *pub filled, 0 when there is none (no signer), -1 with the reply failed. */
static int s_check_key(const mg_kv_t *args, mg_reply_t *r, mg_sign_pub_t *pub, const char **source)
{
    const char *given = mg_kv_get(args, "public_key");
    char err[160];
    if (given && *given) {
        if (mg_sign_pub_parse(given, pub, err, sizeof err) != 0) return mg_reply_fail(r, "bad_request", "public_key: %s", err);
        *source = "given";
        return 1;
    }
    if (!mg_prov_signer()) return 0;
    *pub = *mg_sign_key_pub(mg_prov_signer());
    *source = "coordinator";
    return 1;
}

/* Checks a saved head (args head_*) against key and the chain: 1 holds, 0 not (why in msg). */
static int s_check_head(sqlite3 *db, const mg_kv_t *args, const mg_sign_pub_t *key, char *msg, size_t msglen)
{
    int64_t seq = mg_kv_get_i64(args, "head_seq", -1), time_ms = mg_kv_get_i64(args, "head_time_ms", -1);
    const char *hash = mg_kv_get_or(args, "head_hash", ""), *sig = mg_kv_get_or(args, "head_signature", "");
    const char *head_key = mg_kv_get_or(args, "head_public_key", "");
    mg_sign_pub_t hp;
    char err[160];
    if (seq < 0 || time_ms < 0) {
        snprintf(msg, msglen, "the saved head has no seq or time_ms");
        return 0;
    }
    if (!key) {
        snprintf(msg, msglen, "no key to check the saved head's signature with (the coordinator has no signing key; "
                              "give one with --key)");
        return 0;
    }
    if (*head_key && mg_sign_pub_parse(head_key, &hp, err, sizeof err) == 0 && strcmp(hp.hex, key->hex) != 0) {
        snprintf(msg, msglen, "the saved head was signed by key id %s, not by the key checked against (key id %s)",
                 hp.id, key->id);
        return 0;
    }
    if (!mg_sign_head_check(key, seq, hash, time_ms, sig)) {
        snprintf(msg, msglen, "the saved head's signature is not valid for key id %s (the head file was edited, or "
                              "it comes from another coordinator)", key->id);
        return 0;
    }
    if (seq == 0) {
        snprintf(msg, msglen, "the saved head is the empty chain");
        return 1;
    }
    int rc = mg_prov_contains(db, seq, hash, msg, msglen);
    if (rc < 0) snprintf(msg, msglen, "cannot read record %lld", (long long)seq);
    return rc == 1;
}

int mg_query_audit_verify(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    mg_sign_pub_t pub;
    const char *source = "";
    int have_key = s_check_key(args, r, &pub, &source);
    if (have_key < 0) return -1;
    mg_prov_check_t c;
    int ok = mg_prov_verify_key(s->db, have_key ? &pub : NULL, &c);
    if (ok < 0) return mg_reply_fail(r, "internal", "cannot read the provenance table");
    int chain_ok = ok;
    char head_msg[512] = "";
    int head_ok = -1;
    if (mg_kv_get(args, "head_seq")) {
        head_ok = s_check_head(s->db, args, have_key ? &pub : NULL, head_msg, sizeof head_msg);
        if (!head_ok) ok = 0;
    }
    if (!have_key && ok)
        snprintf(c.msg, sizeof c.msg, "chain intact; signatures not checked (the coordinator has no signing key)");
    mg_kv_set_i64(&r->info, "records", c.records);
    mg_kv_set_i64(&r->info, "ok", ok);
    mg_kv_set_i64(&r->info, "chain_ok", chain_ok);
    mg_kv_set_i64(&r->info, "first_broken_seq", c.first_broken_seq);
    mg_kv_set(&r->info, "message", c.msg);
    char head[65];
    mg_kv_set_i64(&r->info, "head_seq", mg_prov_head(s->db, head));
    mg_kv_set(&r->info, "head_hash", head);
    mg_kv_set_i64(&r->info, "signed", c.signed_records);
    mg_kv_set_i64(&r->info, "unsigned", c.unsigned_records);
    mg_kv_set_i64(&r->info, "bad_signature", c.bad_signature);
    mg_kv_set(&r->info, "public_key", have_key ? pub.hex : "");
    mg_kv_set(&r->info, "key_id", have_key ? pub.id : "");
    mg_kv_set(&r->info, "key_source", source);
    if (head_ok >= 0) {
        mg_kv_set_i64(&r->info, "saved_head_ok", head_ok);
        mg_kv_set_i64(&r->info, "saved_head_seq", mg_kv_get_i64(args, "head_seq", 0));
        mg_kv_set(&r->info, "saved_head_message", head_msg);
    }
    return 0;
}

int mg_query_audit_head(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    const mg_sign_key_t *key = mg_prov_signer();
    if (!key) return mg_reply_fail(r, "internal", "this coordinator has no provenance signing key: it cannot sign a head");
    char hash[65];
    int64_t seq = mg_prov_head(s->db, hash), now = mg_now_ms();
    /* The empty chain's head is seq 0 with the genesis hash, the prev_hash record 1 will have. */
    if (seq == 0) snprintf(hash, sizeof hash, "%064d", 0);
    char sig[MG_SIGN_SIG_HEX];
    mg_sign_head(key, seq, hash, now, sig);
    mg_kv_set_i64(&r->info, "seq", seq);
    mg_kv_set(&r->info, "hash", hash);
    mg_kv_set_i64(&r->info, "time_ms", now);
    mg_kv_set(&r->info, "public_key", mg_sign_key_pub(key)->hex);
    mg_kv_set(&r->info, "key_id", mg_sign_key_pub(key)->id);
    mg_kv_set(&r->info, "signature", sig);
    return 0;
}

int mg_query_verify(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    sqlite3 *db = s->db;
    const char *sha = mg_kv_get_or(args, "sha256", "");
    int n = s_rows(s, r, mg_db_prepare(db, "SELECT * FROM audit_renders WHERE output_sha256 = ? LIMIT 1", "s", sha));
    if (n < 0) return -1;
    if (n > 0) {
        /* Known: also re-check the record's own link in the chain. */
        int64_t seq = mg_db_int(db, 0, "SELECT provenance_seq FROM audit_renders WHERE output_sha256 = ?", "s", sha);
        sqlite3_stmt *st = mg_db_prepare(db, "SELECT prev_hash, record_json, record_hash FROM provenance WHERE seq = ?",
                                         "i", seq);
        int intact = 0;
        if (st && sqlite3_step(st) == SQLITE_ROW) {
            char h[65];
            mg_prov_hash((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1), h);
            intact = strcmp(h, (const char *)sqlite3_column_text(st, 2)) == 0 &&
                     strstr((const char *)sqlite3_column_text(st, 1), sha) != NULL;
        }
        sqlite3_finalize(st);
        mg_sign_pub_t pub;
        const char *source = "", *sig = "unsigned";
        char key_id[MG_SIGN_ID_HEX] = "";
        int have_key = s_check_key(args, r, &pub, &source);
        if (have_key < 0) return -1;
        if (mg_prov_record_signature(db, seq, have_key ? &pub : NULL, &sig, key_id) != 0) sig = "unsigned";
        /* unsigned is fine for a record written before signing began; audit verify checks
         * that no signed record precedes it. */
        int sig_ok = strcmp(sig, "valid") == 0 || strcmp(sig, "unsigned") == 0;
        mg_kv_set(&r->info, "status", "known");
        mg_kv_set(&r->info, "record_intact", intact && sig_ok ? "1" : "0");
        mg_kv_set(&r->info, "signature", sig);
        mg_kv_set(&r->info, "signer_key_id", key_id);
        if (!intact)
            mg_kv_set(&r->info, "message", "the file matches a recorded output, but its provenance record was "
                                           "altered (run mgctl audit verify)");
        else if (!sig_ok)
            mg_kv_setf(&r->info, "message", "the file matches a recorded output, but its provenance record's signature "
                                            "is %s%s%s (run mgctl audit verify)", strcmp(sig, "other key") == 0 ?
                       "by another key than " : sig, strcmp(sig, "other key") == 0 ? "key id " : "",
                       strcmp(sig, "other key") == 0 ? (have_key ? pub.id : "(none)") : "");
        else
            mg_kv_setf(&r->info, "message", "the file matches a recorded output; its provenance record is intact and %s",
                       strcmp(sig, "valid") == 0 ? "signed" : "unsigned (written before signing)");
        return 0;
    }
    int64_t claimed = mg_kv_get_i64(args, "render_id", 0);
    if (claimed > 0) {
        n = s_rows(s, r, mg_db_prepare(db, "SELECT * FROM audit_renders WHERE render_id = ? LIMIT 1", "i", claimed));
        if (n < 0) return -1;
        if (n > 0) {
            mg_kv_set(&r->info, "status", "altered");
            mg_kv_setf(&r->info, "message",
                       "the file's tags say render %" PRId64 ", but its bytes match none of that render's recorded "
                       "outputs: it was modified after mg wrote it", claimed);
            return 0;
        }
    }
    mg_msg_clear(&r->rows);
    mg_kv_set(&r->info, "status", "unknown");
    mg_kv_set(&r->info, "message", "no output with this sha256 was recorded by this coordinator");
    return 0;
}

/* ---- the event log ------------------------------------------------------------------------- */

int mg_query_events(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r)
{
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT id, at_ms, kind, coalesce(job_id, '') AS job_id, coalesce(render_id, '') AS render_id, "
        "coalesce(worker, '') AS worker, message FROM events WHERE id > ?1 AND (?2 IS NULL OR job_id = ?2) "
        "ORDER BY id LIMIT ?3", "ini", mg_kv_get_i64(args, "since_id", 0), s_limit(args, 200));
    if (st && mg_kv_get(args, "job_id")) sqlite3_bind_int64(st, 2, mg_kv_get_i64(args, "job_id", 0));
    return s_done(s_rows(s, r, st));
}

/* ---- FILES and FETCH (fetch.c) ------------------------------------------------------------- */

int mg_query_files(mg_store_t *s, int64_t job_id, const char *kinds, mg_reply_t *r)
{
    sqlite3 *db = s->db;
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT campaign, output_dir, state FROM jobs WHERE id = ?", "i", job_id);
    if (!st) return mg_reply_fail(r, "internal", "cannot read job %" PRId64, job_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return mg_reply_fail(r, "not_found", "no job %" PRId64 " (see mgctl list)", job_id);
    }
    mg_kv_set_i64(&r->info, "job_id", job_id);
    mg_kv_set(&r->info, "campaign", (const char *)sqlite3_column_text(st, 0));
    mg_kv_set(&r->info, "output_dir", (const char *)sqlite3_column_text(st, 1));
    mg_kv_set(&r->info, "state", (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    mg_kv_set_i64(&r->info, "renders", mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE job_id = ?", "i", job_id));
    mg_kv_set_i64(&r->info, "renders_done",
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
    if (!st) return mg_reply_fail(r, "internal", "cannot list the files of job %" PRId64, job_id);
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
        int added = mg_msg_add_kv(&r->rows, &row);
        mg_kv_clear(&row);
        if (added != 0) {
            sqlite3_finalize(st);
            return mg_reply_fail(r, "internal", "out of memory listing job %" PRId64, job_id);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return mg_reply_fail(r, "internal", "cannot list the files of job %" PRId64 ": %s", job_id,
                             sqlite3_errmsg(db));
    mg_kv_set_i64(&r->info, "files", n);
    mg_kv_set_i64(&r->info, "bytes", bytes);
    return 0;
}

int mg_query_output(mg_store_t *s, int64_t output_id, char *rel, size_t rellen, char sha256[65], int64_t *bytes)
{
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT o.path, o.sha256, o.bytes FROM outputs o JOIN renders r ON r.id = o.render_id "
        "WHERE o.id = ? AND r.state = 'done'", "i", output_id);
    if (!st) return -1;
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        mg_store_col_text(st, 0, rel, rellen);
        mg_store_col_text(st, 1, sha256, 65);
        *bytes = sqlite3_column_int64(st, 2);
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

/* provenance.c - append to and verify the provenance hash chain (see provenance.h). */
#include "provenance.h"

#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "db.h"

static const char s_genesis[] = "0000000000000000000000000000000000000000000000000000000000000000";

void mg_prov_hash(const char *prev_hash, const char *record_json, char out[65])
{
    mg_sha256_t h;
    mg_sha256_init(&h);
    mg_sha256_update(&h, prev_hash, strlen(prev_hash));
    mg_sha256_update(&h, "\n", 1);
    mg_sha256_update(&h, record_json, strlen(record_json));
    mg_sha256_final_hex(&h, out);
}

int64_t mg_prov_append(sqlite3 *db, int64_t render_id, int64_t model_id, const char *worker,
                       const char *backend, const char *device, int64_t started_ms,
                       int64_t finished_ms, const char *record_json, int64_t now_ms,
                       char hash_out[65])
{
    char prev[65];
    mg_strlcpy(prev, s_genesis, sizeof prev);
    int64_t seq = 1;
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT seq, record_hash FROM provenance ORDER BY seq DESC LIMIT 1", "");
    if (!st) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0) + 1;
        mg_strlcpy(prev, (const char *)sqlite3_column_text(st, 1), sizeof prev);
    }
    sqlite3_finalize(st);
    mg_prov_hash(prev, record_json, hash_out);
    if (mg_db_run(db,
            "INSERT INTO provenance (seq, render_id, model_id, worker, backend, device, started_ms, "
            "finished_ms, record_json, prev_hash, record_hash, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            "iiisssiisssi", seq, render_id, model_id, worker, backend, device, started_ms, finished_ms,
            record_json, prev, hash_out, now_ms) != 0)
        return -1;
    return seq;
}

int mg_prov_verify(sqlite3 *db, int64_t *records, int64_t *first_broken_seq, char *msg, size_t msglen)
{
    *records = 0;
    *first_broken_seq = 0;
    snprintf(msg, msglen, "chain intact");
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT seq, record_json, prev_hash, record_hash FROM provenance ORDER BY seq", "");
    if (!st) return -1;
    char prev[65];
    mg_strlcpy(prev, s_genesis, sizeof prev);
    int64_t expect = 1;
    int ok = 1, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *json = (const char *)sqlite3_column_text(st, 1);
        const char *stored_prev = (const char *)sqlite3_column_text(st, 2);
        const char *stored_hash = (const char *)sqlite3_column_text(st, 3);
        (*records)++;
        char h[65];
        if (seq != expect) {
            snprintf(msg, msglen, "record %lld is missing (next record is %lld)", (long long)expect, (long long)seq);
            *first_broken_seq = expect;
            ok = 0;
            break;
        }
        if (!stored_prev || strcmp(stored_prev, prev) != 0) {
            snprintf(msg, msglen, "record %lld: prev_hash does not match the hash of record %lld", (long long)seq,
                     (long long)(seq - 1));
            *first_broken_seq = seq;
            ok = 0;
            break;
        }
        mg_prov_hash(prev, json ? json : "", h);
        if (!stored_hash || strcmp(stored_hash, h) != 0) {
            snprintf(msg, msglen, "record %lld: content does not match its hash (altered after it was written)",
                     (long long)seq);
            *first_broken_seq = seq;
            ok = 0;
            break;
        }
        mg_strlcpy(prev, h, sizeof prev);
        expect++;
    }
    if (ok && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    *records = mg_db_int(db, 0, "SELECT count(*) FROM provenance", "");
    if (!ok) return 0;
    /* The outputs table must agree with the records it belongs to: a file hash changed in
     * outputs (to pass off another file) is caught here. */
    st = mg_db_prepare(db,
        "SELECT p.seq, o.render_id, o.format, o.kind || CASE o.part WHEN '' THEN '' ELSE ' ' || o.part END "
        "FROM outputs o LEFT JOIN provenance p ON p.render_id = o.render_id "
        "WHERE p.seq IS NULL OR instr(p.record_json, o.sha256) = 0 ORDER BY p.seq LIMIT 1", "");
    if (!st) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *first_broken_seq = sqlite3_column_int64(st, 0);
        snprintf(msg, msglen, "the %s %s output of render %lld has a sha256 that %s", (const char *)sqlite3_column_text(st, 3),
                 (const char *)sqlite3_column_text(st, 2),
                 (long long)sqlite3_column_int64(st, 1),
                 sqlite3_column_type(st, 0) == SQLITE_NULL ? "no provenance record covers"
                                                           : "its provenance record does not contain");
        ok = 0;
    }
    sqlite3_finalize(st);
    return ok;
}

int64_t mg_prov_head(sqlite3 *db, char hash_out[65])
{
    hash_out[0] = 0;
    int64_t seq = 0;
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT seq, record_hash FROM provenance ORDER BY seq DESC LIMIT 1", "");
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0);
        mg_strlcpy(hash_out, (const char *)sqlite3_column_text(st, 1), 65);
    }
    sqlite3_finalize(st);
    return seq;
}

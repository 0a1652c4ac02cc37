/* provenance.c - append to and verify the provenance hash chain and its signatures (see
 * provenance.h). The store appends inside its result transaction (store.c); query.c verifies.
 */
#include "provenance.h"

#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "db.h"

static const char s_genesis[] = "0000000000000000000000000000000000000000000000000000000000000000";

static const mg_sign_key_t *s_signer;

void mg_prov_set_signer(const mg_sign_key_t *key) { s_signer = key; }
const mg_sign_key_t *mg_prov_signer(void) { return s_signer; }

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
    char sig[MG_SIGN_SIG_HEX];
    if (s_signer) mg_sign_record(s_signer, seq, prev, hash_out, sig);
    if (mg_db_run(db,
            "INSERT INTO provenance (seq, render_id, model_id, worker, backend, device, started_ms, "
            "finished_ms, record_json, prev_hash, record_hash, created_ms, signature, signer_key_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            "iiisssiisssiss", seq, render_id, model_id, worker, backend, device, started_ms, finished_ms,
            record_json, prev, hash_out, now_ms, s_signer ? sig : NULL,
            s_signer ? mg_sign_key_pub(s_signer)->id : NULL) != 0)
        return -1;
    return seq;
}

/* Checks record seq's signature against key: NULL when it verifies, else why not. */
static const char *s_signature_problem(const mg_sign_pub_t *key, int64_t seq, const char *prev, const char *hash,
                                       const char *sig, const char *key_id)
{
    if (!sig) return "unsigned";
    if (!key_id || strcmp(key_id, key->id) != 0) return "other key";
    return mg_sign_record_check(key, seq, prev, hash, sig) ? NULL : "invalid";
}

int mg_prov_verify_key(sqlite3 *db, const mg_sign_pub_t *key, mg_prov_check_t *out)
{
    memset(out, 0, sizeof *out);
    char *msg = out->msg;
    size_t msglen = sizeof out->msg;
    snprintf(msg, msglen, "chain intact");
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT seq, record_json, prev_hash, record_hash, signature, signer_key_id FROM provenance ORDER BY seq", "");
    if (!st) return -1;
    char prev[65];
    mg_strlcpy(prev, s_genesis, sizeof prev);
    int64_t expect = 1, first_signed = 0;
    int ok = 1, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *json = (const char *)sqlite3_column_text(st, 1);
        const char *stored_prev = (const char *)sqlite3_column_text(st, 2);
        const char *stored_hash = (const char *)sqlite3_column_text(st, 3);
        const char *sig = (const char *)sqlite3_column_text(st, 4);
        const char *key_id = (const char *)sqlite3_column_text(st, 5);
        char h[65];
        if (seq != expect) {
            snprintf(msg, msglen, "record %lld is missing (next record is %lld)", (long long)expect, (long long)seq);
            out->first_broken_seq = expect;
            ok = 0;
            break;
        }
        if (!stored_prev || strcmp(stored_prev, prev) != 0) {
            snprintf(msg, msglen, "record %lld: prev_hash does not match the hash of record %lld", (long long)seq,
                     (long long)(seq - 1));
            out->first_broken_seq = seq;
            ok = 0;
            break;
        }
        mg_prov_hash(prev, json ? json : "", h);
        if (!stored_hash || strcmp(stored_hash, h) != 0) {
            snprintf(msg, msglen, "record %lld: content does not match its hash (altered after it was written)",
                     (long long)seq);
            out->first_broken_seq = seq;
            ok = 0;
            break;
        }
        if (key) {
            /* The signature covers the stored link, so a record rewritten with every later hash
             * recomputed (all links fit again) fails here, at the first rewritten record. */
            const char *why = s_signature_problem(key, seq, stored_prev, stored_hash, sig, key_id);
            if (why && strcmp(why, "unsigned") == 0 && !first_signed) {
                out->unsigned_records++;
            } else if (why) {
                out->bad_signature = 1;
                out->first_broken_seq = seq;
                ok = 0;
                if (strcmp(why, "unsigned") == 0)
                    snprintf(msg, msglen, "record %lld: signature missing, but record %lld before it is signed "
                                          "(a signature was removed, or the record was written without the key)",
                             (long long)seq, (long long)first_signed);
                else if (strcmp(why, "other key") == 0)
                    snprintf(msg, msglen, "record %lld: signature by key id %s, not by the key checked against "
                                          "(key id %s)", (long long)seq, key_id ? key_id : "(none)", key->id);
                else
                    snprintf(msg, msglen, "record %lld: signature invalid for its seq, prev_hash and record_hash "
                                          "(the record was rewritten and re-hashed without the signing key)",
                             (long long)seq);
                break;
            } else {
                if (!first_signed) first_signed = seq;
                out->signed_records++;
            }
        }
        mg_strlcpy(prev, h, sizeof prev);
        expect++;
    }
    if (ok && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    out->records = mg_db_int(db, 0, "SELECT count(*) FROM provenance", "");
    if (!ok) return 0;
    /* The outputs table must agree with the records it belongs to: a file hash changed in
     * outputs (to pass off another file) is caught here. */
    st = mg_db_prepare(db,
        "SELECT p.seq, o.render_id, o.format, o.kind || CASE o.part WHEN '' THEN '' ELSE ' ' || o.part END "
        "FROM outputs o LEFT JOIN provenance p ON p.render_id = o.render_id "
        "WHERE p.seq IS NULL OR instr(p.record_json, o.sha256) = 0 ORDER BY p.seq LIMIT 1", "");
    if (!st) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->first_broken_seq = sqlite3_column_int64(st, 0);
        snprintf(msg, msglen, "the %s %s output of render %lld has a sha256 that %s", (const char *)sqlite3_column_text(st, 3),
                 (const char *)sqlite3_column_text(st, 2),
                 (long long)sqlite3_column_int64(st, 1),
                 sqlite3_column_type(st, 0) == SQLITE_NULL ? "no provenance record covers"
                                                           : "its provenance record does not contain");
        ok = 0;
    }
    sqlite3_finalize(st);
    if (ok && key && out->unsigned_records)
        snprintf(msg, msglen, "chain intact; %lld signed, %lld unsigned (before signing)",
                 (long long)out->signed_records, (long long)out->unsigned_records);
    else if (ok && key)
        snprintf(msg, msglen, "chain intact; every record signed by key id %s", key->id);
    return ok;
}

int mg_prov_verify(sqlite3 *db, int64_t *records, int64_t *first_broken_seq, char *msg, size_t msglen)
{
    mg_prov_check_t c;
    int rc = mg_prov_verify_key(db, s_signer ? mg_sign_key_pub(s_signer) : NULL, &c);
    *records = c.records;
    *first_broken_seq = c.first_broken_seq;
    snprintf(msg, msglen, "%s", c.msg);
    return rc;
}

int mg_prov_record_signature(sqlite3 *db, int64_t seq, const mg_sign_pub_t *key, const char **status,
                             char key_id[MG_SIGN_ID_HEX])
{
    *status = "unsigned";
    key_id[0] = 0;
    if (!key && s_signer) key = mg_sign_key_pub(s_signer);
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT prev_hash, record_hash, signature, signer_key_id FROM provenance "
                                         "WHERE seq = ?", "i", seq);
    if (!st) return -1;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return -1;
    }
    const char *prev = (const char *)sqlite3_column_text(st, 0), *hash = (const char *)sqlite3_column_text(st, 1);
    const char *sig = (const char *)sqlite3_column_text(st, 2), *id = (const char *)sqlite3_column_text(st, 3);
    if (id) mg_strlcpy(key_id, id, MG_SIGN_ID_HEX);
    if (sig && !key) *status = "other key"; /* signed, and nothing to check it against */
    else if (sig) {
        const char *why = s_signature_problem(key, seq, prev, hash, sig, id);
        *status = why ? why : "valid";
    }
    sqlite3_finalize(st);
    return 0;
}

int mg_prov_contains(sqlite3 *db, int64_t seq, const char *hash, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "the chain still contains record %lld with the saved hash", (long long)seq);
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT record_hash FROM provenance WHERE seq = ?", "i", seq);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(st, 0);
        int same = have && hash && strcmp(have, hash) == 0;
        if (!same)
            snprintf(msg, msglen, "record %lld has hash %.16s..., not the saved head's %.16s...: the chain was "
                                  "rewritten at or before record %lld", (long long)seq, have ? have : "",
                     hash ? hash : "", (long long)seq);
        sqlite3_finalize(st);
        return same;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    int64_t last = mg_db_int(db, 0, "SELECT coalesce(max(seq), 0) FROM provenance", "");
    snprintf(msg, msglen, "the chain ends at record %lld, before the saved head's record %lld: records were removed "
                          "from the end (truncated tail)", (long long)last, (long long)seq);
    return 0;
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

/* provenance.h - the hash-chained provenance log.
 *
 * Each render that finishes gets one record (JSON, built by the store from the database
 * rows in one transaction with the outputs). Records are chained in seq order:
 *     record_hash = sha256( prev_hash || "\n" || record_json ),  prev_hash(1) = "0" x 64
 * so changing, removing or reordering any record breaks every later link, and
 * `mgctl audit verify` names the first broken one.
 *
 * The chain alone is unkeyed: whoever can write mg.db can rewrite a record and recompute every
 * later hash. So each record is also signed with the coordinator's Ed25519 key (sign.h), over
 * (seq, prev_hash, record_hash); the key is kept outside the database. Records written before
 * signing began (schema migration 3) have no signature and are reported as unsigned; once one
 * record is signed, every later one must be. A signed head (mg_prov_head + mg_sign_head), kept
 * by an auditor, catches what signatures cannot: records removed from the end.
 */
#ifndef MG_PROVENANCE_H
#define MG_PROVENANCE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sign.h"

/* Computes sha256(prev_hash "\n" record_json) into out[65]. */
void mg_prov_hash(const char *prev_hash, const char *record_json, char out[65]);

/* Appends a record inside the caller's open transaction. Returns its seq (> 0) and the
 * record hash in hash_out, or -1. */
int64_t mg_prov_append(sqlite3 *db, int64_t render_id, int64_t model_id, const char *worker,
                       const char *backend, const char *device, int64_t started_ms,
                       int64_t finished_ms, const char *record_json, int64_t now_ms,
                       char hash_out[65]);

/* The signing key new records are signed with: borrowed, NULL for none (then records are
 * written unsigned, as before migration 3; the coordinator always sets one at start, main.c).
 * One per process: the coordinator has one store and one key. */
void mg_prov_set_signer(const mg_sign_key_t *key);
const mg_sign_key_t *mg_prov_signer(void);

/* What mg_prov_verify_key found. */
typedef struct {
    int64_t records;           /* rows in the provenance table */
    int64_t signed_records;    /* with a signature that verifies */
    int64_t unsigned_records;  /* written before signing began */
    int64_t first_broken_seq;  /* 0 when intact */
    int bad_signature;         /* 1: the break is a signature (missing, invalid, another key's) */
    char msg[512];
} mg_prov_check_t;

/* Walks the chain, then checks that every outputs row's sha256 appears in its render's
 * record. With key, each record's signature must verify with it (a record signed by another
 * key id is broken; an unsigned one counts in unsigned_records while no signed record came
 * before it, and is broken after one); key NULL checks the chain only (signatures are not
 * looked at). Returns 1 if intact, 0 if broken (out says where and why), -1 on a database
 * error. */
int mg_prov_verify_key(sqlite3 *db, const mg_sign_pub_t *key, mg_prov_check_t *out);

/* mg_prov_verify_key with the signer's public key (chain only when no signer is set).
 * *records = number of records in the table. */
int mg_prov_verify(sqlite3 *db, int64_t *records, int64_t *first_broken_seq, char *msg, size_t msglen);

/* Record seq's signature as "valid", "unsigned", "invalid" or "other key" (signed by a key
 * other than key), with the signer's key id (or "") in key_id; key NULL: the signer's. 0, or
 * -1 when there is no such record or on a database error. */
int mg_prov_record_signature(sqlite3 *db, int64_t seq, const mg_sign_pub_t *key, const char **status,
                             char key_id[MG_SIGN_ID_HEX]);

/* Does the chain still hold record seq with this hash? 1 yes; 0 no, with why in msg (the
 * chain ends before seq: records were removed from the end; or record seq has another hash:
 * the chain was rewritten at or before seq); -1 on a database error. */
int mg_prov_contains(sqlite3 *db, int64_t seq, const char *hash, char *msg, size_t msglen);

/* The newest record: its seq (0 if none) and hash. Deleting records from the end of the
 * chain cannot be seen from inside the database; an auditor who keeps (seq, hash) of an
 * earlier head elsewhere can check that the chain still reaches it. */
int64_t mg_prov_head(sqlite3 *db, char hash_out[65]);

#endif

/* provenance.h - the hash-chained provenance log.
 *
 * Each render that finishes gets one record (JSON, built by the store from the database
 * rows in one transaction with the outputs). Records are chained in seq order:
 *     record_hash = sha256( prev_hash || "\n" || record_json ),  prev_hash(1) = "0" x 64
 * so changing, removing or reordering any record breaks every later link, and
 * `mgctl audit verify` names the first broken one.
 */
#ifndef MG_PROVENANCE_H
#define MG_PROVENANCE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Computes sha256(prev_hash "\n" record_json) into out[65]. */
void mg_prov_hash(const char *prev_hash, const char *record_json, char out[65]);

/* Appends a record inside the caller's open transaction. Returns its seq (> 0) and the
 * record hash in hash_out, or -1. */
int64_t mg_prov_append(sqlite3 *db, int64_t render_id, int64_t model_id, const char *worker,
                       const char *backend, const char *device, int64_t started_ms,
                       int64_t finished_ms, const char *record_json, int64_t now_ms,
                       char hash_out[65]);

/* Walks the chain, then checks that every outputs row's sha256 appears in its render's
 * record. Returns 1 if intact, 0 if broken (first_broken_seq and msg say where and why),
 * -1 on a database error. *records = number of records in the table. */
int mg_prov_verify(sqlite3 *db, int64_t *records, int64_t *first_broken_seq, char *msg, size_t msglen);

/* The newest record: its seq (0 if none) and hash. Deleting records from the end of the
 * chain cannot be seen from inside the database; an auditor who keeps (seq, hash) of an
 * earlier head elsewhere can check that the chain still reaches it. */
int64_t mg_prov_head(sqlite3 *db, char hash_out[65]);

#endif

/* query.h - the read side of the store: the client queries (STATUS, JOBS, RENDERS, WORKERS,
 * SCHED_LIST, AUDIT, AUDIT_VERIFY, AUDIT_HEAD, VERIFY, EVENTS), the lookups behind FILES / FETCH
 * (fetch.c) and the scheduler's list of active schedules (schedule.c).
 *
 * Nothing here writes: every function reads through the store's one connection, so a reply
 * sees every commit the store made before it. A reply is an info record plus row frames, as
 * docs/protocol.md describes; server.c puts them on the wire. Arguments are the request's kv
 * args, with the keys and defaults docs/protocol.md gives for each command.
 */
#ifndef MG_QUERY_H
#define MG_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/kv.h"
#include "../common/protocol.h"
#include "store.h"

/* The reply to one client request. */
typedef struct {
    mg_kv_t info;   /* the reply's fields; after mg_reply_fail: code and message only */
    mg_msg_t rows;  /* owned: one kv frame per row (FETCH: one raw payload frame) */
    int failed;     /* 1 after mg_reply_fail: the reply is ERR */
} mg_reply_t;

void mg_reply_init(mg_reply_t *r);
void mg_reply_clear(mg_reply_t *r); /* frees info and rows; init again to reuse */
/* Makes the reply an ERR: drops its fields and rows, sets code (docs/protocol.md: bad_request,
 * not_found, conflict, invalid_job, internal) and the message. Returns -1. */
int mg_reply_fail(mg_reply_t *r, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Each fills r (info and rows) from the database and returns 0, or fails it (mg_reply_fail)
 * and returns -1. */
int mg_query_status(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);       /* job_id, rows, limit */
int mg_query_jobs(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);         /* state, limit */
int mg_query_renders(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);      /* job_id, state, cue, limit */
int mg_query_workers(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);      /* state, limit */
int mg_query_schedules(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);    /* (none) */
int mg_query_audit(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);        /* query, job_id, limit */
/* AUDIT_VERIFY: the chain, every record's signature and, when head_seq is given, a saved head.
 * Args: public_key (hex; default the coordinator's own), head_seq, head_hash, head_time_ms,
 * head_signature, head_public_key. A head whose signature does not verify with the key, or
 * whose record the chain no longer holds (truncated, or rewritten at or before it), makes
 * ok 0 with head_ok 0 and head_message saying which. */
int mg_query_audit_verify(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);
/* AUDIT_HEAD: seq, hash, time_ms, public_key, key_id and the coordinator's signature of
 * (seq, hash, time_ms). internal when the coordinator has no signing key. */
int mg_query_audit_head(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);  /* (none) */
int mg_query_verify(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);       /* sha256, render_id, public_key */
int mg_query_events(mg_store_t *s, const mg_kv_t *args, mg_reply_t *r);       /* since_id, job_id, limit */

/* FILES: job job_id's campaign, output_dir, state, render counts into info and one row per
 * output of its done renders whose kind is in kinds (comma-separated, already checked;
 * "" = all); info files and bytes sum them. not_found when there is no such job. */
int mg_query_files(mg_store_t *s, int64_t job_id, const char *kinds, mg_reply_t *r);
/* FETCH's lookup: output output_id of a done render, its path below the outputs folder
 * (rel), sha256 and size. 1 found, 0 no such output of a done render, -1 database error. */
int mg_query_output(mg_store_t *s, int64_t output_id, char *rel, size_t rellen, char sha256[65], int64_t *bytes);

/* An active schedule, as mg_sched_tick needs it. The strings are owned (NULL when the
 * copy failed: the tick skips that row). */
typedef struct {
    int64_t id, last_due_ms;
    char *cron, *name, *source_name, *source_text;
} mg_sched_row_t;

/* Every schedule in state 'active'. *rows (n of them) is owned by the caller:
 * mg_query_schedules_free. 0, or -1 on a database error (*rows NULL). */
int mg_query_active_schedules(mg_store_t *s, mg_sched_row_t **rows, size_t *n);
/* Frees *rows_p and its strings and sets it to NULL. */
void mg_query_schedules_free(mg_sched_row_t **rows_p, size_t n);

#endif

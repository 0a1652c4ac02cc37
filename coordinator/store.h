/* store.h - the coordinator's durable state machine over SQLite: jobs, renders, leases,
 * results, workers, schedules, provenance. Every write is one function here, and each is one
 * BEGIN IMMEDIATE transaction: when it returns success the change is durable
 * (synchronous=FULL), and a change that touches several tables (a lease renewed and given to
 * its reconnected worker, a worker registered and its event) commits or fails as a whole.
 * The render lifecycle is drawn at the top of store.c.
 *
 * mg_store_t is opaque. The store is store.c (submit, leases, results, workers, cancel,
 * retry) and store_sched.c (schedules); the read-only client queries are query.c, which
 * reads through the same connection. Nothing else in mg writes SQL (tests/test_layering.c).
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/jobspec.h"
#include "../common/renderspec.h"

typedef struct {
    int max_attempts;        /* leases per render before it is failed (default 3) */
    int blocklist_after;     /* consecutive failures of one worker on one job (default 3) */
    int64_t lease_ms;        /* lease length; PROGRESS renews it (default 30 s) */
} mg_store_policy_t;

typedef struct mg_store mg_store_t;

enum {
    MG_STORE_OK = 0,
    MG_STORE_ERR = -1,       /* database or I/O error (message in err) */
    MG_STORE_CONFLICT = -2,  /* idempotency key reused with other content */
    MG_STORE_STALE = 1,      /* lease token not current: result/failure rejected */
    MG_STORE_NOT_FOUND = 2,
};

/* Opens the database at db_path and the outputs folder. Returns a store the caller owns
 * (mg_store_close), or NULL with a message in err. */
mg_store_t *mg_store_open(const char *db_path, const char *outputs_dir, const mg_store_policy_t *policy,
                          char *err, size_t errlen);
/* Closes the database, frees *store_p and sets it to NULL. NULL is fine. */
void mg_store_close(mg_store_t **store_p);

/* The outputs folder given to mg_store_open; valid while the store is open. */
const char *mg_store_outputs_dir(const mg_store_t *s);
/* The policy in force (defaults filled in); valid while the store is open. */
const mg_store_policy_t *mg_store_policy(const mg_store_t *s);
/* Replaces the policy; a field <= 0 takes its default, as in mg_store_open. Renders already
 * submitted keep the max_attempts they were given. */
void mg_store_set_policy(mg_store_t *s, const mg_store_policy_t *policy);

/* Stores a validated job with all its renders, or finds the job already stored under the
 * same idempotency key (then *duplicate = 1 and nothing is written). The same key with a
 * different canonical sha256 is MG_STORE_CONFLICT. schedule_id 0 = none. */
int mg_store_submit(mg_store_t *s, const mg_job_t *job, const char *source_name,
                    const char *source_text, int64_t schedule_id, int64_t *job_id,
                    size_t *renders, int *duplicate, char *err, size_t errlen);

typedef struct {
    int64_t render_id;
    char lease_token[33];
    int attempt;
    int64_t deadline_ms;
    mg_render_spec_t spec;
} mg_lease_t;

/* Leases up to max queued renders to worker (highest job priority first, then oldest),
 * skipping jobs that blocklisted the worker. Fills out[0..*n). */
int mg_store_lease(mg_store_t *s, const char *worker, int max, int64_t now_ms, mg_lease_t *out, int *n);

/* Gives a lease back unused (the LEASE could not be sent): the render is queued again and
 * the attempt is not counted. */
int mg_store_unlease(mg_store_t *s, int64_t render_id, const char *token, int64_t now_ms);

/* PROGRESS: extends the lease to now + lease_ms. MG_STORE_OK or MG_STORE_STALE. */
int mg_store_renew(mg_store_t *s, int64_t render_id, const char *token, int64_t now_ms);

/* Most files one RESULT may carry: the mix and up to eight stems in three formats, and the
 * MIDI file (worker/pipeline.h). */
#define MG_MAX_RESULT_FILES 28

typedef struct {
    const char *format;       /* "flac" | "mp3" | "wav" | "mid" (kind midi only) */
    const unsigned char *data; /* borrowed; NULL when the bytes are in tmp_path */
    size_t len;
    const char *sha256;       /* claimed by the worker; checked against data */
    double duration_s;
    int sample_rate, channels;
    const char *kind;         /* "mix", "stem" or "midi" */
    const char *part;         /* the stem's name; "" for the mix and the MIDI file */
    const char *tmp_path;     /* borrowed: a file that arrived in chunks (transfer.h), its size and
                                 sha256 already checked against len and sha256; it is fsynced and
                                 renamed to its final name. NULL: the bytes are in data */
} mg_result_file_t;

typedef struct {
    int64_t render_id;
    const char *lease_token;
    const char *worker;
    const char *backend, *device;
    const char *model_name, *model_version, *model_sha256, *model_license;
    const char *attribution;  /* lines "source; author; licence; url" */
    const char *decision_json; /* may be NULL */
    int64_t started_ms, finished_ms;
    double integrated_lufs, peak_dbfs;
    mg_result_file_t files[MG_MAX_RESULT_FILES];
    int n_files;
} mg_result_t;

/* A file of a RESULT names a known kind and format, a part only for a stem, a stem name
 * that is safe in a file name. 0, or -1 with *why set (static text). */
int mg_result_file_check(const mg_result_file_t *f, const char **why);

/* RESULT: checks the token and every file's sha256, writes the files atomically under
 * outputs_dir, then in one transaction marks the render done and records outputs, model,
 * attribution and the hash-chained provenance record. MG_STORE_OK (also for an exact
 * re-send of an already accepted result), MG_STORE_STALE (nothing written), MG_STORE_ERR. */
int mg_store_complete(mg_store_t *s, const mg_result_t *res, int64_t now_ms, char *err, size_t errlen);
/* The same for n results in one transaction (group commit: one WAL sync for the batch).
 * rcs[i] gets each result's code and errs + i * errlen its message (errs holds n * errlen
 * bytes). A result that fails is undone alone (savepoint); the others still commit. */
int mg_store_complete_many(mg_store_t *s, const mg_result_t *results, int n, int64_t now_ms, int *rcs,
                           char *errs, size_t errlen);

/* Where a lease stands, for the chunks of its result (transfer.h). Reads only. MG_STORE_OK while
 * render_id is leased under token (*expires_ms: the lease's deadline); MG_STORE_STALE when it is
 * not (*recorded = 1 when that lease's result was recorded: a resend after a lost ACK);
 * MG_STORE_ERR. */
int mg_store_lease_check(mg_store_t *s, int64_t render_id, const char *token, int64_t *expires_ms,
                         int *recorded);
/* A result, or a chunk of one, under a stale token: the still-running attempt with that token
 * becomes 'rejected' and event result_rejected says so. The caller answers it once per lease
 * (every chunk in flight would otherwise add an event). MG_STORE_OK or MG_STORE_ERR. */
int mg_store_reject_result(mg_store_t *s, int64_t render_id, const char *token, const char *worker,
                           int64_t now_ms);

/* FAIL: retryable failures are queued again until max_attempts; permanent ones fail the
 * render. Counts towards the worker's blocklist for the job. */
int mg_store_fail(mg_store_t *s, int64_t render_id, const char *token, const char *worker,
                  int retryable, const char *message, int64_t now_ms);

/* Ends every lease whose deadline passed (outcome 'expired'): queued again, or failed
 * after max_attempts. *n = how many. */
int mg_store_expire(mg_store_t *s, int64_t now_ms, int *n);
/* A worker was declared dead (why: "silent for 3000 ms", "unreachable", ...), in one
 * transaction: its leases end now (outcome 'lost', error "worker lost (why)"), same rules;
 * its row becomes 'gone'; event worker_lost says why and how many leases were released. */
int mg_store_worker_lost(mg_store_t *s, const char *worker, const char *why, int64_t now_ms, int *n);
/* At start: gives every live lease a grace period of lease_ms so workers can reconnect
 * and claim (PROGRESS / RESULT) before anything is leased again. *n = live leases. */
int mg_store_recover(mg_store_t *s, int64_t now_ms, int *n);

/* Registers or refreshes a worker row (state 'ready'). */
int mg_store_worker_seen(mg_store_t *s, const char *name, const char *host, int64_t pid,
                         const char *backend, const char *device, int capacity,
                         const char *models, int64_t now_ms);
/* Marks a worker row 'gone'. */
int mg_store_worker_gone(mg_store_t *s, const char *name, int64_t now_ms);

/* What a READY says about its worker (all borrowed). */
typedef struct {
    const char *name, *host;
    int64_t pid;
    const char *backend, *device;
    int capacity;             /* 0: draining */
    const char *models;
} mg_worker_info_t;

/* A lease a reconnecting worker says it still holds (READY's "held"); token borrowed. */
typedef struct {
    int64_t render_id;
    const char *lease_token;
} mg_held_lease_t;

/* READY, in one transaction: the worker row as mg_store_worker_seen; every held lease whose
 * token is still current is renewed as mg_store_renew does and becomes that worker's
 * (renders.lease_worker), so a lease can never be renewed for one worker while still counted
 * against another; event worker_ready. *reclaimed = leases kept (may be NULL). A held lease
 * that is stale is skipped, not an error. MG_STORE_OK or MG_STORE_ERR (nothing written). */
int mg_store_worker_ready(mg_store_t *s, const mg_worker_info_t *w, const mg_held_lease_t *held, int n_held,
                          int64_t now_ms, int *reclaimed);

/* When each connected worker was last heard from (its monotonic last message mapped to wall
 * time by the caller); name borrowed. */
typedef struct {
    const char *name;
    int64_t last_seen_ms;
} mg_worker_seen_t;

/* workers.last_seen_ms for n workers in one transaction: the server flushes it every few
 * seconds rather than writing a row per heartbeat. MG_STORE_OK or MG_STORE_ERR. */
int mg_store_workers_last_seen(mg_store_t *s, const mg_worker_seen_t *seen, int n);

/* Renders leased to worker right now (its slots in use); -1 on a database error. */
int mg_store_worker_leases(mg_store_t *s, const char *worker);

/* Cancel: queued and leased renders of the job become cancelled. *n = renders cancelled.
 * MG_STORE_NOT_FOUND if no such job. */
int mg_store_cancel_job(mg_store_t *s, int64_t job_id, int64_t now_ms, int *n);
/* Retry: failed and cancelled renders are queued again with max_attempts more attempts. */
int mg_store_retry_job(mg_store_t *s, int64_t job_id, int64_t now_ms, int *n);

/* The earliest live lease deadline, or INT64_MAX. */
int64_t mg_store_next_deadline(mg_store_t *s);

/* ---- schedules (store_sched.c; the cron logic is schedule.c) ------------------------------ */

/* Stores a schedule (its job file snapshot and cron expression, checked by the caller) with
 * last_due_ms = now_ms, and event schedule_added. MG_STORE_OK (*id set) or MG_STORE_ERR
 * with a message in err. */
int mg_store_sched_add(mg_store_t *s, const char *cron, const char *name, const char *source_name,
                       const char *source_text, int64_t now_ms, int64_t *id, char *err, size_t errlen);
/* state: "active" | "paused". Resuming moves last_due_ms up to now_ms, so the runs skipped
 * while paused are not replayed. MG_STORE_OK, MG_STORE_NOT_FOUND or MG_STORE_ERR. */
int mg_store_sched_set_state(mg_store_t *s, int64_t id, const char *state, int64_t now_ms);
/* MG_STORE_OK, MG_STORE_NOT_FOUND or MG_STORE_ERR. */
int mg_store_sched_remove(mg_store_t *s, int64_t id);

/* One due time of a schedule, for mg_store_sched_run. */
typedef struct {
    int64_t schedule_id;
    const char *name;         /* the schedule's name, for events */
    const char *source_name, *source_text;
    int64_t due_ms;
    int64_t missed;           /* earlier due times passed unrun (event schedule_missed when > 0) */
    const mg_job_t *job;      /* the job file parsed with the run's idempotency key; NULL: invalid */
    const char *invalid_why;  /* when job is NULL: the parser's message */
} mg_sched_run_t;

/* Runs one due time in one transaction: the job (mg_store_submit) and its schedule_runs row
 * (primary key schedule + due time) commit together, and last_due_ms moves to due_ms. A due
 * time already run only moves last_due_ms. A job that cannot be stored leaves no half job
 * behind (savepoint) and the run is recorded as invalid. Returns 1 if a job was made
 * (*job_id), 0 if not, -1 on a database error (nothing written). */
int mg_store_sched_run(mg_store_t *s, const mg_sched_run_t *run, int64_t now_ms, int64_t *job_id);

#endif

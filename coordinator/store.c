/* store.c - jobs, renders, leases, results and worker rows as SQLite transactions (see
 * store.h). With store_sched.c (schedules) it is every write mg makes to its database; the
 * reads that answer clients are query.c. Each exported write is one transaction: BEGIN
 * IMMEDIATE ... COMMIT, or a single statement, which SQLite runs as its own. The *_tx helpers
 * (and mg_store_submit_tx, store_internal.h) run inside the caller's and never commit, so no
 * move below is ever half made.
 *
 * The lifecycle of one render (renders.state), and the function that makes each move:
 *
 *                 mg_store_submit
 *                       |
 *                       v
 *     +-----------> queued ----------------------- mg_store_cancel_job --+
 *     |                 |                                                |
 *     |                 | mg_store_lease (attempts += 1, new token)      |
 *     |                 v                                                v
 *     |   +-------- leased ---------------------- mg_store_cancel_job -> cancelled
 *     |   |          |   |                                               |
 *     |   |          |   +-- mg_store_complete (token current) --> done  |
 *     |   |          |                                                   |
 *     |   |          +-- mg_store_fail (permanent), or any end of lease  |
 *     |   |              with attempts == max_attempts ----> failed      |
 *     |   |                                                    |         |
 *     |   +-- mg_store_fail (retryable) / mg_store_expire /    |         |
 *     |       mg_store_worker_lost, attempts < max_attempts    |         |
 *     |       / mg_store_unlease (attempt not counted)         |         |
 *     +--------------------------------------------------------+---------+
 *                   mg_store_retry_job (max_attempts = attempts + policy)
 *
 * Fencing: every lease gets a fresh random token, stored in renders.lease_token while
 * the render is leased and in attempts.lease_token for ever. A RESULT / FAIL / PROGRESS
 * is accepted only with the current token, so a worker that was presumed dead (SIGSTOP,
 * partition) can never overwrite the render's new attempt or add a second output.
 * A job is finished when none of its renders is queued or leased: 'done' if all are
 * done, 'failed' if any failed, and it stays 'cancelled' once cancelled.
 *
 * A lease belongs to renders.lease_worker. PROGRESS renews it (mg_store_renew); a worker that
 * reconnects names the leases it still holds in READY, and mg_store_worker_ready renews each
 * one whose token is current and makes it that worker's in the same transaction as the worker
 * row, so the capacity count (mg_store_worker_leases) and mg_store_worker_lost always see the
 * lease under the worker that has it.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/json.h"
#include "../common/util.h"
#include "db.h"
#include "provenance.h"

static void s_set_policy(mg_store_t *s, const mg_store_policy_t *policy)
{
    s->policy.max_attempts = policy && policy->max_attempts > 0 ? policy->max_attempts : 3;
    s->policy.blocklist_after = policy && policy->blocklist_after > 0 ? policy->blocklist_after : 3;
    s->policy.lease_ms = policy && policy->lease_ms > 0 ? policy->lease_ms : 30000;
}

mg_store_t *mg_store_open(const char *db_path, const char *outputs_dir, const mg_store_policy_t *policy,
                          char *err, size_t errlen)
{
    mg_store_t *s = calloc(1, sizeof *s);
    if (!s) { mg_set_error(err, errlen, "out of memory"); return NULL; }
    if (mg_strlcpy(s->outputs_dir, outputs_dir, sizeof s->outputs_dir) != 0 ||
        mg_mkdir_p(outputs_dir, 0755) != 0) {
        mg_set_error(err, errlen, "cannot create outputs folder %s: %s", outputs_dir, strerror(errno));
        free(s);
        return NULL;
    }
    s_set_policy(s, policy);
    s->db = mg_db_open(db_path, err, errlen);
    if (!s->db) { free(s); return NULL; }
    return s;
}

void mg_store_close(mg_store_t **store_p)
{
    if (!store_p || !*store_p) return;
    mg_db_close(&(*store_p)->db);
    free(*store_p);
    *store_p = NULL;
}

const char *mg_store_outputs_dir(const mg_store_t *s) { return s->outputs_dir; }
const mg_store_policy_t *mg_store_policy(const mg_store_t *s) { return &s->policy; }
void mg_store_set_policy(mg_store_t *s, const mg_store_policy_t *policy) { s_set_policy(s, policy); }

/* Remembers a folder for s_sync_dirty_dirs; syncs at once when the list is full. */
static int s_dirty_dir(mg_store_t *s, const char *dir)
{
    for (int i = 0; i < s->n_dirty; i++)
        if (strcmp(s->dirty[i], dir) == 0) return 0;
    if (s->n_dirty == MG_STORE_MAX_DIRTY) return mg_fsync_dir(dir);
    return mg_strlcpy(s->dirty[s->n_dirty++], dir, sizeof s->dirty[0]);
}

/* ---- submission ------------------------------------------------------------------ */

static void s_formats(unsigned formats, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s%s%s", (formats & MG_FORMAT_FLAC) ? "flac" : "",
             (formats & MG_FORMAT_FLAC) && (formats & (MG_FORMAT_MP3 | MG_FORMAT_WAV)) ? "," : "",
             (formats & MG_FORMAT_MP3) ? "mp3" : "",
             (formats & MG_FORMAT_MP3) && (formats & MG_FORMAT_WAV) ? "," : "",
             (formats & MG_FORMAT_WAV) ? "wav" : "");
}

int mg_store_submit_tx(mg_store_t *s, const mg_job_t *job, const char *source_name,
                       const char *source_text, int64_t schedule_id, int64_t *job_id,
                       size_t *renders, int *duplicate, char *err, size_t errlen)
{
    sqlite3 *db = s->db;
    *duplicate = 0;
    *renders = 0;
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT id, canonical_sha256 FROM jobs WHERE idempotency_key = ?",
                                     "s", job->idempotency_key);
    if (!st) goto fail;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int same = strcmp((const char *)sqlite3_column_text(st, 1), job->canonical_sha256) == 0;
        sqlite3_finalize(st);
        if (!same) {
            mg_set_error(err, errlen,
                     "idempotency key '%s' was already used by job %" PRId64 " with different content; "
                     "change the key or submit the original file",
                     job->idempotency_key, id);
            return MG_STORE_CONFLICT;
        }
        *job_id = id;
        *duplicate = 1;
        *renders = (size_t)mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE job_id = ?", "i", id);
        return MG_STORE_OK;
    }
    sqlite3_finalize(st);

    int64_t now = mg_now_ms();
    char formats[32], job_slug[MG_NAME_MAX + 1], slug[MG_NAME_MAX + 48];
    s_formats(job->output.formats, formats, sizeof formats);
    char deliver[32];
    mg_deliver_csv(job->output.deliver, deliver, sizeof deliver);
    mg_slugify(job->campaign, job_slug, sizeof job_slug);
    mg_strlcpy(slug, job_slug, sizeof slug);
    st = mg_db_prepare(db,
        "INSERT INTO jobs (idempotency_key, canonical_sha256, campaign, client, owner, priority, source_name, "
        "source_text, canonical_json, output_dir, formats, sample_rate, channels, mp3_bitrate_kbps, flac_bits, "
        "loudness_lufs, schedule_id, created_ms, deliver) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "sssssisssssiiiinnis", job->idempotency_key, job->canonical_sha256, job->campaign, job->client,
        job->owner, (int64_t)job->priority, source_name, source_text, job->canonical_json, slug, formats,
        (int64_t)job->output.sample_rate, (int64_t)job->output.channels, (int64_t)job->output.mp3_bitrate_kbps,
        (int64_t)job->output.flac_bits, now, deliver);
    if (!st) goto fail;
    if (job->output.normalize) sqlite3_bind_double(st, 16, job->output.loudness_lufs);
    if (schedule_id > 0) sqlite3_bind_int64(st, 17, schedule_id);
    if (sqlite3_step(st) != SQLITE_DONE) { sqlite3_finalize(st); goto fail; }
    sqlite3_finalize(st);
    int64_t id = sqlite3_last_insert_rowid(db);
    /* The first job of a campaign writes to <campaign>/, later ones to <campaign>.<job id>/
     * (then .<job id>.2, ... should a campaign be named like that), so a job never writes
     * into a folder that another job's provenance records point at. */
    for (int k = 1; mg_db_int(db, 0, "SELECT count(*) FROM jobs WHERE output_dir = ? AND id <> ?", "si",
                              (const char *)slug, id) > 0; k++) {
        char dir[MG_NAME_MAX + 48];
        if (k == 1) snprintf(dir, sizeof dir, "%s.%" PRId64, job_slug, id);
        else snprintf(dir, sizeof dir, "%s.%" PRId64 ".%d", job_slug, id, k);
        mg_strlcpy(slug, dir, sizeof slug);
        if (mg_db_run(db, "UPDATE jobs SET output_dir = ? WHERE id = ?", "si", slug, id) != 0) goto fail;
    }

    sqlite3_stmt *ins_cue = mg_db_prepare(db,
        "INSERT INTO cues (job_id, name, prompt, prompt_sha256, duration_s, variations, tempo_bpm, musical_key, "
        "instruments, stems, loop) VALUES (?,?,?,?,?,?,?,?,?,?,?)", "");
    sqlite3_stmt *ins_emo = mg_db_prepare(db, "INSERT INTO cue_emotions (cue_id, tag, position) VALUES (?,?,?)", "");
    sqlite3_stmt *ins_render = mg_db_prepare(db,
        "INSERT INTO renders (job_id, cue_id, variation, seed, max_attempts, created_ms) VALUES (?,?,?,?,?,?)", "");
    int ok = ins_cue && ins_emo && ins_render;
    for (int c = 0; ok && c < job->n_cues; c++) {
        const mg_cue_t *cue = &job->cues[c];
        char prompt_sha[65], instruments[512], stems[256];
        mg_sha256_hex(cue->prompt, strlen(cue->prompt), prompt_sha);
        mg_join_csv(instruments, sizeof instruments, cue->instruments, cue->n_instruments);
        mg_join_csv(stems, sizeof stems, cue->stems, cue->n_stems);
        sqlite3_reset(ins_cue);
        sqlite3_bind_int64(ins_cue, 1, id);
        sqlite3_bind_text(ins_cue, 2, cue->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_cue, 3, cue->prompt, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_cue, 4, prompt_sha, -1, SQLITE_STATIC);
        sqlite3_bind_double(ins_cue, 5, cue->duration_s);
        sqlite3_bind_int64(ins_cue, 6, cue->variations);
        sqlite3_bind_double(ins_cue, 7, cue->tempo_bpm);
        sqlite3_bind_text(ins_cue, 8, cue->key ? cue->key : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_cue, 9, instruments, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_cue, 10, stems, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_cue, 11, cue->loop ? 1 : 0);
        if (sqlite3_step(ins_cue) != SQLITE_DONE) { ok = 0; break; }
        int64_t cue_id = sqlite3_last_insert_rowid(db);
        for (int e = 0; ok && e < cue->n_emotions; e++) {
            sqlite3_reset(ins_emo);
            sqlite3_bind_int64(ins_emo, 1, cue_id);
            sqlite3_bind_text(ins_emo, 2, cue->emotions[e], -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins_emo, 3, e);
            if (sqlite3_step(ins_emo) != SQLITE_DONE) ok = 0;
        }
        for (int v = 0; ok && v < cue->variations; v++) {
            char seed[24];
            snprintf(seed, sizeof seed, "%" PRIu64, cue->seeds[v]);
            sqlite3_reset(ins_render);
            sqlite3_bind_int64(ins_render, 1, id);
            sqlite3_bind_int64(ins_render, 2, cue_id);
            sqlite3_bind_int64(ins_render, 3, v);
            sqlite3_bind_text(ins_render, 4, seed, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins_render, 5, s->policy.max_attempts);
            sqlite3_bind_int64(ins_render, 6, now);
            if (sqlite3_step(ins_render) != SQLITE_DONE) ok = 0;
            (*renders)++;
        }
    }
    if (!ok) mg_err("submit: %s", sqlite3_errmsg(db));
    sqlite3_finalize(ins_cue);
    sqlite3_finalize(ins_emo);
    sqlite3_finalize(ins_render);
    if (!ok) goto fail;
    mg_db_event(db, "job_submitted", id, 0, NULL, "job %" PRId64 " (%s): %zu renders from %s", id, job->campaign,
                *renders, source_name);
    *job_id = id;
    return MG_STORE_OK;
fail:
    mg_set_error(err, errlen, "cannot store job: %s", sqlite3_errmsg(db));
    *renders = 0;
    return MG_STORE_ERR;
}

int mg_store_submit(mg_store_t *s, const mg_job_t *job, const char *source_name,
                    const char *source_text, int64_t schedule_id, int64_t *job_id,
                    size_t *renders, int *duplicate, char *err, size_t errlen)
{
    if (mg_db_begin(s->db) != 0) {
        mg_set_error(err, errlen, "database busy: %s", sqlite3_errmsg(s->db));
        return MG_STORE_ERR;
    }
    int rc = mg_store_submit_tx(s, job, source_name, source_text, schedule_id, job_id, renders, duplicate, err,
                                errlen);
    if (rc != MG_STORE_OK || *duplicate) {
        mg_db_rollback(s->db);
        return rc;
    }
    if (mg_db_commit(s->db) != 0) {
        mg_set_error(err, errlen, "cannot commit job: %s", sqlite3_errmsg(s->db));
        return MG_STORE_ERR;
    }
    return MG_STORE_OK;
}

/* ---- leases ------------------------------------------------------------------------ */

static void s_new_token(char out[33])
{
    unsigned char r[16];
    randombytes_buf(r, sizeof r);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[32] = 0;
}

void mg_store_col_text(sqlite3_stmt *st, int col, char *dst, size_t dstlen)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    mg_strlcpy(dst, t ? (const char *)t : "", dstlen);
}

/* Fills a render spec from the database. 0 or -1. */
static int s_load_spec(sqlite3 *db, int64_t render_id, mg_render_spec_t *spec)
{
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT r.id, r.job_id, j.campaign, j.client, c.name, r.variation, r.seed, c.prompt, c.prompt_sha256, "
        "(SELECT group_concat(tag, ',') FROM (SELECT tag FROM cue_emotions WHERE cue_id = c.id ORDER BY position)), "
        "c.duration_s, c.tempo_bpm, c.musical_key, c.instruments, c.stems, j.formats, j.sample_rate, j.channels, "
        "j.mp3_bitrate_kbps, j.flac_bits, j.loudness_lufs, j.deliver, c.loop "
        "FROM renders r JOIN jobs j ON j.id = r.job_id JOIN cues c ON c.id = r.cue_id WHERE r.id = ?",
        "i", render_id);
    if (!st) return -1;
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        memset(spec, 0, sizeof *spec);
        spec->render_id = sqlite3_column_int64(st, 0);
        spec->job_id = sqlite3_column_int64(st, 1);
        mg_store_col_text(st, 2, spec->campaign, sizeof spec->campaign);
        mg_store_col_text(st, 3, spec->client, sizeof spec->client);
        mg_store_col_text(st, 4, spec->cue, sizeof spec->cue);
        spec->variation = sqlite3_column_int(st, 5);
        spec->seed = strtoull((const char *)sqlite3_column_text(st, 6), NULL, 10);
        mg_store_col_text(st, 7, spec->prompt, sizeof spec->prompt);
        mg_store_col_text(st, 8, spec->prompt_sha256, sizeof spec->prompt_sha256);
        mg_store_col_text(st, 9, spec->emotions, sizeof spec->emotions);
        spec->duration_s = sqlite3_column_double(st, 10);
        spec->tempo_bpm = sqlite3_column_double(st, 11);
        mg_store_col_text(st, 12, spec->key, sizeof spec->key);
        mg_store_col_text(st, 13, spec->instruments, sizeof spec->instruments);
        mg_store_col_text(st, 14, spec->stems, sizeof spec->stems);
        const char *formats = (const char *)sqlite3_column_text(st, 15);
        spec->output.formats = (strstr(formats, "flac") ? MG_FORMAT_FLAC : 0) |
                               (strstr(formats, "mp3") ? MG_FORMAT_MP3 : 0) |
                               (strstr(formats, "wav") ? MG_FORMAT_WAV : 0);
        spec->output.sample_rate = sqlite3_column_int(st, 16);
        spec->output.channels = sqlite3_column_int(st, 17);
        spec->output.mp3_bitrate_kbps = sqlite3_column_int(st, 18);
        spec->output.flac_bits = sqlite3_column_int(st, 19);
        spec->output.normalize = sqlite3_column_type(st, 20) != SQLITE_NULL;
        spec->output.loudness_lufs = spec->output.normalize ? sqlite3_column_double(st, 20) : -14.0;
        spec->output.deliver = mg_deliver_from_csv((const char *)sqlite3_column_text(st, 21));
        spec->loop = sqlite3_column_int(st, 22) != 0;
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int mg_store_lease(mg_store_t *s, const char *worker, int max, int64_t now_ms, mg_lease_t *out, int *n)
{
    sqlite3 *db = s->db;
    *n = 0;
    if (max <= 0) return MG_STORE_OK;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT r.id, r.attempts FROM renders r JOIN jobs j ON j.id = r.job_id "
        "WHERE r.state = 'queued' AND j.state = 'active' AND NOT EXISTS (SELECT 1 FROM worker_job_failures f "
        "  WHERE f.worker = ?1 AND f.job_id = r.job_id AND f.blocked) "
        /* A retry goes to another worker when there is other work for this one. */
        "ORDER BY j.priority DESC, coalesce(r.last_worker = ?1, 0), j.id, r.id LIMIT ?2",
        "si", worker, (int64_t)max);
    if (!st) goto fail;
    int64_t ids[256];
    int attempts[256], count = 0;
    if (max > 256) max = 256;
    while (count < max && sqlite3_step(st) == SQLITE_ROW) {
        ids[count] = sqlite3_column_int64(st, 0);
        attempts[count] = sqlite3_column_int(st, 1);
        count++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < count; i++) {
        mg_lease_t *l = &out[i];
        l->render_id = ids[i];
        l->attempt = attempts[i] + 1;
        l->deadline_ms = now_ms + s->policy.lease_ms;
        s_new_token(l->lease_token);
        if (mg_db_run(db,
                "UPDATE renders SET state = 'leased', lease_token = ?, lease_worker = ?, lease_expires_ms = ?, "
                "attempts = ?, started_ms = coalesce(started_ms, ?) WHERE id = ?",
                "ssiiii", l->lease_token, worker, l->deadline_ms, (int64_t)l->attempt, now_ms, l->render_id) != 0 ||
            mg_db_run(db,
                "INSERT INTO attempts (render_id, attempt_no, worker, lease_token, leased_ms, deadline_ms) "
                "VALUES (?,?,?,?,?,?)",
                "iissii", l->render_id, (int64_t)l->attempt, worker, l->lease_token, now_ms, l->deadline_ms) != 0 ||
            s_load_spec(db, l->render_id, &l->spec) != 0)
            goto fail;
    }
    if (count > 0 && mg_db_commit(db) != 0) goto fail;
    if (count == 0) mg_db_rollback(db);
    *n = count;
    return MG_STORE_OK;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

int mg_store_unlease(mg_store_t *s, int64_t render_id, const char *token, int64_t now_ms)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    int rc = mg_db_run(db,
        "UPDATE renders SET state = 'queued', lease_token = NULL, lease_worker = NULL, lease_expires_ms = NULL, "
        "attempts = attempts - 1 WHERE id = ? AND lease_token = ?", "is", render_id, token);
    if (rc == 0 && sqlite3_changes(db) == 1)
        rc = mg_db_run(db, "DELETE FROM attempts WHERE lease_token = ?", "s", token);
    if (rc != 0) { mg_db_rollback(db); return MG_STORE_ERR; }
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

/* Renews a current lease inside the caller's transaction: the render's deadline and its
 * attempt's. worker: also make it that worker's lease (a reconnected worker reclaiming it);
 * NULL leaves lease_worker as it is. MG_STORE_OK, MG_STORE_STALE or MG_STORE_ERR. */
static int s_renew_tx(mg_store_t *s, int64_t render_id, const char *token, const char *worker, int64_t now_ms)
{
    sqlite3 *db = s->db;
    int64_t deadline = now_ms + s->policy.lease_ms;
    if (mg_db_run(db,
            "UPDATE renders SET lease_expires_ms = max(lease_expires_ms, ?1), lease_worker = coalesce(?4, lease_worker) "
            "WHERE id = ?2 AND state = 'leased' AND lease_token = ?3",
            "iiss", deadline, render_id, token, worker) != 0)
        return MG_STORE_ERR;
    if (sqlite3_changes(db) != 1) return MG_STORE_STALE;
    if (mg_db_run(db, "UPDATE attempts SET deadline_ms = ? WHERE lease_token = ?", "is", deadline, token) != 0)
        return MG_STORE_ERR;
    return MG_STORE_OK;
}

int mg_store_renew(mg_store_t *s, int64_t render_id, const char *token, int64_t now_ms)
{
    if (mg_db_begin(s->db) != 0) return MG_STORE_ERR;
    int rc = s_renew_tx(s, render_id, token, NULL, now_ms);
    if (rc != MG_STORE_OK) {
        mg_db_rollback(s->db);
        return rc;
    }
    return mg_db_commit(s->db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

/* Marks the job finished if nothing of it is queued or leased any more. */
static int s_finish_job_if_done(sqlite3 *db, int64_t job_id, int64_t now_ms)
{
    if (mg_db_int(db, 1, "SELECT count(*) FROM renders WHERE job_id = ? AND state IN ('queued', 'leased')", "i",
                  job_id) != 0)
        return 0;
    if (mg_db_run(db,
            "UPDATE jobs SET finished_ms = ?, state = CASE WHEN EXISTS (SELECT 1 FROM renders "
            "WHERE job_id = jobs.id AND state = 'failed') THEN 'failed' ELSE 'done' END "
            "WHERE id = ? AND state = 'active'", "ii", now_ms, job_id) != 0)
        return -1;
    if (sqlite3_changes(db) == 1) {
        int64_t failed = mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE job_id = ? AND state = 'failed'",
                                   "i", job_id);
        mg_db_event(db, failed ? "job_failed" : "job_done", job_id, 0, NULL, "job %" PRId64 " finished: %s",
                    job_id, failed ? "some renders failed" : "all renders done");
    }
    return 0;
}

/* Ends the live lease of render_id (outcome for its attempt) and moves the render on:
 * queued again if retry is allowed and attempts remain, failed otherwise. */
static int s_end_lease(sqlite3 *db, int64_t render_id, const char *outcome, int retry, const char *error,
                       int64_t now_ms)
{
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT job_id, attempts, max_attempts, lease_token, lease_worker FROM renders "
        "WHERE id = ? AND state = 'leased'", "i", render_id);
    if (!st) return -1;
    if (sqlite3_step(st) != SQLITE_ROW) { sqlite3_finalize(st); return 0; }
    int64_t job_id = sqlite3_column_int64(st, 0);
    int attempts = sqlite3_column_int(st, 1), max_attempts = sqlite3_column_int(st, 2);
    char token[40], worker[256];
    mg_store_col_text(st, 3, token, sizeof token);
    mg_store_col_text(st, 4, worker, sizeof worker);
    sqlite3_finalize(st);
    if (mg_db_run(db, "UPDATE attempts SET outcome = ?, ended_ms = ?, error = ? WHERE lease_token = ?", "siss",
                  outcome, now_ms, error, token) != 0)
        return -1;
    int requeue = retry && attempts < max_attempts;
    char msg[1200];
    if (requeue) {
        if (mg_db_run(db,
                "UPDATE renders SET state = 'queued', lease_token = NULL, last_worker = lease_worker, "
                "lease_worker = NULL, lease_expires_ms = NULL, last_error = ? WHERE id = ?", "si", error,
                render_id) != 0)
            return -1;
        mg_db_event(db, "render_requeued", job_id, render_id, worker, "attempt %d %s: %s", attempts, outcome,
                    error ? error : "");
    } else {
        snprintf(msg, sizeof msg, "%s%s (after %d attempt%s)", error ? error : outcome,
                 retry ? "" : "", attempts, attempts == 1 ? "" : "s");
        if (mg_db_run(db,
                "UPDATE renders SET state = 'failed', lease_token = NULL, last_worker = lease_worker, "
                "lease_worker = NULL, lease_expires_ms = NULL, last_error = ?, finished_ms = ? WHERE id = ?", "sii", msg, now_ms,
                render_id) != 0)
            return -1;
        mg_db_event(db, "render_failed", job_id, render_id, worker, "%s", msg);
        if (s_finish_job_if_done(db, job_id, now_ms) != 0) return -1;
    }
    return 1;
}

int mg_store_fail(mg_store_t *s, int64_t render_id, const char *token, const char *worker,
                  int retryable, const char *message, int64_t now_ms)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    int64_t job_id = mg_db_int(db, 0, "SELECT job_id FROM renders WHERE id = ? AND state = 'leased' AND lease_token = ?",
                               "is", render_id, token);
    if (job_id == 0) {
        mg_db_event(db, "failure_rejected", 0, render_id, worker, "stale lease token: %s", message);
        mg_db_commit(db);
        return MG_STORE_STALE;
    }
    if (s_end_lease(db, render_id, "failed", retryable, message, now_ms) < 0) goto fail;
    /* Blocklist: the same worker failing one job's renders over and over. */
    if (mg_db_run(db,
            "INSERT INTO worker_job_failures (worker, job_id, consecutive) VALUES (?, ?, 1) "
            "ON CONFLICT (worker, job_id) DO UPDATE SET consecutive = consecutive + 1", "si", worker, job_id) != 0 ||
        mg_db_run(db, "UPDATE worker_job_failures SET blocked = 1 WHERE worker = ? AND job_id = ? AND consecutive >= ? "
                      "AND NOT blocked", "sii", worker, job_id, (int64_t)s->policy.blocklist_after) != 0)
        goto fail;
    if (sqlite3_changes(db) == 1)
        mg_db_event(db, "worker_blocklisted", job_id, 0, worker, "worker failed %d renders of job %" PRId64
                    " in a row: no more of this job's renders go to it", s->policy.blocklist_after, job_id);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

static int s_worker_gone_tx(sqlite3 *db, const char *name, int64_t now_ms)
{
    return mg_db_run(db, "UPDATE workers SET state = 'gone', last_seen_ms = max(last_seen_ms, ?) WHERE name = ?",
                     "is", now_ms, name);
}

/* Ends every live lease matching where_sql (one parameter: an int64 or a string, by types)
 * inside the caller's transaction. *n = how many. 0 or -1. */
static int s_end_leases_where(sqlite3 *db, const char *where_sql, const char *types, const void *arg,
                              const char *outcome, const char *error, int64_t now_ms, int *n)
{
    *n = 0;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT id FROM renders WHERE state = 'leased' AND %s", where_sql);
    sqlite3_stmt *st = types[0] == 'i' ? mg_db_prepare(db, sql, "i", *(const int64_t *)arg)
                                       : mg_db_prepare(db, sql, "s", (const char *)arg);
    if (!st) return -1;
    int64_t *ids = NULL;
    size_t count = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *nids = realloc(ids, cap * sizeof *ids);
            if (!nids) { free(ids); sqlite3_finalize(st); return -1; }
            ids = nids;
        }
        ids[count++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < count; i++) {
        if (s_end_lease(db, ids[i], outcome, 1, error, now_ms) < 0) { free(ids); return -1; }
    }
    free(ids);
    *n = (int)count;
    return 0;
}

int mg_store_expire(mg_store_t *s, int64_t now_ms, int *n)
{
    sqlite3 *db = s->db;
    *n = 0;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (s_end_leases_where(db, "lease_expires_ms < ?", "i", &now_ms, "expired", "lease expired", now_ms, n) != 0) {
        mg_db_rollback(db);
        *n = 0;
        return MG_STORE_ERR;
    }
    if (*n == 0) { mg_db_rollback(db); return MG_STORE_OK; }
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_worker_lost(mg_store_t *s, const char *worker, const char *why, int64_t now_ms, int *n)
{
    sqlite3 *db = s->db;
    *n = 0;
    char error[256];
    snprintf(error, sizeof error, "worker lost (%s)", why ? why : "no heartbeat");
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (s_end_leases_where(db, "lease_worker = ?", "s", worker, "lost", error, now_ms, n) != 0 ||
        s_worker_gone_tx(db, worker, now_ms) != 0) {
        mg_db_rollback(db);
        *n = 0;
        return MG_STORE_ERR;
    }
    mg_db_event(db, "worker_lost", 0, 0, worker, "%s; %d lease(s) released", why ? why : "no heartbeat", *n);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_recover(mg_store_t *s, int64_t now_ms, int *n)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    int64_t deadline = now_ms + s->policy.lease_ms;
    if (mg_db_run(db, "UPDATE renders SET lease_expires_ms = max(lease_expires_ms, ?) WHERE state = 'leased'", "i",
                  deadline) != 0 ||
        mg_db_run(db, "UPDATE workers SET state = 'gone' WHERE state = 'ready'", "") != 0) {
        mg_db_rollback(db);
        return MG_STORE_ERR;
    }
    *n = (int)mg_db_int(db, 0, "SELECT count(*) FROM renders WHERE state = 'leased'", "");
    mg_db_event(db, "coordinator_started", 0, 0, NULL, "%d live leases kept for %lld ms so workers can reclaim them",
                *n, (long long)s->policy.lease_ms);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

/* ---- results ------------------------------------------------------------------------ */

static int64_t s_upsert_model(sqlite3 *db, const mg_result_t *r)
{
    if (mg_db_run(db,
            "INSERT INTO models (name, version, sha256, license) VALUES (?,?,?,?) "
            "ON CONFLICT (name, version, sha256) DO NOTHING",
            "ssss", r->model_name, r->model_version, r->model_sha256, r->model_license ? r->model_license : "") != 0)
        return -1;
    int64_t id = mg_db_int(db, -1, "SELECT id FROM models WHERE name = ? AND version = ? AND sha256 = ?", "sss",
                           r->model_name, r->model_version, r->model_sha256);
    if (id < 0 || !r->attribution) return id;
    /* One source per line: "source; author; licence; url". */
    const char *p = r->attribution;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024], *fields[4] = {"", "", "", ""};
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        int nf = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, ";", &save); tok && nf < 4; tok = strtok_r(NULL, ";", &save)) {
            while (*tok == ' ') tok++;
            char *end = tok + strlen(tok);
            while (end > tok && end[-1] == ' ') *--end = 0;
            fields[nf++] = tok;
        }
        if (nf > 0 && *fields[0] &&
            mg_db_run(db, "INSERT INTO attribution (model_id, source, author, license, url) VALUES (?,?,?,?,?) "
                          "ON CONFLICT (model_id, source) DO NOTHING",
                      "issss", id, fields[0], fields[1], fields[2], fields[3]) != 0)
            return -1;
        p += len;
        if (*p == '\n') p++;
    }
    return id;
}

/* The provenance record: built from the rows this transaction just wrote, so the record
 * says exactly what the database says. */
static char *s_provenance_json(sqlite3 *db, const mg_result_t *r, int64_t model_id)
{
    mg_render_spec_t spec;
    if (s_load_spec(db, r->render_id, &spec) != 0) return NULL;
    mg_strbuf_t sb;
    mg_sb_init(&sb);
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "generator"); mg_json_str(&sb, "mg " MG_VERSION);
    mg_json_key(&sb, "digital_source_type");
    mg_json_str(&sb, "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
    mg_json_key(&sb, "render_id"); mg_json_int(&sb, r->render_id);
    mg_json_key(&sb, "job_id"); mg_json_int(&sb, spec.job_id);
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT canonical_sha256, owner FROM jobs WHERE id = ?", "i", spec.job_id);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        mg_json_key(&sb, "job_sha256"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 0));
        mg_json_key(&sb, "owner"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    mg_json_key(&sb, "campaign"); mg_json_str(&sb, spec.campaign);
    mg_json_key(&sb, "client"); mg_json_str(&sb, spec.client);
    mg_json_key(&sb, "cue"); mg_json_str(&sb, spec.cue);
    mg_json_key(&sb, "variation"); mg_json_int(&sb, spec.variation + 1);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, spec.seed);
    /* A decimal string: JSON readers (SQLite's json_extract too) turn integers above 2^63
     * into floats and lose digits. */
    mg_json_key(&sb, "seed"); mg_json_str(&sb, seed);
    mg_json_key(&sb, "prompt"); mg_json_str(&sb, spec.prompt);
    mg_json_key(&sb, "prompt_sha256"); mg_json_str(&sb, spec.prompt_sha256);
    mg_json_key(&sb, "emotions"); mg_json_str(&sb, spec.emotions);
    mg_json_key(&sb, "duration_s"); mg_json_num(&sb, spec.duration_s);
    mg_json_key(&sb, "model");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "id"); mg_json_int(&sb, model_id);
    mg_json_key(&sb, "name"); mg_json_str(&sb, r->model_name);
    mg_json_key(&sb, "version"); mg_json_str(&sb, r->model_version);
    mg_json_key(&sb, "sha256"); mg_json_str(&sb, r->model_sha256);
    mg_json_key(&sb, "license"); mg_json_str(&sb, r->model_license);
    mg_json_key(&sb, "attribution"); mg_json_str(&sb, r->attribution);
    mg_json_obj_close(&sb);
    mg_json_key(&sb, "worker"); mg_json_str(&sb, r->worker);
    mg_json_key(&sb, "backend"); mg_json_str(&sb, r->backend);
    mg_json_key(&sb, "device"); mg_json_str(&sb, r->device);
    mg_json_key(&sb, "started_ms"); mg_json_int(&sb, r->started_ms);
    mg_json_key(&sb, "finished_ms"); mg_json_int(&sb, r->finished_ms);
    mg_json_key(&sb, "integrated_lufs"); mg_json_num(&sb, r->integrated_lufs);
    mg_json_key(&sb, "peak_dbfs"); mg_json_num(&sb, r->peak_dbfs);
    mg_json_key(&sb, "outputs");
    mg_json_arr_open(&sb);
    st = mg_db_prepare(db, "SELECT format, path, bytes, sha256, kind, part FROM outputs WHERE render_id = ? ORDER BY id",
                       "i", r->render_id);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "kind"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 4));
        mg_json_key(&sb, "part"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 5));
        mg_json_key(&sb, "format"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 0));
        mg_json_key(&sb, "path"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 1));
        mg_json_key(&sb, "bytes"); mg_json_int(&sb, sqlite3_column_int64(st, 2));
        mg_json_key(&sb, "sha256"); mg_json_str(&sb, (const char *)sqlite3_column_text(st, 3));
        mg_json_obj_close(&sb);
    }
    sqlite3_finalize(st);
    mg_json_arr_close(&sb);
    mg_json_key(&sb, "decision");
    /* The record must stay valid JSON whatever a worker sends: a decision record that is
     * not JSON is kept as a string. */
    if (r->decision_json && mg_db_int(db, 0, "SELECT json_valid(?)", "s", r->decision_json) == 1)
        mg_json_raw(&sb, r->decision_json);
    else
        mg_json_str(&sb, r->decision_json);
    mg_json_obj_close(&sb);
    return mg_sb_take(&sb);
}

/* A result under a stale token: its attempt, if still running, is 'rejected'; one event. */
static void s_reject(sqlite3 *db, int64_t job_id, int64_t render_id, const char *token, const char *worker,
                     const char *state, int64_t now_ms)
{
    mg_db_run(db, "UPDATE attempts SET outcome = 'rejected', ended_ms = coalesce(ended_ms, ?) "
                  "WHERE lease_token = ? AND outcome = 'running'", "is", now_ms, token);
    mg_db_event(db, "result_rejected", job_id, render_id, worker,
                "late result with a stale lease token (render is %s): discarded", state);
}

/* A file that arrived in chunks (already checked): fsync, then rename to its final name. */
static int s_place_file(const char *tmp_path, const char *path)
{
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return rename(tmp_path, path);
}

/* One result inside the caller's transaction, itself inside a savepoint so that a failure
 * undoes this result only. The sha256 of every file was checked by the caller. */
static int s_complete_tx(mg_store_t *s, const mg_result_t *r, int64_t now_ms, char *err, size_t errlen)
{
    sqlite3 *db = s->db;
    if (mg_db_exec(db, "SAVEPOINT result") != 0) { mg_set_error(err, errlen, "database busy"); return MG_STORE_ERR; }
    sqlite3_stmt *st = mg_db_prepare(db,
        "SELECT r.state, r.lease_token, r.job_id, j.output_dir, c.name, r.variation, "
        "(SELECT outcome FROM attempts WHERE lease_token = ?) "
        "FROM renders r JOIN jobs j ON j.id = r.job_id JOIN cues c ON c.id = r.cue_id WHERE r.id = ?",
        "si", r->lease_token, r->render_id);
    if (!st) goto fail;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        mg_db_exec(db, "RELEASE result");
        mg_set_error(err, errlen, "render %" PRId64 " does not exist", r->render_id);
        return MG_STORE_STALE;
    }
    char state[16], token[40], out_dir[256], cue[MG_NAME_MAX + 1], attempt_outcome[16];
    mg_store_col_text(st, 0, state, sizeof state);
    mg_store_col_text(st, 1, token, sizeof token);
    int64_t job_id = sqlite3_column_int64(st, 2);
    mg_store_col_text(st, 3, out_dir, sizeof out_dir);
    mg_store_col_text(st, 4, cue, sizeof cue);
    int variation = sqlite3_column_int(st, 5);
    mg_store_col_text(st, 6, attempt_outcome, sizeof attempt_outcome);
    sqlite3_finalize(st);
    if (strcmp(state, "done") == 0 && strcmp(attempt_outcome, "done") == 0) {
        mg_db_exec(db, "RELEASE result"); /* the same result again (the ACK was lost): already recorded */
        return MG_STORE_OK;
    }
    if (strcmp(state, "leased") != 0 || strcmp(token, r->lease_token) != 0) {
        s_reject(db, job_id, r->render_id, r->lease_token, r->worker, state, now_ms);
        mg_db_exec(db, "RELEASE result");
        mg_set_error(err, errlen, "stale lease token for render %" PRId64 " (render is %s)", r->render_id, state);
        return MG_STORE_STALE;
    }

    /* Files first (atomic renames), then the rows that point at them. */
    char cue_slug[MG_NAME_MAX + 1];
    mg_slugify(cue, cue_slug, sizeof cue_slug);
    for (int i = 0; i < r->n_files; i++) {
        char rel[700], abs[4800], dir[4800];
        const mg_result_file_t *f = &r->files[i];
        /* <cue>-vNN.<ext> for the mix and the MIDI file, <cue>-vNN.<stem>.<ext> for a stem */
        snprintf(rel, sizeof rel, "%s/%s/%s-v%02d%s%s.%s", out_dir, cue_slug, cue_slug, variation + 1,
                 *f->part ? "." : "", f->part, f->format);
        snprintf(dir, sizeof dir, "%s/%s/%s", s->outputs_dir, out_dir, cue_slug);
        snprintf(abs, sizeof abs, "%s/%s", s->outputs_dir, rel);
        if (mg_mkdir_p(dir, 0755) != 0 ||
            (f->tmp_path ? s_place_file(f->tmp_path, abs) : mg_write_file_atomic_nodirsync(abs, f->data, f->len)) != 0 ||
            s_dirty_dir(s, dir) != 0) {
            mg_set_error(err, errlen, "cannot write %s: %s", abs, strerror(errno));
            goto fail_quiet;
        }
        char sha[65];
        if (f->tmp_path) mg_strlcpy(sha, f->sha256, sizeof sha); /* checked as it arrived */
        else mg_sha256_hex(f->data, f->len, sha);
        if (mg_db_run(db,
                "INSERT INTO outputs (render_id, kind, part, format, path, bytes, sha256, duration_s, sample_rate, "
                "channels, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (render_id, kind, part, format) "
                "DO UPDATE SET path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256, "
                "duration_s = excluded.duration_s, created_ms = excluded.created_ms",
                "issssisdiii", r->render_id, f->kind, f->part, f->format, rel, (int64_t)f->len, sha, f->duration_s,
                (int64_t)f->sample_rate, (int64_t)f->channels, now_ms) != 0)
            goto fail;
    }
    int64_t model_id = s_upsert_model(db, r);
    if (model_id < 0) goto fail;
    char *record = s_provenance_json(db, r, model_id);
    if (!record) goto fail;
    char hash[65];
    int64_t seq = mg_prov_append(db, r->render_id, model_id, r->worker, r->backend, r->device, r->started_ms,
                                 r->finished_ms, record, now_ms, hash);
    free(record);
    if (seq < 0) goto fail;
    if (mg_db_run(db,
            "UPDATE renders SET state = 'done', lease_token = NULL, lease_worker = NULL, lease_expires_ms = NULL, "
            "finished_ms = ?, decision_json = ?, last_error = NULL WHERE id = ?",
            "isi", now_ms, r->decision_json, r->render_id) != 0 ||
        mg_db_run(db, "UPDATE attempts SET outcome = 'done', ended_ms = ? WHERE lease_token = ?", "is", now_ms,
                  r->lease_token) != 0 ||
        mg_db_run(db, "UPDATE worker_job_failures SET consecutive = 0 WHERE worker = ? AND job_id = ?", "si",
                  r->worker, job_id) != 0)
        goto fail;
    mg_db_event(db, "render_done", job_id, r->render_id, r->worker, "%s v%02d done (%d file%s, provenance #%" PRId64 ")",
                cue, variation + 1, r->n_files, r->n_files == 1 ? "" : "s", seq);
    if (s_finish_job_if_done(db, job_id, now_ms) != 0) goto fail;
    if (mg_db_exec(db, "RELEASE result") != 0) goto fail;
    return MG_STORE_OK;
fail:
    mg_set_error(err, errlen, "cannot record result of render %" PRId64 ": %s", r->render_id, sqlite3_errmsg(db));
fail_quiet:
    mg_db_exec(db, "ROLLBACK TO result");
    mg_db_exec(db, "RELEASE result");
    return MG_STORE_ERR;
}


/* Folders that received renamed files in this batch: synced once each before the commit,
 * so a committed outputs row always names a file that survives a power cut. */
static int s_sync_dirty_dirs(mg_store_t *s)
{
    int rc = 0;
    for (int i = 0; i < s->n_dirty; i++) {
        if (mg_fsync_dir(s->dirty[i]) != 0) {
            mg_err("cannot fsync %s: %s", s->dirty[i], strerror(errno));
            rc = -1;
        }
    }
    s->n_dirty = 0;
    return rc;
}

int mg_result_file_check(const mg_result_file_t *f, const char **why)
{
    if (!f->kind || !f->part) { *why = "file kind or part missing"; return -1; }
    int midi = strcmp(f->kind, "midi") == 0, stem = strcmp(f->kind, "stem") == 0;
    if (!midi && !stem && strcmp(f->kind, "mix") != 0) { *why = "unknown file kind"; return -1; }
    if (midi ? strcmp(f->format, "mid") != 0 : mg_format_from_name(f->format) == 0) {
        *why = "unknown file format";
        return -1;
    }
    if (stem != (*f->part != 0)) { *why = "a stem must name its part, and only a stem"; return -1; }
    size_t n = strlen(f->part);
    if (n > 31) { *why = "stem name too long"; return -1; }
    for (size_t i = 0; i < n; i++) /* it becomes part of a file name */
        if (!((f->part[i] >= 'a' && f->part[i] <= 'z') || (f->part[i] >= '0' && f->part[i] <= '9') ||
              f->part[i] == '-' || f->part[i] == '_')) {
            *why = "stem name may only use a-z, 0-9, '-' and '_'";
            return -1;
        }
    return 0;
}

static int s_check_files(const mg_result_t *r, char *err, size_t errlen)
{
    for (int i = 0; i < r->n_files; i++) {
        const char *why;
        if (mg_result_file_check(&r->files[i], &why) != 0) {
            mg_set_error(err, errlen, "render %" PRId64 ": file %d: %s", r->render_id, i + 1, why);
            return -1;
        }
        if (r->files[i].tmp_path) continue; /* size and sha256 checked by the transfer */
        char sha[65];
        mg_sha256_hex(r->files[i].data, r->files[i].len, sha);
        if (!r->files[i].sha256 || strcmp(sha, r->files[i].sha256) != 0) {
            mg_set_error(err, errlen, "render %" PRId64 ": %s bytes do not match their sha256 (corrupted in transit)",
                         r->render_id, r->files[i].format);
            return -1;
        }
    }
    return 0;
}

int mg_store_complete(mg_store_t *s, const mg_result_t *r, int64_t now_ms, char *err, size_t errlen)
{
    int rc;
    mg_store_complete_many(s, r, 1, now_ms, &rc, err, errlen);
    return rc;
}

int mg_store_complete_many(mg_store_t *s, const mg_result_t *results, int n, int64_t now_ms, int *rcs,
                           char *errs, size_t errlen)
{
    sqlite3 *db = s->db;
    int todo = 0;
    for (int i = 0; i < n; i++) {
        errs[(size_t)i * errlen] = 0;
        rcs[i] = s_check_files(&results[i], errs + (size_t)i * errlen, errlen) == 0 ? 1 : MG_STORE_ERR;
        todo += rcs[i] == 1;
    }
    if (todo == 0) return 0;
    if (mg_db_begin(db) != 0) {
        for (int i = 0; i < n; i++)
            if (rcs[i] == 1) {
                rcs[i] = MG_STORE_ERR;
                mg_set_error(errs + (size_t)i * errlen, errlen, "database busy");
            }
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (rcs[i] == 1) rcs[i] = s_complete_tx(s, &results[i], now_ms, errs + (size_t)i * errlen, errlen);
    /* Folder syncs, then one commit (one WAL sync) for the whole batch: nothing is
     * acknowledged before both. */
    if (s_sync_dirty_dirs(s) != 0) {
        mg_db_rollback(db);
        for (int i = 0; i < n; i++)
            if (rcs[i] != MG_STORE_ERR) {
                rcs[i] = MG_STORE_ERR;
                mg_set_error(errs + (size_t)i * errlen, errlen, "cannot sync the output folders");
            }
        return 0;
    }
    if (mg_db_commit(db) != 0) {
        for (int i = 0; i < n; i++)
            if (rcs[i] != MG_STORE_ERR) {
                rcs[i] = MG_STORE_ERR;
                mg_set_error(errs + (size_t)i * errlen, errlen, "cannot commit: %s", sqlite3_errmsg(db));
            }
    }
    return 0;
}

int mg_store_lease_check(mg_store_t *s, int64_t render_id, const char *token, int64_t *expires_ms, int *recorded)
{
    *expires_ms = 0;
    *recorded = 0;
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT r.state = 'leased' AND r.lease_token = ?1, coalesce(r.lease_expires_ms, 0), "
        "coalesce((SELECT outcome = 'done' FROM attempts WHERE lease_token = ?1), 0) FROM renders r WHERE r.id = ?2",
        "si", token, render_id);
    if (!st) return MG_STORE_ERR;
    int rc = sqlite3_step(st);
    int out = MG_STORE_STALE;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_int(st, 0)) out = MG_STORE_OK;
        *expires_ms = sqlite3_column_int64(st, 1);
        *recorded = sqlite3_column_int(st, 2);
    } else if (rc != SQLITE_DONE) out = MG_STORE_ERR;
    sqlite3_finalize(st);
    return out;
}

int mg_store_reject_result(mg_store_t *s, int64_t render_id, const char *token, const char *worker, int64_t now_ms)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    sqlite3_stmt *st = mg_db_prepare(db, "SELECT job_id, state FROM renders WHERE id = ?", "i", render_id);
    if (!st) {
        mg_db_rollback(db);
        return MG_STORE_ERR;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        char state[16];
        mg_store_col_text(st, 1, state, sizeof state);
        s_reject(db, sqlite3_column_int64(st, 0), render_id, token, worker, state, now_ms);
    }
    sqlite3_finalize(st);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

/* ---- workers, cancel, retry ------------------------------------------------------------ */

static int s_worker_seen_tx(sqlite3 *db, const mg_worker_info_t *w, int64_t now_ms)
{
    return mg_db_run(db,
        "INSERT INTO workers (name, host, pid, backend, device, capacity, models, state, first_seen_ms, last_seen_ms) "
        "VALUES (?,?,?,?,?,?,?, 'ready', ?, ?) ON CONFLICT (name) DO UPDATE SET state = 'ready', "
        "backend = excluded.backend, device = excluded.device, capacity = excluded.capacity, "
        "models = excluded.models, last_seen_ms = excluded.last_seen_ms",
        "ssissisii", w->name, w->host, w->pid, w->backend, w->device, (int64_t)w->capacity, w->models, now_ms,
        now_ms);
}

int mg_store_worker_seen(mg_store_t *s, const char *name, const char *host, int64_t pid,
                         const char *backend, const char *device, int capacity,
                         const char *models, int64_t now_ms)
{
    const mg_worker_info_t w = {name, host, pid, backend, device, capacity, models};
    return s_worker_seen_tx(s->db, &w, now_ms) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_worker_gone(mg_store_t *s, const char *name, int64_t now_ms)
{
    return s_worker_gone_tx(s->db, name, now_ms) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_worker_ready(mg_store_t *s, const mg_worker_info_t *w, const mg_held_lease_t *held, int n_held,
                          int64_t now_ms, int *reclaimed)
{
    sqlite3 *db = s->db;
    int kept = 0;
    if (reclaimed) *reclaimed = 0;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (s_worker_seen_tx(db, w, now_ms) != 0) goto fail;
    for (int i = 0; i < n_held; i++) {
        int rc = s_renew_tx(s, held[i].render_id, held[i].lease_token, w->name, now_ms);
        if (rc == MG_STORE_ERR) goto fail;
        kept += rc == MG_STORE_OK;
    }
    mg_db_event(db, "worker_ready", 0, 0, w->name, "%s %s capacity %d", w->backend, w->device, w->capacity);
    if (mg_db_commit(db) != 0) return MG_STORE_ERR;
    if (reclaimed) *reclaimed = kept;
    return MG_STORE_OK;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

int mg_store_workers_last_seen(mg_store_t *s, const mg_worker_seen_t *seen, int n)
{
    sqlite3 *db = s->db;
    if (n <= 0) return MG_STORE_OK;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    for (int i = 0; i < n; i++)
        if (mg_db_run(db, "UPDATE workers SET last_seen_ms = ? WHERE name = ?", "is", seen[i].last_seen_ms,
                      seen[i].name) != 0) {
            mg_db_rollback(db);
            return MG_STORE_ERR;
        }
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_worker_leases(mg_store_t *s, const char *worker)
{
    return (int)mg_db_int(s->db, -1, "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = ?", "s",
                          worker);
}

int mg_store_cancel_job(mg_store_t *s, int64_t job_id, int64_t now_ms, int *n)
{
    sqlite3 *db = s->db;
    *n = 0;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (mg_db_int(db, 0, "SELECT count(*) FROM jobs WHERE id = ?", "i", job_id) == 0) {
        mg_db_rollback(db);
        return MG_STORE_NOT_FOUND;
    }
    if (mg_db_run(db,
            "UPDATE attempts SET outcome = 'cancelled', ended_ms = ? WHERE outcome = 'running' AND render_id IN "
            "(SELECT id FROM renders WHERE job_id = ? AND state = 'leased')", "ii", now_ms, job_id) != 0 ||
        mg_db_run(db,
            "UPDATE renders SET state = 'cancelled', lease_token = NULL, lease_worker = NULL, lease_expires_ms = NULL, "
            "finished_ms = ? WHERE job_id = ? AND state IN ('queued', 'leased')", "ii", now_ms, job_id) != 0)
        goto fail;
    *n = sqlite3_changes(db);
    if (mg_db_run(db, "UPDATE jobs SET state = 'cancelled', finished_ms = ? WHERE id = ? AND state = 'active'", "ii",
                  now_ms, job_id) != 0)
        goto fail;
    mg_db_event(db, "job_cancelled", job_id, 0, NULL, "job %" PRId64 " cancelled: %d renders stopped", job_id, *n);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

int mg_store_retry_job(mg_store_t *s, int64_t job_id, int64_t now_ms, int *n)
{
    sqlite3 *db = s->db;
    *n = 0;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (mg_db_int(db, 0, "SELECT count(*) FROM jobs WHERE id = ?", "i", job_id) == 0) {
        mg_db_rollback(db);
        return MG_STORE_NOT_FOUND;
    }
    if (mg_db_run(db,
            /* Attempt numbers stay unique per render: the budget grows instead. */
            "UPDATE renders SET state = 'queued', max_attempts = attempts + ?, finished_ms = NULL "
            "WHERE job_id = ? AND state IN ('failed', 'cancelled')", "ii", (int64_t)s->policy.max_attempts,
            job_id) != 0)
        goto fail;
    *n = sqlite3_changes(db);
    if (*n > 0 &&
        (mg_db_run(db, "UPDATE jobs SET state = 'active', finished_ms = NULL WHERE id = ?", "i", job_id) != 0 ||
         mg_db_run(db, "DELETE FROM worker_job_failures WHERE job_id = ?", "i", job_id) != 0))
        goto fail;
    mg_db_event(db, "job_retried", job_id, 0, NULL, "job %" PRId64 ": %d renders queued again", job_id, *n);
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

int64_t mg_store_next_deadline(mg_store_t *s)
{
    return mg_db_int(s->db, INT64_MAX, "SELECT min(lease_expires_ms) FROM renders WHERE state = 'leased'", "");
}

/* test_store.c - the coordinator's durable state (coordinator/store.c, db.c): schema
 * migrations, job submission and idempotency, the 10,000-render submit time, and every move
 * of the render lifecycle drawn at the top of store.c (lease, renew, complete, fail, expire,
 * worker lost, unlease, cancel, retry, recover, blocklist). Each test gets a fresh folder
 * (mkdtemp) for its database and outputs, and a synthetic clock (T0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <inttypes.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/jobspec.h"
#include "common/util.h"
#include "coordinator/db.h"
#include "coordinator/provenance.h"
#include "common/renderspec.h"
#include "coordinator/store.h"
#include "tests/testlib.h"

#define T0 INT64_C(1800000000000) /* 2027-01-15, a synthetic "now" */
#define LEASE_MS INT64_C(30000)

/* ---- fixture: a store in a temp folder (tests/testlib.h) ------------------------------ */

static int s_setup(void **state)
{
    mg_store_policy_t policy = {3, 3, LEASE_MS};
    *state = mg_test_store_new("store", &policy);
    return 0;
}

static int s_teardown(void **state)
{
    mg_test_store_t *f = *state;
    mg_test_store_destroy(&f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Submits yaml; asserts success and returns the job id. */
/* Changes the open store's policy: max_attempts and blocklist_after when > 0, the rest kept. */
static void s_set_policy(mg_store_t *s, int max_attempts, int blocklist_after)
{
    mg_store_policy_t p = *mg_store_policy(s);
    if (max_attempts > 0) p.max_attempts = max_attempts;
    if (blocklist_after > 0) p.blocklist_after = blocklist_after;
    mg_store_set_policy(s, &p);
    assert_int_equal(mg_store_policy(s)->max_attempts, p.max_attempts);
    assert_int_equal(mg_store_policy(s)->blocklist_after, p.blocklist_after);
}

static int64_t s_submit(mg_store_t *s, const char *yaml, size_t expect_renders)
{
    mg_job_t *job = mg_test_job_parse(yaml);
    char err[512] = "";
    int64_t id = 0;
    size_t n = 0;
    int dup = -1;
    int rc = mg_store_submit(s, job, "t.yaml", yaml, 0, &id, &n, &dup, err, sizeof err);
    if (rc != MG_STORE_OK) fprintf(stderr, "submit: %s\n", err);
    assert_int_equal(rc, MG_STORE_OK);
    assert_int_equal(dup, 0);
    assert_int_equal(n, expect_renders);
    assert_true(id > 0);
    mg_job_destroy(&job);
    return id;
}

static int64_t s_rows(sqlite3 *db)
{
    return mg_test_sql_int(db, "SELECT (SELECT count(*) FROM jobs) * 1000000 + (SELECT count(*) FROM cues) * 10000 + "
                           "(SELECT count(*) FROM renders) * 100 + (SELECT count(*) FROM cue_emotions)");
}

static const char *s_render_state(sqlite3 *db, int64_t render_id)
{
    return mg_test_sql_text(db, "SELECT state FROM renders WHERE id = %" PRId64, render_id);
}

static const char *s_job_state(sqlite3 *db, int64_t job_id)
{
    return mg_test_sql_text(db, "SELECT state FROM jobs WHERE id = %" PRId64, job_id);
}

static const char *s_attempt_outcome(sqlite3 *db, const char *token)
{
    return mg_test_sql_text(db, "SELECT outcome FROM attempts WHERE lease_token = '%s'", token);
}

/* The store left no transaction open: the test's connection takes the write lock at once. */
static void s_assert_no_transaction(sqlite3 *db)
{
    sqlite3_busy_timeout(db, 0);
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_busy_timeout(db, MG_TEST_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) fprintf(stderr, "BEGIN IMMEDIATE: %s\n", sqlite3_errmsg(db));
    assert_int_equal(rc, SQLITE_OK);
    mg_test_sql_exec(db, "ROLLBACK");
}

/* Leases exactly `expect` renders to worker. */
static void s_lease(mg_store_t *s, const char *worker, int max, int64_t now, mg_lease_t *out, int expect)
{
    int n = -1;
    assert_int_equal(mg_store_lease(s, worker, max, now, out, &n), MG_STORE_OK);
    assert_int_equal(n, expect);
}

/* A result with one or two files whose bytes name the render, the token and a tag. */
typedef struct {
    mg_result_t r;
    char data[2][128];
    char sha[2][65];
} s_res_t;

static void s_result(s_res_t *x, const mg_lease_t *l, const char *worker, const char *tag, int n_files)
{
    memset(x, 0, sizeof *x);
    static const char *const formats[2] = {"flac", "mp3"};
    for (int i = 0; i < n_files; i++) {
        int len = snprintf(x->data[i], sizeof x->data[i], "%s bytes of render %" PRId64 " token %s (%s)",
                           formats[i], l->render_id, l->lease_token, tag);
        mg_sha256_hex(x->data[i], (size_t)len, x->sha[i]);
        x->r.files[i].format = formats[i];
        x->r.files[i].kind = "mix";
        x->r.files[i].part = "";
        x->r.files[i].data = (const unsigned char *)x->data[i];
        x->r.files[i].len = (size_t)len;
        x->r.files[i].sha256 = x->sha[i];
        x->r.files[i].duration_s = 30.0;
        x->r.files[i].sample_rate = 48000;
        x->r.files[i].channels = 2;
    }
    x->r.n_files = n_files;
    x->r.render_id = l->render_id;
    x->r.lease_token = l->lease_token;
    x->r.worker = worker;
    x->r.backend = "cpu";
    x->r.device = "test";
    x->r.model_name = "test-renderer";
    x->r.model_version = "1";
    x->r.model_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    x->r.model_license = "MIT";
    x->r.attribution = "synth-a; Ana; CC-BY-4.0; https://example.org/a\nsynth-b; Bo; CC0; https://example.org/b";
    x->r.decision_json = "{\"tempo\":120}";
    x->r.started_ms = T0;
    x->r.finished_ms = T0 + 1000;
    x->r.integrated_lufs = -14.0;
    x->r.peak_dbfs = -1.0;
}

static int s_complete(mg_store_t *s, const s_res_t *x, int64_t now)
{
    char err[512] = "";
    return mg_store_complete(s, &x->r, now, err, sizeof err);
}

static int s_file_equals(const char *path, const void *data, size_t len)
{
    size_t got = 0;
    char *buf = mg_read_file(path, &got);
    if (!buf) return 0;
    int same = got == len && memcmp(buf, data, len) == 0;
    free(buf);
    return same;
}

/* Number of regular files under dir (recursively). */
static int s_nfiles;
static int s_count_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag == FTW_F) s_nfiles++;
    return 0;
}
static int s_count_files(const char *dir)
{
    s_nfiles = 0;
    nftw(dir, s_count_entry, 16, FTW_PHYS);
    return s_nfiles;
}

static int s_is_hex32(const char *t)
{
    if (strlen(t) != 32) return 0;
    for (int i = 0; i < 32; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))) return 0;
    return 1;
}

static const char s_job3[] =
    "campaign: Store Test\n"
    "client: Acme\n"
    "owner: qa@example.org\n"
    "cues:\n"
    "  - name: intro\n"
    "    prompt: \"calm piano intro\"\n"
    "    emotions: [calm, hopeful]\n"
    "    duration: 10\n"
    "    variations: 3\n";

/* ---- migrations ---------------------------------------------------------------------- */

/* The latest block number in a schema text, counted here independently of db.c. */
static int s_latest_block(const char *text)
{
    int latest = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "-- migrate: ", 12) == 0) {
            int v = atoi(p + 12);
            if (v > latest) latest = v;
        }
    }
    return latest;
}

static int s_table_exists(sqlite3 *db, const char *name)
{
    return (int)mg_db_int(db, 0, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", "s", name);
}

static void test_migrate_fresh_db(void **state)
{
    mg_test_store_t *f = *state;
    int latest = s_latest_block(mg_schema_sql);
    assert_true(latest >= 1);
    assert_int_equal(mg_db_user_version(f->db), latest);
    const char *const tables[] = {"jobs", "cues", "renders", "attempts", "workers", "outputs", "provenance",
                                  "schedules", "schedule_runs", "events", "models", "attribution", NULL};
    for (int i = 0; tables[i]; i++) assert_int_equal(s_table_exists(f->db, tables[i]), 1);
    assert_true(mg_test_sql_int(f->db, "SELECT count(*) FROM emotion_tags") > 10);
    assert_string_equal(mg_test_sql_text(f->db, "PRAGMA journal_mode"), "wal");
    /* foreign_keys is a setting of each connection: a trigger, which runs on the connection
     * that inserts, records the store's when it stores a job */
    mg_test_sql_exec(f->db, "CREATE TABLE fk_probe (enforced INTEGER); "
                            "CREATE TRIGGER fk_probe AFTER INSERT ON jobs "
                            "BEGIN INSERT INTO fk_probe SELECT foreign_keys FROM pragma_foreign_keys; END");
    s_submit(f->s, s_job3, 3);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT enforced FROM fk_probe"), 1);
}

static void test_migrate_reopen_keeps_data(void **state)
{
    mg_test_store_t *f = *state;
    int64_t id = s_submit(f->s, s_job3, 3);
    int v = mg_db_user_version(f->db);
    mg_store_close(&f->s);
    assert_null(f->s);
    mg_test_store_open(f);
    assert_int_equal(mg_db_user_version(f->db), v);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders"), 3);
    assert_string_equal(s_job_state(f->db, id), "active");
    /* Migrating again applies nothing: no change to any row. */
    int before = sqlite3_total_changes(f->db);
    char err[256] = "";
    assert_int_equal(mg_db_migrate(f->db, mg_schema_sql, err, sizeof err), v);
    assert_int_equal(sqlite3_total_changes(f->db), before);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
}

static sqlite3 *s_raw_open(const mg_test_store_t *f, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void test_migrate_custom_blocks(void **state)
{
    mg_test_store_t *f = *state;
    static const char schema[] =
        "-- a test schema\n"
        "\n"
        "-- migrate: 1\n"
        "CREATE TABLE a (x INTEGER);\n"
        "\n"
        "-- migrate: 2\n"
        "CREATE TABLE b (y INTEGER);\n"
        "INSERT INTO b VALUES (7);\n";
    sqlite3 *db = s_raw_open(f, "custom.db");
    /* A database at version 1 with data in a: block 1 must not run again (it would fail). */
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (42); PRAGMA user_version = 1;",
                                  NULL, NULL, NULL), SQLITE_OK);
    char err[256] = "";
    int rc = mg_db_migrate(db, schema, err, sizeof err);
    if (rc < 0) fprintf(stderr, "migrate: %s\n", err);
    assert_int_equal(rc, 2);
    assert_int_equal(mg_db_user_version(db), 2);
    assert_int_equal(mg_db_int(db, -1, "SELECT x FROM a", ""), 42);
    assert_int_equal(mg_db_int(db, -1, "SELECT count(*) FROM a", ""), 1);
    assert_int_equal(mg_db_int(db, -1, "SELECT y FROM b", ""), 7);
    /* Again: nothing to do, b keeps one row. */
    assert_int_equal(mg_db_migrate(db, schema, err, sizeof err), 2);
    assert_int_equal(mg_db_int(db, -1, "SELECT count(*) FROM b", ""), 1);
    sqlite3_close(db);

    /* A fresh database gets both blocks. */
    db = s_raw_open(f, "custom2.db");
    assert_int_equal(mg_db_migrate(db, schema, err, sizeof err), 2);
    assert_int_equal(s_table_exists(db, "a"), 1);
    assert_int_equal(s_table_exists(db, "b"), 1);
    sqlite3_close(db);
}

/* A block that fails leaves the database at the previous version with nothing of the block. */
static void test_migrate_failing_block_rolls_back(void **state)
{
    mg_test_store_t *f = *state;
    static const char schema[] =
        "-- header\n"
        "-- migrate: 1\n"
        "CREATE TABLE a (x INTEGER);\n"
        "-- migrate: 2\n"
        "CREATE TABLE c (z INTEGER);\n"
        "INSERT INTO no_such_table VALUES (1);\n";
    sqlite3 *db = s_raw_open(f, "fail.db");
    char err[256] = "";
    assert_int_equal(mg_db_migrate(db, schema, err, sizeof err), -1);
    assert_non_null(strstr(err, "migration 2"));
    assert_int_equal(mg_db_user_version(db), 1);
    assert_int_equal(s_table_exists(db, "a"), 1);
    assert_int_equal(s_table_exists(db, "c"), 0);
    sqlite3_close(db);

    /* Blocks out of order are refused before anything runs. */
    static const char gap[] = "--\n-- migrate: 1\nCREATE TABLE a (x);\n-- migrate: 3\nCREATE TABLE b (y);\n";
    db = s_raw_open(f, "gap.db");
    err[0] = 0;
    assert_int_equal(mg_db_migrate(db, gap, err, sizeof err), -1);
    assert_non_null(strstr(err, "numbered"));
    sqlite3_close(db);
}

/* db.c documents a marker as "a line that starts with '-- migrate: N'", but the search
 * is for "\n-- migrate: ", so a schema text whose very first line is the marker loses
 * block 1 and is refused as misnumbered. */
static void test_migrate_marker_on_first_line(void **state)
{
    mg_test_store_t *f = *state;
    static const char schema[] = "-- migrate: 1\nCREATE TABLE a (x);\n-- migrate: 2\nCREATE TABLE b (y);\n";
    sqlite3 *db = s_raw_open(f, "first.db");
    char err[256] = "";
    int rc = mg_db_migrate(db, schema, err, sizeof err);
    if (rc < 0) fprintf(stderr, "migrate: %s\n", err);
    assert_int_equal(rc, 2);
    assert_int_equal(s_table_exists(db, "a"), 1);
    sqlite3_close(db);
}

static void test_migrate_newer_db_refused(void **state)
{
    mg_test_store_t *f = *state;
    int latest = s_latest_block(mg_schema_sql);
    mg_store_close(&f->s);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    char err[256] = "";
    assert_int_equal(mg_db_migrate(db, mg_schema_sql, err, sizeof err), -1);
    assert_non_null(strstr(err, "newer"));
    sqlite3_close(db);

    err[0] = 0;
    mg_store_t *s = mg_store_open(f->db_path, f->out_path, &f->policy, err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "newer"));
    /* And the refusal changed nothing. */
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    assert_int_equal(mg_db_user_version(db), latest + 1);
    sqlite3_close(db);
}

/* ---- submit -------------------------------------------------------------------------- */

static void test_submit_expands_renders(void **state)
{
    mg_test_store_t *f = *state;
    static const char yaml[] =
        "campaign: Seeds Check\n"
        "priority: 5\n"
        "output:\n"
        "  formats: [flac, mp3]\n"
        "  loudness_lufs: -16\n"
        "cues:\n"
        "  - name: derived\n"
        "    prompt: \"dreamy pads\"\n"
        "    emotions: [dreamy, calm]\n"
        "    duration: 20\n"
        "    variations: 3\n"
        "  - name: fixed\n"
        "    prompt: \"tense strings\"\n"
        "    emotions: [tense]\n"
        "    duration: 5\n"
        "    seeds: [1, 18446744073709551615, 42]\n";
    int64_t id = s_submit(f->s, yaml, 6);
    sqlite3 *db = f->db;
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM renders"), 6);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM cues"), 2);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM cue_emotions"), 3);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM renders WHERE typeof(seed) <> 'text'"), 0);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM renders WHERE state = 'queued' AND attempts = 0 "
                                     "AND max_attempts = 3 AND lease_token IS NULL"), 6);
    /* Explicit seeds, the largest one exactly. */
    assert_string_equal(
        mg_test_sql_text(db, "SELECT group_concat(seed, ' ') FROM (SELECT r.seed FROM renders r JOIN cues c "
                             "ON c.id = r.cue_id WHERE c.name = 'fixed' ORDER BY r.variation)"),
        "1 18446744073709551615 42");
    /* Derived seeds equal mg_seed_derive, as decimal text. */
    for (int v = 0; v < 3; v++) {
        char want[32];
        snprintf(want, sizeof want, "%" PRIu64, mg_seed_derive("Seeds Check", "derived", v));
        assert_string_equal(mg_test_sql_text(db, "SELECT r.seed FROM renders r JOIN cues c ON c.id = r.cue_id "
                                             "WHERE c.name = 'derived' AND r.variation = %d", v), want);
    }
    assert_string_equal(mg_test_sql_text(db, "SELECT output_dir FROM jobs WHERE id = %" PRId64, id), "seeds-check");
    assert_string_equal(mg_test_sql_text(db, "SELECT formats FROM jobs"), "flac,mp3");
    assert_int_equal(mg_test_sql_int(db, "SELECT priority FROM jobs"), 5);
    assert_int_equal(mg_test_sql_int(db, "SELECT loudness_lufs FROM jobs"), -16);
    assert_string_equal(s_job_state(db, id), "active");
    assert_string_equal(mg_test_sql_text(db, "SELECT source_text FROM jobs"), yaml);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM events WHERE kind = 'job_submitted'"), 1);
}

static void test_submit_duplicate_same_key(void **state)
{
    mg_test_store_t *f = *state;
    int64_t id = s_submit(f->s, s_job3, 3);
    int64_t rows = s_rows(f->db);
    int64_t events = mg_test_sql_int(f->db, "SELECT count(*) FROM events");
    mg_job_t *job = mg_test_job_parse(s_job3);
    int64_t id2 = 0;
    size_t n = 0;
    int dup = 0;
    char err[256] = "";
    assert_int_equal(mg_store_submit(f->s, job, "t.yaml", s_job3, 0, &id2, &n, &dup, err, sizeof err), MG_STORE_OK);
    mg_job_destroy(&job);
    assert_int_equal(id2, id);
    assert_int_equal(dup, 1);
    assert_int_equal(n, 3);
    assert_int_equal(s_rows(f->db), rows);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events"), events);

    /* An explicit key, submitted twice with a different layout but the same content. */
    static const char a[] = "campaign: K\nidempotency_key: key-1\ncues:\n  - name: x\n    prompt: \"calm piano\"\n";
    static const char b[] =
        "# the same job\ncampaign: K\nidempotency_key: key-1\ncues:\n  - {name: x, prompt: calm piano}\n";
    int64_t ka = s_submit(f->s, a, 1);
    rows = s_rows(f->db);
    job = mg_test_job_parse(b);
    assert_int_equal(mg_store_submit(f->s, job, "b.yaml", b, 0, &id2, &n, &dup, err, sizeof err), MG_STORE_OK);
    mg_job_destroy(&job);
    assert_int_equal(id2, ka);
    assert_int_equal(dup, 1);
    assert_int_equal(s_rows(f->db), rows);
}

static void test_submit_conflict(void **state)
{
    mg_test_store_t *f = *state;
    static const char a[] = "campaign: K\nidempotency_key: key-7\ncues:\n  - name: x\n    prompt: \"calm piano\"\n";
    static const char b[] = "campaign: K\nidempotency_key: key-7\ncues:\n  - name: x\n    prompt: \"loud drums\"\n";
    int64_t ka = s_submit(f->s, a, 1);
    int64_t rows = s_rows(f->db);
    mg_job_t *job = mg_test_job_parse(b);
    int64_t id = -5;
    size_t n = 99;
    int dup = 7;
    char err[512] = "";
    assert_int_equal(mg_store_submit(f->s, job, "b.yaml", b, 0, &id, &n, &dup, err, sizeof err), MG_STORE_CONFLICT);
    mg_job_destroy(&job);
    assert_non_null(strstr(err, "key-7"));
    assert_int_equal(dup, 0);
    assert_int_equal(n, 0);
    assert_int_equal(s_rows(f->db), rows);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT source_text FROM jobs WHERE id = %" PRId64, ka), a);
    /* The store is still usable (no transaction left open). */
    s_assert_no_transaction(f->db);
    s_submit(f->s, s_job3, 3);
}

static void test_submit_same_campaign_output_dir(void **state)
{
    mg_test_store_t *f = *state;
    static const char a[] = "campaign: Summer Sale\ncues:\n  - name: x\n    prompt: \"calm piano\"\n";
    static const char b[] = "campaign: Summer Sale\ncues:\n  - name: x\n    prompt: \"calm guitar\"\n";
    static const char c[] = "campaign: Summer Sale\ncues:\n  - name: x\n    prompt: \"calm harp\"\n";
    int64_t ja = s_submit(f->s, a, 1), jb = s_submit(f->s, b, 1), jc = s_submit(f->s, c, 1);
    char want[64];
    assert_string_equal(mg_test_sql_text(f->db, "SELECT output_dir FROM jobs WHERE id = %" PRId64, ja), "summer-sale");
    snprintf(want, sizeof want, "summer-sale.%" PRId64, jb);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT output_dir FROM jobs WHERE id = %" PRId64, jb), want);
    snprintf(want, sizeof want, "summer-sale.%" PRId64, jc);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT output_dir FROM jobs WHERE id = %" PRId64, jc), want);
}

/* store.c mg_store_submit_tx names a later job of a campaign "<slug>.<id>" without checking
 * that no other job already uses that name: a campaign literally called "promo.3" (job 1)
 * and the second "promo" job (job 3) share outputs/promo.3/. */
static void test_submit_output_dir_unique(void **state)
{
    mg_test_store_t *f = *state;
    static const char a[] = "campaign: promo.3\ncues:\n  - name: x\n    prompt: \"calm piano\"\n";
    static const char b[] = "campaign: promo\ncues:\n  - name: x\n    prompt: \"calm guitar\"\n";
    static const char c[] = "campaign: promo\ncues:\n  - name: x\n    prompt: \"calm harp\"\n";
    int64_t ja = s_submit(f->s, a, 1), jb = s_submit(f->s, b, 1), jc = s_submit(f->s, c, 1);
    assert_int_equal(ja, 1);
    assert_int_equal(jb, 2);
    assert_int_equal(jc, 3);
    /* The consequence: job 3's result overwrites job 1's file, then fails on outputs.path. */
    mg_lease_t l[3];
    s_lease(f->s, "w1", 3, T0, l, 3);
    s_res_t x1, x3;
    s_result(&x1, &l[0], "w1", "job 1", 1);
    s_result(&x3, &l[2], "w1", "job 3", 1);
    assert_int_equal(l[0].spec.job_id, ja);
    assert_int_equal(l[2].spec.job_id, jc);
    assert_int_equal(s_complete(f->s, &x1, T0 + 1), MG_STORE_OK);
    int rc3 = s_complete(f->s, &x3, T0 + 2);
    char abs[700];
    snprintf(abs, sizeof abs, "%s/%s", f->out_path,
             mg_test_sql_text(f->db, "SELECT path FROM outputs WHERE render_id = %" PRId64, l[0].render_id));
    assert_true(s_file_equals(abs, x1.data[0], x1.r.files[0].len));
    assert_int_equal(rc3, MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(DISTINCT output_dir) FROM jobs"), 3);
}

static void test_submit_10000_renders(void **state)
{
    mg_test_store_t *f = *state;
    size_t cap = 256 * 1024, len = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    len += (size_t)snprintf(yaml + len, cap - len, "campaign: big catalogue\ncues:\n");
    for (int c = 0; c < 250; c++)
        len += (size_t)snprintf(yaml + len, cap - len,
                                "  - name: cue-%03d\n    prompt: \"ambient texture number %d\"\n"
                                "    emotions: [calm]\n    duration: 30\n    variations: 40\n", c, c);
    assert_true(len < cap - 1);
    mg_job_t *job = mg_test_job_parse(yaml);
    assert_int_equal(mg_job_render_count(job), 10000);
    struct timespec a, b;
    int64_t id = 0;
    size_t n = 0;
    int dup = 0;
    char err[256] = "";
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = mg_store_submit(f->s, job, "big.yaml", yaml, 0, &id, &n, &dup, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    mg_job_destroy(&job);
    free(yaml);
    assert_int_equal(rc, MG_STORE_OK);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("submit of 10,000 renders (250 cues x 40 variations): %.1f ms (one transaction, synchronous=FULL, "
           "database in %s)\n", ms, f->dir);
    assert_int_equal(n, 10000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders"), 10000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(DISTINCT seed) FROM renders"), 10000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM cues"), 250);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'queued'"), 10000);
}

/* ---- leases -------------------------------------------------------------------------- */

static void test_lease_priority_order(void **state)
{
    mg_test_store_t *f = *state;
    static const char low[] = "campaign: low\npriority: 0\ncues:\n  - name: x\n    prompt: \"calm piano\"\n"
                              "    variations: 2\n";
    static const char high[] = "campaign: high\npriority: 50\ncues:\n  - name: y\n    prompt: \"fast drums\"\n"
                               "    variations: 2\n";
    static const char mid[] = "campaign: mid\npriority: 10\ncues:\n  - name: z\n    prompt: \"warm bass\"\n";
    int64_t jl = s_submit(f->s, low, 2);
    int64_t jh = s_submit(f->s, high, 2);
    int64_t jm = s_submit(f->s, mid, 1);
    mg_lease_t l[8];
    memset(l, 0, sizeof l);
    s_lease(f->s, "w1", 4, T0, l, 4);
    int64_t want_jobs[4] = {jh, jh, jm, jl};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(l[i].spec.job_id, want_jobs[i]);
        assert_int_equal(l[i].attempt, 1);
        assert_int_equal(l[i].deadline_ms, T0 + LEASE_MS);
        assert_true(s_is_hex32(l[i].lease_token));
        for (int k = 0; k < i; k++) assert_string_not_equal(l[i].lease_token, l[k].lease_token);
        assert_string_equal(s_render_state(f->db, l[i].render_id), "leased");
        assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, l[i].render_id), 1);
        assert_int_equal(
            mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, l[i].render_id),
            T0 + LEASE_MS);
        assert_string_equal(
            mg_test_sql_text(f->db, "SELECT lease_token FROM renders WHERE id = %" PRId64, l[i].render_id),
            l[i].lease_token);
        assert_string_equal(
            mg_test_sql_text(f->db, "SELECT lease_worker FROM renders WHERE id = %" PRId64, l[i].render_id), "w1");
        assert_string_equal(s_attempt_outcome(f->db, l[i].lease_token), "running");
    }
    /* Within a job: variation order; the spec comes from the database. */
    assert_int_equal(l[0].spec.variation, 0);
    assert_int_equal(l[1].spec.variation, 1);
    assert_string_equal(l[0].spec.prompt, "fast drums");
    assert_string_equal(l[0].spec.campaign, "high");
    assert_int_equal(l[0].spec.seed, mg_seed_derive("high", "y", 0));
    /* One left; then none. */
    s_lease(f->s, "w1", 8, T0, l, 1);
    assert_int_equal(l[0].spec.job_id, jl);
    s_lease(f->s, "w1", 8, T0, l, 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM attempts"), 5);
    assert_int_equal(mg_store_next_deadline(f->s), T0 + LEASE_MS);
}

static void test_lease_max_zero_and_next_deadline(void **state)
{
    mg_test_store_t *f = *state;
    assert_int_equal(mg_store_next_deadline(f->s), INT64_MAX);
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[4];
    s_lease(f->s, "w1", 0, T0, l, 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'queued'"), 3);
    s_lease(f->s, "w1", 1, T0, l, 1);
    s_lease(f->s, "w1", 1, T0 + 5000, l + 1, 1);
    assert_int_equal(mg_store_next_deadline(f->s), T0 + LEASE_MS);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = 'w1'"), 2);
}

static void test_renew(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    int64_t id = l[0].render_id;
    assert_int_equal(mg_store_renew(f->s, id, l[0].lease_token, T0 + 20000), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, id),
                     T0 + 20000 + LEASE_MS);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT deadline_ms FROM attempts WHERE lease_token = '%s'", l[0].lease_token),
        T0 + 20000 + LEASE_MS);
    /* Wrong token: stale, nothing moves. */
    assert_int_equal(mg_store_renew(f->s, id, "00000000000000000000000000000000", T0 + 25000), MG_STORE_STALE);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, id),
                     T0 + 20000 + LEASE_MS);
    /* The token of another render: stale too. */
    mg_lease_t other[1];
    s_lease(f->s, "w1", 1, T0, other, 1);
    assert_int_equal(mg_store_renew(f->s, id, other[0].lease_token, T0 + 25000), MG_STORE_STALE);
    /* A renewed lease does not expire at the first deadline. */
    int n = -1;
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1); /* only `other` */
    assert_string_equal(s_render_state(f->db, id), "leased");
    assert_string_equal(s_render_state(f->db, other[0].render_id), "queued");
    /* After the render is done the token is stale. */
    s_res_t x;
    s_result(&x, &l[0], "w1", "renew", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 30000), MG_STORE_OK);
    assert_int_equal(mg_store_renew(f->s, id, l[0].lease_token, T0 + 31000), MG_STORE_STALE);
}

/* ---- complete ------------------------------------------------------------------------ */

static void test_complete_writes_outputs(void **state)
{
    mg_test_store_t *f = *state;
    int64_t job = s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    s_res_t x;
    s_result(&x, &l[0], "w1", "first", 2);
    char err[512] = "";
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + 5000, err, sizeof err), MG_STORE_OK);
    int64_t id = l[0].render_id;
    sqlite3 *db = f->db;
    assert_string_equal(s_render_state(db, id), "done");
    assert_string_equal(mg_test_sql_text(db, "SELECT lease_token FROM renders WHERE id = %" PRId64, id), "<null>");
    assert_int_equal(mg_test_sql_int(db, "SELECT finished_ms FROM renders WHERE id = %" PRId64, id), T0 + 5000);
    assert_string_equal(mg_test_sql_text(db, "SELECT decision_json FROM renders WHERE id = %" PRId64, id),
                        "{\"tempo\":120}");
    assert_string_equal(s_attempt_outcome(db, l[0].lease_token), "done");
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM outputs WHERE render_id = %" PRId64, id), 2);
    const char *formats[2] = {"flac", "mp3"};
    for (int i = 0; i < 2; i++) {
        char want_rel[256], abs[700];
        snprintf(want_rel, sizeof want_rel, "store-test/intro/intro-v01.%s", formats[i]);
        assert_string_equal(mg_test_sql_text(db,
                                             "SELECT path FROM outputs WHERE render_id = %" PRId64 " AND format = '%s'",
                                             id, formats[i]),
                            want_rel);
        assert_string_equal(
            mg_test_sql_text(db, "SELECT sha256 FROM outputs WHERE render_id = %" PRId64 " AND format = '%s'", id,
                             formats[i]),
            x.sha[i]);
        assert_int_equal(mg_test_sql_int(db,
                                         "SELECT bytes FROM outputs WHERE render_id = %" PRId64 " AND format = '%s'",
                                         id, formats[i]),
                         (int64_t)x.r.files[i].len);
        snprintf(abs, sizeof abs, "%s/%s", f->out_path, want_rel);
        assert_true(s_file_equals(abs, x.data[i], x.r.files[i].len));
    }
    assert_int_equal(s_count_files(f->out_path), 2);
    /* Provenance, model and attribution. */
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM provenance WHERE render_id = %" PRId64, id), 1);
    assert_int_equal(mg_test_sql_int(db, "SELECT seq FROM provenance"), 1);
    assert_string_equal(mg_test_sql_text(db, "SELECT worker FROM provenance"), "w1");
    assert_int_equal(
        mg_test_sql_int(db, "SELECT count(*) FROM models WHERE name = 'test-renderer' AND license = 'MIT'"), 1);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM attribution"), 2);
    assert_string_equal(mg_test_sql_text(db, "SELECT author FROM attribution WHERE source = 'synth-b'"), "Bo");
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM audit_renders WHERE render_id = %" PRId64, id), 2);
    /* The job is not done while two renders are queued. */
    assert_string_equal(s_job_state(db, job), "active");
}

static void test_complete_twice_same_token(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    s_res_t x;
    s_result(&x, &l[0], "w1", "once", 2);
    assert_int_equal(s_complete(f->s, &x, T0 + 5000), MG_STORE_OK);
    int64_t events = mg_test_sql_int(f->db, "SELECT count(*) FROM events");
    /* The ACK was lost; the worker sends the same result again. */
    assert_int_equal(s_complete(f->s, &x, T0 + 6000), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 2);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT min(created_ms) FROM outputs"), T0 + 5000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT finished_ms FROM renders WHERE id = %" PRId64, l[0].render_id),
                     T0 + 5000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events"), events);
    assert_int_equal(s_count_files(f->out_path), 2);
}

static void test_complete_stale_token(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t a[1], b[1];
    s_lease(f->s, "wA", 1, T0, a, 1);
    int n = -1;
    /* A's lease ends, the render goes to B. */
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    s_lease(f->s, "wB", 1, T0 + LEASE_MS + 2, b, 1);
    assert_int_equal(b[0].render_id, a[0].render_id);
    assert_int_equal(b[0].attempt, 2);
    assert_string_not_equal(a[0].lease_token, b[0].lease_token);
    /* A wakes up and sends its result: rejected, nothing written. */
    s_res_t x;
    s_result(&x, &a[0], "wA", "late", 2);
    char err[512] = "";
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + LEASE_MS + 3, err, sizeof err), MG_STORE_STALE);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 0);
    assert_int_equal(s_count_files(f->out_path), 0);
    const char *outcome = s_attempt_outcome(f->db, a[0].lease_token);
    assert_true(strcmp(outcome, "expired") == 0 || strcmp(outcome, "rejected") == 0);
    assert_string_equal(s_attempt_outcome(f->db, b[0].lease_token), "running");
    assert_string_equal(s_render_state(f->db, b[0].render_id), "leased");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_token FROM renders WHERE id = %" PRId64, b[0].render_id),
                        b[0].lease_token);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'result_rejected'"), 1);
    /* B's result is accepted; A's again after that is still stale and changes nothing. */
    s_res_t y;
    s_result(&y, &b[0], "wB", "current", 1);
    assert_int_equal(s_complete(f->s, &y, T0 + LEASE_MS + 4), MG_STORE_OK);
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + LEASE_MS + 5, err, sizeof err), MG_STORE_STALE);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT sha256 FROM outputs"), y.sha[0]);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT worker FROM provenance"), "wB");
    char abs[700];
    snprintf(abs, sizeof abs, "%s/store-test/intro/intro-v01.flac", f->out_path);
    assert_true(s_file_equals(abs, y.data[0], y.r.files[0].len));
}

/* A token that was never issued for the render: rejected, the live lease untouched. */
static void test_complete_unknown_token_rejected(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    mg_lease_t forged = l[0];
    memcpy(forged.lease_token, "ffffffffffffffffffffffffffffffff", 33);
    s_res_t x;
    s_result(&x, &forged, "w1", "forged", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 1), MG_STORE_STALE);
    assert_string_equal(s_render_state(f->db, l[0].render_id), "leased");
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "running");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(s_count_files(f->out_path), 0);
}

static void test_complete_bad_sha256(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    s_res_t x;
    s_result(&x, &l[0], "w1", "corrupt", 2);
    x.data[1][0] ^= 1; /* the mp3 was damaged in transit; the flac is fine */
    char err[512] = "";
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + 1000, err, sizeof err), MG_STORE_ERR);
    assert_non_null(strstr(err, "sha256"));
    assert_non_null(strstr(err, "mp3"));
    assert_string_equal(s_render_state(f->db, l[0].render_id), "leased");
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "running");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM models"), 0);
    assert_int_equal(s_count_files(f->out_path), 0);
    /* A missing sha256 is refused the same way. */
    x.data[1][0] ^= 1;
    x.r.files[0].sha256 = NULL;
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + 1000, err, sizeof err), MG_STORE_ERR);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    /* The good result is still accepted afterwards. */
    x.r.files[0].sha256 = x.sha[0];
    assert_int_equal(s_complete(f->s, &x, T0 + 2000), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 2);
}

/* The output file cannot be written (a plain file sits where the cue folder goes): an
 * error, nothing recorded, the lease still live so the worker can send it again. */
static void test_complete_write_failure(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    char dir[400], blocker[500];
    snprintf(dir, sizeof dir, "%s/store-test", f->out_path);
    assert_int_equal(mg_mkdir_p(dir, 0755), 0);
    snprintf(blocker, sizeof blocker, "%s/intro", dir);
    assert_int_equal(mg_write_file_atomic(blocker, "x", 1), 0);
    s_res_t x;
    s_result(&x, &l[0], "w1", "no room", 1);
    char err[512] = "";
    assert_int_equal(mg_store_complete(f->s, &x.r, T0 + 1, err, sizeof err), MG_STORE_ERR);
    assert_non_null(strstr(err, "intro"));
    assert_string_equal(s_render_state(f->db, l[0].render_id), "leased");
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "running");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 0);
    s_assert_no_transaction(f->db);
    /* Once the folder can be made, the same result goes through. */
    assert_int_equal(remove(blocker), 0);
    assert_int_equal(s_complete(f->s, &x, T0 + 2), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 1);
}

/* ---- expire, fail, blocklist, worker lost, unlease ------------------------------------- */

static void test_expire_requeue_then_fail(void **state)
{
    mg_test_store_t *f = *state;
    s_set_policy(f->s, 2, 0);
    static const char yaml[] = "campaign: exp\ncues:\n  - name: x\n    prompt: \"calm piano\"\n    variations: 3\n";
    int64_t job = s_submit(f->s, yaml, 3);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 1, T0, l, 1);
    int64_t r1 = l[0].render_id;
    int n = -1;
    /* Not before the deadline (strictly after it). */
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS, &n), MG_STORE_OK);
    assert_int_equal(n, 0);
    assert_string_equal(s_render_state(f->db, r1), "leased");
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s_render_state(f->db, r1), "queued");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, r1), 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_token FROM renders WHERE id = %" PRId64, r1), "<null>");
    assert_non_null(
        strstr(mg_test_sql_text(f->db, "SELECT last_error FROM renders WHERE id = %" PRId64, r1), "expired"));
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "expired");
    /* Second and last attempt. */
    int64_t T1 = T0 + 100000;
    s_lease(f->s, "w2", 1, T1, l, 1);
    assert_int_equal(l[0].render_id, r1);
    assert_int_equal(l[0].attempt, 2);
    assert_int_equal(mg_store_expire(f->s, T1 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s_render_state(f->db, r1), "failed");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, r1), 2);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT finished_ms FROM renders WHERE id = %" PRId64, r1),
                     T1 + LEASE_MS + 1);
    const char *last = mg_test_sql_text(f->db, "SELECT last_error FROM renders WHERE id = %" PRId64, r1);
    assert_non_null(strstr(last, "expired"));
    assert_non_null(strstr(last, "2 attempts"));
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "expired");
    /* The other renders were never touched; the job goes on. */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE id <> %" PRId64
                                     " AND state = 'queued' AND attempts = 0 AND last_error IS NULL", r1), 2);
    assert_string_equal(s_job_state(f->db, job), "active");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM audit_failures"), 2);
    /* The failed render is never leased again. */
    s_lease(f->s, "w1", 3, T1 + LEASE_MS + 2, l, 2);
    assert_true(l[0].render_id != r1 && l[1].render_id != r1);
    for (int i = 0; i < 2; i++) {
        s_res_t x;
        s_result(&x, &l[i], "w1", "ok", 1);
        assert_int_equal(s_complete(f->s, &x, T1 + LEASE_MS + 3), MG_STORE_OK);
    }
    /* Nothing queued or leased, one failed: the job failed. */
    assert_string_equal(s_job_state(f->db, job), "failed");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT finished_ms FROM jobs WHERE id = %" PRId64, job),
                     T1 + LEASE_MS + 3);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'job_failed'"), 1);
}

/* The render fails by expiry while the other renders are already done: the expiry
 * itself finishes the job. */
static void test_expire_last_render_fails_job(void **state)
{
    mg_test_store_t *f = *state;
    s_set_policy(f->s, 1, 0);
    static const char yaml[] = "campaign: exp1\ncues:\n  - name: x\n    prompt: \"calm piano\"\n    variations: 2\n";
    int64_t job = s_submit(f->s, yaml, 2);
    mg_lease_t l[2];
    s_lease(f->s, "w1", 2, T0, l, 2);
    s_res_t x;
    s_result(&x, &l[0], "w1", "ok", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 10), MG_STORE_OK);
    assert_string_equal(s_job_state(f->db, job), "active");
    int n = -1;
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s_render_state(f->db, l[1].render_id), "failed");
    assert_string_equal(s_render_state(f->db, l[0].render_id), "done");
    assert_string_equal(s_job_state(f->db, job), "failed");
}

static void test_fail_retryable_vs_permanent(void **state)
{
    mg_test_store_t *f = *state;
    int64_t job = s_submit(f->s, s_job3, 3);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 2, T0, l, 2);
    /* Retryable: queued again, error kept. */
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "w1", 1, "out of GPU memory", T0 + 10),
                     MG_STORE_OK);
    assert_string_equal(s_render_state(f->db, l[0].render_id), "queued");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT last_error FROM renders WHERE id = %" PRId64, l[0].render_id),
                        "out of GPU memory");
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "failed");
    assert_string_equal(
        mg_test_sql_text(f->db, "SELECT error FROM attempts WHERE lease_token = '%s'", l[0].lease_token),
        "out of GPU memory");
    /* Permanent: failed at once, with attempts to spare. */
    assert_int_equal(mg_store_fail(f->s, l[1].render_id, l[1].lease_token, "w1", 0, "prompt rejected by model",
                                   T0 + 20), MG_STORE_OK);
    assert_string_equal(s_render_state(f->db, l[1].render_id), "failed");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, l[1].render_id), 1);
    assert_non_null(
        strstr(mg_test_sql_text(f->db, "SELECT last_error FROM renders WHERE id = %" PRId64, l[1].render_id),
               "prompt rejected by model"));
    /* The same failure again (stale token): rejected, nothing changes. */
    assert_int_equal(mg_store_fail(f->s, l[1].render_id, l[1].lease_token, "w1", 1, "again", T0 + 30),
                     MG_STORE_STALE);
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "w1", 1, "again", T0 + 30),
                     MG_STORE_STALE);
    assert_string_equal(s_render_state(f->db, l[0].render_id), "queued");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'failure_rejected'"), 2);
    /* Retryable failures run out at max_attempts (3). Each retry goes to another worker
     * (the one that failed it last is served other work first). */
    int64_t r0 = l[0].render_id;
    assert_string_equal(mg_test_sql_text(f->db, "SELECT last_worker FROM renders WHERE id = %" PRId64, r0), "w1");
    const char *const workers[4] = {"", "", "w2", "w3"};
    for (int attempt = 2; attempt <= 3; attempt++) {
        mg_lease_t m[1];
        s_lease(f->s, workers[attempt], 1, T0 + 100 * attempt, m, 1);
        assert_int_equal(m[0].render_id, r0);
        assert_int_equal(m[0].attempt, attempt);
        assert_int_equal(mg_store_fail(f->s, r0, m[0].lease_token, workers[attempt], 1, "out of GPU memory",
                                       T0 + 100 * attempt + 1), MG_STORE_OK);
    }
    assert_string_equal(s_render_state(f->db, r0), "failed");
    assert_non_null(strstr(mg_test_sql_text(f->db, "SELECT last_error FROM renders WHERE id = %" PRId64, r0),
                           "out of GPU memory"));
    assert_string_equal(s_job_state(f->db, job), "active"); /* one render still queued */
}

/* A render that just failed on a worker goes to that worker again only when it has
 * nothing else to do. */
static void test_retry_prefers_other_worker(void **state)
{
    mg_test_store_t *f = *state;
    s_set_policy(f->s, 0, 100);
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 1, T0, l, 1);
    int64_t r1 = l[0].render_id;
    assert_int_equal(mg_store_fail(f->s, r1, l[0].lease_token, "w1", 1, "glitch", T0 + 1), MG_STORE_OK);
    /* w1 gets the two others first, then r1 again. */
    s_lease(f->s, "w1", 1, T0 + 2, l, 1);
    assert_int_not_equal(l[0].render_id, r1);
    s_lease(f->s, "w1", 1, T0 + 3, l + 1, 1);
    assert_int_not_equal(l[1].render_id, r1);
    s_lease(f->s, "w1", 1, T0 + 4, l + 2, 1);
    assert_int_equal(l[2].render_id, r1);
    assert_int_equal(l[2].attempt, 2);
}

static void test_blocklist(void **state)
{
    mg_test_store_t *f = *state;
    s_set_policy(f->s, 10, 2);
    static const char x_yaml[] = "campaign: bl-x\ncues:\n  - name: x\n    prompt: \"calm piano\"\n    variations: 4\n";
    static const char y_yaml[] = "campaign: bl-y\npriority: -1\ncues:\n  - name: y\n    prompt: \"warm pads\"\n";
    int64_t jx = s_submit(f->s, x_yaml, 4);
    int64_t jy = s_submit(f->s, y_yaml, 1);
    mg_lease_t l[4];
    /* fail, success, fail: not consecutive, not blocked. */
    s_lease(f->s, "bad", 1, T0, l, 1);
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "bad", 1, "crash", T0 + 1), MG_STORE_OK);
    s_lease(f->s, "bad", 1, T0 + 2, l, 1);
    s_res_t x;
    s_result(&x, &l[0], "bad", "ok", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 3), MG_STORE_OK);
    s_lease(f->s, "bad", 1, T0 + 4, l, 1);
    assert_int_equal(l[0].spec.job_id, jx);
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "bad", 1, "crash", T0 + 5), MG_STORE_OK);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT blocked FROM worker_job_failures WHERE worker = 'bad' AND job_id = %" PRId64,
                        jx),
        0);
    /* A second failure in a row: blocked for job x. */
    s_lease(f->s, "bad", 1, T0 + 6, l, 1);
    assert_int_equal(l[0].spec.job_id, jx);
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "bad", 1, "crash", T0 + 7), MG_STORE_OK);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT blocked FROM worker_job_failures WHERE worker = 'bad' AND job_id = %" PRId64,
                        jx),
        1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'worker_blocklisted'"), 1);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE job_id = %" PRId64 " AND state = 'queued'", jx), 3);
    /* 'bad' now only gets job y (lower priority), never job x. */
    s_lease(f->s, "bad", 4, T0 + 8, l, 1);
    assert_int_equal(l[0].spec.job_id, jy);
    s_lease(f->s, "bad", 4, T0 + 9, l, 0);
    /* Another worker still gets job x. */
    s_lease(f->s, "good", 4, T0 + 10, l, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(l[i].spec.job_id, jx);
}

static void test_worker_lost(void **state)
{
    mg_test_store_t *f = *state;
    static const char yaml[] = "campaign: lost\ncues:\n  - name: x\n    prompt: \"calm piano\"\n    variations: 4\n";
    s_submit(f->s, yaml, 4);
    assert_int_equal(mg_store_worker_seen(f->s, "A", "host-a", 11, "cpu", "test", 2, "", T0), MG_STORE_OK);
    assert_int_equal(mg_store_worker_seen(f->s, "B", "host-b", 12, "cpu", "test", 2, "", T0), MG_STORE_OK);
    mg_lease_t a[2], b[1];
    s_lease(f->s, "A", 2, T0, a, 2);
    s_lease(f->s, "B", 1, T0, b, 1);
    int n = -1;
    assert_int_equal(mg_store_worker_lost(f->s, "A", "silent for 3000 ms", T0 + 100, &n), MG_STORE_OK);
    assert_int_equal(n, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(s_render_state(f->db, a[i].render_id), "queued");
        assert_string_equal(s_attempt_outcome(f->db, a[i].lease_token), "lost");
        assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, a[i].render_id), 1);
    }
    assert_string_equal(s_render_state(f->db, b[0].render_id), "leased");
    assert_string_equal(s_attempt_outcome(f->db, b[0].lease_token), "running");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM workers WHERE name = 'A'"), "gone");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM workers WHERE name = 'B'"), "ready");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'queued'"), 3);
    /* Losing it again finds nothing. */
    assert_int_equal(mg_store_worker_lost(f->s, "A", "silent for 3000 ms", T0 + 200, &n), MG_STORE_OK);
    assert_int_equal(n, 0);
}

/* READY from a reconnected worker: the row, the leases it still holds (renewed and made its
 * own: a lease it took over from its previous name or connection is no longer counted against
 * another worker) and the event commit together; a stale token is skipped. The last_seen
 * flush and worker_lost's event are store writes too. */
static void test_worker_ready_reclaims(void **state)
{
    mg_test_store_t *f = *state;
    static const char yaml[] = "campaign: ready\ncues:\n  - name: x\n    prompt: \"calm piano\"\n    variations: 3\n";
    s_submit(f->s, yaml, 3);
    mg_lease_t a[2];
    s_lease(f->s, "old-name", 2, T0, a, 2);
    assert_int_equal(mg_store_worker_leases(f->s, "old-name"), 2);
    const mg_worker_info_t w = {"B", "host-b", 12, "cpu", "test", 2, "synth"};
    const mg_held_lease_t held[] = {
        {a[0].render_id, a[0].lease_token},
        {a[1].render_id, "00000000000000000000000000000000"}, /* stale: skipped */
        {999999, a[1].lease_token},                           /* no such render: skipped */
    };
    int kept = -1;
    /* A write that fails half-way (the attempt's deadline) leaves nothing behind: no worker
     * row, the lease still the old worker's, no event. */
    mg_test_sql_exec(f->db, "CREATE TRIGGER full BEFORE UPDATE OF deadline_ms ON attempts "
                            "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END");
    assert_int_equal(mg_store_worker_ready(f->s, &w, held, 1, T0 + 5000, &kept), MG_STORE_ERR);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM workers"), 0);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_worker FROM renders WHERE id = %" PRId64, a[0].render_id),
                        "old-name");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, a[0].render_id),
                     T0 + LEASE_MS);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'worker_ready'"), 0);
    mg_test_sql_exec(f->db, "DROP TRIGGER full");
    assert_int_equal(mg_store_worker_ready(f->s, &w, held, 3, T0 + 10000, &kept), MG_STORE_OK);
    assert_int_equal(kept, 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_worker FROM renders WHERE id = %" PRId64, a[0].render_id),
                        "B");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, a[0].render_id),
                     T0 + 10000 + LEASE_MS);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT deadline_ms FROM attempts WHERE lease_token = '%s'",
                                     a[0].lease_token),
                     T0 + 10000 + LEASE_MS);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_worker FROM renders WHERE id = %" PRId64, a[1].render_id),
                        "old-name");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, a[1].render_id),
                     T0 + LEASE_MS);
    assert_int_equal(mg_store_worker_leases(f->s, "B"), 1);
    assert_int_equal(mg_store_worker_leases(f->s, "old-name"), 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state || ' ' || capacity || ' ' || models FROM workers "
                                                "WHERE name = 'B'"),
                        "ready 2 synth");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT message FROM events WHERE kind = 'worker_ready' AND worker = 'B'"),
                        "cpu test capacity 2");
    /* The flush of last_seen_ms: one transaction for every worker named. */
    const mg_worker_seen_t seen[] = {{"B", T0 + 20000}, {"nobody", T0 + 20000}};
    assert_int_equal(mg_store_workers_last_seen(f->s, seen, 2), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT last_seen_ms FROM workers WHERE name = 'B'"), T0 + 20000);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM workers"), 1);
    /* Losing B ends the lease it reclaimed, marks it gone, and says so in one event. */
    int n = -1;
    assert_int_equal(mg_store_worker_lost(f->s, "B", "silent for 3000 ms", T0 + 21000, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s_attempt_outcome(f->db, a[0].lease_token), "lost");
    assert_string_equal(s_attempt_outcome(f->db, a[1].lease_token), "running");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM workers WHERE name = 'B'"), "gone");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT message FROM events WHERE kind = 'worker_lost' AND worker = 'B'"),
                        "silent for 3000 ms; 1 lease(s) released");
}

static void test_unlease(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    mg_lease_t l[1];
    s_lease(f->s, "w1", 1, T0, l, 1);
    int64_t id = l[0].render_id;
    /* Wrong token: nothing happens. */
    assert_int_equal(mg_store_unlease(f->s, id, "0123456789abcdef0123456789abcdef", T0 + 1), MG_STORE_OK);
    assert_string_equal(s_render_state(f->db, id), "leased");
    assert_int_equal(mg_store_unlease(f->s, id, l[0].lease_token, T0 + 1), MG_STORE_OK);
    assert_string_equal(s_render_state(f->db, id), "queued");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT attempts FROM renders WHERE id = %" PRId64, id), 0);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT lease_token FROM renders WHERE id = %" PRId64, id), "<null>");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM attempts"), 0);
    /* Leased again as attempt 1 (unlease many times never burns attempts). */
    for (int i = 0; i < 5; i++) {
        s_lease(f->s, "w1", 1, T0 + 2, l, 1);
        assert_int_equal(l[0].render_id, id);
        assert_int_equal(l[0].attempt, 1);
        assert_int_equal(mg_store_unlease(f->s, id, l[0].lease_token, T0 + 3), MG_STORE_OK);
    }
    mg_lease_t old = l[0];
    s_lease(f->s, "w1", 1, T0 + 4, l, 1);
    assert_int_equal(l[0].attempt, 1);
    /* A token given back cannot complete the render's next lease. */
    s_res_t x;
    s_result(&x, &old, "w1", "given back", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 5), MG_STORE_STALE);
    assert_string_equal(s_render_state(f->db, id), "leased");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
}

/* ---- cancel, retry, recover, done ---------------------------------------------------- */

static void test_cancel_then_retry(void **state)
{
    mg_test_store_t *f = *state;
    int64_t job = s_submit(f->s, s_job3, 3);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 1, T0, l, 1);
    int n = -1;
    assert_int_equal(mg_store_cancel_job(f->s, job, T0 + 10, &n), MG_STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'cancelled' AND lease_token IS NULL"), 3);
    assert_string_equal(s_job_state(f->db, job), "cancelled");
    assert_string_equal(s_attempt_outcome(f->db, l[0].lease_token), "cancelled");
    /* The worker finishes anyway: stale, nothing written. */
    s_res_t x;
    s_result(&x, &l[0], "w1", "after cancel", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 20), MG_STORE_STALE);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(s_count_files(f->out_path), 0);
    assert_int_equal(mg_store_renew(f->s, l[0].render_id, l[0].lease_token, T0 + 20), MG_STORE_STALE);
    assert_int_equal(mg_store_fail(f->s, l[0].render_id, l[0].lease_token, "w1", 1, "x", T0 + 20), MG_STORE_STALE);
    mg_lease_t none[1];
    s_lease(f->s, "w1", 3, T0 + 30, none, 0);
    assert_int_equal(mg_store_cancel_job(f->s, 9999, T0, &n), MG_STORE_NOT_FOUND);
    /* Retry: all three queued again with a fresh budget of max_attempts, the job active. */
    assert_int_equal(mg_store_retry_job(f->s, job, T0 + 40, &n), MG_STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(
        mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'queued' AND max_attempts = attempts + 3 "
                               "AND finished_ms IS NULL AND lease_token IS NULL"),
        3);
    assert_string_equal(s_job_state(f->db, job), "active");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT finished_ms FROM jobs WHERE id = %" PRId64, job), "<null>");
    assert_int_equal(mg_store_retry_job(f->s, 9999, T0, &n), MG_STORE_NOT_FOUND);
    /* Everything completes: the job is done. */
    int64_t cancelled_lease = l[0].render_id;
    s_lease(f->s, "w1", 3, T0 + 50, l, 3);
    for (int i = 0; i < 3; i++) {
        /* Attempt numbers go on (the cancelled lease was attempt 1). */
        assert_int_equal(l[i].attempt, l[i].render_id == cancelled_lease ? 2 : 1);
        s_result(&x, &l[i], "w1", "retried", 1);
        assert_int_equal(s_complete(f->s, &x, T0 + 60 + i), MG_STORE_OK);
        assert_string_equal(s_job_state(f->db, job), i < 2 ? "active" : "done");
    }
    assert_int_equal(mg_test_sql_int(f->db, "SELECT finished_ms FROM jobs WHERE id = %" PRId64, job), T0 + 62);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'job_done'"), 1);
}

static void test_retry_failed_renders(void **state)
{
    mg_test_store_t *f = *state;
    s_set_policy(f->s, 0, 1);
    int64_t job = s_submit(f->s, s_job3, 3);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 3, T0, l, 3);
    s_res_t x;
    s_result(&x, &l[0], "w1", "ok", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + 1), MG_STORE_OK);
    assert_int_equal(mg_store_fail(f->s, l[1].render_id, l[1].lease_token, "w1", 0, "bad prompt", T0 + 2),
                     MG_STORE_OK);
    assert_int_equal(mg_store_fail(f->s, l[2].render_id, l[2].lease_token, "w1", 0, "bad prompt", T0 + 3),
                     MG_STORE_OK);
    assert_string_equal(s_job_state(f->db, job), "failed");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM worker_job_failures WHERE blocked = 1"), 1);
    int n = -1;
    assert_int_equal(mg_store_retry_job(f->s, job, T0 + 10, &n), MG_STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(s_job_state(f->db, job), "active");
    assert_string_equal(s_render_state(f->db, l[0].render_id), "done");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders WHERE state = 'queued' AND attempts = 1 "
                                     "AND max_attempts = 4"), 2);
    /* The blocklist is reset: w1 may try again. */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM worker_job_failures"), 0);
    s_lease(f->s, "w1", 3, T0 + 20, l, 2);
    assert_int_equal(l[0].attempt, 2);
    assert_int_equal(l[1].attempt, 2);
    /* Retrying a job with nothing failed changes nothing. */
    for (int i = 0; i < 2; i++) {
        s_result(&x, &l[i], "w1", "ok2", 1);
        assert_int_equal(s_complete(f->s, &x, T0 + 30), MG_STORE_OK);
    }
    assert_string_equal(s_job_state(f->db, job), "done");
    assert_int_equal(mg_store_retry_job(f->s, job, T0 + 40, &n), MG_STORE_OK);
    assert_int_equal(n, 0);
    assert_string_equal(s_job_state(f->db, job), "done");
}

static void test_recover_extends_leases(void **state)
{
    mg_test_store_t *f = *state;
    s_submit(f->s, s_job3, 3);
    assert_int_equal(mg_store_worker_seen(f->s, "w1", "h", 1, "cpu", "test", 2, "", T0), MG_STORE_OK);
    mg_lease_t l[2];
    s_lease(f->s, "w1", 2, T0, l, 2);
    assert_int_equal(mg_store_renew(f->s, l[1].render_id, l[1].lease_token, T0 + 50000), MG_STORE_OK);
    /* The coordinator restarts just before the first deadline. */
    mg_store_close(&f->s);
    mg_test_store_open(f);
    int n = -1;
    int64_t now = T0 + LEASE_MS - 1;
    assert_int_equal(mg_store_recover(f->s, now, &n), MG_STORE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, l[0].render_id),
                     now + LEASE_MS);
    /* A lease already longer than the grace period keeps its own deadline. */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT lease_expires_ms FROM renders WHERE id = %" PRId64, l[1].render_id),
                     T0 + 50000 + LEASE_MS);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM workers WHERE name = 'w1'"), "gone");
    /* Nothing expires at the old deadline; the worker can still deliver. */
    assert_int_equal(mg_store_expire(f->s, T0 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 0);
    s_res_t x;
    s_result(&x, &l[0], "w1", "after restart", 1);
    assert_int_equal(s_complete(f->s, &x, T0 + LEASE_MS + 2), MG_STORE_OK);
    /* Past the grace period the other one expires. */
    assert_int_equal(mg_store_expire(f->s, T0 + 50000 + LEASE_MS + 1, &n), MG_STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s_render_state(f->db, l[1].render_id), "queued");
}

static void test_job_done_when_all_done(void **state)
{
    mg_test_store_t *f = *state;
    static const char a[] = "campaign: done-a\npriority: 1\ncues:\n  - name: x\n    prompt: \"calm piano\"\n"
                            "    variations: 2\n";
    int64_t ja = s_submit(f->s, a, 2);
    int64_t jb = s_submit(f->s, s_job3, 3);
    mg_lease_t l[5];
    s_lease(f->s, "w1", 5, T0, l, 5);
    for (int i = 0; i < 5; i++) {
        s_res_t x;
        s_result(&x, &l[i], "w1", "all", 1);
        assert_int_equal(s_complete(f->s, &x, T0 + 100 + i), MG_STORE_OK);
        assert_string_equal(s_job_state(f->db, ja), i >= 1 ? "done" : "active");
        assert_string_equal(s_job_state(f->db, jb), i >= 4 ? "done" : "active");
    }
    assert_int_equal(mg_test_sql_int(f->db, "SELECT done FROM job_progress WHERE job_id = %" PRId64, jb), 3);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM provenance"), 5);
    assert_int_equal(s_count_files(f->out_path), 5);
    assert_int_equal(mg_store_next_deadline(f->s), INT64_MAX);
}

/* What `mgctl plan` composes locally (mg_render_spec_from_job) is what the coordinator
 * leases: every field of every spec equal, so a plan predicts the render. */
static void test_leased_spec_equals_plan_spec(void **state)
{
    mg_test_store_t *f = *state;
    static const char yaml[] =
        "campaign: plan-check\nclient: Client\n"
        "output:\n  formats: [flac, mp3]\n  sample_rate: 44100\n  channels: 2\n  loudness_lufs: -16\n"
        "cues:\n"
        "  - name: a\n    prompt: \"calm piano\"\n    emotions: [calm, tender]\n    duration: 12.5\n"
        "    variations: 2\n    tempo: 90\n    key: \"D minor\"\n    instruments: [piano, strings]\n"
        "    stems: [melody, chords]\n"
        "  - name: b\n    prompt: \"drums\"\n    seeds: [18446744073709551615]\n    duration: 3\n";
    s_submit(f->s, yaml, 3);
    mg_job_t *job = NULL;
    char err[1024];
    assert_int_equal(mg_job_parse_buffer("plan.yaml", yaml, strlen(yaml), &job, err, sizeof err), 0);
    mg_lease_t l[3];
    s_lease(f->s, "w1", 3, T0, l, 3);
    int ci[3] = {0, 0, 1}, v[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++) {
        mg_render_spec_t plan;
        mg_render_spec_from_job(job, ci[i], v[i], &plan);
        plan.render_id = l[i].spec.render_id;
        plan.job_id = l[i].spec.job_id;
        mg_kv_t a, b;
        mg_kv_init(&a);
        mg_kv_init(&b);
        assert_int_equal(mg_render_spec_to_kv(&l[i].spec, &a), 0);
        assert_int_equal(mg_render_spec_to_kv(&plan, &b), 0);
        char *ta = mg_kv_encode(&a, NULL), *tb = mg_kv_encode(&b, NULL);
        assert_string_equal(ta, tb);
        free(ta);
        free(tb);
        mg_kv_clear(&a);
        mg_kv_clear(&b);
    }
    mg_job_destroy(&job);
}

int main(void)
{
    mg_test_log_quiet("test_store");
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_migrate_fresh_db),
        T(test_migrate_reopen_keeps_data),
        T(test_migrate_custom_blocks),
        T(test_migrate_failing_block_rolls_back),
        T(test_migrate_marker_on_first_line),
        T(test_migrate_newer_db_refused),
        T(test_submit_expands_renders),
        T(test_submit_duplicate_same_key),
        T(test_submit_conflict),
        T(test_submit_same_campaign_output_dir),
        T(test_submit_output_dir_unique),
        T(test_submit_10000_renders),
        T(test_lease_priority_order),
        T(test_lease_max_zero_and_next_deadline),
        T(test_renew),
        T(test_leased_spec_equals_plan_spec),
        T(test_complete_writes_outputs),
        T(test_complete_twice_same_token),
        T(test_complete_stale_token),
        T(test_complete_unknown_token_rejected),
        T(test_complete_bad_sha256),
        T(test_complete_write_failure),
        T(test_expire_requeue_then_fail),
        T(test_expire_last_render_fails_job),
        T(test_fail_retryable_vs_permanent),
        T(test_retry_prefers_other_worker),
        T(test_blocklist),
        T(test_worker_lost),
        T(test_worker_ready_reclaims),
        T(test_unlease),
        T(test_cancel_then_retry),
        T(test_retry_failed_renders),
        T(test_recover_extends_leases),
        T(test_job_done_when_all_done),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

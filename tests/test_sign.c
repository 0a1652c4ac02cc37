/* test_sign.c - signed provenance (coordinator/sign.c, provenance.c, query.c): the key on disk
 * and its permissions, every record signed as the store appends it (checked here with
 * libsodium directly), and what an attacker who can write mg.db can no longer hide: a record
 * edited with the whole hash chain recomputed, a truncated tail (against a saved signed head),
 * a chain rewritten and re-signed before a saved head; records from before the migration are
 * reported as unsigned. The last tests run the real mg-coordinator and mgctl on such a home.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/jobspec.h"
#include "common/util.h"
#include "coordinator/db.h"
#include "coordinator/provenance.h"
#include "coordinator/query.h"
#include "coordinator/sign.h"
#include "coordinator/store.h"
#include "tests/testlib.h"

#define T0 INT64_C(1800000000000)
#define N_RENDERS 6

typedef struct {
    mg_test_store_t *st;
    mg_sign_key_t *key;     /* owned: loaded from st->dir/keys */
    char keys[400];
    int64_t render_ids[N_RENDERS];
    char sha_flac[N_RENDERS][65];
} s_fix_t;

static const char s_job[] =
    "campaign: Signing Test\n"
    "client: Acme\n"
    "output:\n"
    "  formats: [flac, mp3]\n"
    "cues:\n"
    "  - name: theme\n"
    "    prompt: \"calm piano theme\"\n"
    "    duration: 12\n"
    "    variations: 4\n"
    "  - name: sting\n"
    "    prompt: \"bright brass sting\"\n"
    "    duration: 3\n"
    "    seeds: [7, 8]\n";

/* Completes renders [from, to) of the fixture's leases. */
static void s_complete(s_fix_t *x, const mg_lease_t *l, int from, int to)
{
    char err[512] = "";
    for (int i = from; i < to; i++) {
        char flac[96], mp3[96], sha_mp3[65];
        int lf = snprintf(flac, sizeof flac, "flac audio of render %" PRId64, l[i].render_id);
        int lm = snprintf(mp3, sizeof mp3, "mp3 audio of render %" PRId64, l[i].render_id);
        mg_sha256_hex(flac, (size_t)lf, x->sha_flac[i]);
        mg_sha256_hex(mp3, (size_t)lm, sha_mp3);
        mg_result_t r;
        memset(&r, 0, sizeof r);
        r.render_id = l[i].render_id;
        r.lease_token = l[i].lease_token;
        r.worker = "w1";
        r.backend = "cpu";
        r.device = "test";
        r.model_name = "test-renderer";
        r.model_version = "1.0";
        r.model_sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        r.model_license = "Apache-2.0";
        r.started_ms = T0 + 10 * i;
        r.finished_ms = T0 + 10 * i + 5;
        r.files[0] = (mg_result_file_t){"flac", (const unsigned char *)flac, (size_t)lf, x->sha_flac[i], 12.0, 48000, 2, "mix", "", NULL};
        r.files[1] = (mg_result_file_t){"mp3", (const unsigned char *)mp3, (size_t)lm, sha_mp3, 12.0, 48000, 2, "mix", "", NULL};
        r.n_files = 2;
        assert_int_equal(mg_store_complete(x->st->s, &r, T0 + 100 + i, err, sizeof err), MG_STORE_OK);
        x->render_ids[i] = l[i].render_id;
    }
}

/* A store whose first n_unsigned renders were completed before the coordinator had a key and
 * the rest with the key of st->dir/keys (created here, as mg-coordinator creates it). */
static s_fix_t *s_fixture(int n_unsigned)
{
    s_fix_t *x = calloc(1, sizeof *x);
    assert_non_null(x);
    mg_store_policy_t policy = {3, 3, 30000};
    x->st = mg_test_store_new("sign", &policy);
    snprintf(x->keys, sizeof x->keys, "%s/keys", x->st->dir);
    char err[512] = "";
    int created = 0;
    x->key = mg_sign_key_load(x->keys, &created, err, sizeof err);
    assert_non_null(x->key);
    assert_int_equal(created, 1);

    mg_job_t *job = mg_test_job_parse(s_job);
    int64_t job_id = 0;
    size_t n = 0;
    int dup = 0;
    assert_int_equal(mg_store_submit(x->st->s, job, "s.yaml", s_job, 0, &job_id, &n, &dup, err, sizeof err), MG_STORE_OK);
    mg_job_destroy(&job);
    assert_int_equal(n, N_RENDERS);
    mg_lease_t l[N_RENDERS];
    int got = 0;
    assert_int_equal(mg_store_lease(x->st->s, "w1", N_RENDERS, T0, l, &got), MG_STORE_OK);
    assert_int_equal(got, N_RENDERS);
    mg_prov_set_signer(NULL);
    s_complete(x, l, 0, n_unsigned);
    mg_prov_set_signer(x->key);
    s_complete(x, l, n_unsigned, N_RENDERS);
    return x;
}

static int s_setup(void **state)
{
    *state = s_fixture(0);
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *x = *state;
    mg_prov_set_signer(NULL);
    mg_sign_key_destroy(&x->key);
    mg_test_store_destroy(&x->st);
    free(x);
    return 0;
}

/* The attacker with write access to mg.db: sets record seq's record_json, then recomputes
 * record_hash of it and every later record and each later prev_hash, so every link fits. */
static void s_rewrite_and_rehash(sqlite3 *db, int64_t seq, const char *from, const char *to)
{
    char *json = strdup(mg_test_sql_text(db, "SELECT record_json FROM provenance WHERE seq = %" PRId64, seq));
    char *p = strstr(json, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE provenance SET record_json = ? WHERE seq = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    free(json);
    char prev[65];
    snprintf(prev, sizeof prev, "%s", mg_test_sql_text(db, "SELECT prev_hash FROM provenance WHERE seq = %" PRId64, seq));
    int64_t last = mg_test_sql_int(db, "SELECT max(seq) FROM provenance");
    for (int64_t s = seq; s <= last; s++) {
        char h[65];
        const char *j = mg_test_sql_text(db, "SELECT record_json FROM provenance WHERE seq = %" PRId64, s);
        mg_prov_hash(prev, j, h);
        mg_test_sql_exec(db, "UPDATE provenance SET prev_hash = '%s', record_hash = '%s' WHERE seq = %" PRId64, prev, h, s);
        memcpy(prev, h, sizeof prev);
    }
}

/* The same attacker holding a signing key: signs every record from seq on again. */
static void s_resign(sqlite3 *db, const mg_sign_key_t *key, int64_t seq)
{
    int64_t last = mg_test_sql_int(db, "SELECT max(seq) FROM provenance");
    for (int64_t s = seq; s <= last; s++) {
        char prev[65], hash[65], sig[MG_SIGN_SIG_HEX];
        snprintf(prev, sizeof prev, "%s", mg_test_sql_text(db, "SELECT prev_hash FROM provenance WHERE seq = %" PRId64, s));
        snprintf(hash, sizeof hash, "%s", mg_test_sql_text(db, "SELECT record_hash FROM provenance WHERE seq = %" PRId64, s));
        mg_sign_record(key, s, prev, hash, sig);
        mg_test_sql_exec(db, "UPDATE provenance SET signature = '%s', signer_key_id = '%s' WHERE seq = %" PRId64, sig,
                         mg_sign_key_pub(key)->id, s);
    }
}

/* AUDIT_VERIFY through query.c with optional args (NULL-terminated key, value pairs). */
static void s_audit_verify(s_fix_t *x, mg_reply_t *r, ...)
{
    mg_kv_t args;
    mg_kv_init(&args);
    va_list ap;
    va_start(ap, r);
    for (const char *k; (k = va_arg(ap, const char *));) mg_kv_set(&args, k, va_arg(ap, const char *));
    va_end(ap);
    mg_reply_init(r);
    assert_int_equal(mg_query_audit_verify(x->st->s, &args, r), 0);
    mg_kv_clear(&args);
}

/* AUDIT_HEAD's reply as the head_* args of AUDIT_VERIFY. */
static void s_saved_head(s_fix_t *x, mg_kv_t *head)
{
    mg_reply_t r;
    mg_reply_init(&r);
    mg_kv_t none;
    mg_kv_init(&none);
    assert_int_equal(mg_query_audit_head(x->st->s, &none, &r), 0);
    mg_kv_init(head);
    static const char *const f[] = {"seq", "hash", "time_ms", "signature", "public_key"};
    for (size_t i = 0; i < 5; i++) {
        char k[32];
        snprintf(k, sizeof k, "head_%s", f[i]);
        mg_kv_set(head, k, mg_kv_get_or(&r.info, f[i], ""));
    }
    mg_reply_clear(&r);
    mg_kv_clear(&none);
}

static void s_verify_with_head(s_fix_t *x, const mg_kv_t *head, mg_reply_t *r)
{
    mg_reply_init(r);
    assert_int_equal(mg_query_audit_verify(x->st->s, head, r), 0);
}

/* ---- the key on disk ----------------------------------------------------------------------- */

static void test_key_created_private(void **state)
{
    s_fix_t *x = *state;
    struct stat st;
    char path[512];
    assert_int_equal(stat(x->keys, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/provenance.key", x->keys);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/provenance.pub", x->keys);
    size_t len = 0;
    char *pub = mg_read_file(path, &len);
    assert_non_null(pub);
    assert_int_equal(len, 65);
    assert_memory_equal(pub, mg_sign_key_pub(x->key)->hex, 64);
    free(pub);
    /* The key is not in the database: no column holds its seed. */
    snprintf(path, sizeof path, "%s/provenance.key", x->keys);
    char *seed = mg_read_file(path, &len);
    assert_non_null(seed);
    seed[64] = 0;
    assert_int_equal(mg_test_sql_int(x->st->db, "SELECT count(*) FROM provenance WHERE instr(record_json, '%s') > 0 "
                                                "OR instr(signature, '%s') > 0", seed, seed), 0);
    free(seed);
    /* Loading again gives the same key. */
    char err[256] = "";
    int created = 1;
    mg_sign_key_t *again = mg_sign_key_load(x->keys, &created, err, sizeof err);
    assert_non_null(again);
    assert_int_equal(created, 0);
    assert_string_equal(mg_sign_key_pub(again)->hex, mg_sign_key_pub(x->key)->hex);
    mg_sign_key_destroy(&again);
    assert_null(again);
}

static void test_key_mode_0644_refused(void **state)
{
    s_fix_t *x = *state;
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/provenance.key", x->keys);
    assert_int_equal(chmod(path, 0644), 0);
    mg_sign_key_t *k = mg_sign_key_load(x->keys, NULL, err, sizeof err);
    assert_null(k);
    assert_non_null(strstr(err, "0644"));
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(chmod(x->keys, 0755), 0);
    k = mg_sign_key_load(x->keys, NULL, err, sizeof err);
    assert_null(k);
    assert_non_null(strstr(err, "chmod 700"));
    assert_int_equal(chmod(x->keys, 0700), 0);
    /* A key file that is not a key is refused, not replaced. */
    mg_test_file_write(path, "not a key\n");
    assert_int_equal(chmod(path, 0600), 0);
    k = mg_sign_key_load(x->keys, NULL, err, sizeof err);
    assert_null(k);
    assert_non_null(strstr(err, "64 hex digits"));
}

/* ---- records ----------------------------------------------------------------------------- */

static void test_records_signed(void **state)
{
    s_fix_t *x = *state;
    const mg_sign_pub_t *pub = mg_sign_key_pub(x->key);
    assert_int_equal(mg_test_sql_int(x->st->db, "SELECT count(*) FROM provenance WHERE signer_key_id = '%s' AND "
                                                "length(signature) = 128", pub->id), N_RENDERS);
    /* Each signature checked with libsodium over the message sign.h documents. */
    for (int64_t seq = 1; seq <= N_RENDERS; seq++) {
        char msg[512], sig_hex[200];
        snprintf(msg, sizeof msg, "mg-provenance-record-v1\n%" PRId64 "\n%s", seq,
                 mg_test_sql_text(x->st->db, "SELECT prev_hash || char(10) || record_hash FROM provenance WHERE seq = %"
                                             PRId64, seq));
        snprintf(sig_hex, sizeof sig_hex, "%s",
                 mg_test_sql_text(x->st->db, "SELECT signature FROM provenance WHERE seq = %" PRId64, seq));
        unsigned char sig[crypto_sign_BYTES];
        assert_int_equal(sodium_hex2bin(sig, sizeof sig, sig_hex, strlen(sig_hex), NULL, NULL, NULL), 0);
        assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)msg, strlen(msg), pub->pk), 0);
        msg[strlen(msg) - 1] ^= 1;
        assert_int_not_equal(crypto_sign_verify_detached(sig, (const unsigned char *)msg, strlen(msg), pub->pk), 0);
    }
    mg_prov_check_t c;
    assert_int_equal(mg_prov_verify_key(x->st->db, pub, &c), 1);
    assert_int_equal(c.signed_records, N_RENDERS);
    assert_int_equal(c.unsigned_records, 0);
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "signed", ""), "6");
    assert_string_equal(mg_kv_get_or(&r.info, "key_id", ""), pub->id);
    assert_string_equal(mg_kv_get_or(&r.info, "key_source", ""), "coordinator");
    mg_reply_clear(&r);
}

/* The attack the signatures exist for: record 3 edited and the whole chain recomputed. */
static void test_edited_and_rehashed_fails(void **state)
{
    s_fix_t *x = *state;
    s_rewrite_and_rehash(x->st->db, 3, "Apache-2.0", "Apache-3.0");
    mg_prov_check_t c;
    /* The unkeyed chain is fooled ... */
    assert_int_equal(mg_prov_verify_key(x->st->db, NULL, &c), 1);
    /* ... the signatures are not. */
    assert_int_equal(mg_prov_verify_key(x->st->db, mg_sign_key_pub(x->key), &c), 0);
    assert_int_equal(c.first_broken_seq, 3);
    assert_int_equal(c.bad_signature, 1);
    assert_non_null(strstr(c.msg, "record 3: signature invalid"));
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "0");
    assert_string_equal(mg_kv_get_or(&r.info, "first_broken_seq", ""), "3");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "message", ""), "signature"));
    mg_reply_clear(&r);
    /* mgctl verify FILE on an output of record 3 says so too. */
    int64_t rid = mg_test_sql_int(x->st->db, "SELECT render_id FROM provenance WHERE seq = 3");
    int i = 0;
    while (i < N_RENDERS && x->render_ids[i] != rid) i++;
    assert_true(i < N_RENDERS);
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "sha256", x->sha_flac[i]);
    mg_reply_init(&r);
    assert_int_equal(mg_query_verify(x->st->s, &args, &r), 0);
    assert_string_equal(mg_kv_get_or(&r.info, "signature", ""), "invalid");
    assert_string_equal(mg_kv_get_or(&r.info, "record_intact", ""), "0");
    mg_reply_clear(&r);
    mg_kv_clear(&args);
}

static void test_verify_file_signature_valid(void **state)
{
    s_fix_t *x = *state;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "sha256", x->sha_flac[2]);
    mg_reply_t r;
    mg_reply_init(&r);
    assert_int_equal(mg_query_verify(x->st->s, &args, &r), 0);
    assert_string_equal(mg_kv_get_or(&r.info, "status", ""), "known");
    assert_string_equal(mg_kv_get_or(&r.info, "signature", ""), "valid");
    assert_string_equal(mg_kv_get_or(&r.info, "signer_key_id", ""), mg_sign_key_pub(x->key)->id);
    assert_string_equal(mg_kv_get_or(&r.info, "record_intact", ""), "1");
    mg_reply_clear(&r);
    /* With another key given: "other key", not intact. */
    mg_sign_key_t *other = mg_sign_key_generate();
    mg_kv_set(&args, "public_key", mg_sign_key_pub(other)->hex);
    mg_reply_init(&r);
    assert_int_equal(mg_query_verify(x->st->s, &args, &r), 0);
    assert_string_equal(mg_kv_get_or(&r.info, "signature", ""), "other key");
    assert_string_equal(mg_kv_get_or(&r.info, "record_intact", ""), "0");
    mg_reply_clear(&r);
    mg_sign_key_destroy(&other);
    mg_kv_clear(&args);
}

/* The database AND the coordinator's key replaced: checked against the key kept elsewhere, it
 * fails. */
static void test_other_key_fails(void **state)
{
    s_fix_t *x = *state;
    mg_sign_key_t *other = mg_sign_key_generate();
    assert_non_null(other);
    s_rewrite_and_rehash(x->st->db, 2, "Apache-2.0", "Apache-3.0");
    s_resign(x->st->db, other, 1);
    mg_prov_set_signer(other); /* the replaced key file */
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1"); /* the forger's own key agrees with itself */
    mg_reply_clear(&r);
    s_audit_verify(x, &r, "public_key", mg_sign_key_pub(x->key)->hex, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "0");
    assert_string_equal(mg_kv_get_or(&r.info, "first_broken_seq", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "key_source", ""), "given");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "message", ""), mg_sign_key_pub(other)->id));
    mg_reply_clear(&r);
    mg_prov_set_signer(x->key);
    mg_sign_key_destroy(&other);
    /* A malformed key is a bad request. */
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "public_key", "abc");
    mg_reply_init(&r);
    assert_int_equal(mg_query_audit_verify(x->st->s, &args, &r), -1);
    mg_reply_clear(&r);
    mg_kv_clear(&args);
}

/* ---- the signed head ------------------------------------------------------------------------ */

static void test_head_signed(void **state)
{
    s_fix_t *x = *state;
    mg_reply_t r;
    mg_reply_init(&r);
    mg_kv_t none;
    mg_kv_init(&none);
    assert_int_equal(mg_query_audit_head(x->st->s, &none, &r), 0);
    assert_string_equal(mg_kv_get_or(&r.info, "seq", ""), "6");
    assert_string_equal(mg_kv_get_or(&r.info, "hash", ""),
                        mg_test_sql_text(x->st->db, "SELECT record_hash FROM provenance WHERE seq = 6"));
    char msg[256];
    snprintf(msg, sizeof msg, "mg-provenance-head-v1\n6\n%s\n%s", mg_kv_get_or(&r.info, "hash", ""),
             mg_kv_get_or(&r.info, "time_ms", ""));
    unsigned char sig[crypto_sign_BYTES];
    const char *sig_hex = mg_kv_get_or(&r.info, "signature", "");
    assert_int_equal(sodium_hex2bin(sig, sizeof sig, sig_hex, strlen(sig_hex), NULL, NULL, NULL), 0);
    assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)msg, strlen(msg),
                                                 mg_sign_key_pub(x->key)->pk), 0);
    mg_reply_clear(&r);
    mg_kv_clear(&none);

    mg_kv_t head;
    s_saved_head(x, &head);
    s_verify_with_head(x, &head, &r);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "saved_head_ok", ""), "1");
    mg_reply_clear(&r);
    /* An edited head (a later time) no longer verifies. */
    mg_kv_set(&head, "head_time_ms", "1900000000000");
    s_verify_with_head(x, &head, &r);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "0");
    assert_string_equal(mg_kv_get_or(&r.info, "chain_ok", ""), "1");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "saved_head_message", ""), "signature is not valid"));
    mg_reply_clear(&r);
    mg_kv_clear(&head);
    /* No signer: no head. */
    mg_prov_set_signer(NULL);
    mg_reply_init(&r);
    mg_kv_init(&none);
    assert_int_equal(mg_query_audit_head(x->st->s, &none, &r), -1);
    mg_reply_clear(&r);
    mg_prov_set_signer(x->key);
}

/* The tail removed (with its outputs, as a careful attacker would): every remaining record
 * verifies, but the saved head names the truncation. */
static void test_truncated_tail_fails_saved_head(void **state)
{
    s_fix_t *x = *state;
    mg_kv_t head;
    s_saved_head(x, &head);
    mg_test_sql_exec(x->st->db, "DELETE FROM outputs WHERE render_id IN (SELECT render_id FROM provenance WHERE seq > 4);"
                                "DELETE FROM provenance WHERE seq > 4;");
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "records", ""), "4");
    mg_reply_clear(&r);
    s_verify_with_head(x, &head, &r);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "0");
    assert_string_equal(mg_kv_get_or(&r.info, "chain_ok", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "saved_head_ok", ""), "0");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "saved_head_message", ""), "ends at record 4"));
    assert_non_null(strstr(mg_kv_get_or(&r.info, "saved_head_message", ""), "removed from the end"));
    mg_reply_clear(&r);
    mg_kv_clear(&head);
}

/* Even a forger with the signing key cannot rewrite the chain before a saved head. */
static void test_resigned_rewrite_fails_saved_head(void **state)
{
    s_fix_t *x = *state;
    mg_kv_t head;
    s_saved_head(x, &head);
    s_rewrite_and_rehash(x->st->db, 2, "Apache-2.0", "Apache-3.0");
    s_resign(x->st->db, x->key, 2);
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1");
    mg_reply_clear(&r);
    s_verify_with_head(x, &head, &r);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "0");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "saved_head_message", ""), "rewritten at or before record 6"));
    mg_reply_clear(&r);
    mg_kv_clear(&head);
}

/* ---- records from before signing ---------------------------------------------------------- */

/* The schema up to (not including) migration block n. */
static char *s_schema_before(int n)
{
    char marker[32];
    snprintf(marker, sizeof marker, "\n-- migrate: %d", n);
    const char *end = strstr(mg_schema_sql, marker);
    assert_non_null(end);
    return strndup(mg_schema_sql, (size_t)(end - mg_schema_sql) + 1);
}

/* A database at schema version 2 with two records, migrated: they verify as unsigned, a
 * signed record may follow them, an unsigned one may not follow a signed one. */
static void test_pre_migration_records_unsigned(void **state)
{
    char dir[256], path[320], err[512] = "";
    mg_test_tmpdir_make(dir, sizeof dir, "sign-premig");
    snprintf(path, sizeof path, "%s/mg.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK); /* foreign keys off: bare provenance rows */
    char *v2 = s_schema_before(3);
    assert_int_equal(mg_db_migrate(db, v2, err, sizeof err), 2);
    free(v2);
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000", h[65];
    for (int seq = 1; seq <= 2; seq++) {
        char json[64];
        snprintf(json, sizeof json, "{\"render_id\":%d}", seq);
        mg_prov_hash(prev, json, h);
        mg_test_sql_exec(db, "INSERT INTO provenance (seq, render_id, model_id, worker, backend, device, started_ms, "
                             "finished_ms, record_json, prev_hash, record_hash, created_ms) VALUES "
                             "(%d, %d, 1, 'w', 'cpu', 'd', 0, 0, '%s', '%s', '%s', 0)", seq, seq, json, prev, h);
        memcpy(prev, h, sizeof prev);
    }
    assert_true(mg_db_migrate(db, mg_schema_sql, err, sizeof err) >= 3);
    assert_int_equal(mg_test_sql_int(db, "SELECT count(*) FROM provenance WHERE signature IS NULL"), 2);

    mg_sign_key_t *key = mg_sign_key_generate();
    mg_prov_check_t c;
    assert_int_equal(mg_prov_verify_key(db, mg_sign_key_pub(key), &c), 1);
    assert_int_equal(c.unsigned_records, 2);
    assert_int_equal(c.signed_records, 0);
    assert_non_null(strstr(c.msg, "2 unsigned (before signing)"));

    mg_prov_set_signer(key);
    char hash[65];
    assert_int_equal(mg_prov_append(db, 3, 1, "w", "cpu", "d", 0, 0, "{\"render_id\":3}", 0, hash), 3);
    assert_int_equal(mg_prov_verify_key(db, mg_sign_key_pub(key), &c), 1);
    assert_int_equal(c.unsigned_records, 2);
    assert_int_equal(c.signed_records, 1);
    const char *st = NULL;
    char id[MG_SIGN_ID_HEX];
    assert_int_equal(mg_prov_record_signature(db, 1, NULL, &st, id), 0);
    assert_string_equal(st, "unsigned");
    assert_int_equal(mg_prov_record_signature(db, 3, NULL, &st, id), 0);
    assert_string_equal(st, "valid");
    assert_string_equal(id, mg_sign_key_pub(key)->id);

    /* Written without the key after signing began: broken, not "before signing". */
    mg_prov_set_signer(NULL);
    assert_int_equal(mg_prov_append(db, 4, 1, "w", "cpu", "d", 0, 0, "{\"render_id\":4}", 0, hash), 4);
    assert_int_equal(mg_prov_verify_key(db, mg_sign_key_pub(key), &c), 0);
    assert_int_equal(c.first_broken_seq, 4);
    assert_non_null(strstr(c.msg, "signature missing"));
    /* Had record 3's signature been stripped too, all four would pass as written before
     * signing: only a saved head tells (docs/audit.md, "What it does not prove"). */
    mg_sign_key_destroy(&key);
    sqlite3_close(db);
    mg_test_tmpdir_remove(dir);
}

/* A fixture with 2 unsigned (before the key) and 4 signed records, through AUDIT_VERIFY. */
static void test_mixed_chain_reports_unsigned(void **state)
{
    s_fix_t *x = s_fixture(2);
    mg_reply_t r;
    s_audit_verify(x, &r, NULL);
    assert_string_equal(mg_kv_get_or(&r.info, "ok", ""), "1");
    assert_string_equal(mg_kv_get_or(&r.info, "signed", ""), "4");
    assert_string_equal(mg_kv_get_or(&r.info, "unsigned", ""), "2");
    assert_non_null(strstr(mg_kv_get_or(&r.info, "message", ""), "unsigned (before signing)"));
    mg_reply_clear(&r);
    void *p = x;
    s_teardown(&p);
}

/* ---- the real binaries ---------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    char endpoint[64];
} s_coord_t;

static void s_coord_start(s_fix_t *x, s_coord_t *c)
{
    static int n;
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:%d", 20000 + (getpid() * 11 + n++ * 17) % 20000);
    char path[512], log[512];
    snprintf(path, sizeof path, "%s/mg-coordinator", mg_test_bin());
    snprintf(log, sizeof log, "%s/coordinator.log", x->st->dir);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        if (!freopen(log, "a", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        setenv("MG_HOME", x->st->dir, 1);
        setenv("MG_ENDPOINT", c->endpoint, 1);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
}

static void s_coord_stop(s_coord_t *c)
{
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

static int s_mgctl(const s_coord_t *c, char **out, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int status;
    char *o = mg_test_run(&status, "'%s/mgctl' --endpoint '%s' --timeout 5000 %s 2>&1", mg_test_bin(), c->endpoint, args);
    if (out) *out = o;
    else free(o);
    return status;
}

/* mg-coordinator on the fixture's home (its key, its signed records) and mgctl against it. */
static void test_mgctl_head_key_truncation(void **state)
{
    s_fix_t *x = *state;
    mg_store_close(&x->st->s); /* the coordinator opens the database itself */
    s_coord_t c;
    s_coord_start(x, &c);
    char head[512], other[512], *out = NULL;
    snprintf(head, sizeof head, "%s/head.txt", x->st->dir);
    snprintf(other, sizeof other, "%s/other.pub", x->st->dir);
    int rc = 3;
    for (int t = 0; t < 50 && rc == 3; t++) rc = s_mgctl(&c, NULL, "audit head > '%s'", head);
    assert_int_equal(rc, 0);
    assert_int_equal(s_mgctl(&c, &out, "audit verify --head '%s' --key '%s/provenance.pub'", head, x->keys), 0);
    assert_non_null(strstr(out, "6 valid"));
    assert_non_null(strstr(out, "saved head ok"));
    free(out);
    /* --json head reads back too. */
    char headj[512];
    snprintf(headj, sizeof headj, "%s/head.json", x->st->dir);
    assert_int_equal(s_mgctl(&c, NULL, "audit head --json > '%s'", headj), 0);
    assert_int_equal(s_mgctl(&c, NULL, "audit verify --head '%s'", headj), 0);
    /* Another key: exit 7, record 1 named. */
    mg_sign_key_t *k2 = mg_sign_key_generate();
    mg_test_file_write(other, mg_sign_key_pub(k2)->hex);
    mg_sign_key_destroy(&k2);
    assert_int_equal(s_mgctl(&c, &out, "audit verify --key '%s'", other), 7);
    assert_non_null(strstr(out, "BROKEN at record 1"));
    free(out);
    /* The tail removed: plain verify passes, verify --head fails and says so. */
    mg_test_sql_exec(x->st->db, "DELETE FROM outputs WHERE render_id IN (SELECT render_id FROM provenance WHERE seq > 4);"
                                "DELETE FROM provenance WHERE seq > 4;");
    assert_int_equal(s_mgctl(&c, NULL, "audit verify"), 0);
    assert_int_equal(s_mgctl(&c, &out, "audit verify --head '%s'", head), 7);
    assert_non_null(strstr(out, "removed from the end"));
    free(out);
    /* Rehashed edit: exit 7 naming the signature. */
    s_rewrite_and_rehash(x->st->db, 2, "Apache-2.0", "Apache-3.0");
    assert_int_equal(s_mgctl(&c, &out, "audit verify"), 7);
    assert_non_null(strstr(out, "record 2: signature invalid"));
    free(out);
    /* A head file that is not one: usage error. */
    assert_int_equal(s_mgctl(&c, NULL, "audit verify --head '%s'", other), 2);
    s_coord_stop(&c);

    /* A key file readable by others: the coordinator refuses to start, and says why. */
    char key[512], log[512];
    snprintf(key, sizeof key, "%s/provenance.key", x->keys);
    assert_int_equal(chmod(key, 0644), 0);
    s_coord_start(x, &c);
    int status = 0;
    pid_t got = 0;
    for (int t = 0; t < 100 && got == 0; t++) {
        got = waitpid(c.pid, &status, WNOHANG);
        if (got == 0) mg_test_sleep_ms(50);
    }
    if (got == 0) s_coord_stop(&c); /* still running: it accepted the key */
    assert_int_equal(got, c.pid);
    c.pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    snprintf(log, sizeof log, "%s/coordinator.log", x->st->dir);
    size_t len = 0;
    char *text = mg_read_file(log, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "mode 0644"));
    free(text);
}

int main(void)
{
    mg_test_log_quiet("test_sign");
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_key_created_private),
        T(test_key_mode_0644_refused),
        T(test_records_signed),
        T(test_edited_and_rehashed_fails),
        T(test_verify_file_signature_valid),
        T(test_other_key_fails),
        T(test_head_signed),
        T(test_truncated_tail_fails_saved_head),
        T(test_resigned_rewrite_fails_saved_head),
        cmocka_unit_test(test_pre_migration_records_unsigned),
        cmocka_unit_test(test_mixed_chain_reports_unsigned),
        T(test_mgctl_head_key_truncation),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

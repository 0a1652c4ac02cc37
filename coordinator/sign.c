/* sign.c - the coordinator's Ed25519 key on disk and the record / head signatures (see
 * sign.h). provenance.c signs each record as the store appends it; query.c checks them for
 * `mgctl audit verify` and signs the head for `mgctl audit head`.
 */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"

struct mg_sign_key {
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    mg_sign_pub_t pub;
};

void mg_sign_pub_from_bytes(const unsigned char pk[MG_SIGN_PUB_BYTES], mg_sign_pub_t *pub)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    memcpy(pub->pk, pk, MG_SIGN_PUB_BYTES);
    sodium_bin2hex(pub->hex, sizeof pub->hex, pk, MG_SIGN_PUB_BYTES);
    crypto_hash_sha256(d, pk, MG_SIGN_PUB_BYTES);
    sodium_bin2hex(pub->id, sizeof pub->id, d, 8);
}

/* Exactly 2*n hex digits, white space around them allowed, into out[n]. 0 or -1. */
static int s_hex(const char *text, unsigned char *out, size_t n)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
    size_t len = strlen(text);
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len != 2 * n) return -1;
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f') ||
              (text[i] >= 'A' && text[i] <= 'F')))
            return -1;
    size_t got = 0;
    return sodium_hex2bin(out, n, text, len, NULL, &got, NULL) == 0 && got == n ? 0 : -1;
}

int mg_sign_pub_parse(const char *text, mg_sign_pub_t *pub, char *err, size_t errlen)
{
    unsigned char pk[MG_SIGN_PUB_BYTES];
    if (!text || s_hex(text, pk, sizeof pk) != 0) {
        mg_set_error(err, errlen, "not an Ed25519 public key: expected 64 hex digits (a provenance.pub file)");
        return -1;
    }
    mg_sign_pub_from_bytes(pk, pub);
    return 0;
}

static mg_sign_key_t *s_from_seed(const unsigned char seed[crypto_sign_SEEDBYTES])
{
    if (sodium_init() < 0) return NULL;
    mg_sign_key_t *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, k->sk, seed);
    mg_sign_pub_from_bytes(pk, &k->pub);
    return k;
}

mg_sign_key_t *mg_sign_key_generate(void)
{
    if (sodium_init() < 0) return NULL;
    unsigned char seed[crypto_sign_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    mg_sign_key_t *k = s_from_seed(seed);
    sodium_memzero(seed, sizeof seed);
    return k;
}

void mg_sign_key_destroy(mg_sign_key_t **key_p)
{
    if (!key_p || !*key_p) return;
    sodium_memzero((*key_p)->sk, sizeof (*key_p)->sk);
    free(*key_p);
    *key_p = NULL;
}

const mg_sign_pub_t *mg_sign_key_pub(const mg_sign_key_t *key) { return &key->pub; }

/* Refuses a folder or file that group or others can reach, or that is not ours. */
static int s_private(const struct stat *st, const char *path, int is_dir, char *err, size_t errlen)
{
    if (is_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
        mg_set_error(err, errlen, "%s is not a %s: move it away and start again (a new key is created)", path,
                     is_dir ? "folder" : "regular file");
        return -1;
    }
    if (st->st_uid != geteuid()) {
        mg_set_error(err, errlen, "%s belongs to uid %u, not to the coordinator's user (uid %u): chown it", path,
                     (unsigned)st->st_uid, (unsigned)geteuid());
        return -1;
    }
    if (st->st_mode & 077) {
        mg_set_error(err, errlen,
                     "%s has mode %04o: the provenance signing key must be readable by its owner only "
                     "(chmod %s %s)", path, (unsigned)(st->st_mode & 07777), is_dir ? "700" : "600", path);
        return -1;
    }
    return 0;
}

/* Writes text to path through a temp file and a rename; 0 or -1 (errno). */
static int s_write_atomic(const char *path, const char *text, unsigned mode)
{
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    int rc = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0 ? 0 : -1;
    if (close(fd) != 0) rc = -1;
    if (rc == 0) rc = rename(tmp, path);
    if (rc != 0) unlink(tmp);
    return rc;
}

/* Writes the public key file when it is missing or disagrees with the key. */
static void s_write_pub(const char *keys_dir, const mg_sign_pub_t *pub)
{
    char path[4200], text[MG_SIGN_PUB_HEX + 1];
    snprintf(path, sizeof path, "%s/provenance.pub", keys_dir);
    snprintf(text, sizeof text, "%s\n", pub->hex);
    size_t len = 0;
    char *have = mg_read_file(path, &len);
    int same = have && strcmp(have, text) == 0;
    if (have && !same) mg_warn("%s does not hold the public half of provenance.key: rewriting it", path);
    free(have);
    if (!same && s_write_atomic(path, text, 0644) != 0) mg_warn("cannot write %s: %s", path, strerror(errno));
}

mg_sign_key_t *mg_sign_key_load(const char *keys_dir, int *created, char *err, size_t errlen)
{
    if (created) *created = 0;
    if (sodium_init() < 0) { mg_set_error(err, errlen, "libsodium failed to initialise"); return NULL; }
    struct stat st;
    if (mkdir(keys_dir, 0700) != 0 && errno != EEXIST) {
        mg_set_error(err, errlen, "cannot create the keys folder %s: %s", keys_dir, strerror(errno));
        return NULL;
    }
    if (lstat(keys_dir, &st) != 0) {
        mg_set_error(err, errlen, "cannot read %s: %s", keys_dir, strerror(errno));
        return NULL;
    }
    if (s_private(&st, keys_dir, 1, err, errlen) != 0) return NULL;

    char path[4200];
    if (snprintf(path, sizeof path, "%s/provenance.key", keys_dir) >= (int)sizeof path) {
        mg_set_error(err, errlen, "the keys folder path %s is too long", keys_dir);
        return NULL;
    }
    unsigned char seed[crypto_sign_SEEDBYTES];
    mg_sign_key_t *k = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        /* First start: O_EXCL, so two coordinators racing cannot both write a key. */
        k = mg_sign_key_generate();
        if (!k) { mg_set_error(err, errlen, "out of memory"); return NULL; }
        char text[2 * crypto_sign_SEEDBYTES + 2];
        sodium_bin2hex(text, sizeof text, k->sk, crypto_sign_SEEDBYTES); /* the seed is sk's first half */
        strcat(text, "\n");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        size_t n = strlen(text);
        int ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
        int e = errno;
        if (fd >= 0 && close(fd) != 0) ok = 0;
        sodium_memzero(text, sizeof text);
        if (!ok) {
            mg_set_error(err, errlen, "cannot write the signing key %s: %s", path, strerror(e));
            if (fd >= 0) unlink(path);
            mg_sign_key_destroy(&k);
            return NULL;
        }
        mg_fsync_dir(keys_dir);
        if (created) *created = 1;
        s_write_pub(keys_dir, &k->pub);
        return k;
    }
    if (fd < 0) {
        mg_set_error(err, errlen, "cannot open the signing key %s: %s%s", path, strerror(errno),
                     errno == ELOOP ? " (it is a symbolic link: keep the real file there)" : "");
        return NULL;
    }
    char text[256];
    if (fstat(fd, &st) != 0) mg_set_error(err, errlen, "cannot stat %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || s_private(&st, path, 0, err, errlen) != 0) {
        close(fd);
        return NULL;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n < 0) {
        mg_set_error(err, errlen, "cannot read the signing key %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    close(fd);
    text[n] = 0;
    if (s_hex(text, seed, sizeof seed) != 0) {
        mg_set_error(err, errlen, "%s is not a provenance signing key (expected 64 hex digits): restore it from "
                                  "your backup; never replace it with a new one without saying so to your auditors",
                     path);
        sodium_memzero(text, sizeof text);
        return NULL;
    }
    sodium_memzero(text, sizeof text);
    k = s_from_seed(seed);
    sodium_memzero(seed, sizeof seed);
    if (!k) { mg_set_error(err, errlen, "out of memory"); return NULL; }
    s_write_pub(keys_dir, &k->pub);
    return k;
}

/* ---- signatures ------------------------------------------------------------------------- */

static size_t s_record_msg(char *buf, size_t len, int64_t seq, const char *prev_hash, const char *record_hash)
{
    int n = snprintf(buf, len, "mg-provenance-record-v1\n%" PRId64 "\n%s\n%s", seq, prev_hash ? prev_hash : "",
                     record_hash ? record_hash : "");
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static size_t s_head_msg(char *buf, size_t len, int64_t seq, const char *hash, int64_t time_ms)
{
    int n = snprintf(buf, len, "mg-provenance-head-v1\n%" PRId64 "\n%s\n%" PRId64, seq, hash ? hash : "", time_ms);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static void s_sign(const mg_sign_key_t *key, const char *msg, size_t len, char sig_hex[MG_SIGN_SIG_HEX])
{
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, len, key->sk);
    sodium_bin2hex(sig_hex, MG_SIGN_SIG_HEX, sig, sizeof sig);
}

static int s_check(const mg_sign_pub_t *pub, const char *msg, size_t len, const char *sig_hex)
{
    unsigned char sig[crypto_sign_BYTES];
    if (!pub || !sig_hex || s_hex(sig_hex, sig, sizeof sig) != 0) return 0;
    return crypto_sign_verify_detached(sig, (const unsigned char *)msg, len, pub->pk) == 0;
}

/* Hashes are 64 hex digits; the buffers leave room for longer (malformed) values, which then
 * simply fail to verify. */
#define S_MSG_MAX 512

void mg_sign_record(const mg_sign_key_t *key, int64_t seq, const char *prev_hash, const char *record_hash,
                    char sig_hex[MG_SIGN_SIG_HEX])
{
    char msg[S_MSG_MAX];
    s_sign(key, msg, s_record_msg(msg, sizeof msg, seq, prev_hash, record_hash), sig_hex);
}

void mg_sign_head(const mg_sign_key_t *key, int64_t seq, const char *hash, int64_t time_ms,
                  char sig_hex[MG_SIGN_SIG_HEX])
{
    char msg[S_MSG_MAX];
    s_sign(key, msg, s_head_msg(msg, sizeof msg, seq, hash, time_ms), sig_hex);
}

int mg_sign_record_check(const mg_sign_pub_t *pub, int64_t seq, const char *prev_hash, const char *record_hash,
                         const char *sig_hex)
{
    char msg[S_MSG_MAX];
    return s_check(pub, msg, s_record_msg(msg, sizeof msg, seq, prev_hash, record_hash), sig_hex);
}

int mg_sign_head_check(const mg_sign_pub_t *pub, int64_t seq, const char *hash, int64_t time_ms,
                       const char *sig_hex)
{
    char msg[S_MSG_MAX];
    return s_check(pub, msg, s_head_msg(msg, sizeof msg, seq, hash, time_ms), sig_hex);
}

/* sign.h - the coordinator's Ed25519 signing key (libsodium) and the two things it signs:
 * each provenance record's link (seq, prev_hash, record_hash) and the chain's head
 * (seq, hash, time_ms), which an auditor keeps outside mg (docs/audit.md).
 *
 * The key lives in $MG_HOME/keys/ (never in the database): provenance.key holds the 32-byte
 * seed as hex and must be the owner's alone (folder 0700, file 0600); provenance.pub holds
 * the public key as 64 hex digits, to print and hand out. A key id is the first 8 bytes of
 * sha256(public key) as hex, stored next to each signature to say which key made it.
 *
 * Signed messages (the version line keeps a record signature from ever passing as a head's):
 *     record:  "mg-provenance-record-v1\n" seq "\n" prev_hash "\n" record_hash
 *     head:    "mg-provenance-head-v1\n"   seq "\n" hash "\n" time_ms
 * with seq and time_ms in decimal. Signatures are 64 bytes, stored as 128 hex digits.
 */
#ifndef MG_SIGN_H
#define MG_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define MG_SIGN_PUB_BYTES 32
#define MG_SIGN_PUB_HEX 65    /* 64 hex digits and the NUL */
#define MG_SIGN_ID_HEX 17     /* 16 hex digits and the NUL */
#define MG_SIGN_SIG_HEX 129   /* 128 hex digits and the NUL */

/* A public key in its three forms. */
typedef struct {
    unsigned char pk[MG_SIGN_PUB_BYTES];
    char hex[MG_SIGN_PUB_HEX];
    char id[MG_SIGN_ID_HEX];
} mg_sign_pub_t;

/* A secret key with its public half. Opaque; the secret is wiped on destroy. */
typedef struct mg_sign_key mg_sign_key_t;

/* Loads the key from keys_dir/provenance.key, or creates keys_dir (0700), the key (0600) and
 * keys_dir/provenance.pub when the key file does not exist yet (*created = 1 then; created may
 * be NULL). Refuses (NULL, with what to do in err) a folder or key file that is not the
 * current user's, that group or others may read or write, a link, or a key file that is not
 * 64 hex digits. A provenance.pub that disagrees with the key is rewritten (with a warning).
 * Returns a key the caller owns (mg_sign_key_destroy). */
mg_sign_key_t *mg_sign_key_load(const char *keys_dir, int *created, char *err, size_t errlen);
/* A fresh key kept in memory only (tests, benchmarks). NULL when out of memory. */
mg_sign_key_t *mg_sign_key_generate(void);
/* Wipes and frees *key_p and sets it to NULL. NULL is fine. */
void mg_sign_key_destroy(mg_sign_key_t **key_p);
/* The key's public half; valid while the key lives. */
const mg_sign_pub_t *mg_sign_key_pub(const mg_sign_key_t *key);

/* Parses 64 hex digits (surrounding white space allowed, nothing else) into *pub.
 * 0, or -1 with the reason in err. */
int mg_sign_pub_parse(const char *text, mg_sign_pub_t *pub, char *err, size_t errlen);
/* Fills *pub from the raw 32-byte public key. */
void mg_sign_pub_from_bytes(const unsigned char pk[MG_SIGN_PUB_BYTES], mg_sign_pub_t *pub);

/* Signs a record's link / a head into sig_hex (128 hex digits). */
void mg_sign_record(const mg_sign_key_t *key, int64_t seq, const char *prev_hash, const char *record_hash,
                    char sig_hex[MG_SIGN_SIG_HEX]);
void mg_sign_head(const mg_sign_key_t *key, int64_t seq, const char *hash, int64_t time_ms,
                  char sig_hex[MG_SIGN_SIG_HEX]);
/* 1 when sig_hex is pub's valid signature of that record link / head, else 0 (a malformed
 * signature included). */
int mg_sign_record_check(const mg_sign_pub_t *pub, int64_t seq, const char *prev_hash, const char *record_hash,
                         const char *sig_hex);
int mg_sign_head_check(const mg_sign_pub_t *pub, int64_t seq, const char *hash, int64_t time_ms,
                       const char *sig_hex);

#endif

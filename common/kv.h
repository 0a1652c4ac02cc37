/* kv.h - ordered key/value records, the body encoding of every mg wire message.
 *
 * A record is text: one "key=value\n" line per field, in insertion order.
 * Values escape '\\' as "\\\\" and newline as "\\n", so any byte string except
 * NUL fits; keys are [A-Za-z0-9_.-]+. The text form keeps frames readable in
 * tcpdump and logs, and makes the protocol trivial to implement in any language.
 * See docs/protocol.md.
 */
#ifndef MG_KV_H
#define MG_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *key;   /* owned */
    char *value; /* owned, unescaped, NUL-terminated */
} mg_kv_pair_t;

typedef struct {
    mg_kv_pair_t *pairs; /* owned array of n pairs */
    size_t n, cap;
} mg_kv_t;

/* Empty record; free with mg_kv_clear. */
void mg_kv_init(mg_kv_t *kv);
void mg_kv_clear(mg_kv_t *kv);

/* Set key to value (copies both). Replaces an existing key in place. 0 or -1 (OOM). */
int mg_kv_set(mg_kv_t *kv, const char *key, const char *value);
int mg_kv_setf(mg_kv_t *kv, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mg_kv_set_i64(mg_kv_t *kv, const char *key, int64_t v);
int mg_kv_set_u64(mg_kv_t *kv, const char *key, uint64_t v);
int mg_kv_set_double(mg_kv_t *kv, const char *key, double v);

/* Lookups return a pointer into kv (borrowed) or the default. */
const char *mg_kv_get(const mg_kv_t *kv, const char *key);
const char *mg_kv_get_or(const mg_kv_t *kv, const char *key, const char *dflt);
int64_t mg_kv_get_i64(const mg_kv_t *kv, const char *key, int64_t dflt);
uint64_t mg_kv_get_u64(const mg_kv_t *kv, const char *key, uint64_t dflt);
double mg_kv_get_double(const mg_kv_t *kv, const char *key, double dflt);

/* Encode to text. Returns a malloc'd NUL-terminated string the caller owns
 * (length in *len if len != NULL), or NULL on OOM. */
char *mg_kv_encode(const mg_kv_t *kv, size_t *len);

/* Decode len bytes (need not be NUL-terminated) into kv (which is cleared first).
 * Returns 0, or -1 on malformed input (line without '=', bad key, bad escape). */
int mg_kv_decode(mg_kv_t *kv, const char *buf, size_t len);

#endif

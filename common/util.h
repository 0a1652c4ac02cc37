/* util.h - small helpers shared by every mg program: time, logging, hashing, files.
 * Library code returns 0 / -1; only main() decides to exit.
 */
#ifndef MG_UTIL_H
#define MG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MG_VERSION "0.1.0"

/* Wall-clock milliseconds since the epoch, and a monotonic clock in ms. */
int64_t mg_now_ms(void);
int64_t mg_mono_ms(void);
/* Formats ms-since-epoch as ISO 8601 UTC ("2026-11-22T03:49:32.123Z") into buf (>= 32 bytes). */
void mg_format_time(int64_t ms, char *buf, size_t buflen);

/* Logging to stderr with a timestamp and program tag. Level: 0 error, 1 warn, 2 info, 3 debug.
 * mg_log_level is read from $MG_LOG_LEVEL (default 2) by mg_log_init. */
void mg_log_init(const char *program);
void mg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define mg_err(...) mg_log(0, __VA_ARGS__)
#define mg_warn(...) mg_log(1, __VA_ARGS__)
#define mg_info(...) mg_log(2, __VA_ARGS__)
#define mg_debug(...) mg_log(3, __VA_ARGS__)

/* SHA-256 (libsodium) of len bytes, as 64 lowercase hex chars + NUL into hex[65]. */
void mg_sha256_hex(const void *data, size_t len, char hex[65]);
/* Incremental form for files and chained records. */
typedef struct { unsigned char opaque[128]; } mg_sha256_t;
void mg_sha256_init(mg_sha256_t *h);
void mg_sha256_update(mg_sha256_t *h, const void *data, size_t len);
void mg_sha256_final_hex(mg_sha256_t *h, char hex[65]);
/* SHA-256 of a file's contents. 0 or -1 (errno set). */
int mg_sha256_file_hex(const char *path, char hex[65]);

/* Reads a whole file. Returns a malloc'd buffer the caller owns (NUL-terminated,
 * length in *len), or NULL with errno set. */
char *mg_read_file(const char *path, size_t *len);

/* mkdir -p. 0 or -1 (errno set). */
int mg_mkdir_p(const char *path, unsigned mode);

/* Writes data to path atomically: temp file in the same folder, fsync, rename, fsync of
 * the folder. Readers see the old file or the new one, never a torn one. 0 or -1. */
int mg_write_file_atomic(const char *path, const void *data, size_t len);
/* The same without the folder fsync: the caller fsyncs the folder (mg_fsync_dir) before it
 * relies on the rename being durable; lets a batch of files share one folder sync. */
int mg_write_file_atomic_nodirsync(const char *path, const void *data, size_t len);
int mg_fsync_dir(const char *dir);

/* $MG_HOME, or "$HOME/.local/share/mg" (or "./mg-home" without $HOME). Static storage. */
const char *mg_home(void);

/* snprintf into an error buffer; NULL-safe (err may be NULL or errlen 0). */
void mg_set_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Safe copy: always NUL-terminates; returns -1 if src was truncated. */
int mg_strlcpy(char *dst, const char *src, size_t dstlen);

/* Lower-cases a slug for file names: keeps [a-z0-9._-], maps the rest to '-'. */
void mg_slugify(const char *in, char *out, size_t outlen);

/* Joins n strings with commas into out (truncated at a whole item when out is too small). */
void mg_join_csv(char *out, size_t outlen, char *const *items, int n);

/* Levenshtein distance (for "did you mean" suggestions). */
int mg_edit_distance(const char *a, const char *b);

#endif

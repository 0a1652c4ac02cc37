/* output.h - how mgctl shows replies: aligned tables, "key  value" field lists, JSON, and
 * the --wait progress bar. Pure formatting: nothing here talks to the coordinator.
 *
 * JSON: every value is emitted as a JSON string exactly as the coordinator sent it (ids,
 * counts and 64-bit seeds included: a seed does not survive a round trip through a
 * double), so the shape never depends on a value's contents. docs/cli.md documents it.
 */
#ifndef MG_CLI_OUTPUT_H
#define MG_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kv.h"

/* Writes s as a quoted JSON string: escapes '"', '\\' and control characters, and
 * replaces bytes that are not valid UTF-8 with U+FFFD so the output is always valid. */
void mg_out_json_string(FILE *f, const char *s);
/* {"key": "value", ...} on one line, no newline. */
void mg_out_json_object(FILE *f, const mg_kv_t *kv);
/* The --json form of a reply: one object with info's fields followed by
 * "rows": [ {...}, ... ] (always present, one row per line), and a newline. */
void mg_out_json_reply(FILE *f, const mg_kv_t *info, const mg_kv_t *rows, size_t n_rows);

/* Is key a timestamp? Keys ending in "_ms", and "at" (events). */
int mg_out_is_time_key(const char *key);
/* The display form of a value: a timestamp key holding an integer that is plausibly epoch
 * milliseconds (>= 1e11, i.e. after 1973) becomes ISO 8601 UTC; "0" or "" under a
 * timestamp key becomes "-"; anything else is value itself. Returns value or buf. */
const char *mg_out_value(const char *key, const char *value, char *buf, size_t buflen);

/* Columns of the terminal behind fd, or 0 when fd is not a terminal. */
int mg_out_terminal_width(int fd);

/* Prints rows as a table with a header of the first row's keys (later rows are looked up
 * by key, a missing key is an empty cell). Values go through mg_out_value; control
 * characters become spaces; integer columns are right-aligned. width > 0 (a terminal):
 * columns are capped and shrunk to fit width, cut cells end in "…"; width == 0: nothing
 * is ever cut (pipes and files get whole values). Nothing is printed for 0 rows. */
void mg_out_table(FILE *f, const mg_kv_t *rows, size_t n_rows, int width);

/* Prints each field of kv as "<indent>key  value" with the values aligned; values go
 * through mg_out_value; a multi-line value continues on indented lines. */
void mg_out_fields(FILE *f, const mg_kv_t *kv, const char *indent);

/* Redraws the one-line progress bar on a terminal: "\r[#####.....] text" and clears the
 * rest of the line. finished of total fills the bar (total 0 = empty bar). */
void mg_out_progress(FILE *f, int64_t finished, int64_t total, const char *text);

#endif

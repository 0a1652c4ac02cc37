/* json.h - a growable string buffer with a JSON writer (escaping, commas), used for
 * provenance records and decision records. Output is deterministic: keys appear in the
 * order written, numbers print with %.17g (doubles) or as integers.
 */
#ifndef MG_JSON_H
#define MG_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;      /* owned, always NUL-terminated once anything was written */
    size_t len, cap;
    int oom;        /* set on allocation failure; later writes are ignored */
    int need_comma; /* internal: a value was written at this nesting level */
} mg_strbuf_t;

void mg_sb_init(mg_strbuf_t *sb);
void mg_sb_free(mg_strbuf_t *sb);
void mg_sb_append(mg_strbuf_t *sb, const char *s, size_t n);
void mg_sb_puts(mg_strbuf_t *sb, const char *s);
void mg_sb_printf(mg_strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the buffer: returns it (caller owns, never NULL unless OOM) and resets sb. */
char *mg_sb_take(mg_strbuf_t *sb);

/* JSON writing: objects and arrays nest; keys and values add commas as needed. */
void mg_json_obj_open(mg_strbuf_t *sb);
void mg_json_obj_close(mg_strbuf_t *sb);
void mg_json_arr_open(mg_strbuf_t *sb);
void mg_json_arr_close(mg_strbuf_t *sb);
void mg_json_key(mg_strbuf_t *sb, const char *key);
void mg_json_str(mg_strbuf_t *sb, const char *s);          /* NULL writes null */
void mg_json_int(mg_strbuf_t *sb, int64_t v);
void mg_json_uint(mg_strbuf_t *sb, uint64_t v);
void mg_json_num(mg_strbuf_t *sb, double v);
void mg_json_bool(mg_strbuf_t *sb, int v);
void mg_json_raw(mg_strbuf_t *sb, const char *json);      /* a pre-built JSON value */
/* Escapes s as a JSON string literal (with quotes) onto sb. */
void mg_json_escape(mg_strbuf_t *sb, const char *s);

#endif

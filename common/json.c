/* json.c - string buffer and JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mg_sb_init(mg_strbuf_t *sb) { memset(sb, 0, sizeof *sb); }
void mg_sb_free(mg_strbuf_t *sb)
{
    free(sb->buf);
    memset(sb, 0, sizeof *sb);
}

void mg_sb_append(mg_strbuf_t *sb, const char *s, size_t n)
{
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1) cap *= 2;
        char *nb = realloc(sb->buf, cap);
        if (!nb) { sb->oom = 1; return; }
        sb->buf = nb;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

void mg_sb_puts(mg_strbuf_t *sb, const char *s) { mg_sb_append(sb, s, strlen(s)); }

void mg_sb_printf(mg_strbuf_t *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) { mg_sb_append(sb, small, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { sb->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mg_sb_append(sb, big, (size_t)n);
    free(big);
}

char *mg_sb_take(mg_strbuf_t *sb)
{
    if (sb->oom) { mg_sb_free(sb); return NULL; }
    if (!sb->buf) mg_sb_append(sb, "", 0);
    char *b = sb->buf;
    memset(sb, 0, sizeof *sb);
    return b;
}

static void s_comma(mg_strbuf_t *sb)
{
    if (sb->need_comma) mg_sb_append(sb, ",", 1);
    sb->need_comma = 1;
}

void mg_json_obj_open(mg_strbuf_t *sb) { s_comma(sb); mg_sb_append(sb, "{", 1); sb->need_comma = 0; }
void mg_json_obj_close(mg_strbuf_t *sb) { mg_sb_append(sb, "}", 1); sb->need_comma = 1; }
void mg_json_arr_open(mg_strbuf_t *sb) { s_comma(sb); mg_sb_append(sb, "[", 1); sb->need_comma = 0; }
void mg_json_arr_close(mg_strbuf_t *sb) { mg_sb_append(sb, "]", 1); sb->need_comma = 1; }

void mg_json_escape(mg_strbuf_t *sb, const char *s)
{
    mg_sb_append(sb, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': mg_sb_append(sb, "\\\"", 2); break;
        case '\\': mg_sb_append(sb, "\\\\", 2); break;
        case '\n': mg_sb_append(sb, "\\n", 2); break;
        case '\r': mg_sb_append(sb, "\\r", 2); break;
        case '\t': mg_sb_append(sb, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                mg_sb_append(sb, esc, 6);
            } else {
                mg_sb_append(sb, (const char *)p, 1);
            }
        }
    }
    mg_sb_append(sb, "\"", 1);
}

void mg_json_key(mg_strbuf_t *sb, const char *key)
{
    s_comma(sb);
    mg_json_escape(sb, key);
    mg_sb_append(sb, ":", 1);
    sb->need_comma = 0;
}

void mg_json_str(mg_strbuf_t *sb, const char *s)
{
    s_comma(sb);
    if (s) mg_json_escape(sb, s);
    else mg_sb_append(sb, "null", 4);
}

void mg_json_int(mg_strbuf_t *sb, int64_t v) { s_comma(sb); mg_sb_printf(sb, "%" PRId64, v); }
void mg_json_uint(mg_strbuf_t *sb, uint64_t v) { s_comma(sb); mg_sb_printf(sb, "%" PRIu64, v); }
void mg_json_num(mg_strbuf_t *sb, double v)
{
    s_comma(sb);
    if (!isfinite(v)) mg_sb_append(sb, "null", 4);
    else mg_sb_printf(sb, "%.17g", v);
}
void mg_json_bool(mg_strbuf_t *sb, int v) { s_comma(sb); mg_sb_puts(sb, v ? "true" : "false"); }
void mg_json_raw(mg_strbuf_t *sb, const char *json) { s_comma(sb); mg_sb_puts(sb, json && *json ? json : "null"); }

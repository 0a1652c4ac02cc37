/* output.c - tables, field lists, JSON and the progress bar for mgctl (see output.h).
 * Widths count UTF-8 code points (one column each), which is right for the ASCII and
 * Latin text mg produces; wide CJK glyphs may misalign a table but never corrupt it.
 */
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/util.h"

#define S_COL_CAP 48   /* widest a column may be on a terminal before cells are cut */
#define S_COL_MIN 6    /* shrinking to fit the terminal stops here */
#define S_GAP "  "     /* between columns */

/* ---- JSON ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid (overlongs,
 * surrogates and code points above U+10FFFF included). */
static int s_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (s[1] < lo || s[1] > hi) return 0;
        return (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (s[1] < lo || s[1] > hi) return 0;
        if ((s[2] & 0xC0) != 0x80) return 0;
        return (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

void mg_out_json_string(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    fputc('"', f);
    while (*s) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            s++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            s++;
        } else {
            int n = s_utf8_len(s); /* stops at the NUL: it is never a continuation byte */
            if (n == 0) {
                fputs("\\ufffd", f);
                s++;
            } else {
                fwrite(s, 1, (size_t)n, f);
                s += n;
            }
        }
    }
    fputc('"', f);
}

static void s_json_fields(FILE *f, const mg_kv_t *kv, const char *sep)
{
    for (size_t i = 0; i < kv->n; i++) {
        if (i) fputs(sep, f);
        mg_out_json_string(f, kv->pairs[i].key);
        fputs(": ", f);
        mg_out_json_string(f, kv->pairs[i].value);
    }
}

void mg_out_json_object(FILE *f, const mg_kv_t *kv)
{
    fputc('{', f);
    s_json_fields(f, kv, ", ");
    fputc('}', f);
}

void mg_out_json_reply(FILE *f, const mg_kv_t *info, const mg_kv_t *rows, size_t n_rows)
{
    fputs("{\n", f);
    for (size_t i = 0; info && i < info->n; i++) {
        if (strcmp(info->pairs[i].key, "rows") == 0) continue; /* never two "rows" members */
        fputs("  ", f);
        mg_out_json_string(f, info->pairs[i].key);
        fputs(": ", f);
        mg_out_json_string(f, info->pairs[i].value);
        fputs(",\n", f);
    }
    if (n_rows == 0) {
        fputs("  \"rows\": []\n}\n", f);
        return;
    }
    fputs("  \"rows\": [\n", f);
    for (size_t r = 0; r < n_rows; r++) {
        fputs("    ", f);
        mg_out_json_object(f, &rows[r]);
        fputs(r + 1 < n_rows ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
}

/* ---- values ----------------------------------------------------------------------------- */

int mg_out_is_time_key(const char *key)
{
    size_t n = strlen(key);
    return strcmp(key, "at") == 0 || (n > 3 && strcmp(key + n - 3, "_ms") == 0);
}

static int s_is_int(const char *v)
{
    if (*v == '-') v++;
    if (!*v) return 0;
    for (; *v; v++)
        if (*v < '0' || *v > '9') return 0;
    return 1;
}

const char *mg_out_value(const char *key, const char *value, char *buf, size_t buflen)
{
    if (!value) value = "";
    if (!mg_out_is_time_key(key)) return value;
    if (!*value || strcmp(value, "0") == 0) return "-";
    if (!s_is_int(value) || strlen(value) > 15) return value;
    long long ms = strtoll(value, NULL, 10);
    if (ms < 100000000000LL) return value; /* a duration, not a date */
    mg_format_time(ms, buf, buflen);
    return buf;
}

/* ---- tables -------------------------------------------------------------------------- */

int mg_out_terminal_width(int fd)
{
    if (!isatty(fd)) return 0;
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
    return w > 0 ? w : 80;
}

static int s_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* A malloc'd copy of v with control characters as spaces (a cell is one line). */
static char *s_cell(const char *key, const char *v)
{
    char tbuf[40];
    const char *shown = mg_out_value(key, v, tbuf, sizeof tbuf);
    char *c = strdup(shown);
    if (!c) return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return c;
}

/* Prints cell in a column of w, cut with "…" when wider. Padding is not written at once:
 * *pending counts spaces owed to the line, paid only before later visible text, so no
 * line ends in spaces (empty trailing cells are common: error, worker, outputs). */
static void s_put_cell(FILE *f, const char *cell, int w, int right, int *pending)
{
    int cw = s_width(cell);
    int cut = cw > w;
    int shown = cut ? w : cw;
    if (shown == 0) {
        *pending += w;
        return;
    }
    *pending += right ? w - shown : 0;
    fprintf(f, "%*s", *pending, "");
    *pending = right ? 0 : w - shown;
    if (!cut) {
        fputs(cell, f);
        return;
    }
    int keep = w - 1, seen = 0;
    const char *p = cell;
    for (; *p; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (seen == keep) break;
            seen++;
        }
    }
    fwrite(cell, 1, (size_t)(p - cell), f);
    fputs("…", f);
}

void mg_out_table(FILE *f, const mg_kv_t *rows, size_t n_rows, int width)
{
    if (n_rows == 0 || rows[0].n == 0) return;
    size_t nc = rows[0].n;
    char **cells = calloc((n_rows + 1) * nc, sizeof *cells); /* row 0 is the header */
    int *w = calloc(nc, sizeof *w);
    int *right = calloc(nc, sizeof *right);
    if (!cells || !w || !right) goto out;

    for (size_t c = 0; c < nc; c++) {
        const char *key = rows[0].pairs[c].key;
        cells[c] = strdup(key);
        if (!cells[c]) goto out;
        w[c] = s_width(key);
        right[c] = 1;
        int any = 0;
        for (size_t r = 0; r < n_rows; r++) {
            const char *v = mg_kv_get_or(&rows[r], key, "");
            char *cell = s_cell(key, v);
            if (!cell) goto out;
            cells[(r + 1) * nc + c] = cell;
            int cw = s_width(cell);
            if (cw > w[c]) w[c] = cw;
            if (*v) {
                any = 1;
                if (!s_is_int(v) || mg_out_is_time_key(key)) right[c] = 0;
            }
        }
        if (!any) right[c] = 0;
    }

    if (width > 0) {
        int total = 0;
        for (size_t c = 0; c < nc; c++) {
            if (w[c] > S_COL_CAP && !right[c]) w[c] = S_COL_CAP;
            total += w[c] + (c ? (int)strlen(S_GAP) : 0);
        }
        /* Take a column at a time from the widest text column until the table fits. Ids,
         * counts and times are never cut (a cut seed is useless); when only they are left
         * the terminal wraps the line. */
        while (total > width) {
            int widest = -1;
            for (size_t c = 0; c < nc; c++)
                if (!right[c] && !mg_out_is_time_key(rows[0].pairs[c].key) &&
                    (widest < 0 || w[c] > w[widest]))
                    widest = (int)c;
            if (widest < 0 || w[widest] <= S_COL_MIN) break;
            w[widest]--;
            total--;
        }
    }

    for (size_t r = 0; r <= n_rows; r++) {
        int pending = 0;
        for (size_t c = 0; c < nc; c++) {
            if (c) pending += (int)strlen(S_GAP);
            s_put_cell(f, cells[r * nc + c], w[c], right[c], &pending);
        }
        fputc('\n', f);
    }

out:
    if (cells)
        for (size_t i = 0; i < (n_rows + 1) * nc; i++) free(cells[i]);
    free(cells);
    free(w);
    free(right);
}

void mg_out_fields(FILE *f, const mg_kv_t *kv, const char *indent)
{
    int kw = 0;
    for (size_t i = 0; i < kv->n; i++) {
        int w = s_width(kv->pairs[i].key);
        if (w > kw) kw = w;
    }
    for (size_t i = 0; i < kv->n; i++) {
        char tbuf[40];
        const char *key = kv->pairs[i].key;
        const char *v = mg_out_value(key, kv->pairs[i].value, tbuf, sizeof tbuf);
        if (!*v) { /* no padding after the key: lines never end in spaces */
            fprintf(f, "%s%s\n", indent, key);
            continue;
        }
        fprintf(f, "%s%s%*s  ", indent, key, kw - s_width(key), "");
        for (const char *p = v; *p; p++) {
            fputc(*p, f);
            if (*p == '\n' && p[1]) fprintf(f, "%s%*s  ", indent, kw, "");
        }
        fputc('\n', f);
    }
}

/* ---- progress ------------------------------------------------------------------------ */

void mg_out_progress(FILE *f, int64_t finished, int64_t total, const char *text)
{
    enum { BAR = 30 };
    int fill = 0;
    if (total > 0) {
        if (finished > total) finished = total;
        fill = (int)(finished * BAR / total);
    }
    char bar[BAR + 1];
    for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    fprintf(f, "\r[%s] %s\033[K", bar, text);
    fflush(f);
}

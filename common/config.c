/* config.c - flag > env > $MG_HOME/mg.conf > default (see config.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "util.h"

static mg_kv_t s_file;       /* key -> value of mg.conf */
static mg_kv_t s_file_line;  /* key -> the line number that set it */
static char s_file_path[4200];
static int s_loaded;

/* Appends "name:line:1: message" (and a newline before it if err holds text already). */
__attribute__((format(printf, 5, 6)))
static void s_line_error(char *err, size_t errlen, const char *name, int lineno, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    size_t o = strlen(err);
    if (o + 1 >= errlen) return;
    int n = snprintf(err + o, errlen - o, "%s%s:%d:1: ", o ? "\n" : "", name, lineno);
    if (n < 0 || (size_t)n >= errlen - o) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + o + (size_t)n, errlen - o - (size_t)n, fmt, ap);
    va_end(ap);
}

static int s_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

int mg_config_parse_buffer(const char *name, const char *buf, size_t len, char *err, size_t errlen)
{
    mg_kv_clear(&s_file);
    mg_kv_clear(&s_file_line);
    s_loaded = 1;
    snprintf(s_file_path, sizeof s_file_path, "%s", name);
    if (err && errlen) err[0] = 0;
    int lineno = 0, rc = 0;
    for (size_t at = 0; at < len;) {
        const char *line = buf + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, 0, n)) {
            s_line_error(err, errlen, name, lineno, "the line contains a NUL byte");
            rc = -1;
            continue;
        }
        const char *hash = memchr(line, '#', n);
        if (hash) n = (size_t)(hash - line);
        const char *eq = memchr(line, '=', n);
        size_t ks = 0, ke = eq ? (size_t)(eq - line) : n;
        while (ks < ke && s_space(line[ks])) ks++;
        while (ke > ks && s_space(line[ke - 1])) ke--;
        if (!eq) {
            if (ks == ke) continue; /* blank or a comment */
            s_line_error(err, errlen, name, lineno, "expected 'key = value'");
            rc = -1;
            continue;
        }
        size_t vs = (size_t)(eq - line) + 1, ve = n;
        while (vs < ve && s_space(line[vs])) vs++;
        while (ve > vs && s_space(line[ve - 1])) ve--;
        char *k = strndup(line + ks, ke - ks), *v = strndup(line + vs, ve - vs);
        if (!k || !v || mg_kv_set(&s_file, k, v) != 0 || mg_kv_set_i64(&s_file_line, k, lineno) != 0) {
            char shown[48];
            mg_strlcpy(shown, k ? k : "", sizeof shown);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
            s_line_error(err, errlen, name, lineno, "bad key '%s%s' (letters, digits, '_', '.' and '-')", shown,
                         k && strlen(k) >= sizeof shown ? "..." : "");
            rc = -1;
        }
        free(k);
        free(v);
    }
    return rc;
}

int mg_config_reload(void)
{
    char path[sizeof s_file_path];
    snprintf(path, sizeof path, "%s/mg.conf", mg_home());
    mg_kv_clear(&s_file);
    mg_kv_clear(&s_file_line);
    s_loaded = 1;
    snprintf(s_file_path, sizeof s_file_path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* no file: defaults */
    char *buf = malloc(MG_CONFIG_MAX_BYTES + 1);
    size_t len = buf ? fread(buf, 1, MG_CONFIG_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad || len > MG_CONFIG_MAX_BYTES) {
        if (bad) fprintf(stderr, "%s:1:1: cannot read the file\n", path);
        else fprintf(stderr, "%s:1:1: mg.conf is over %d bytes (the limit); its settings are ignored\n", path,
                     MG_CONFIG_MAX_BYTES);
        free(buf);
        return -1;
    }
    char err[4096];
    int rc = mg_config_parse_buffer(path, buf, len, err, sizeof err);
    free(buf);
    if (rc != 0) fprintf(stderr, "%s\n", err);
    return rc;
}

const char *mg_config_get(const char *key, const char *flag_value, const char *env_name,
                          const char *dflt)
{
    if (flag_value) return flag_value;
    if (env_name) {
        const char *e = getenv(env_name);
        if (e && *e) return e;
    }
    if (!s_loaded) mg_config_reload();
    const char *v = mg_kv_get(&s_file, key);
    return v ? v : dflt;
}

const char *mg_config_source(const char *key, const char *flag_value, const char *env_name, char *buf,
                             size_t len)
{
    if (flag_value) {
        snprintf(buf, len, "--");
        for (size_t i = 0; key[i] && i + 3 < len; i++) {
            buf[i + 2] = key[i] == '_' ? '-' : key[i];
            buf[i + 3] = 0;
        }
        return buf;
    }
    if (env_name) {
        const char *e = getenv(env_name);
        if (e && *e) {
            snprintf(buf, len, "%s", env_name);
            return buf;
        }
    }
    if (!s_loaded) mg_config_reload();
    if (mg_kv_get(&s_file, key)) {
        snprintf(buf, len, "%s:%lld", s_file_path, (long long)mg_kv_get_i64(&s_file_line, key, 0));
        return buf;
    }
    snprintf(buf, len, "the default");
    return buf;
}

int mg_config_int(const char *key, const char *flag_value, const char *env_name, const char *dflt, long lo,
                  long hi, long *out, char *err, size_t errlen)
{
    const char *value = mg_config_get(key, flag_value, env_name, dflt);
    char *end = NULL;
    errno = 0;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || !*value || *end || errno == ERANGE || v < lo || v > hi) {
        char from[4300];
        mg_set_error(err, errlen, "%s must be a whole number in %ld..%ld, got '%s' (from %s)", key, lo, hi,
                     value ? value : "", mg_config_source(key, flag_value, env_name, from, sizeof from));
        return -1;
    }
    *out = v;
    return 0;
}

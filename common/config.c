/* config.c - flag > env > $MG_HOME/mg.conf > default (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "util.h"

static mg_kv_t s_file;       /* key -> value of mg.conf */
static mg_kv_t s_file_line;  /* key -> the line number that set it */
static char s_file_path[4200];
static int s_loaded;

static char *s_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int mg_config_reload(void)
{
    mg_kv_clear(&s_file);
    mg_kv_clear(&s_file_line);
    s_loaded = 1;
    char *path = s_file_path;
    snprintf(s_file_path, sizeof s_file_path, "%s/mg.conf", mg_home());
    FILE *f = fopen(path, "r");
    if (!f) return 0; /* no file: defaults */
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = s_trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "%s:%d:1: expected 'key = value'\n", path, lineno);
            rc = -1;
            continue;
        }
        *eq = 0;
        char *k = s_trim(s), *v = s_trim(eq + 1);
        if (mg_kv_set(&s_file, k, v) != 0 || mg_kv_set_i64(&s_file_line, k, lineno) != 0) {
            fprintf(stderr, "%s:%d:1: bad key '%s'\n", path, lineno, k);
            rc = -1;
        }
    }
    fclose(f);
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

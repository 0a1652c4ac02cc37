/* config.c - flag > env > $MG_HOME/mg.conf > default (see config.h). */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "util.h"

static mg_kv_t s_file;
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
    s_loaded = 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/mg.conf", mg_home());
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
        if (mg_kv_set(&s_file, k, v) != 0) {
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

/* kv.c - ordered key/value records (see kv.h for the text format). */
#include "kv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mg_kv_init(mg_kv_t *kv) { memset(kv, 0, sizeof *kv); }

void mg_kv_clear(mg_kv_t *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->pairs[i].key);
        free(kv->pairs[i].value);
    }
    free(kv->pairs);
    memset(kv, 0, sizeof *kv);
}

static int s_key_ok(const char *k, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static mg_kv_pair_t *s_find(const mg_kv_t *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (strcmp(kv->pairs[i].key, key) == 0) return &kv->pairs[i];
    return NULL;
}

int mg_kv_set(mg_kv_t *kv, const char *key, const char *value)
{
    if (!s_key_ok(key, strlen(key))) return -1;
    if (!value) value = "";
    char *v = strdup(value);
    if (!v) return -1;
    mg_kv_pair_t *p = s_find(kv, key);
    if (p) {
        free(p->value);
        p->value = v;
        return 0;
    }
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 8;
        mg_kv_pair_t *np = realloc(kv->pairs, cap * sizeof *np);
        if (!np) { free(v); return -1; }
        kv->pairs = np;
        kv->cap = cap;
    }
    char *k = strdup(key);
    if (!k) { free(v); return -1; }
    kv->pairs[kv->n].key = k;
    kv->pairs[kv->n].value = v;
    kv->n++;
    return 0;
}

int mg_kv_setf(mg_kv_t *kv, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    int rc = mg_kv_set(kv, key, s);
    free(s);
    return rc;
}

int mg_kv_set_i64(mg_kv_t *kv, const char *key, int64_t v) { return mg_kv_setf(kv, key, "%" PRId64, v); }
int mg_kv_set_u64(mg_kv_t *kv, const char *key, uint64_t v) { return mg_kv_setf(kv, key, "%" PRIu64, v); }
int mg_kv_set_double(mg_kv_t *kv, const char *key, double v) { return mg_kv_setf(kv, key, "%.17g", v); }

const char *mg_kv_get(const mg_kv_t *kv, const char *key)
{
    mg_kv_pair_t *p = s_find(kv, key);
    return p ? p->value : NULL;
}

const char *mg_kv_get_or(const mg_kv_t *kv, const char *key, const char *dflt)
{
    const char *v = mg_kv_get(kv, key);
    return v ? v : dflt;
}

int64_t mg_kv_get_i64(const mg_kv_t *kv, const char *key, int64_t dflt)
{
    const char *v = mg_kv_get(kv, key);
    if (!v || !*v) return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end ? dflt : (int64_t)x;
}

uint64_t mg_kv_get_u64(const mg_kv_t *kv, const char *key, uint64_t dflt)
{
    const char *v = mg_kv_get(kv, key);
    if (!v || !*v) return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end ? dflt : (uint64_t)x;
}

double mg_kv_get_double(const mg_kv_t *kv, const char *key, double dflt)
{
    const char *v = mg_kv_get(kv, key);
    if (!v || !*v) return dflt;
    char *end;
    double x = strtod(v, &end);
    return *end ? dflt : x;
}

char *mg_kv_encode(const mg_kv_t *kv, size_t *len)
{
    size_t need = 1;
    for (size_t i = 0; i < kv->n; i++)
        need += strlen(kv->pairs[i].key) + 2 + 2 * strlen(kv->pairs[i].value);
    char *out = malloc(need), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < kv->n; i++) {
        size_t kl = strlen(kv->pairs[i].key);
        memcpy(o, kv->pairs[i].key, kl);
        o += kl;
        *o++ = '=';
        for (const char *v = kv->pairs[i].value; *v; v++) {
            if (*v == '\\') { *o++ = '\\'; *o++ = '\\'; }
            else if (*v == '\n') { *o++ = '\\'; *o++ = 'n'; }
            else *o++ = *v;
        }
        *o++ = '\n';
    }
    *o = 0;
    if (len) *len = (size_t)(o - out);
    return out;
}

/* Decoded lines are appended without a look-up, then repeated keys are merged in one sort:
 * mg_kv_set's linear search per line would make a frame of n distinct keys cost O(n^2) (an
 * 8 MiB frame of a million keys froze the coordinator for minutes). */
typedef struct { const char *key; size_t i; } s_ref_t;

static int s_cmp_ref(const void *a, const void *b)
{
    const s_ref_t *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* Repeated keys as mg_kv_set would leave them: the first one's place, the last one's value. */
static int s_merge_repeats(mg_kv_t *kv)
{
    if (kv->n < 2) return 0;
    s_ref_t *refs = malloc(kv->n * sizeof *refs);
    if (!refs) return -1;
    for (size_t i = 0; i < kv->n; i++) refs[i] = (s_ref_t){kv->pairs[i].key, i};
    qsort(refs, kv->n, sizeof *refs, s_cmp_ref);
    int any = 0;
    for (size_t r = 0; r < kv->n;) {
        size_t e = r + 1;
        while (e < kv->n && strcmp(refs[e].key, refs[r].key) == 0) e++;
        if (e - r > 1) {
            mg_kv_pair_t *keep = &kv->pairs[refs[r].i], *last = &kv->pairs[refs[e - 1].i];
            char *v = last->value;
            last->value = keep->value;
            keep->value = v;
            for (size_t d = r + 1; d < e; d++) {
                mg_kv_pair_t *p = &kv->pairs[refs[d].i];
                free(p->key);
                free(p->value);
                p->key = p->value = NULL;
            }
            any = 1;
        }
        r = e;
    }
    free(refs);
    if (any) {
        size_t o = 0;
        for (size_t i = 0; i < kv->n; i++)
            if (kv->pairs[i].key) kv->pairs[o++] = kv->pairs[i];
        kv->n = o;
    }
    return 0;
}

static int s_append(mg_kv_t *kv, const char *key, size_t kl, const char *val, size_t vl)
{
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 8;
        mg_kv_pair_t *np = realloc(kv->pairs, cap * sizeof *np);
        if (!np) return -1;
        kv->pairs = np;
        kv->cap = cap;
    }
    char *k = malloc(kl + 1), *v = malloc(vl + 1);
    if (!k || !v) { free(k); free(v); return -1; }
    memcpy(k, key, kl);
    k[kl] = 0;
    memcpy(v, val, vl);
    v[vl] = 0;
    kv->pairs[kv->n].key = k;
    kv->pairs[kv->n].value = v;
    kv->n++;
    return 0;
}

int mg_kv_decode(mg_kv_t *kv, const char *buf, size_t len)
{
    mg_kv_clear(kv);
    size_t i = 0;
    char *val = malloc(len + 1);
    if (!val) return -1;
    int rc = 0;
    while (i < len) {
        size_t ks = i;
        while (i < len && buf[i] != '=' && buf[i] != '\n') i++;
        if (i >= len || buf[i] != '=' || !s_key_ok(buf + ks, i - ks)) { rc = -1; break; }
        size_t kl = i - ks;
        i++;
        size_t vn = 0;
        while (i < len && buf[i] != '\n') {
            char c = buf[i++];
            if (c == '\\') {
                if (i >= len) { rc = -1; break; }
                char e = buf[i++];
                if (e == '\\') c = '\\';
                else if (e == 'n') c = '\n';
                else { rc = -1; break; }
            } else if (c == 0) { rc = -1; break; }
            val[vn++] = c;
        }
        if (rc) break;
        if (i < len) i++; /* the newline; a last line without one is accepted */
        if (s_append(kv, buf + ks, kl, val, vn) != 0) { rc = -1; break; }
    }
    free(val);
    if (rc == 0) rc = s_merge_repeats(kv);
    if (rc) mg_kv_clear(kv);
    return rc;
}

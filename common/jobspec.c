/* jobspec.c - job files (docs/jobs.md): libyaml events -> a small node tree -> validated,
 * resolved mg_job_t with canonical JSON, its sha256 and the idempotency key. mgctl uses it
 * to check a file before SUBMIT; the coordinator parses the submitted text again and stores
 * the result.
 *
 * Flow: s_load builds the tree from libyaml's event stream (keeping each node's mark, and
 * rejecting anchors, aliases, tags and extra documents); s_check_* walk it with the schema
 * written out as code, appending every problem to a list instead of stopping at the first;
 * only when the list is empty does s_build allocate the job. Tree and scratch values live in
 * one arena freed at the end, so the validators never free anything.
 */
#include "jobspec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "emotion.h"
#include "protocol.h"
#include "util.h"

/* A 100,000-render file with explicit seeds is ~3 MiB. The file travels as one frame of a SUBMIT,
 * so it leaves 64 KiB of the message limit (protocol.h) for the header, command and args. */
#define S_MAX_FILE_BYTES ((8u << 20) - (64u << 10))
_Static_assert(S_MAX_FILE_BYTES + (64u << 10) <= MG_MAX_MESSAGE_BYTES, "a job file must fit in one message");
#define S_MAX_CUES 10000
#define S_MAX_RENDERS 100000         /* per job; split larger runs into several jobs */
#define S_MAX_EMOTIONS 8
#define S_MAX_IDEMPOTENCY_KEY 128
#define S_DEFAULT_DURATION_S 30.0
/* Joined (comma-separated) lengths must fit the fixed fields of mg_render_spec_t. */
#define S_MAX_INSTRUMENTS_JOINED 511
#define S_MAX_STEMS_JOINED 255
#define S_MAX_KEY_LEN 31
/* Bounds on the work and memory an untrusted file can cost (docs/jobs.md, "Limits"). A job file
 * nests about 6 deep (cues > cue > emotions); libyaml's scanner costs O(depth) per token, so a
 * deep file would cost O(depth^2): the depth is checked at every collection start. A
 * 100,000-render file with explicit seeds is about 400,000 nodes. The error list stops growing
 * at S_MAX_ERRORS (the rest are counted): more lines help nobody and cost memory. */
#define S_MAX_DEPTH 32
#define S_MAX_NODES 1000000
#define S_MAX_ERRORS 1000

/* ---- arena: every tree node, string and scratch array of one parse -------------------- */

typedef struct s_block {
    struct s_block *next;
    size_t used, cap;
    max_align_t data[];
} s_block_t;

typedef struct {
    s_block_t *head;
    int oom;
} s_arena_t;

static void *s_alloc(s_arena_t *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0) n = sizeof(max_align_t);
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        s_block_t *b = malloc(sizeof *b + cap);
        if (!b) { a->oom = 1; return NULL; }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static char *s_strndup(s_arena_t *a, const char *s, size_t n)
{
    char *d = s_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void s_arena_free(s_arena_t *a)
{
    while (a->head) {
        s_block_t *b = a->head;
        a->head = b->next;
        free(b);
    }
}

/* ---- the node tree ---------------------------------------------------------------------- */

enum { S_SCALAR, S_SEQ, S_MAP, S_ALIAS };

typedef struct s_node {
    int type;
    int line, col;          /* 1-based, from libyaml's start mark */
    int plain;              /* plain scalar without a tag: may be a number or null */
    int bad;                /* an alias or unsupported tag, reported when loaded: skip it */
    const char *text;       /* scalar: NUL-terminated copy (len bytes, may hold NULs) */
    size_t len;
    struct s_node **kids;   /* seq: items; map: key, value, key, value, ... */
    size_t n;               /* number of kids */
} s_node_t;

/* ---- error list --------------------------------------------------------------------------- */

typedef struct {
    int line, col;
    size_t seq;             /* insertion order, to keep the sort stable */
    const char *msg;        /* arena */
} s_err_t;

typedef struct {
    const char *src;        /* file name for messages */
    s_arena_t arena;
    s_err_t *errs;          /* malloc'd */
    size_t n_errs, cap_errs;
    size_t n_dropped;       /* errors past S_MAX_ERRORS, counted only */
    size_t n_nodes;         /* tree nodes made so far (S_MAX_NODES) */
} s_ctx_t;

__attribute__((format(printf, 4, 5)))
static void s_error_at(s_ctx_t *c, int line, int col, const char *fmt, ...)
{
    if (c->n_errs >= S_MAX_ERRORS) { c->n_dropped++; return; }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->n_errs == c->cap_errs) {
        size_t cap = c->cap_errs ? c->cap_errs * 2 : 16;
        s_err_t *ne = realloc(c->errs, cap * sizeof *ne);
        if (!ne) { c->arena.oom = 1; return; }
        c->errs = ne;
        c->cap_errs = cap;
    }
    const char *m = s_strndup(&c->arena, msg, strlen(msg));
    if (!m) return;
    c->errs[c->n_errs] = (s_err_t){line, col, c->n_errs, m};
    c->n_errs++;
}

#define s_error(c, node, ...) s_error_at((c), (node)->line, (node)->col, __VA_ARGS__)

/* A user string for a message: at most ~40 bytes, cut on a UTF-8 boundary, control
 * characters shown as '?', "..." when cut. */
static const char *s_show(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t o = 0, i = 0, lim = buflen > 44 ? 40 : buflen - 4;
    while (i < len && o < lim) {
        unsigned char ch = (unsigned char)s[i];
        size_t n = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
        if (o + n > lim || i + n > len) break;
        if (n == 1 && (ch < 0x20 || ch == 0x7f)) buf[o++] = '?';
        else { memcpy(buf + o, s + i, n); o += n; }
        i += n;
    }
    if (i < len) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o] = 0;
    return buf;
}

/* ---- libyaml events -> tree ---------------------------------------------------------------- */

static s_node_t *s_new_node(s_ctx_t *c, int type, yaml_mark_t m)
{
    c->n_nodes++;
    s_node_t *n = s_alloc(&c->arena, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->type = type;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    return n;
}

/* Only the core tags that change nothing (!!str on a scalar, !!seq, !!map) are accepted;
 * anything else would need a meaning we do not define. Returns 1 if tag is fine. */
static int s_tag_ok(s_ctx_t *c, const yaml_char_t *tag, const char *allowed, yaml_mark_t m)
{
    if (!tag || strcmp((const char *)tag, allowed) == 0) return 1;
    const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
    int short_form = strncmp(t, core, strlen(core)) == 0;
    s_error_at(c, (int)m.line + 1, (int)m.column + 1, "YAML tag '%s%s' is not supported in job files; remove it",
               short_form ? "!!" : "", short_form ? t + strlen(core) : t);
    return 0;
}

static void s_anchor_error(s_ctx_t *c, const yaml_char_t *anchor, yaml_mark_t m)
{
    if (!anchor) return;
    s_error_at(c, (int)m.line + 1, (int)m.column + 1,
               "anchor '&%s': anchors and aliases are not supported in job files; "
               "use 'defaults:' for shared cue settings", (const char *)anchor);
}

/* Line and column (1-based, in characters like libyaml's marks) of a byte offset. */
static void s_offset_mark(const char *buf, size_t len, size_t off, int *line, int *col)
{
    int l = 1, cl = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n') { l++; cl = 1; }
        else if ((ch & 0xc0) != 0x80) cl++;
    }
    *line = l;
    *col = cl;
}

static void s_syntax_error(s_ctx_t *c, const yaml_parser_t *p, const char *buf, size_t len)
{
    int line, col;
    switch (p->error) {
    case YAML_READER_ERROR:
        s_offset_mark(buf, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            s_error_at(c, line, col, "invalid text: %s (byte 0x%02x); job files are UTF-8",
                       p->problem ? p->problem : "unreadable input", (unsigned)p->problem_value & 0xff);
        else
            s_error_at(c, line, col, "invalid text: %s; job files are UTF-8",
                       p->problem ? p->problem : "unreadable input");
        break;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
        if (p->context)
            s_error_at(c, line, col, "YAML syntax error: %s (%s started at line %d, column %d)",
                       p->problem ? p->problem : "invalid YAML", p->context,
                       (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
        else
            s_error_at(c, line, col, "YAML syntax error: %s", p->problem ? p->problem : "invalid YAML");
        break;
    default:
        s_error_at(c, 1, 1, "cannot parse YAML: %s", p->problem ? p->problem : "out of memory");
        break;
    }
}

/* Builds the tree of the (single) document. Returns the root, or NULL after a syntax
 * error, an empty stream or OOM (errors recorded in c). */
static s_node_t *s_load(s_ctx_t *c, const char *buf, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) { c->arena.oom = 1; return NULL; }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);

    /* Finished children wait on kids until their container ends; open holds, per open
     * container, the node and where its children start on kids. */
    s_node_t **kids = NULL;
    size_t n_kids = 0, cap_kids = 0;
    struct { s_node_t *node; size_t base; } *open = NULL;
    size_t n_open = 0, cap_open = 0;
    s_node_t *root = NULL;
    int docs = 0, done = 0, failed = 0;

    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            s_syntax_error(c, &p, buf, len);
            failed = 1;
            break;
        }
        s_node_t *made = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                s_error_at(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                           "a job file holds one YAML document; this is a second one "
                           "(remove the '---' or split the file)");
                done = failed = 1;
            }
            break;
        case YAML_SCALAR_EVENT: {
            made = s_new_node(c, S_SCALAR, ev.start_mark);
            if (!made) break;
            s_anchor_error(c, ev.data.scalar.anchor, ev.start_mark);
            made->bad = !s_tag_ok(c, ev.data.scalar.tag, "tag:yaml.org,2002:str", ev.start_mark);
            made->plain = !ev.data.scalar.tag && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            made->len = ev.data.scalar.length;
            made->text = s_strndup(&c->arena, (const char *)ev.data.scalar.value, made->len);
            if (!made->text) made = NULL;
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            int seq = ev.type == YAML_SEQUENCE_START_EVENT;
            if (n_open >= S_MAX_DEPTH) {
                s_error_at(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                           "lists and mappings are nested more than %d deep here; a job file needs "
                           "about 6 levels (limit: %d)", S_MAX_DEPTH, S_MAX_DEPTH);
                done = failed = 1;
                break;
            }
            s_node_t *n = s_new_node(c, seq ? S_SEQ : S_MAP, ev.start_mark);
            if (!n) break;
            s_anchor_error(c, seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor,
                           ev.start_mark);
            n->bad = !s_tag_ok(c, seq ? ev.data.sequence_start.tag : ev.data.mapping_start.tag,
                               seq ? "tag:yaml.org,2002:seq" : "tag:yaml.org,2002:map", ev.start_mark);
            if (n_open == cap_open) {
                size_t cap = cap_open ? cap_open * 2 : 16;
                void *no = realloc(open, cap * sizeof *open);
                if (!no) { c->arena.oom = 1; break; }
                open = no;
                cap_open = cap;
            }
            open[n_open].node = n;
            open[n_open].base = n_kids;
            n_open++;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            if (n_open == 0) break;
            n_open--;
            s_node_t *n = open[n_open].node;
            size_t base = open[n_open].base;
            n->n = n_kids - base;
            if (n->n) {
                n->kids = s_alloc(&c->arena, n->n * sizeof *n->kids);
                if (!n->kids) break;
                memcpy(n->kids, kids + base, n->n * sizeof *n->kids);
            }
            n_kids = base;
            made = n;
            break;
        }
        case YAML_ALIAS_EVENT:
            s_error_at(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                       "alias '*%s': anchors and aliases are not supported in job files; "
                       "use 'defaults:' for shared cue settings", (const char *)ev.data.alias.anchor);
            if ((made = s_new_node(c, S_ALIAS, ev.start_mark))) made->bad = 1;
            break;
        default:
            break;
        }
        if (c->n_nodes > S_MAX_NODES && !failed) {
            s_error_at(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                       "more than %d values, lists and mappings; a job file of 100,000 renders needs "
                       "about 400,000 (limit: %d nodes; split the file into several jobs)",
                       S_MAX_NODES, S_MAX_NODES);
            done = failed = 1;
        }
        yaml_event_delete(&ev);
        if (c->arena.oom) { failed = 1; break; }
        if (failed) break;
        if (!made) continue;
        if (n_open == 0) {
            root = made;
        } else {
            if (n_kids == cap_kids) {
                size_t cap = cap_kids ? cap_kids * 2 : 256;
                void *nk = realloc(kids, cap * sizeof *kids);
                if (!nk) { c->arena.oom = 1; failed = 1; break; }
                kids = nk;
                cap_kids = cap;
            }
            kids[n_kids++] = made;
        }
    }
    yaml_parser_delete(&p);
    free(kids);
    free(open);
    if (failed) return NULL;
    if (!root && docs == 0)
        s_error_at(c, 1, 1, "empty job file; it needs at least 'campaign' and 'cues'");
    return root;
}

/* ---- typed access to nodes ------------------------------------------------------------------ */

/* Value present but meaningless: a plain null ("", "~", "null"). */
static int s_is_null(const s_node_t *n)
{
    if (n->type != S_SCALAR || !n->plain) return 0;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

/* "got ..." part of a type error. */
static const char *s_got(const s_node_t *n, char *buf, size_t buflen)
{
    if (n->type == S_SEQ) return "a list";
    if (n->type == S_MAP) return "a mapping";
    if (s_is_null(n)) return "nothing";
    char sh[64];
    s_show(n->text, n->len, sh, sizeof sh);
    snprintf(buf, buflen, n->plain ? "'%s'" : "the string '%s'", sh);
    return buf;
}

/* Aliases and tagged nodes were reported when loaded; their uses are skipped silently. */
#define S_SKIP(n) ((n)->bad)

/* A scalar key equal to name (a key with an escaped NUL never is). */
static int s_key_is(const s_node_t *k, const char *name)
{
    return k->type == S_SCALAR && !k->bad && strlen(name) == k->len && memcmp(k->text, name, k->len) == 0;
}

/* The first value / key node of key in a mapping, or NULL. */
static const s_node_t *s_map_get(const s_node_t *map, const char *key)
{
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (s_key_is(map->kids[i], key)) return map->kids[i + 1];
    return NULL;
}

static const s_node_t *s_map_key(const s_node_t *map, const char *key)
{
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (s_key_is(map->kids[i], key)) return map->kids[i];
    return NULL;
}

/* Offset of the first byte that does not start a valid UTF-8 sequence, or len. */
static size_t s_utf8_first_bad(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = s[i];
        size_t n;
        uint32_t cp;
        if (ch < 0x80) { i++; continue; }
        else if (ch >= 0xc2 && ch <= 0xdf) { n = 1; cp = ch & 0x1f; }
        else if (ch >= 0xe0 && ch <= 0xef) { n = 2; cp = ch & 0x0f; }
        else if (ch >= 0xf0 && ch <= 0xf4) { n = 3; cp = ch & 0x07; }
        else return i;
        if (i + n >= len) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

static int s_utf8_ok(const unsigned char *s, size_t len) { return s_utf8_first_bad(s, len) == len; }

/* Text checks shared by every string: no NUL, valid UTF-8, no control characters (C0,
 * DEL, C1); multiline allows tab and newline (prompts). Reports and returns 0 on failure. */
static int s_text_ok(s_ctx_t *c, const s_node_t *v, const char *what, int multiline)
{
    const unsigned char *s = (const unsigned char *)v->text;
    if (!s_utf8_ok(s, v->len)) {
        s_error(c, v, "'%s' is not valid UTF-8", what);
        return 0;
    }
    for (size_t i = 0; i < v->len; i++) {
        unsigned cp = s[i];
        if (cp == 0xc2 && i + 1 < v->len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) cp = s[i + 1];
        else if (cp >= 0x20 && cp != 0x7f) continue;
        if (multiline && (cp == '\n' || cp == '\t')) continue;
        s_error(c, v, "'%s' contains a control character (U+%04X)%s", what, cp,
                multiline ? "" : "; names are one line of text");
        return 0;
    }
    return 1;
}

/* A string value: any scalar (plain words like 2026 or yes are taken as text). Returns 1
 * with *out (arena, NUL-terminated) set, 0 after reporting, -1 for an alias. */
static int s_get_text(s_ctx_t *c, const s_node_t *v, const char *what, size_t maxlen,
                      int multiline, const char **out)
{
    if (S_SKIP(v)) return -1;
    char g[96];
    if (v->type != S_SCALAR) {
        s_error(c, v, "'%s' must be a string, got %s", what, s_got(v, g, sizeof g));
        return 0;
    }
    if (!s_text_ok(c, v, what, multiline)) return 0;
    if (v->len > maxlen) {
        s_error(c, v, "'%s' is %zu bytes long; at most %zu allowed", what, v->len, maxlen);
        return 0;
    }
    *out = s_is_null(v) ? "" : v->text;
    return 1;
}

/* Checks number syntax by hand so strtod's hex, inf and nan forms are not numbers here. */
static int s_number_syntax(const char *s, int integer)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') { p++; digits++; }
    if (!integer && *p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
    }
    if (!digits) return 0;
    if (!integer && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == 0;
}

static void s_type_error(s_ctx_t *c, const s_node_t *v, const char *what, const char *type)
{
    char g[96];
    if (v->type == S_SCALAR && !v->plain && s_number_syntax(v->text, 0))
        s_error(c, v, "'%s' must be %s, got the string '%s' (remove the quotes)", what, type, v->text);
    else
        s_error(c, v, "'%s' must be %s, got %s", what, type, s_got(v, g, sizeof g));
}

/* Integer in [lo, hi]. 1 ok, 0 reported, -1 alias. */
static int s_get_int(s_ctx_t *c, const s_node_t *v, const char *what, long lo, long hi, long *out)
{
    if (S_SKIP(v)) return -1;
    if (v->type != S_SCALAR || !v->plain || !s_number_syntax(v->text, 0)) {
        s_type_error(c, v, what, "an integer");
        return 0;
    }
    if (!s_number_syntax(v->text, 1)) {
        s_error(c, v, "'%s' must be an integer, got '%s'", what, v->text);
        return 0;
    }
    errno = 0;
    long long x = strtoll(v->text, NULL, 10);
    if (errno == ERANGE || x < lo || x > hi) {
        s_error(c, v, "'%s' must be between %ld and %ld, got %s", what, lo, hi, v->text);
        return 0;
    }
    *out = (long)x;
    return 1;
}

/* A YAML 1.2 core-schema boolean: plain true/false (any of its three spellings). 1 ok,
 * 0 reported, -1 alias. "yes"/"no"/"on"/"off" are refused with a hint rather than guessed:
 * YAML 1.1 readers take them as booleans, YAML 1.2 ones as text. */
static int s_get_bool(s_ctx_t *c, const s_node_t *v, const char *what, int *out)
{
    if (S_SKIP(v)) return -1;
    if (v->type == S_SCALAR && v->plain) {
        static const char *const t[] = {"true", "True", "TRUE", NULL}, *const f[] = {"false", "False", "FALSE", NULL};
        for (int i = 0; t[i]; i++)
            if (strcmp(v->text, t[i]) == 0) { *out = 1; return 1; }
        for (int i = 0; f[i]; i++)
            if (strcmp(v->text, f[i]) == 0) { *out = 0; return 1; }
        if (!strcasecmp(v->text, "yes") || !strcasecmp(v->text, "on") || !strcasecmp(v->text, "no") ||
            !strcasecmp(v->text, "off")) {
            s_error(c, v, "'%s' must be true or false, got '%s' (write %s)", what, v->text,
                    !strcasecmp(v->text, "yes") || !strcasecmp(v->text, "on") ? "true" : "false");
            return 0;
        }
    }
    char g[96];
    s_error(c, v, "'%s' must be true or false, got %s", what, s_got(v, g, sizeof g));
    return 0;
}

/* Number (integer or decimal) in [lo, hi], or (lo, hi] when lo_open. */
static int s_get_num(s_ctx_t *c, const s_node_t *v, const char *what, double lo, double hi,
                     int lo_open, const char *unit, double *out)
{
    if (S_SKIP(v)) return -1;
    if (v->type != S_SCALAR || !v->plain || !s_number_syntax(v->text, 0)) {
        s_type_error(c, v, what, "a number");
        return 0;
    }
    double x = strtod(v->text, NULL);
    if (!isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi) {
        s_error(c, v, "'%s' must be %s %g and <= %g%s, got %s", what, lo_open ? ">" : ">=", lo, hi,
                unit, v->text);
        return 0;
    }
    *out = x == 0 ? 0.0 : x; /* no -0 in canonical output */
    return 1;
}

/* A list node, or a report. 1 ok, 0 reported, -1 alias. */
static int s_get_list(s_ctx_t *c, const s_node_t *v, const char *what, const char *example)
{
    if (S_SKIP(v)) return -1;
    if (v->type == S_SEQ) return 1;
    char g[96];
    s_error(c, v, "'%s' must be a list, e.g. %s, got %s", what, example, s_got(v, g, sizeof g));
    return 0;
}

/* ---- mapping keys ----------------------------------------------------------------------------- */

static const char *const s_top_keys[] = {"campaign", "client", "owner", "priority",
                                         "idempotency_key", "output", "defaults", "cues", NULL};
static const char *const s_output_keys[] = {"formats", "sample_rate", "channels", "mp3_bitrate",
                                            "flac_bit_depth", "loudness_lufs", "deliver", NULL};
static const char *const s_cue_keys[] = {"name", "prompt", "emotions", "duration", "variations",
                                         "seeds", "tempo", "key", "instruments", "stems", "loop",
                                         NULL};
static const char *const s_defaults_keys[] = {"prompt", "emotions", "duration", "variations",
                                              "seeds", "tempo", "key", "instruments", "stems",
                                              "loop", NULL};

/* Keys other music tools use for what mg spells differently: "did you mean" for them,
 * since edit distance cannot find "emotions" from "mood". */
static const struct { const char *foreign, *ours, *hint; } s_foreign_keys[] = {
    {"bpm", "tempo", "beats per minute, e.g. tempo: 120"},
    {"mood", "emotions", "a list of tags, e.g. emotions: [joyful, energetic]"},
    {"moods", "emotions", "a list of tags, e.g. emotions: [joyful, energetic]"},
    {"emotion", "emotions", "a list of tags, e.g. emotions: [joyful]"},
    {"tags", "emotions", "a list of tags, e.g. emotions: [joyful]"},
    {"genre", "prompt", "name the genre in the prompt, e.g. prompt: \"lo-fi hip hop ...\""},
    {"style", "prompt", "describe the style in the prompt"},
    {"length", "duration", "seconds, e.g. duration: 30"},
    {"seconds", "duration", "seconds, e.g. duration: 30"},
    {"looping", "loop", "loop: true"},
    {"loopable", "loop", "loop: true"},
    {"seamless", "loop", "loop: true"},
    {"count", "variations", "how many renders of the cue, e.g. variations: 40"},
    {"samplerate", "sample_rate", "under 'output', e.g. sample_rate: 48000"},
    {"format", "formats", "a list under 'output', e.g. formats: [flac, mp3]"},
    {"deliverables", "deliver", "a list under 'output', e.g. deliver: [mix, stems, midi]"},
    {"lufs", "loudness_lufs", "under 'output', e.g. loudness_lufs: -14"},
    {"loudness", "loudness_lufs", "under 'output', e.g. loudness_lufs: -14"},
};

static int s_in(const char *const *set, const char *k)
{
    for (; *set; set++)
        if (strcmp(*set, k) == 0) return 1;
    return 0;
}

/* Closest key of set within a few edits (fewer for short words), or NULL. */
static const char *s_closest(const char *const *set, const char *k)
{
    const char *best = NULL;
    int best_d = 4;
    for (; *set; set++) {
        int d = mg_edit_distance(k, *set);
        if (d < best_d && 2 * d <= (int)strlen(*set)) { best_d = d; best = *set; }
    }
    return best;
}

static void s_unknown_key(s_ctx_t *c, const s_node_t *k, const char *const *set, const char *where)
{
    if (c->n_errs >= S_MAX_ERRORS) { c->n_dropped++; return; } /* no hint is shown: skip the search */
    char sh[64];
    const char *key = s_show(k->text, k->len, sh, sizeof sh);
    if (strlen(k->text) != k->len) { /* an escaped NUL: no hint can be right */
        s_error(c, k, "unknown key '%s' in %s (it contains a NUL character)", key, where);
        return;
    }
    if (set == s_defaults_keys && strcmp(k->text, "name") == 0) {
        s_error(c, k, "'name' cannot have a default: every cue names itself");
        return;
    }
    if (set != s_top_keys && s_in(s_top_keys, k->text)) {
        s_error(c, k, "unknown key '%s' in %s ('%s' belongs at the top level of the file)", key, where, key);
        return;
    }
    if (set != s_output_keys && s_in(s_output_keys, k->text)) {
        s_error(c, k, "unknown key '%s' in %s ('%s' belongs under 'output')", key, where, key);
        return;
    }
    if (set == s_top_keys && s_in(s_cue_keys, k->text)) {
        s_error(c, k, "unknown key '%s' at the top level ('%s' is a cue field: put it in a cue "
                      "under 'cues', or under 'defaults')", key, key);
        return;
    }
    for (size_t i = 0; i < sizeof s_foreign_keys / sizeof s_foreign_keys[0]; i++) {
        if (strcasecmp(k->text, s_foreign_keys[i].foreign) != 0) continue;
        s_error(c, k, "unknown key '%s' in %s (did you mean '%s'? %s)", key, where, s_foreign_keys[i].ours,
                s_foreign_keys[i].hint);
        return;
    }
    const char *sug = s_closest(set, k->text);
    if (sug) {
        s_error(c, k, "unknown key '%s' (did you mean '%s'?)", key, sug);
        return;
    }
    char list[256] = "";
    for (const char *const *s = set; *s; s++) {
        if (*list) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, *s, sizeof list - strlen(list) - 1);
    }
    s_error(c, k, "unknown key '%s' in %s (expected one of: %s)", key, where, list);
}

/* Scalar keys sorted by text, then position, so equal keys sit together with the first one
 * in front: duplicates cost O(n log n) however many keys a hostile mapping has. */
typedef struct { const s_node_t *k; size_t i; } s_keyref_t;

static int s_cmp_keyref(const void *a, const void *b)
{
    const s_keyref_t *x = a, *y = b;
    if (x->k->len != y->k->len) return x->k->len < y->k->len ? -1 : 1;
    int r = memcmp(x->k->text, y->k->text, x->k->len);
    if (r) return r;
    return (x->i > y->i) - (x->i < y->i);
}

/* Reports non-text keys, unknown keys and duplicate keys of a mapping. */
static void s_check_keys(s_ctx_t *c, const s_node_t *map, const char *const *set, const char *where)
{
    size_t n_keys = map->n / 2;
    /* first[p]: the key that key p repeats, or NULL (every scalar key counts as a first one,
     * a tagged one too, as when the keys were compared pairwise) */
    const s_node_t **first = n_keys ? s_alloc(&c->arena, n_keys * sizeof *first) : NULL;
    s_keyref_t *refs = n_keys ? s_alloc(&c->arena, n_keys * sizeof *refs) : NULL;
    if (n_keys && (!first || !refs)) return;
    size_t n_refs = 0;
    for (size_t p = 0; p < n_keys; p++) {
        first[p] = NULL;
        if (map->kids[2 * p]->type == S_SCALAR) refs[n_refs++] = (s_keyref_t){map->kids[2 * p], p};
    }
    if (n_refs > 1) qsort(refs, n_refs, sizeof *refs, s_cmp_keyref); /* refs is NULL for {} */
    for (size_t r = 1, f = 0; r < n_refs; r++) {
        if (refs[r].k->len == refs[f].k->len && memcmp(refs[r].k->text, refs[f].k->text, refs[f].k->len) == 0)
            first[refs[r].i] = refs[f].k;
        else
            f = r;
    }
    for (size_t p = 0; p < n_keys; p++) {
        const s_node_t *k = map->kids[2 * p];
        if (S_SKIP(k)) continue;
        if (k->type != S_SCALAR) {
            s_error(c, k, "keys in %s must be words, got %s", where, k->type == S_SEQ ? "a list" : "a mapping");
            continue;
        }
        if (first[p]) {
            char sh[64];
            s_error(c, k, "duplicate key '%s' (first at line %d)", s_show(k->text, k->len, sh, sizeof sh),
                    first[p]->line);
        } else if (strlen(k->text) != k->len || !s_in(set, k->text)) {
            s_unknown_key(c, k, set, where);
        }
    }
}

/* ---- cues ------------------------------------------------------------------------------------- */

enum {
    F_PROMPT = 1 << 0,
    F_EMOTIONS = 1 << 1,
    F_DURATION = 1 << 2,
    F_COUNT = 1 << 3, /* variations or seeds */
    F_TEMPO = 1 << 4,
    F_KEY = 1 << 5,
    F_INSTRUMENTS = 1 << 6,
    F_STEMS = 1 << 7,
    F_LOOP = 1 << 8,
};

/* One cue's (or the defaults') fields as written; arena pointers. */
typedef struct {
    unsigned have;          /* F_* given (valid or not: an invalid field was reported) */
    const s_node_t *map;
    const s_node_t *name_node;
    const char *name;
    const char *prompt;
    const char *emotions[S_MAX_EMOTIONS];
    int n_emotions;
    double duration;
    int variations;
    uint64_t *seeds;        /* explicit seeds, or NULL */
    double tempo;
    const char *key;
    const char **instruments;
    int n_instruments;
    const char **stems;
    int n_stems;
    int loop;
} s_cue_in_t;

static int s_is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

static void s_check_prompt(s_ctx_t *c, const s_node_t *v, s_cue_in_t *in)
{
    const char *t;
    if (s_get_text(c, v, "prompt", (size_t)-1, 1, &t) != 1) return;
    /* Surrounding whitespace is layout ('|' and '>' add a newline), not content. */
    size_t a = 0, b = strlen(t);
    while (a < b && s_is_space(t[a])) a++;
    while (b > a && s_is_space(t[b - 1])) b--;
    if (a == b) {
        s_error(c, v, "'prompt' is empty; describe the music to render");
        return;
    }
    if (b - a > MG_PROMPT_MAX) {
        s_error(c, v, "'prompt' is %zu bytes long; at most %d allowed", b - a, MG_PROMPT_MAX);
        return;
    }
    in->prompt = s_strndup(&c->arena, t + a, b - a);
}

static void s_check_emotions(s_ctx_t *c, const s_node_t *v, s_cue_in_t *in)
{
    if (s_get_list(c, v, "emotions", "[joyful, energetic]") != 1) return;
    if (v->n == 0) {
        s_error(c, v, "'emotions' must not be empty; leave it out for no emotion tags");
        return;
    }
    if (v->n > S_MAX_EMOTIONS) {
        s_error(c, v, "'emotions' has %zu tags; at most %d allowed", v->n, S_MAX_EMOTIONS);
        return;
    }
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        const s_node_t *e = v->kids[i];
        const char *t;
        if (s_get_text(c, e, "emotions", 64, 0, &t) != 1) { ok = 0; continue; }
        const mg_emotion_t *em = mg_emotion_find(t);
        if (!em) {
            char sh[64];
            const char *sug = mg_emotion_suggest(t);
            if (sug)
                s_error(c, e, "unknown emotion '%s' (did you mean '%s'?)", s_show(e->text, e->len, sh, sizeof sh), sug);
            else
                s_error(c, e, "unknown emotion '%s' (the tags are listed in docs/jobs.md)",
                        s_show(e->text, e->len, sh, sizeof sh));
            ok = 0;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (in->emotions[j] != em->tag) continue;
            const s_node_t *f = v->kids[j];
            if (strcasecmp(f->text, e->text) == 0)
                s_error(c, e, "emotion '%s' is listed twice (first at line %d, column %d)", em->tag,
                        f->line, f->col);
            else
                s_error(c, e, "'%s' and '%s' (line %d, column %d) are the same emotion '%s'; list it once",
                        e->text, f->text, f->line, f->col, em->tag);
            ok = 0;
            break;
        }
        in->emotions[i] = em->tag;
    }
    if (ok) in->n_emotions = (int)v->n;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void s_check_seeds(s_ctx_t *c, const s_node_t *v, s_cue_in_t *in)
{
    if (s_get_list(c, v, "seeds", "[1, 2, 3]") != 1) return;
    if (v->n == 0) {
        s_error(c, v, "'seeds' must not be empty; leave it out to derive seeds from 'variations'");
        return;
    }
    if (v->n > MG_MAX_VARIATIONS) {
        s_error(c, v, "'seeds' has %zu entries; at most %d allowed", v->n, MG_MAX_VARIATIONS);
        return;
    }
    uint64_t *seeds = s_alloc(&c->arena, v->n * sizeof *seeds);
    if (!seeds) return;
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        const s_node_t *s = v->kids[i];
        if (S_SKIP(s)) { ok = 0; continue; }
        char g[96];
        const char *d = s->type == S_SCALAR ? s->text : "";
        int digits = s->type == S_SCALAR && s->plain && *d;
        for (const char *p = d; digits && *p; p++) digits = *p >= '0' && *p <= '9';
        errno = 0;
        unsigned long long x = digits ? strtoull(d, NULL, 10) : 0;
        if (!digits || errno == ERANGE) {
            s_error(c, s, "a seed must be an integer from 0 to 18446744073709551615, got %s",
                    s_got(s, g, sizeof g));
            ok = 0;
            continue;
        }
        seeds[i] = (uint64_t)x;
    }
    if (!ok) return;
    /* Duplicates would render the same audio twice. Sorting a copy finds them in
     * O(n log n); the report then names the later occurrence. */
    uint64_t *sorted = s_alloc(&c->arena, v->n * sizeof *sorted);
    if (!sorted) return;
    memcpy(sorted, seeds, v->n * sizeof *sorted);
    qsort(sorted, v->n, sizeof *sorted, s_cmp_u64);
    for (size_t i = 1; i < v->n; i++) {
        if (sorted[i] != sorted[i - 1]) continue;
        size_t first = v->n, second = v->n;
        for (size_t k = 0; k < v->n && second == v->n; k++)
            if (seeds[k] == sorted[i]) { if (first == v->n) first = k; else second = k; }
        s_error(c, v->kids[second], "seed %" PRIu64 " is listed twice (first at line %d, column %d)",
                sorted[i], v->kids[first]->line, v->kids[first]->col);
        ok = 0;
        while (i + 1 < v->n && sorted[i + 1] == sorted[i]) i++;
    }
    if (!ok) return;
    in->seeds = seeds;
    in->variations = (int)v->n;
}

/* "D minor", "F# major", "Bb minor": note A-G, optional # or b, then major|minor. The
 * letter is upper-cased and the mode lower-cased, so spellings compare equal. */
static void s_check_key(s_ctx_t *c, const s_node_t *v, s_cue_in_t *in)
{
    const char *t;
    if (s_get_text(c, v, "key", 64, 0, &t) != 1) return;
    if (!*t) return; /* key: ~ means the composer decides */
    const char *p = t;
    char out[S_MAX_KEY_LEN + 1];
    size_t o = 0;
    char note = *p >= 'a' && *p <= 'g' ? (char)(*p - 'a' + 'A') : *p;
    int ok = note >= 'A' && note <= 'G';
    if (ok) {
        out[o++] = note;
        p++;
        if (*p == '#' || *p == 'b') out[o++] = *p++;
        if (*p != ' ') ok = 0;
        while (*p == ' ') p++;
        if (strcasecmp(p, "major") == 0) memcpy(out + o, " major", 7);
        else if (strcasecmp(p, "minor") == 0) memcpy(out + o, " minor", 7);
        else ok = 0;
    }
    if (!ok) {
        char sh[64];
        s_error(c, v, "'key' must be a note A-G with an optional # or b, then 'major' or 'minor' "
                      "(e.g. \"D minor\", \"F# major\"), got '%s'", s_show(v->text, v->len, sh, sizeof sh));
        return;
    }
    in->key = s_strndup(&c->arena, out, strlen(out));
}

/* A list of short strings that travels comma-joined (instruments, stems). */
static void s_check_words(s_ctx_t *c, const s_node_t *v, const char *what, size_t max_joined,
                          const char ***out, int *n_out)
{
    if (s_get_list(c, v, what, "[piano, strings]") != 1) return;
    const char **items = v->n ? s_alloc(&c->arena, v->n * sizeof *items) : NULL;
    if (v->n && !items) return;
    size_t joined = 0;
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        const s_node_t *e = v->kids[i];
        const char *t;
        if (s_get_text(c, e, what, max_joined, 0, &t) != 1) { ok = 0; continue; }
        char sh[64];
        if (!*t) {
            s_error(c, e, "an entry of '%s' is empty", what);
            ok = 0;
        } else if (strchr(t, ',')) {
            s_error(c, e, "'%s' entry '%s' contains a comma; give each one as its own list entry",
                    what, s_show(e->text, e->len, sh, sizeof sh));
            ok = 0;
        }
        items[i] = t;
        joined += strlen(t) + (i ? 1 : 0);
    }
    if (ok && joined > max_joined) {
        s_error(c, v, "'%s' is too long: %zu bytes when comma-joined, at most %zu", what, joined, max_joined);
        ok = 0;
    }
    if (!ok) return;
    *out = items;
    *n_out = (int)v->n;
}

/* Checks a cue mapping (or 'defaults', is_defaults) into in. */
static void s_check_cue_fields(s_ctx_t *c, const s_node_t *map, s_cue_in_t *in, int is_defaults)
{
    memset(in, 0, sizeof *in);
    in->map = map;
    s_check_keys(c, map, is_defaults ? s_defaults_keys : s_cue_keys, is_defaults ? "'defaults'" : "a cue");
    const s_node_t *v;
    if (!is_defaults && (v = s_map_get(map, "name"))) {
        const char *t;
        in->name_node = v;
        if (s_get_text(c, v, "name", MG_NAME_MAX, 0, &t) == 1) {
            char sh[64];
            const char *bad = NULL;
            for (const char *p = t; *p && !bad; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == ' ' || *p == '_' || *p == '.' || *p == '-'))
                    bad = p;
            size_t l = strlen(t);
            if (l == 0)
                s_error(c, v, "cue 'name' is empty");
            else if (bad)
                s_error(c, v, "cue name '%s' may only use letters, digits, space, '_', '.' and '-'",
                        s_show(v->text, v->len, sh, sizeof sh));
            else if (t[0] == ' ' || t[l - 1] == ' ')
                s_error(c, v, "cue name '%s' starts or ends with a space", t);
            else
                in->name = t;
        }
    }
    if ((v = s_map_get(map, "prompt"))) { in->have |= F_PROMPT; s_check_prompt(c, v, in); }
    if ((v = s_map_get(map, "emotions"))) { in->have |= F_EMOTIONS; s_check_emotions(c, v, in); }
    if ((v = s_map_get(map, "duration"))) {
        in->have |= F_DURATION;
        s_get_num(c, v, "duration", 0, MG_MAX_DURATION_S, 1, " seconds", &in->duration);
    }
    const s_node_t *kv = s_map_key(map, "variations"), *ks = s_map_key(map, "seeds");
    if (kv && ks) {
        const s_node_t *later = kv->line > ks->line || (kv->line == ks->line && kv->col > ks->col) ? kv : ks;
        s_error(c, later, "'seeds' and 'variations' cannot both be given; use 'seeds' for exact "
                          "seeds or 'variations' for a count of derived ones");
        in->have |= F_COUNT;
    } else if (kv) {
        in->have |= F_COUNT;
        long x;
        if (s_get_int(c, s_map_get(map, "variations"), "variations", 1, MG_MAX_VARIATIONS, &x) == 1)
            in->variations = (int)x;
    } else if (ks) {
        in->have |= F_COUNT;
        s_check_seeds(c, s_map_get(map, "seeds"), in);
    }
    if ((v = s_map_get(map, "tempo"))) {
        in->have |= F_TEMPO;
        if (!s_is_null(v)) s_get_num(c, v, "tempo", 20, 300, 0, " bpm", &in->tempo);
    }
    if ((v = s_map_get(map, "key"))) { in->have |= F_KEY; s_check_key(c, v, in); }
    if ((v = s_map_get(map, "instruments"))) {
        in->have |= F_INSTRUMENTS;
        s_check_words(c, v, "instruments", S_MAX_INSTRUMENTS_JOINED, &in->instruments, &in->n_instruments);
    }
    if ((v = s_map_get(map, "stems"))) {
        in->have |= F_STEMS;
        s_check_words(c, v, "stems", S_MAX_STEMS_JOINED, &in->stems, &in->n_stems);
    }
    if ((v = s_map_get(map, "loop"))) {
        in->have |= F_LOOP;
        s_get_bool(c, v, "loop", &in->loop);
    }
}

/* Fields the cue leaves out come from the defaults, then from the built-in defaults. */
static void s_apply_defaults(s_cue_in_t *in, const s_cue_in_t *d)
{
    unsigned take = d ? d->have & ~in->have : 0;
    if (take & F_PROMPT) in->prompt = d->prompt;
    if (take & F_EMOTIONS) {
        memcpy(in->emotions, d->emotions, sizeof in->emotions);
        in->n_emotions = d->n_emotions;
    }
    if (take & F_DURATION) in->duration = d->duration;
    if (take & F_COUNT) { in->variations = d->variations; in->seeds = d->seeds; }
    if (take & F_TEMPO) in->tempo = d->tempo;
    if (take & F_KEY) in->key = d->key;
    if (take & F_INSTRUMENTS) { in->instruments = d->instruments; in->n_instruments = d->n_instruments; }
    if (take & F_STEMS) { in->stems = d->stems; in->n_stems = d->n_stems; }
    if (take & F_LOOP) in->loop = d->loop;
    in->have |= take;
    if (!(in->have & F_DURATION)) in->duration = S_DEFAULT_DURATION_S;
    if (!(in->have & F_COUNT)) in->variations = 1;
}

/* ---- the whole file ----------------------------------------------------------------------------- */

typedef struct {
    const char *campaign, *client, *owner, *idempotency_key;
    long priority;
    mg_output_spec_t output;
    s_cue_in_t *cues;
    int n_cues;
} s_job_in_t;

static void s_check_output(s_ctx_t *c, const s_node_t *v, mg_output_spec_t *o)
{
    if (S_SKIP(v)) return;
    if (s_is_null(v)) return;
    if (v->type != S_MAP) {
        char g[96];
        s_error(c, v, "'output' must be a mapping (formats, sample_rate, ...), got %s", s_got(v, g, sizeof g));
        return;
    }
    s_check_keys(c, v, s_output_keys, "'output'");
    const s_node_t *f;
    long x;
    if ((f = s_map_get(v, "formats")) && s_get_list(c, f, "formats", "[flac, mp3]") == 1) {
        unsigned mask = 0;
        if (f->n == 0) s_error(c, f, "'formats' must not be empty; use e.g. [flac]");
        for (size_t i = 0; i < f->n; i++) {
            const s_node_t *e = f->kids[i];
            const char *t;
            if (s_get_text(c, e, "formats", 64, 0, &t) != 1) continue;
            unsigned bit = mg_format_from_name(t);
            char sh[64];
            if (!bit) {
                static const char *const names[] = {"flac", "mp3", "wav", NULL};
                const char *sug = s_closest(names, t);
                if (sug)
                    s_error(c, e, "unknown format '%s' (did you mean '%s'?)", s_show(e->text, e->len, sh, sizeof sh), sug);
                else
                    s_error(c, e, "unknown format '%s' (expected flac, mp3 or wav)", s_show(e->text, e->len, sh, sizeof sh));
            } else if (mask & bit) {
                s_error(c, e, "format '%s' is listed twice", mg_format_name(bit));
            }
            mask |= bit;
        }
        if (mask) o->formats = mask;
    }
    if ((f = s_map_get(v, "sample_rate")) && s_get_int(c, f, "sample_rate", 8000, 192000, &x) == 1)
        o->sample_rate = (int)x;
    if ((f = s_map_get(v, "channels")) && s_get_int(c, f, "channels", 1, 2, &x) == 1) o->channels = (int)x;
    if ((f = s_map_get(v, "mp3_bitrate")) && s_get_int(c, f, "mp3_bitrate", 32, 320, &x) == 1)
        o->mp3_bitrate_kbps = (int)x;
    if ((f = s_map_get(v, "flac_bit_depth")) && s_get_int(c, f, "flac_bit_depth", 16, 24, &x) == 1) {
        if (x != 16 && x != 24) s_error(c, f, "'flac_bit_depth' must be 16 or 24, got %ld", x);
        else o->flac_bits = (int)x;
    }
    if ((f = s_map_get(v, "loudness_lufs"))) {
        if (s_is_null(f)) o->normalize = 0; /* "loudness_lufs: ~": as rendered, not normalised */
        else s_get_num(c, f, "loudness_lufs", -70, 0, 0, " LUFS", &o->loudness_lufs);
    }
    if ((f = s_map_get(v, "deliver")) && s_get_list(c, f, "deliver", "[mix, stems, midi]") == 1) {
        unsigned mask = 0;
        if (f->n == 0) s_error(c, f, "'deliver' must not be empty; use e.g. [mix] or [mix, stems, midi]");
        for (size_t i = 0; i < f->n; i++) {
            const s_node_t *e = f->kids[i];
            const char *t;
            if (s_get_text(c, e, "deliver", 64, 0, &t) != 1) continue;
            unsigned bit = mg_deliver_from_name(t);
            char sh[64];
            if (!bit) {
                static const char *const names[] = {"mix", "stems", "midi", NULL};
                const char *sug = s_closest(names, t);
                if (!sug && strcasecmp(t, "stem") == 0) sug = "stems";
                if (sug)
                    s_error(c, e, "unknown deliverable '%s' (did you mean '%s'?)", s_show(e->text, e->len, sh, sizeof sh), sug);
                else
                    s_error(c, e, "unknown deliverable '%s' (expected mix, stems or midi)", s_show(e->text, e->len, sh, sizeof sh));
            } else if (mask & bit) {
                s_error(c, e, "deliverable '%s' is listed twice", mg_deliver_name(bit));
            }
            mask |= bit;
        }
        if (mask) o->deliver = mask;
    }
}

/* Reports cue names that repeat, or that differ but make the same file name (outputs
 * are named after the slug of the cue). Sorting keeps this O(n log n) for big files. */
typedef struct { char slug[MG_NAME_MAX + 1]; int idx; } s_slug_t;

static int s_cmp_slug(const void *a, const void *b)
{
    const s_slug_t *x = a, *y = b;
    int r = strcmp(x->slug, y->slug);
    return r ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

static void s_check_unique_names(s_ctx_t *c, s_job_in_t *j)
{
    s_slug_t *sl = malloc((size_t)j->n_cues * sizeof *sl);
    if (!sl) { c->arena.oom = 1; return; }
    int n = 0;
    for (int i = 0; i < j->n_cues; i++) {
        if (!j->cues[i].name) continue;
        mg_slugify(j->cues[i].name, sl[n].slug, sizeof sl[n].slug);
        sl[n++].idx = i;
    }
    qsort(sl, (size_t)n, sizeof *sl, s_cmp_slug);
    for (int i = 1, f = 0; i < n; i++) {
        if (strcmp(sl[f].slug, sl[i].slug) != 0) { f = i; continue; }
        const s_cue_in_t *first = &j->cues[sl[f].idx], *dup = &j->cues[sl[i].idx];
        if (strcmp(first->name, dup->name) == 0)
            s_error(c, dup->name_node, "duplicate cue name '%s' (first defined at line %d)", dup->name,
                    first->name_node->line);
        else
            s_error(c, dup->name_node, "cue name '%s' clashes with '%s' (line %d): both give file names "
                                       "'%s'", dup->name, first->name, first->name_node->line, sl[i].slug);
    }
    free(sl);
}

static void s_check_job(s_ctx_t *c, const s_node_t *root, s_job_in_t *j)
{
    memset(j, 0, sizeof *j);
    j->client = j->owner = "";
    j->output = (mg_output_spec_t){.formats = MG_FORMAT_FLAC, .sample_rate = 48000, .channels = 2,
                                   .mp3_bitrate_kbps = 192, .flac_bits = 16, .normalize = 1,
                                   .loudness_lufs = -14.0, .deliver = MG_DELIVER_MIX};
    if (S_SKIP(root)) return;
    if (root->type != S_MAP) {
        char g[96];
        s_error(c, root, "a job file must be a mapping with 'campaign' and 'cues' at the top level, got %s",
                s_got(root, g, sizeof g));
        return;
    }
    s_check_keys(c, root, s_top_keys, "the job file");
    const s_node_t *v;
    const char *t;
    if (!(v = s_map_get(root, "campaign"))) {
        s_error(c, root, "missing required key 'campaign' (the campaign's name)");
    } else if (s_get_text(c, v, "campaign", MG_NAME_MAX, 0, &t) == 1) {
        if (!*t) s_error(c, v, "'campaign' is empty");
        else j->campaign = t;
    }
    if ((v = s_map_get(root, "client")) && s_get_text(c, v, "client", MG_NAME_MAX, 0, &t) == 1) j->client = t;
    if ((v = s_map_get(root, "owner")) && s_get_text(c, v, "owner", MG_NAME_MAX, 0, &t) == 1) j->owner = t;
    if ((v = s_map_get(root, "priority"))) s_get_int(c, v, "priority", -100, 100, &j->priority);
    if ((v = s_map_get(root, "idempotency_key")) &&
        s_get_text(c, v, "idempotency_key", S_MAX_IDEMPOTENCY_KEY, 0, &t) == 1) {
        if (!*t) s_error(c, v, "'idempotency_key' is empty; leave it out to use the content hash");
        else j->idempotency_key = t;
    }
    if ((v = s_map_get(root, "output"))) s_check_output(c, v, &j->output);

    s_cue_in_t defaults, *dp = NULL;
    if ((v = s_map_get(root, "defaults")) && !S_SKIP(v) && !s_is_null(v)) {
        if (v->type != S_MAP) {
            char g[96];
            s_error(c, v, "'defaults' must be a mapping of cue fields, got %s", s_got(v, g, sizeof g));
        } else {
            s_check_cue_fields(c, v, &defaults, 1);
            dp = &defaults;
        }
    }

    const s_node_t *cues = s_map_get(root, "cues");
    if (!cues) {
        s_error(c, root, "missing required key 'cues' (a list of cues, each with 'name' and 'prompt')");
        return;
    }
    if (s_get_list(c, cues, "cues", "[{name: jingle, prompt: \"...\"}]") != 1) return;
    if (cues->n == 0) {
        s_error(c, cues, "'cues' must not be empty");
        return;
    }
    if (cues->n > S_MAX_CUES) {
        s_error(c, cues, "'cues' has %zu entries; at most %d per job (split the file)", cues->n, S_MAX_CUES);
        return;
    }
    j->cues = s_alloc(&c->arena, cues->n * sizeof *j->cues);
    if (!j->cues) return;
    j->n_cues = (int)cues->n;
    long renders = 0;
    for (size_t i = 0; i < cues->n; i++) {
        const s_node_t *m = cues->kids[i];
        s_cue_in_t *in = &j->cues[i];
        memset(in, 0, sizeof *in);
        if (S_SKIP(m)) continue;
        if (m->type != S_MAP) {
            char g[96];
            s_error(c, m, "each cue must be a mapping with at least 'name' and 'prompt', got %s",
                    s_got(m, g, sizeof g));
            continue;
        }
        s_check_cue_fields(c, m, in, 0);
        s_apply_defaults(in, dp);
        if (!in->name_node)
            s_error(c, m, "missing required key 'name' in cue %zu", i + 1);
        if (!(in->have & F_PROMPT))
            s_error(c, m, "missing required key 'prompt' in cue '%s'", in->name ? in->name : "?");
        renders += in->variations;
    }
    if (renders > S_MAX_RENDERS)
        s_error(c, cues, "the job has %ld renders; at most %d per job (split the file)", renders, S_MAX_RENDERS);
    s_check_unique_names(c, j);
}

/* ---- canonical JSON --------------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > cap) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void s_puts(s_buf_t *b, const char *s) { s_put(b, s, strlen(s)); }

/* JSON string: quotes, backslashes and control characters escaped; UTF-8 passes as is
 * (it was validated). */
static void s_put_json_str(s_buf_t *b, const char *s)
{
    s_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f) continue;
        s_put(b, run, (size_t)(s - run));
        char e[8];
        switch (ch) {
        case '"': s_puts(b, "\\\""); break;
        case '\\': s_puts(b, "\\\\"); break;
        case '\n': s_puts(b, "\\n"); break;
        case '\t': s_puts(b, "\\t"); break;
        case '\r': s_puts(b, "\\r"); break;
        default: snprintf(e, sizeof e, "\\u%04x", ch); s_puts(b, e); break;
        }
        run = s + 1;
    }
    s_put(b, run, (size_t)(s - run));
    s_put(b, "\"", 1);
}

/* Integers print as integers (30, not 30.0 or 3e+01); other values as the shortest
 * "%.*g" that reads back as the same double, which is the same text on every machine with
 * a correctly rounding printf (glibc, musl). */
static void s_put_num(s_buf_t *b, double x)
{
    char t[40];
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(t, sizeof t, "%.0f", x);
        s_puts(b, t);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, x);
        if (strtod(t, NULL) == x) break;
    }
    s_puts(b, t);
}

static void s_put_int(s_buf_t *b, long long x)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", x);
    s_puts(b, t);
}

static void s_put_str_list(s_buf_t *b, char *const *items, int n)
{
    s_puts(b, "[");
    for (int i = 0; i < n; i++) {
        if (i) s_puts(b, ",");
        s_put_json_str(b, items[i]);
    }
    s_puts(b, "]");
}

/* Key order is fixed here and documented in docs/jobs.md; changing it changes every
 * default idempotency key, so bump "mg-job-v1" when it must change. Seeds are strings
 * because JSON numbers above 2^53 lose precision in most readers. */
static char *s_canonical_json(const mg_job_t *job)
{
    s_buf_t b = {0};
    const mg_output_spec_t *o = &job->output;
    s_puts(&b, "{\"schema\":\"mg-job-v1\",\"campaign\":");
    s_put_json_str(&b, job->campaign);
    s_puts(&b, ",\"client\":");
    s_put_json_str(&b, job->client);
    s_puts(&b, ",\"owner\":");
    s_put_json_str(&b, job->owner);
    s_puts(&b, ",\"priority\":");
    s_put_int(&b, job->priority);
    s_puts(&b, ",\"output\":{\"formats\":[");
    int first = 1;
    for (unsigned bit = MG_FORMAT_FLAC; bit <= MG_FORMAT_WAV; bit <<= 1) {
        if (!(o->formats & bit)) continue;
        if (!first) s_puts(&b, ",");
        s_put_json_str(&b, mg_format_name(bit));
        first = 0;
    }
    s_puts(&b, "],\"sample_rate\":");
    s_put_int(&b, o->sample_rate);
    s_puts(&b, ",\"channels\":");
    s_put_int(&b, o->channels);
    s_puts(&b, ",\"mp3_bitrate\":");
    s_put_int(&b, o->mp3_bitrate_kbps);
    s_puts(&b, ",\"flac_bit_depth\":");
    s_put_int(&b, o->flac_bits);
    s_puts(&b, o->normalize ? ",\"normalize\":true" : ",\"normalize\":false");
    s_puts(&b, ",\"loudness_lufs\":");
    s_put_num(&b, o->loudness_lufs);
    /* Written only when not the default, so jobs that ask for the mix alone keep their key. */
    if (o->deliver != MG_DELIVER_MIX) {
        s_puts(&b, ",\"deliver\":[");
        first = 1;
        for (unsigned bit = MG_DELIVER_MIX; bit <= MG_DELIVER_MIDI; bit <<= 1) {
            if (!(o->deliver & bit)) continue;
            if (!first) s_puts(&b, ",");
            s_put_json_str(&b, mg_deliver_name(bit));
            first = 0;
        }
        s_puts(&b, "]");
    }
    s_puts(&b, "},\"cues\":[");
    for (int i = 0; i < job->n_cues; i++) {
        const mg_cue_t *q = &job->cues[i];
        s_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        s_put_json_str(&b, q->name);
        s_puts(&b, ",\"prompt\":");
        s_put_json_str(&b, q->prompt);
        s_puts(&b, ",\"emotions\":");
        s_put_str_list(&b, q->emotions, q->n_emotions);
        s_puts(&b, ",\"duration\":");
        s_put_num(&b, q->duration_s);
        s_puts(&b, ",\"variations\":");
        s_put_int(&b, q->variations);
        s_puts(&b, ",\"seeds\":[");
        for (int v = 0; v < q->variations; v++) {
            char t[32];
            snprintf(t, sizeof t, v ? ",\"%" PRIu64 "\"" : "\"%" PRIu64 "\"", q->seeds[v]);
            s_puts(&b, t);
        }
        s_puts(&b, "],\"tempo\":");
        if (q->tempo_bpm > 0) s_put_num(&b, q->tempo_bpm);
        else s_puts(&b, "null");
        s_puts(&b, ",\"key\":");
        if (q->key) s_put_json_str(&b, q->key);
        else s_puts(&b, "null");
        s_puts(&b, ",\"instruments\":");
        s_put_str_list(&b, q->instruments, q->n_instruments);
        s_puts(&b, ",\"stems\":");
        s_put_str_list(&b, q->stems, q->n_stems);
        if (q->loop) s_puts(&b, ",\"loop\":true");
        s_puts(&b, "}");
    }
    s_puts(&b, "]}");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* ---- building the job ------------------------------------------------------------------------- */

static char **s_dup_list(const char *const *items, int n, int *oom)
{
    if (n == 0) return NULL;
    char **out = calloc((size_t)n, sizeof *out);
    if (!out) { *oom = 1; return NULL; }
    for (int i = 0; i < n; i++)
        if (!(out[i] = strdup(items[i]))) *oom = 1;
    return out;
}

static char *s_dup(const char *s, int *oom)
{
    char *d = strdup(s ? s : "");
    if (!d) *oom = 1;
    return d;
}

static mg_job_t *s_build(const char *name, const s_job_in_t *in)
{
    mg_job_t *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    int oom = 0;
    job->source_name = s_dup(name, &oom);
    job->campaign = s_dup(in->campaign, &oom);
    job->client = s_dup(in->client, &oom);
    job->owner = s_dup(in->owner, &oom);
    job->priority = (int)in->priority;
    job->output = in->output;
    job->cues = calloc((size_t)in->n_cues, sizeof *job->cues);
    if (!job->cues) oom = 1;
    else job->n_cues = in->n_cues;
    for (int i = 0; i < job->n_cues && !oom; i++) {
        const s_cue_in_t *ci = &in->cues[i];
        mg_cue_t *q = &job->cues[i];
        q->name = s_dup(ci->name, &oom);
        q->prompt = s_dup(ci->prompt, &oom);
        q->emotions = s_dup_list(ci->emotions, ci->n_emotions, &oom);
        q->n_emotions = q->emotions ? ci->n_emotions : 0;
        q->duration_s = ci->duration;
        q->variations = ci->variations;
        q->seeds = malloc((size_t)ci->variations * sizeof *q->seeds);
        if (!q->seeds) { oom = 1; q->variations = 0; break; }
        for (int v = 0; v < ci->variations; v++)
            q->seeds[v] = ci->seeds ? ci->seeds[v] : mg_seed_derive(job->campaign, q->name, v);
        q->tempo_bpm = ci->tempo;
        q->key = ci->key ? s_dup(ci->key, &oom) : NULL;
        q->instruments = s_dup_list(ci->instruments, ci->n_instruments, &oom);
        q->n_instruments = q->instruments ? ci->n_instruments : 0;
        q->stems = s_dup_list(ci->stems, ci->n_stems, &oom);
        q->n_stems = q->stems ? ci->n_stems : 0;
        q->loop = ci->loop;
        q->line = ci->map->line;
        q->col = ci->map->col;
    }
    if (!oom) {
        job->canonical_json = s_canonical_json(job);
        if (!job->canonical_json) oom = 1;
    }
    if (!oom) {
        mg_sha256_hex(job->canonical_json, strlen(job->canonical_json), job->canonical_sha256);
        job->idempotency_key = s_dup(in->idempotency_key ? in->idempotency_key : job->canonical_sha256, &oom);
    }
    if (oom) mg_job_destroy(&job);
    return job;
}

/* ---- public API -------------------------------------------------------------------------------- */

static int s_cmp_err(const void *a, const void *b)
{
    const s_err_t *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Errors in file order, one "file:line:col: message" per line; lines that do not fit
 * are dropped whole and counted in a last line. */
static void s_format_errors(s_ctx_t *c, char *err, size_t errlen)
{
    if (!err || errlen == 0) return;
    qsort(c->errs, c->n_errs, sizeof *c->errs, s_cmp_err);
    size_t o = 0;
    err[0] = 0;
    for (size_t i = 0; i < c->n_errs; i++) {
        char line[2048];
        snprintf(line, sizeof line, "%s%s:%d:%d: %s", o ? "\n" : "", c->src, c->errs[i].line,
                 c->errs[i].col, c->errs[i].msg);
        size_t n = strlen(line);
        if (o + n + 1 > errlen) {
            if (o == 0) { mg_strlcpy(err, line, errlen); return; }
            snprintf(line, sizeof line, "\n%s: %zu more errors not shown", c->src,
                     c->n_errs - i + c->n_dropped);
            if (o + strlen(line) + 1 <= errlen) memcpy(err + o, line, strlen(line) + 1);
            return;
        }
        memcpy(err + o, line, n + 1);
        o += n;
    }
    if (c->n_dropped) {
        char line[256];
        snprintf(line, sizeof line, "\n%s: %zu more errors not shown (only the first %d found are listed)", c->src,
                 c->n_dropped, S_MAX_ERRORS);
        if (o + strlen(line) + 1 <= errlen) memcpy(err + o, line, strlen(line) + 1);
    }
}

int mg_job_parse_buffer(const char *name, const char *buf, size_t len, mg_job_t **job_out,
                        char *err, size_t errlen)
{
    *job_out = NULL;
    if (err && errlen) err[0] = 0;
    if (!name) name = "<job>";
    s_ctx_t c = {.src = name};
    if (len > S_MAX_FILE_BYTES) {
        s_error_at(&c, 1, 1, "the job file is %zu bytes; the limit is %u bytes (8 MiB - 64 KiB): "
                   "split it into several jobs", len, S_MAX_FILE_BYTES);
    } else {
        size_t bad = s_utf8_first_bad((const unsigned char *)buf, len);
        s_node_t *root = NULL;
        if (bad < len) {
            int line, col;
            s_offset_mark(buf, len, bad, &line, &col);
            s_error_at(&c, line, col, "invalid UTF-8 (byte 0x%02x); job files must be UTF-8 text",
                       (unsigned char)buf[bad]);
        } else {
            root = s_load(&c, buf, len);
        }
        s_job_in_t in = {0};
        if (!root && c.n_errs == 0 && !c.arena.oom) s_error_at(&c, 1, 1, "empty job file");
        if (root && !c.arena.oom) s_check_job(&c, root, &in);
        if (c.n_errs == 0 && !c.arena.oom && root) {
            *job_out = s_build(name, &in);
            if (!*job_out) c.arena.oom = 1;
        }
    }
    if (c.arena.oom) {
        mg_job_destroy(job_out);
        mg_set_error(err, errlen, "%s: out of memory while reading the job file", name);
    } else if (c.n_errs) {
        s_format_errors(&c, err, errlen);
    }
    int rc = *job_out ? 0 : -1;
    free(c.errs);
    s_arena_free(&c.arena);
    return rc;
}

/* Reads at most S_MAX_FILE_BYTES + 1 bytes of path (malloc'd, NUL-terminated), so a huge file
 * (or /dev/zero) is refused by mg_job_parse_buffer's size check without being read whole.
 * NULL with errno on failure. */
static char *s_read_bounded(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, n = 0, max = (size_t)S_MAX_FILE_BYTES + 1;
    char *buf = malloc(cap + 1);
    while (buf && n < max) {
        size_t want = (cap < max ? cap : max) - n;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) break;
        if (n == cap && cap < max) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); buf = NULL; }
            else buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) { errno = ENOMEM; return NULL; }
    if (bad) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

int mg_job_parse_file(const char *path, mg_job_t **job_out, char *err, size_t errlen)
{
    *job_out = NULL;
    size_t len;
    char *buf = s_read_bounded(path, &len);
    if (!buf) {
        mg_set_error(err, errlen, "%s: cannot read the job file: %s", path, strerror(errno));
        return -1;
    }
    if (len > S_MAX_FILE_BYTES) { /* name the real size when there is one (not a pipe) */
        struct stat st;
        char size[64];
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) snprintf(size, sizeof size, "%lld", (long long)st.st_size);
        else snprintf(size, sizeof size, "more than %u", S_MAX_FILE_BYTES);
        mg_set_error(err, errlen, "%s:1:1: the job file is %s bytes; the limit is %u bytes (8 MiB - 64 KiB): "
                     "split it into several jobs", path, size, S_MAX_FILE_BYTES);
        free(buf);
        return -1;
    }
    int rc = mg_job_parse_buffer(path, buf, len, job_out, err, errlen);
    free(buf);
    return rc;
}

static void s_free_list(char **items, int n)
{
    if (!items) return;
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

void mg_job_destroy(mg_job_t **job_p)
{
    if (!job_p || !*job_p) return;
    mg_job_t *job = *job_p;
    for (int i = 0; i < job->n_cues; i++) {
        mg_cue_t *q = &job->cues[i];
        free(q->name);
        free(q->prompt);
        s_free_list(q->emotions, q->n_emotions);
        free(q->seeds);
        free(q->key);
        s_free_list(q->instruments, q->n_instruments);
        s_free_list(q->stems, q->n_stems);
    }
    free(job->cues);
    free(job->source_name);
    free(job->campaign);
    free(job->client);
    free(job->owner);
    free(job->idempotency_key);
    free(job->canonical_json);
    free(job);
    *job_p = NULL;
}

size_t mg_job_render_count(const mg_job_t *job)
{
    size_t n = 0;
    for (int i = 0; job && i < job->n_cues; i++) n += (size_t)job->cues[i].variations;
    return n;
}

uint64_t mg_seed_derive(const char *campaign, const char *cue, int variation)
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    char v[16];
    int n = snprintf(v, sizeof v, "%d", variation);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)"mg-seed-v1", sizeof "mg-seed-v1"); /* with NUL */
    crypto_hash_sha256_update(&st, (const unsigned char *)campaign, strlen(campaign) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)cue, strlen(cue) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)v, (size_t)n);
    crypto_hash_sha256_final(&st, h);
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s = (s << 8) | h[i];
    return s;
}

const char *mg_deliver_name(unsigned deliver_bit)
{
    switch (deliver_bit) {
    case MG_DELIVER_MIX: return "mix";
    case MG_DELIVER_STEMS: return "stems";
    case MG_DELIVER_MIDI: return "midi";
    default: return NULL;
    }
}

unsigned mg_deliver_from_name(const char *name)
{
    if (!name) return 0;
    if (strcasecmp(name, "mix") == 0) return MG_DELIVER_MIX;
    if (strcasecmp(name, "stems") == 0) return MG_DELIVER_STEMS;
    if (strcasecmp(name, "midi") == 0) return MG_DELIVER_MIDI;
    return 0;
}

void mg_deliver_csv(unsigned deliver, char *out, size_t outlen)
{
    out[0] = 0;
    for (unsigned bit = MG_DELIVER_MIX; bit <= MG_DELIVER_MIDI; bit <<= 1) {
        if (!(deliver & bit)) continue;
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s", n ? "," : "", mg_deliver_name(bit));
    }
    if (!out[0]) snprintf(out, outlen, "mix");
}

unsigned mg_deliver_from_csv(const char *csv)
{
    unsigned mask = 0;
    char item[8];
    while (csv) {
        const char *comma = strchr(csv, ',');
        size_t n = comma ? (size_t)(comma - csv) : strlen(csv);
        if (n == 0 || n >= sizeof item) return 0;
        memcpy(item, csv, n);
        item[n] = 0;
        unsigned bit = mg_deliver_from_name(item);
        if (!bit || (mask & bit)) return 0;
        mask |= bit;
        csv = comma ? comma + 1 : NULL;
    }
    return mask;
}

const char *mg_format_name(unsigned format_bit)
{
    switch (format_bit) {
    case MG_FORMAT_FLAC: return "flac";
    case MG_FORMAT_MP3: return "mp3";
    case MG_FORMAT_WAV: return "wav";
    default: return NULL;
    }
}

unsigned mg_format_from_name(const char *name)
{
    if (!name) return 0;
    if (strcasecmp(name, "flac") == 0) return MG_FORMAT_FLAC;
    if (strcasecmp(name, "mp3") == 0) return MG_FORMAT_MP3;
    if (strcasecmp(name, "wav") == 0) return MG_FORMAT_WAV;
    return 0;
}

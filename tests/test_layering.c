/* test_layering.c - the store is the one door to the database: fails when SQL or the SQLite
 * API appears outside the store layer.
 *
 * The store layer is coordinator/store.c, store_*.c, store_internal.h (the writes), query.c
 * (the read-only queries), db.c/db.h (the connection and statement helpers) and
 * provenance.c/provenance.h (the hash chain, which takes the store's handle from store.c and
 * query.c only). Every .c and .h under coordinator/, cli/, worker/ and common/ is read from
 * the repository root (the folder `make test` runs in; MG_SRC_DIR overrides) and split into
 * code, string literals and comments, then checked against the rules of s_rules: an SQL
 * keyword in a string literal, a sqlite3 or mg_db_ identifier in code, an include of
 * store_internal.h, db.h or sqlite3.h, or a call of the provenance functions that take a
 * connection. Comments never count. The first test checks the scanner itself on planted
 * text, so a scanner that finds nothing cannot pass for a clean tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>

#include "tests/testlib.h"

/* Where a rule looks: in string literals, in code (identifiers), or in #include lines. */
typedef enum { S_IN_STRING, S_IN_CODE, S_IN_INCLUDE } s_where_t;

typedef struct {
    s_where_t where;
    const char *needle;   /* S_IN_CODE: an identifier prefix; otherwise a substring */
    const char *what;     /* for the message */
    const char *allowed;  /* space-separated file patterns ("store_*.c": prefix and suffix) */
} s_rule_t;

/* Files of the store layer, as patterns relative to the repository root. */
#define S_SQL_FILES                                                                                          \
    "coordinator/store.c coordinator/store_*.c coordinator/store_internal.h coordinator/query.c "           \
    "coordinator/db.c coordinator/db.h coordinator/provenance.c coordinator/provenance.h"

static const s_rule_t s_rules[] = {
    {S_IN_STRING, "SELECT ", "SQL (SELECT) in a string literal", S_SQL_FILES},
    {S_IN_STRING, "INSERT ", "SQL (INSERT) in a string literal", S_SQL_FILES},
    {S_IN_STRING, "UPDATE ", "SQL (UPDATE) in a string literal", S_SQL_FILES},
    {S_IN_STRING, "DELETE ", "SQL (DELETE) in a string literal", S_SQL_FILES},
    {S_IN_STRING, "PRAGMA ", "SQL (PRAGMA) in a string literal", S_SQL_FILES},
    {S_IN_STRING, "SAVEPOINT ", "SQL (SAVEPOINT) in a string literal", S_SQL_FILES},
    {S_IN_CODE, "sqlite3", "the SQLite API", S_SQL_FILES},
    {S_IN_CODE, "mg_db_", "the statement helpers of db.h", S_SQL_FILES},
    {S_IN_INCLUDE, "store_internal.h", "the store's private header",
     "coordinator/store.c coordinator/store_*.c coordinator/store_internal.h coordinator/query.c"},
    {S_IN_INCLUDE, "db.h", "the database header", S_SQL_FILES},
    {S_IN_INCLUDE, "sqlite3.h", "the SQLite header", S_SQL_FILES},
    /* The provenance functions that take a connection: only the store passes its own. */
    {S_IN_CODE, "mg_prov_append", "a provenance write (takes a connection)", S_SQL_FILES},
    {S_IN_CODE, "mg_prov_verify", "a provenance read (takes a connection)", S_SQL_FILES},
    {S_IN_CODE, "mg_prov_head", "a provenance read (takes a connection)", S_SQL_FILES},
    {S_IN_CODE, "mg_prov_contains", "a provenance read (takes a connection)", S_SQL_FILES},
    {S_IN_CODE, "mg_prov_record_signature", "a provenance read (takes a connection)", S_SQL_FILES},
};

static const char *const s_dirs[] = {"coordinator", "cli", "worker", "common"};

/* Does path match one of the space-separated patterns (one '*' at most in each)? */
static int s_allowed(const char *path, const char *patterns)
{
    const char *p = patterns;
    while (*p) {
        size_t n = strcspn(p, " ");
        char pat[128];
        snprintf(pat, sizeof pat, "%.*s", (int)n, p);
        char *star = strchr(pat, '*');
        if (!star && strcmp(pat, path) == 0) return 1;
        if (star) {
            size_t pre = (size_t)(star - pat), suf = strlen(star + 1), len = strlen(path);
            if (len >= pre + suf && strncmp(path, pat, pre) == 0 && strcmp(path + len - suf, star + 1) == 0 &&
                !strchr(path + pre, '/'))
                return 1;
        }
        p += n;
        while (*p == ' ') p++;
    }
    return 0;
}

static int s_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* One finding, kept for the report. */
typedef struct {
    int n;
    char first[8][600];
} s_findings_t;

static void s_found(s_findings_t *f, const char *path, int line, const s_rule_t *r, const char *text)
{
    if (f->n < 8)
        snprintf(f->first[f->n], sizeof f->first[0],
                 "%s:%d: %s ('%.60s') outside the store layer: move it into a store function (store.c, "
                 "store_*.c) or a query (query.c) and call that", path, line, r->what, text);
    f->n++;
}

/* Checks one segment (a string literal's contents, or a stretch of code) against the rules
 * for that kind of text. */
static void s_check(s_findings_t *f, const char *path, int line, s_where_t where, const char *seg, size_t len)
{
    for (size_t k = 0; k < sizeof s_rules / sizeof s_rules[0]; k++) {
        const s_rule_t *r = &s_rules[k];
        if (r->where != where || s_allowed(path, r->allowed)) continue;
        size_t nl = strlen(r->needle);
        for (size_t i = 0; i + nl <= len; i++) {
            if (memcmp(seg + i, r->needle, nl) != 0) continue;
            if (where == S_IN_CODE && i > 0 && s_ident_char(seg[i - 1])) continue; /* inside another name */
            char text[64];
            size_t tl = len - i < sizeof text - 1 ? len - i : sizeof text - 1;
            memcpy(text, seg + i, tl);
            text[tl] = 0;
            for (char *c = text; *c; c++)
                if (*c == '\n') *c = ' ';
            s_found(f, path, line, r, text);
            break; /* one finding per rule per segment */
        }
    }
}

/* Splits src into comments (skipped), string literals and code, and checks each part.
 * Character literals are skipped like strings, so '"' opens nothing. */
static void s_scan_text(s_findings_t *f, const char *path, const char *src)
{
    int line = 1;
    const char *p = src;
    const char *code = p;
    int code_line = 1;
#define S_FLUSH_CODE(end)                                                                 \
    do {                                                                                  \
        if ((end) > code) s_check(f, path, code_line, S_IN_CODE, code, (size_t)((end) - code)); \
    } while (0)
    while (*p) {
        if (p[0] == '/' && p[1] == '*') {
            S_FLUSH_CODE(p);
            const char *e = strstr(p + 2, "*/");
            const char *stop = e ? e + 2 : p + strlen(p);
            for (; p < stop; p++) line += *p == '\n';
            code = p;
            code_line = line;
        } else if (p[0] == '/' && p[1] == '/') {
            S_FLUSH_CODE(p);
            while (*p && *p != '\n') p++;
            code = p;
            code_line = line;
        } else if (*p == '#' && (p == src || p[-1] == '\n')) {
            /* A preprocessor line: an #include names a header; anything else is code. */
            const char *q = p + 1;
            while (*q == ' ' || *q == '\t') q++;
            if (strncmp(q, "include", 7) == 0) {
                S_FLUSH_CODE(p);
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                const char *name = q + 7;
                while (*name == ' ' || *name == '\t') name++;
                if (*name == '"' || *name == '<') {
                    const char *close = strpbrk(name + 1, "\">");
                    if (close && close < p + n) {
                        /* the header's file name, without its folder */
                        const char *base = name + 1;
                        for (const char *c = name + 1; c < close; c++)
                            if (*c == '/') base = c + 1;
                        for (size_t k = 0; k < sizeof s_rules / sizeof s_rules[0]; k++) {
                            const s_rule_t *r = &s_rules[k];
                            if (r->where == S_IN_INCLUDE && !s_allowed(path, r->allowed) &&
                                (size_t)(close - base) == strlen(r->needle) &&
                                memcmp(base, r->needle, strlen(r->needle)) == 0) {
                                char text[128];
                                snprintf(text, sizeof text, "%.*s", (int)(close - name + 1), name);
                                s_found(f, path, line, r, text);
                            }
                        }
                    }
                }
                p += n;
                code = p;
                code_line = line;
            } else p++;
        } else if (*p == '"' || *p == '\'') {
            S_FLUSH_CODE(p);
            char quote = *p++;
            const char *start = p;
            int start_line = line;
            while (*p && *p != quote) {
                if (*p == '\\' && p[1]) {
                    if (p[1] == '\n') line++;
                    p += 2;
                    continue;
                }
                if (*p == '\n') break; /* unterminated: stop at the line's end */
                p++;
            }
            if (quote == '"') s_check(f, path, start_line, S_IN_STRING, start, (size_t)(p - start));
            if (*p == quote) p++;
            code = p;
            code_line = line;
        } else {
            if (*p == '\n') {
                S_FLUSH_CODE(p);
                line++;
                code = p + 1;
                code_line = line;
            }
            p++;
        }
    }
    S_FLUSH_CODE(p);
#undef S_FLUSH_CODE
}

static char *s_read(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(fp);
    return buf;
}

static const char *s_root(void)
{
    const char *r = getenv("MG_SRC_DIR");
    return r && *r ? r : ".";
}

/* ---- the scanner on planted text ---------------------------------------------------------- */

static int s_count(const char *path, const char *src)
{
    s_findings_t f = {0};
    s_scan_text(&f, path, src);
    for (int i = 0; i < f.n && i < 8; i++) fprintf(stderr, "  (planted) %s\n", f.first[i]);
    return f.n;
}

static void test_scanner_finds_plants(void **state)
{
    (void)state;
    /* Each of these is a violation in server.c ... */
    assert_int_equal(s_count("coordinator/server.c", "x = mg_db_run(db, \"UPDATE renders SET a = 1\", \"\");\n"), 2);
    assert_int_equal(s_count("coordinator/server.c", "const char *q =\n  \"x\" \"DELETE FROM jobs\";\n"), 1);
    assert_int_equal(s_count("coordinator/server.c", "sqlite3_stmt *st;\n"), 1);
    assert_int_equal(s_count("coordinator/server.c", "n = sqlite3_changes(h);\n"), 1);
    assert_int_equal(s_count("cli/mgctl.c", "#include \"coordinator/db.h\"\n"), 1);
    assert_int_equal(s_count("worker/main.c", "#include <sqlite3.h>\n"), 1);
    assert_int_equal(s_count("coordinator/fetch.c", "#include \"store_internal.h\"\n"), 1);
    assert_int_equal(s_count("coordinator/server.c", "mg_prov_verify(h, &a, &b, m, 9);\n"), 1);
    assert_int_equal(s_count("common/util.c", "puts(\"SELECT 1\");\n"), 1);
    /* ... and none of these is: comments, other names, lower case, char literals, the store. */
    assert_int_equal(s_count("coordinator/server.c", "/* SELECT * FROM x; sqlite3_step */\n"), 0);
    assert_int_equal(s_count("coordinator/server.c", "// UPDATE renders: mg_db_run\n"), 0);
    assert_int_equal(s_count("coordinator/server.c", "int my_sqlite3_x, not_mg_db_y;\n"), 0);
    assert_int_equal(s_count("coordinator/server.c", "puts(\"select a renderer\"); c = '\"'; d = \"SELECTED\";\n"),
                     0);
    assert_int_equal(s_count("coordinator/server.c", "mg_prov_hash(a, b, h);\n"), 0);
    assert_int_equal(s_count("coordinator/store.c", "mg_db_run(db, \"UPDATE x SET y = 1\", \"\");\n"), 0);
    assert_int_equal(s_count("coordinator/store_sched.c", "#include \"store_internal.h\"\n"), 0);
    assert_int_equal(s_count("coordinator/query.c", "sqlite3_step(st); /* \"SELECT \" */\n"), 0);
    assert_int_equal(s_count("coordinator/store_x/y.c", "sqlite3_step(st);\n"), 1); /* no folders in a '*' */
    /* A line count that survives comments, strings and continuation lines. */
    s_findings_t f = {0};
    s_scan_text(&f, "coordinator/server.c", "/* a\n b */\n\"x\\\ny\";\n// c\nsqlite3_open(0);\n");
    assert_int_equal(f.n, 1);
    fprintf(stderr, "  (planted) %s\n", f.first[0]);
    assert_non_null(strstr(f.first[0], "coordinator/server.c:6:"));
}

/* ---- the tree ------------------------------------------------------------------------- */

static void test_sql_only_in_the_store(void **state)
{
    (void)state;
    const char *root = s_root();
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/coordinator/store.c", root);
    struct stat sb;
    if (stat(probe, &sb) != 0) {
        fprintf(stderr, "%s not found: run from the repository root (as make test does) or set MG_SRC_DIR\n", probe);
        fail();
    }
    s_findings_t f = {0};
    int files = 0;
    for (size_t d = 0; d < sizeof s_dirs / sizeof s_dirs[0]; d++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", root, s_dirs[d]);
        DIR *dp = opendir(dir);
        if (!dp) {
            fprintf(stderr, "cannot read %s\n", dir);
            fail();
        }
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t n = strlen(e->d_name);
            if (n < 3 || e->d_name[0] == '.' || (strcmp(e->d_name + n - 2, ".c") != 0 &&
                                                  strcmp(e->d_name + n - 2, ".h") != 0))
                continue;
            char rel[512], abs[4800];
            snprintf(rel, sizeof rel, "%s/%s", s_dirs[d], e->d_name);
            snprintf(abs, sizeof abs, "%s/%s", root, rel);
            char *src = s_read(abs);
            if (!src) {
                fprintf(stderr, "cannot read %s\n", abs);
                closedir(dp);
                fail();
            }
            s_scan_text(&f, rel, src);
            free(src);
            files++;
        }
        closedir(dp);
    }
    for (int i = 0; i < f.n && i < 8; i++) fprintf(stderr, "%s\n", f.first[i]);
    if (f.n > 8) fprintf(stderr, "... and %d more\n", f.n - 8);
    fprintf(stderr, "%d files read, %d finding(s)\n", files, f.n);
    assert_true(files > 40); /* the folders were really read */
    assert_int_equal(f.n, 0);
}

int main(void)
{
    mg_test_log_quiet("test_layering");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanner_finds_plants),
        cmocka_unit_test(test_sql_only_in_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

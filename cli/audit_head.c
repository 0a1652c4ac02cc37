/* audit_head.c - `mgctl audit head` and the --key / --head options of `mgctl audit verify`
 * (see audit_head.h). The coordinator checks the signatures (coordinator/sign.c); this side
 * reads the files the auditor kept and says what the answer means.
 */
#include "cli/audit_head.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* The fields of a head, in the order they are printed. */
static const char *const s_head_fields[] = {"seq", "hash", "time_ms", "public_key", "key_id", "signature"};

/* Finds key's value in text: a line "key  value" (the text form) or "\"key\": \"value\""
 * (the --json form). The value is its run of letters and digits. 0, or -1 when absent. */
static int s_field(const char *text, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '"') p++;
        if (strncmp(p, key, klen) != 0) continue;
        p += klen;
        if (*p == '"') p++;
        if (*p != ' ' && *p != '\t' && *p != ':') continue;
        while (*p == ' ' || *p == '\t' || *p == ':') p++;
        if (*p == '"') p++;
        size_t n = 0;
        while (isalnum((unsigned char)p[n])) n++;
        if (n == 0 || n >= outlen) return -1;
        memcpy(out, p, n);
        out[n] = 0;
        return 0;
    }
    return -1;
}

int mg_audit_key_arg(const char *path, mg_kv_t *args, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = mg_read_file(path, &len);
    if (!text) {
        mg_set_error(err, errlen, "%s: cannot read the public key: %s", path, strerror(errno));
        return -1;
    }
    char *p = text;
    while (isspace((unsigned char)*p)) p++;
    size_t n = 0;
    while (isxdigit((unsigned char)p[n])) n++;
    int ok = n == 64;
    for (size_t i = n; ok && p[i]; i++) ok = isspace((unsigned char)p[i]);
    if (ok) {
        p[n] = 0;
        mg_kv_set(args, "public_key", p);
    } else {
        mg_set_error(err, errlen, "%s: not a provenance public key (expected 64 hex digits, as in "
                                  "$MG_HOME/keys/provenance.pub)", path);
    }
    free(text);
    return ok ? 0 : -1;
}

int mg_audit_head_arg(const char *path, mg_kv_t *args, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = mg_read_file(path, &len);
    if (!text) {
        mg_set_error(err, errlen, "%s: cannot read the saved head: %s", path, strerror(errno));
        return -1;
    }
    static const char *const need[] = {"seq", "hash", "time_ms", "signature"};
    char v[256], name[32];
    int rc = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0] && rc == 0; i++) {
        if (s_field(text, need[i], v, sizeof v) != 0) {
            mg_set_error(err, errlen, "%s: not a saved head: no '%s' field (save the output of mgctl audit head)",
                         path, need[i]);
            rc = -1;
            break;
        }
        snprintf(name, sizeof name, "head_%s", need[i]);
        mg_kv_set(args, name, v);
    }
    if (rc == 0 && s_field(text, "public_key", v, sizeof v) == 0) mg_kv_set(args, "head_public_key", v);
    free(text);
    return rc;
}

int mg_audit_verify_ok(const mg_kv_t *info) { return mg_kv_get_i64(info, "ok", 0) == 1; }

int mg_audit_verify_print(FILE *out, const mg_kv_t *info, const char *key_file)
{
    int ok = mg_audit_verify_ok(info);
    const char *msg = mg_kv_get_or(info, "message", "");
    const char *key_id = mg_kv_get_or(info, "key_id", "");
    int64_t n_signed = mg_kv_get_i64(info, "signed", 0), n_unsigned = mg_kv_get_i64(info, "unsigned", 0);
    /* chain_ok: the chain and its signatures, apart from the saved head (older coordinators: ok). */
    int chain_ok = mg_kv_get_i64(info, "chain_ok", ok) == 1;
    if (chain_ok) {
        fprintf(out, "audit chain ok: %s records verified; head: record %s, hash %s\n", mg_kv_get_or(info, "records", "?"),
                mg_kv_get_or(info, "head_seq", "?"), mg_kv_get_or(info, "head_hash", "?"));
        if (*key_id)
            fprintf(out, "signatures: %lld valid (key id %s, %s)%s", (long long)n_signed, key_id,
                    key_file ? key_file : "the coordinator's key", n_unsigned ? "; " : "\n");
        else
            fprintf(out, "signatures: not checked (the coordinator has no signing key; give one with --key FILE)\n");
        if (*key_id && n_unsigned)
            fprintf(out, "%lld unsigned (before signing): written before the coordinator signed records\n",
                    (long long)n_unsigned);
    } else {
        fprintf(out, "audit chain BROKEN at record %s of %s%s%s\n", mg_kv_get_or(info, "first_broken_seq", "?"),
                mg_kv_get_or(info, "records", "?"), *msg ? ": " : "", msg);
    }
    if (mg_kv_get(info, "saved_head_ok")) {
        if (mg_kv_get_i64(info, "saved_head_ok", 0) == 1)
            fprintf(out, "saved head ok: record %s is still in the chain with the saved hash, signed by key id %s\n",
                    mg_kv_get_or(info, "saved_head_seq", "?"), key_id);
        else
            fprintf(out, "saved head FAILED (record %s): %s\n", mg_kv_get_or(info, "saved_head_seq", "?"),
                    mg_kv_get_or(info, "saved_head_message", ""));
    } else if (ok) {
        fprintf(out, "(keep a signed head elsewhere, mgctl audit head > FILE: a later verify --head FILE can then "
                     "prove nothing was removed from the end)\n");
    }
    return ok;
}

void mg_audit_head_print(FILE *out, const mg_kv_t *info)
{
    fprintf(out, "# mg provenance head: keep this file outside mg; check it with mgctl audit verify --head FILE\n");
    for (size_t i = 0; i < sizeof s_head_fields / sizeof s_head_fields[0]; i++)
        fprintf(out, "%-11s %s\n", s_head_fields[i], mg_kv_get_or(info, s_head_fields[i], ""));
}

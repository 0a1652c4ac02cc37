/* audit_head.h - the signed side of `mgctl audit`: reading --key FILE and --head FILE into an
 * AUDIT_VERIFY request, and printing AUDIT_VERIFY's verdict and AUDIT_HEAD's signed head
 * (docs/audit.md, "Signatures"). Formatting and file reading only: mgctl.c sends the requests.
 */
#ifndef MG_CLI_AUDIT_HEAD_H
#define MG_CLI_AUDIT_HEAD_H

#include <stddef.h>
#include <stdio.h>

#include "common/kv.h"

/* Reads a public key file (provenance.pub: 64 hex digits) into args' public_key. 0, or -1
 * with "FILE: why" in err. */
int mg_audit_key_arg(const char *path, mg_kv_t *args, char *err, size_t errlen);
/* Reads a saved head (what `mgctl audit head` printed, as text or --json) into args'
 * head_seq, head_hash, head_time_ms, head_signature and head_public_key. 0, or -1 with
 * "FILE: why" in err (a field missing or malformed). */
int mg_audit_head_arg(const char *path, mg_kv_t *args, char *err, size_t errlen);

/* Prints the verdict of an AUDIT_VERIFY reply's info on out; key_file names the --key file
 * (NULL: the coordinator's key). Returns 1 when the chain, its signatures and the saved head
 * (if one was checked) all hold, else 0. */
int mg_audit_verify_print(FILE *out, const mg_kv_t *info, const char *key_file);
/* 1 when an AUDIT_VERIFY reply says everything holds (for --json, which prints the reply). */
int mg_audit_verify_ok(const mg_kv_t *info);
/* Prints an AUDIT_HEAD reply's info as a head file (one "key  value" line per field, after a
 * comment line), which mg_audit_head_arg reads back. */
void mg_audit_head_print(FILE *out, const mg_kv_t *info);

#endif

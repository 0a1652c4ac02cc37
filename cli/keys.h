/* keys.h - `mgctl keys`: the coordinator's allow-list of CURVE keys, managed on the
 * coordinator host through $MG_HOME/keys/clients/ (docs/security.md, docs/cli.md). */
#ifndef MG_CLI_KEYS_H
#define MG_CLI_KEYS_H

#include <stdio.h>

/* Runs `mgctl keys SUB ARGS`: pos[0] is SUB (add | list | revoke), pos[1..] its arguments;
 * role and out are --role and --out (NULL when absent), json --json. Prints to out_f / err_f
 * and returns mgctl's exit code (0 done, 1 refused or failed, 2 usage). */
int mg_keys_run(char **pos, int npos, const char *role, const char *out, int json, FILE *out_f, FILE *err_f);

#endif

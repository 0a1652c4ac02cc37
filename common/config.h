/* config.h - settings resolved in one order for every mg program:
 *   command-line flag  >  environment variable  >  $MG_HOME/mg.conf  >  built-in default.
 * mg.conf holds "key = value" lines ('#' starts a comment); keys are the long flag
 * names with dashes written as underscores ("heartbeat_ms = 500", "endpoint =
 * tcp://10.0.0.5:5555"). See docs/config.md.
 */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H

#include <stddef.h>

/* The CURVE settings of every client (mgctl, mg-worker; common/curve.c, docs/security.md):
 * this client's secret key file and the coordinator's public key file. Key names, then the
 * environment variables. */
#define MG_CONFIG_CURVE_KEY "curve_key"
#define MG_CONFIG_COORDINATOR_KEY "coordinator_key"
#define MG_CURVE_KEY "MG_CURVE_KEY"
#define MG_COORDINATOR_KEY "MG_COORDINATOR_KEY"

/* Returns flag_value if non-NULL, else getenv(env_name) if set and non-empty, else the
 * value of key in $MG_HOME/mg.conf, else dflt. The result is borrowed: flag/env/default
 * pointers as given, or static storage for file values (valid until the next call to
 * mg_config_reload). */
const char *mg_config_get(const char *key, const char *flag_value, const char *env_name,
                          const char *dflt);

/* Where the value mg_config_get returns for these arguments comes from, for messages:
 * "--heartbeat-ms" (the flag, key with dashes), "MG_HEARTBEAT_MS" (the environment),
 * "/home/mg/mg.conf:12" (the line that sets it) or "the default". Writes into buf (len bytes)
 * and returns it. */
const char *mg_config_source(const char *key, const char *flag_value, const char *env_name, char *buf,
                             size_t len);

/* An integer setting in lo..hi, resolved as mg_config_get does. 0 and *out; or -1 with a
 * message naming the setting, the value given and where it came from in err, e.g.
 * "heartbeat_ms must be a whole number in 10..600000, got '5s' (from MG_HEARTBEAT_MS)". */
int mg_config_int(const char *key, const char *flag_value, const char *env_name, const char *dflt, long lo,
                  long hi, long *out, char *err, size_t errlen);

/* Re-reads $MG_HOME/mg.conf (done lazily on first mg_config_get) through
 * mg_config_parse_buffer. 0, or -1 with a message on stderr naming file:line for a malformed
 * line or a file over MG_CONFIG_MAX_BYTES (whose settings are then all ignored). */
int mg_config_reload(void);

#define MG_CONFIG_MAX_BYTES (64 * 1024) /* mg.conf is a few dozen lines */

/* Replaces the settings of mg.conf with those of buf (len bytes, need not be NUL-terminated,
 * may hold anything), read as the file called name (used in messages and by
 * mg_config_source). Every line is read: a malformed one is skipped and reported, the others
 * apply. 0, or -1 with one "name:line:1: problem" line per malformed line in err (truncated to
 * errlen, err may be NULL). */
int mg_config_parse_buffer(const char *name, const char *buf, size_t len, char *err, size_t errlen);

#endif

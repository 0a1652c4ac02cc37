/* config.h - settings resolved in one order for every mg program:
 *   command-line flag  >  environment variable  >  $MG_HOME/mg.conf  >  built-in default.
 * mg.conf holds "key = value" lines ('#' starts a comment); keys are the long flag
 * names with dashes written as underscores ("heartbeat_ms = 500", "endpoint =
 * tcp://10.0.0.5:5555"). See docs/config.md.
 */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H

/* Returns flag_value if non-NULL, else getenv(env_name) if set and non-empty, else the
 * value of key in $MG_HOME/mg.conf, else dflt. The result is borrowed: flag/env/default
 * pointers as given, or static storage for file values (valid until the next call to
 * mg_config_reload). */
const char *mg_config_get(const char *key, const char *flag_value, const char *env_name,
                          const char *dflt);

/* Re-reads $MG_HOME/mg.conf (done lazily on first mg_config_get). 0, or -1 with a message
 * on stderr naming file:line for a malformed line. */
int mg_config_reload(void);

#endif

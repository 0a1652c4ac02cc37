/* server.h - the coordinator's network side: one ROUTER socket, one thread.
 *
 * It registers workers (READY), watches their heartbeats, grants leases from the store,
 * takes RESULT / FAIL / PROGRESS, and answers mgctl's requests. All durable state lives
 * in the store (SQLite); the server's own tables (who is connected, on which routing id)
 * are rebuilt from READY messages after a restart.
 */
#ifndef MG_SERVER_H
#define MG_SERVER_H

#include <signal.h>

#include "../common/curve.h"
#include "store.h"

typedef struct {
    const char *endpoint;     /* bind address, e.g. tcp://127.0.0.1:5555 */
    int heartbeat_ms;         /* default 1000 */
    int liveness;             /* missed heartbeats before a worker is dead, default 3 */
    int send_timeout_ms;      /* default 1000 */
    /* CURVE (docs/security.md): the coordinator's keypair and the allow-list folder
     * (keys/clients/); curve_key NULL: plaintext, every peer has every role. Borrowed. */
    const mg_curve_key_t *curve_key;
    const char *clients_dir;
} mg_server_config_t;

/* Runs until *stop becomes non-zero (SIGTERM / SIGINT handler). Borrows store.
 * Returns 0 on a clean stop, -1 if the socket could not be set up (message logged). */
int mg_server_run(mg_store_t *store, const mg_server_config_t *cfg, volatile sig_atomic_t *stop);

#endif

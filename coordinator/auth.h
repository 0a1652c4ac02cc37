/* auth.h - who may talk to the coordinator: the ZAP handler for its CURVE socket, the
 * allow-list $MG_HOME/keys/clients/NAME.pub and the roles (docs/security.md).
 *
 * A client's session, as libzmq and this module see it:
 *
 *   TCP connect --CURVE HELLO/INITIATE--> ZAP request on inproc://zeromq.zap.01
 *     --key in the allow-list (mg_auth_handle: "200", User-Id = NAME,
 *       X-Mg-Key = the key)--> session: every message carries User-Id and X-Mg-Key
 *     --key unknown, wrong domain or mechanism ("400")--> no session, nothing ever delivered
 *   session --key file removed or changed (mg_auth_reload, every 500 ms)--> revoked: server.c
 *     ignores the peer's messages (mg_auth_role answers 0) and drops it if it is a worker
 *
 * The handler runs in the server thread: its REP socket is one more item in the server's
 * poll, so the allow-list has one owner and needs no lock, and a revocation and the dropping
 * of the revoked workers happen in the same loop turn.
 */
#ifndef MG_AUTH_H
#define MG_AUTH_H

#include <stddef.h>

/* Roles, as bits: a command table entry lists the roles that may send it (admin may send
 * every command). A key file has exactly one. */
typedef enum {
    MG_ROLE_READER = 1,    /* reads: status, lists, events, audits, verify, fetch */
    MG_ROLE_SUBMITTER = 2, /* submits and changes jobs, and reads their state and files */
    MG_ROLE_ADMIN = 4,     /* everything: schedules, the worker list, and the rest */
    MG_ROLE_WORKER = 8,    /* the worker protocol only */
} mg_role_t;
#define MG_ROLE_ANY_CLIENT (MG_ROLE_READER | MG_ROLE_SUBMITTER | MG_ROLE_ADMIN)

/* "reader", "submitter", "admin", "worker" for one bit; "?" otherwise. */
const char *mg_role_name(unsigned role);
/* The role named s, or 0. */
unsigned mg_role_parse(const char *s);
/* The roles in mask as "reader, submitter or admin" into buf. Returns buf. */
const char *mg_role_list(unsigned mask, char *buf, size_t len);

typedef struct mg_auth mg_auth_t;

/* Binds the ZAP handler (a REP socket on inproc://zeromq.zap.01 in ctx; it must be bound
 * before any CURVE server socket of ctx binds) and loads the allow-list from clients_dir.
 * Returns a handler the caller owns, or NULL with a message in err. */
mg_auth_t *mg_auth_new(void *ctx, const char *clients_dir, char *err, size_t errlen);
/* Closes the socket, frees *self_p, sets it to NULL. NULL-safe. */
void mg_auth_destroy(mg_auth_t **self_p);

/* The REP socket, to poll for ZMQ_POLLIN. */
void *mg_auth_socket(mg_auth_t *a);
/* Answers every waiting ZAP request. */
void mg_auth_handle(mg_auth_t *a);
/* Re-reads the allow-list when a file in it changed (or always, with force). Returns 1 when
 * the set of keys changed (the caller then drops peers whose key is gone), else 0. */
int mg_auth_reload(mg_auth_t *a, int force);
/* The role of the session (user_id, key) as the allow-list stands now: 0 when that name has
 * no entry or its entry now holds another key (revoked). */
unsigned mg_auth_role(const mg_auth_t *a, const char *user_id, const char *key);
/* Entries in the allow-list. */
int mg_auth_count(const mg_auth_t *a);

#endif

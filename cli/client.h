/* client.h - mgctl's request/reply round trip with the coordinator over ZeroMQ.
 * One DEALER socket per process; a request is [MG_PROTO_CLIENT, COMMAND, kv args,
 * (payload)] and the reply [MG_PROTO_CLIENT, "OK"|"ERR", info kv, row kv frames...].
 */
#ifndef MG_CLI_CLIENT_H
#define MG_CLI_CLIENT_H

#include <stddef.h>

#include "common/kv.h"

/* What mg_client_request returns. */
typedef enum {
    MG_CLIENT_OK = 0,          /* a well-formed reply arrived (OK or ERR: see reply->ok) */
    MG_CLIENT_TIMEOUT,         /* nothing within timeout_ms (or the send itself timed out) */
    MG_CLIENT_INTERRUPTED,     /* a signal (Ctrl-C) interrupted the wait */
    MG_CLIENT_PROTOCOL,        /* an answer arrived but is not a valid client reply */
    MG_CLIENT_FAILED,          /* local failure: out of memory, socket error */
} mg_client_status_t;

/* A decoded reply. Rows form a table: every row has the same keys in the same order. */
typedef struct {
    int ok;          /* 1 for "OK", 0 for "ERR" (then info has message and code) */
    mg_kv_t info;    /* owned */
    mg_kv_t *rows;   /* owned array of n_rows records */
    size_t n_rows;
} mg_reply_t;

void mg_reply_init(mg_reply_t *r);
void mg_reply_clear(mg_reply_t *r); /* frees everything; r is empty again */

typedef struct mg_client mg_client_t;

/* Creates a client connected (lazily, as ZeroMQ does) to endpoint; timeout_ms bounds both
 * the send and the wait for each reply. Returns a client the caller owns, or NULL with a
 * reason in err (e.g. a malformed endpoint). */
mg_client_t *mg_client_new(const char *endpoint, int timeout_ms, char *err, size_t errlen);
/* Closes the socket and context, frees the client and sets *self_p to NULL. NULL-safe. */
void mg_client_destroy(mg_client_t **self_p);

/* Sends command with args (NULL = empty record) and an optional payload frame
 * (payload != NULL, even with len 0), then waits up to the client's timeout for the reply
 * and decodes it into reply (mg_reply_init'ed by the caller; cleared first). On
 * MG_CLIENT_PROTOCOL / MG_CLIENT_FAILED a description is in mg_client_error().
 * Requests are strictly sequential: after anything other than MG_CLIENT_OK the caller
 * must not reuse the client (a late reply would be taken for the next request's answer). */
mg_client_status_t mg_client_request(mg_client_t *c, const char *command, const mg_kv_t *args,
                                     const void *payload, size_t len, mg_reply_t *reply);

/* The last error's description (static storage inside the client). */
const char *mg_client_error(const mg_client_t *c);

#endif

/* client.c - mgctl's request/reply round trip (see client.h): build the multipart request,
 * send it on a DEALER socket, zmq_poll for the reply up to the timeout, decode the frames.
 */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/protocol.h"
#include "common/util.h"

struct mg_client {
    void *ctx;
    void *sock;
    int timeout_ms;
    char error[512];
};

void mg_reply_init(mg_reply_t *r) { memset(r, 0, sizeof *r); }

void mg_reply_clear(mg_reply_t *r)
{
    mg_kv_clear(&r->info);
    for (size_t i = 0; i < r->n_rows; i++) mg_kv_clear(&r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static void s_error(mg_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_error(mg_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

mg_client_t *mg_client_new(const char *endpoint, int timeout_ms, char *err, size_t errlen)
{
    mg_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        mg_set_error(err, errlen, "out of memory");
        return NULL;
    }
    c->timeout_ms = timeout_ms;
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        mg_set_error(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        free(c);
        return NULL;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock || mg_socket_setup(c->sock, timeout_ms) != 0) {
        mg_set_error(err, errlen, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        mg_client_destroy(&c);
        return NULL;
    }
    /* CURVE when curve_key and coordinator_key are set (common/curve.h). */
    if (mg_curve_client_setup(c->sock, NULL, err, errlen) != 0) {
        mg_client_destroy(&c);
        return NULL;
    }
    if (zmq_connect(c->sock, endpoint) != 0) {
        mg_set_error(err, errlen,
                 "cannot connect to '%s': %s (expected tcp://HOST:PORT or ipc://PATH)", endpoint,
                 zmq_strerror(errno));
        mg_client_destroy(&c);
        return NULL;
    }
    return c;
}

void mg_client_destroy(mg_client_t **self_p)
{
    mg_client_t *c = self_p ? *self_p : NULL;
    if (!c) return;
    if (c->sock) zmq_close(c->sock); /* linger 0 (mg_socket_setup): nothing waits */
    if (c->ctx) zmq_ctx_term(c->ctx);
    free(c);
    *self_p = NULL;
}

const char *mg_client_error(const mg_client_t *c) { return c->error; }

/* Decodes msg (already received) into reply. 0, or -1 with c->error set. */
static int s_decode(mg_client_t *c, const mg_msg_t *msg, mg_reply_t *reply)
{
    char head[64];
    if (msg->n < 2) {
        s_error(c, "reply has %zu frame(s), expected at least 2", msg->n);
        return -1;
    }
    if (!mg_msg_is(msg, 0, MG_PROTO_CLIENT)) {
        mg_msg_str(msg, 0, head, sizeof head);
        s_error(c, "the coordinator speaks protocol '%s', this mgctl speaks '%s' "
                   "(upgrade mgctl or the coordinator so they match)", head, MG_PROTO_CLIENT);
        return -1;
    }
    if (mg_msg_is(msg, 1, MG_REPLY_OK)) reply->ok = 1;
    else if (mg_msg_is(msg, 1, MG_REPLY_ERR)) reply->ok = 0;
    else {
        mg_msg_str(msg, 1, head, sizeof head);
        s_error(c, "reply status is '%s', expected OK or ERR", head);
        return -1;
    }
    if (msg->n >= 3 && mg_msg_kv(msg, 2, &reply->info) != 0) {
        s_error(c, "reply info frame is not a valid kv record");
        return -1;
    }
    if (msg->n > 3) {
        size_t n = msg->n - 3;
        reply->rows = calloc(n, sizeof *reply->rows);
        if (!reply->rows) {
            s_error(c, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            reply->n_rows = i + 1; /* so mg_reply_clear frees what was decoded */
            if (mg_msg_kv(msg, 3 + i, &reply->rows[i]) != 0) {
                s_error(c, "reply row %zu is not a valid kv record", i + 1);
                return -1;
            }
        }
    }
    return 0;
}

mg_client_status_t mg_client_request(mg_client_t *c, const char *command, const mg_kv_t *args,
                                     const void *payload, size_t len, mg_reply_t *reply)
{
    mg_reply_clear(reply);
    c->error[0] = 0;

    mg_kv_t empty;
    mg_kv_init(&empty);
    mg_msg_t msg;
    mg_msg_init(&msg);
    if (mg_msg_add_str(&msg, MG_PROTO_CLIENT) != 0 || mg_msg_add_str(&msg, command) != 0 ||
        mg_msg_add_kv(&msg, args ? args : &empty) != 0 ||
        (payload && mg_msg_add(&msg, payload, len) != 0)) {
        mg_msg_clear(&msg);
        s_error(c, "out of memory building the %s request", command);
        return MG_CLIENT_FAILED;
    }
    int rc = mg_msg_send(&msg, c->sock, 0);
    int send_errno = errno;
    mg_msg_clear(&msg);
    if (rc != 0) {
        if (send_errno == EAGAIN) return MG_CLIENT_TIMEOUT;
        if (send_errno == EINTR) return MG_CLIENT_INTERRUPTED;
        s_error(c, "cannot send the %s request: %s", command, zmq_strerror(send_errno));
        return MG_CLIENT_FAILED;
    }

    /* One poll for the whole timeout; a signal ends the wait (Ctrl-C in watch / --wait). */
    int64_t deadline = mg_mono_ms() + c->timeout_ms;
    for (;;) {
        int64_t left = deadline - mg_mono_ms();
        if (left <= 0) return MG_CLIENT_TIMEOUT;
        zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)left);
        if (n < 0) {
            if (errno == EINTR) return MG_CLIENT_INTERRUPTED;
            s_error(c, "waiting for the reply failed: %s", zmq_strerror(errno));
            return MG_CLIENT_FAILED;
        }
        if (n > 0 && (item.revents & ZMQ_POLLIN)) break;
    }
    if (mg_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) != 0) {
        if (errno == EINTR) return MG_CLIENT_INTERRUPTED;
        s_error(c, "cannot receive the reply: %s", zmq_strerror(errno));
        return MG_CLIENT_FAILED;
    }
    rc = s_decode(c, &msg, reply);
    mg_msg_clear(&msg);
    if (rc != 0) {
        mg_reply_clear(reply);
        return MG_CLIENT_PROTOCOL;
    }
    return MG_CLIENT_OK;
}

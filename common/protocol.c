/* protocol.c - multipart message helpers over libzmq (see protocol.h). */
#include "protocol.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void mg_msg_init(mg_msg_t *m) { memset(m, 0, sizeof *m); }

void mg_msg_clear(mg_msg_t *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->data[i]);
    free(m->data);
    free(m->size);
    memset(m, 0, sizeof *m);
}

static int s_grow(mg_msg_t *m)
{
    if (m->n < m->cap) return 0;
    size_t cap = m->cap ? m->cap * 2 : 8;
    void **d = realloc(m->data, cap * sizeof *d);
    if (!d) return -1;
    m->data = d;
    size_t *s = realloc(m->size, cap * sizeof *s);
    if (!s) return -1;
    m->size = s;
    m->cap = cap;
    return 0;
}

int mg_msg_add_owned(mg_msg_t *m, void **data_p, size_t len)
{
    if (s_grow(m) != 0) return -1;
    m->data[m->n] = *data_p;
    m->size[m->n] = len;
    m->n++;
    *data_p = NULL;
    return 0;
}

int mg_msg_add(mg_msg_t *m, const void *data, size_t len)
{
    void *copy = malloc(len ? len : 1);
    if (!copy) return -1;
    if (len) memcpy(copy, data, len);
    if (mg_msg_add_owned(m, &copy, len) != 0) {
        free(copy);
        return -1;
    }
    return 0;
}

int mg_msg_add_str(mg_msg_t *m, const char *s) { return mg_msg_add(m, s, strlen(s)); }

int mg_msg_add_kv(mg_msg_t *m, const mg_kv_t *kv)
{
    size_t len;
    char *text = mg_kv_encode(kv, &len);
    if (!text) return -1;
    void *p = text;
    if (mg_msg_add_owned(m, &p, len) != 0) {
        free(text);
        return -1;
    }
    return 0;
}

const char *mg_msg_str(const mg_msg_t *m, size_t i, char *buf, size_t buflen)
{
    if (buflen == 0) return buf;
    buf[0] = 0;
    if (i >= m->n) return buf;
    size_t n = m->size[i] < buflen - 1 ? m->size[i] : buflen - 1;
    memcpy(buf, m->data[i], n);
    buf[n] = 0;
    return buf;
}

int mg_msg_kv(const mg_msg_t *m, size_t i, mg_kv_t *kv)
{
    if (i >= m->n) {
        mg_kv_clear(kv);
        return -1;
    }
    return mg_kv_decode(kv, m->data[i], m->size[i]);
}

int mg_msg_is(const mg_msg_t *m, size_t i, const char *s)
{
    size_t n = strlen(s);
    return i < m->n && m->size[i] == n && memcmp(m->data[i], s, n) == 0;
}

int mg_msg_send(const mg_msg_t *m, void *socket, int flags)
{
    for (size_t i = 0; i < m->n; i++) {
        int f = flags | (i + 1 < m->n ? ZMQ_SNDMORE : 0);
        if (zmq_send(socket, m->data[i], m->size[i], f) < 0) return -1;
    }
    return 0;
}

int mg_msg_recv(mg_msg_t *m, void *socket, int flags)
{
    mg_msg_clear(m);
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, flags) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            mg_msg_clear(m);
            errno = e;
            return -1;
        }
        if (!m->user_id[0]) {
            /* Metadata rides on every frame of a message; one look is enough. */
            const char *uid = zmq_msg_gets(&part, "User-Id");
            const char *key = zmq_msg_gets(&part, MG_MSG_PROP_KEY);
            if (uid) snprintf(m->user_id, sizeof m->user_id, "%s", uid);
            if (key) snprintf(m->peer_key, sizeof m->peer_key, "%s", key);
        }
        int rc = mg_msg_add(m, zmq_msg_data(&part), zmq_msg_size(&part));
        int more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        if (rc != 0) {
            mg_msg_clear(m);
            errno = ENOMEM;
            return -1;
        }
        if (!more) return 0;
        flags &= ~ZMQ_DONTWAIT; /* the rest of a multipart message is already here */
    }
}

int mg_socket_setup(void *socket, int send_timeout_ms)
{
    int linger = 0;
    int64_t maxmsg = MG_MAX_MESSAGE_BYTES;
    if (zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_SNDTIMEO, &send_timeout_ms, sizeof send_timeout_ms) != 0) return -1;
    return 0;
}

/* auth.c - the coordinator's ZAP handler and allow-list (see auth.h for the session's states).
 * The allow-list is the folder $MG_HOME/keys/clients/: one NAME.pub per client, written by
 * `mgctl keys add` (cli/keys.c), with a role line. It is re-read when a file in it changes,
 * which a stat of each file every 500 ms notices (no inotify: the folder may be on NFS).
 */
#include "auth.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "../common/curve.h"
#include "../common/protocol.h"
#include "../common/util.h"

#define S_MAX_CLIENTS 4096

typedef struct {
    char name[MG_CURVE_NAME_MAX + 1];
    char key[MG_CURVE_KEY_LEN + 1];
    unsigned char bin[32]; /* the key as ZAP's credentials frame carries it */
    unsigned role;
} s_client_t;

struct mg_auth {
    void *zap;                /* REP on inproc://zeromq.zap.01 */
    char dir[4096];
    s_client_t *clients;      /* owned, n_clients */
    int n_clients;
    uint64_t signature;       /* of the folder's listing (names, sizes, mtimes) last read */
};

const char *mg_role_name(unsigned role)
{
    switch (role) {
    case MG_ROLE_READER: return "reader";
    case MG_ROLE_SUBMITTER: return "submitter";
    case MG_ROLE_ADMIN: return "admin";
    case MG_ROLE_WORKER: return "worker";
    default: return "?";
    }
}

unsigned mg_role_parse(const char *s)
{
    for (unsigned r = 1; r <= MG_ROLE_WORKER; r <<= 1)
        if (strcmp(s, mg_role_name(r)) == 0) return r;
    return 0;
}

const char *mg_role_list(unsigned mask, char *buf, size_t len)
{
    const char *names[4];
    int n = 0;
    for (unsigned r = 1; r <= MG_ROLE_WORKER; r <<= 1)
        if (mask & r) names[n++] = mg_role_name(r);
    buf[0] = 0;
    size_t used = 0;
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    return buf;
}

/* FNV-1a over the listing: cheap to recompute every 500 ms, changes when any entry does. */
static uint64_t s_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static int s_is_pub(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".pub") == 0;
}

static uint64_t s_signature(const char *dir)
{
    uint64_t h = 1469598103934665603ULL;
    DIR *d = opendir(dir);
    if (!d) return h;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(d))) {
        if (!s_is_pub(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        /* Order-independent: the entries' hashes are summed. */
        uint64_t eh = s_fnv(1469598103934665603ULL, e->d_name, strlen(e->d_name));
        eh = s_fnv(eh, &st.st_size, sizeof st.st_size);
        eh = s_fnv(eh, &st.st_mtim, sizeof st.st_mtim);
        eh = s_fnv(eh, &st.st_ino, sizeof st.st_ino);
        h += eh;
    }
    closedir(d);
    return h;
}

/* Reads every NAME.pub of a->dir into a fresh list; bad files are skipped with a warning. */
static int s_load(mg_auth_t *a)
{
    s_client_t *list = calloc(S_MAX_CLIENTS, sizeof *list);
    if (!list) return -1;
    int n = 0;
    DIR *d = opendir(a->dir);
    if (d) {
        struct dirent *e;
        char path[8192], err[8400];
        while ((e = readdir(d)) && n < S_MAX_CLIENTS) {
            if (!s_is_pub(e->d_name)) continue;
            snprintf(path, sizeof path, "%s/%s", a->dir, e->d_name);
            mg_curve_key_t k;
            if (mg_curve_load(path, 0, &k, err, sizeof err) != 0) {
                mg_warn("allow-list: %s: skipped", err);
                continue;
            }
            /* The file's name is the client's name: `mgctl keys revoke NAME` removes NAME.pub. */
            char name[MG_CURVE_NAME_MAX + 8];
            snprintf(name, sizeof name, "%.*s", (int)(strlen(e->d_name) - 4), e->d_name);
            unsigned role = mg_role_parse(k.role);
            if (!mg_curve_name_ok(name) || !role) {
                mg_warn("allow-list: %s: %s: skipped", path,
                        !role ? "no 'role = reader|submitter|admin|worker' line" : "not a usable key name");
                continue;
            }
            s_client_t *c = &list[n];
            mg_strlcpy(c->name, name, sizeof c->name);
            mg_strlcpy(c->key, k.public_key, sizeof c->key);
            zmq_z85_decode(c->bin, c->key);
            c->role = role;
            n++;
        }
        closedir(d);
    }
    free(a->clients);
    a->clients = list;
    a->n_clients = n;
    return 0;
}

mg_auth_t *mg_auth_new(void *ctx, const char *clients_dir, char *err, size_t errlen)
{
    mg_auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        mg_set_error(err, errlen, "out of memory");
        return NULL;
    }
    mg_strlcpy(a->dir, clients_dir, sizeof a->dir);
    a->zap = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    if (!a->zap || zmq_setsockopt(a->zap, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(a->zap, "inproc://zeromq.zap.01") != 0) {
        mg_set_error(err, errlen, "cannot bind the ZAP handler inproc://zeromq.zap.01: %s", zmq_strerror(errno));
        mg_auth_destroy(&a);
        return NULL;
    }
    mg_auth_reload(a, 1);
    return a;
}

void mg_auth_destroy(mg_auth_t **self_p)
{
    mg_auth_t *a = self_p ? *self_p : NULL;
    if (!a) return;
    if (a->zap) zmq_close(a->zap);
    free(a->clients);
    free(a);
    *self_p = NULL;
}

void *mg_auth_socket(mg_auth_t *a) { return a->zap; }

int mg_auth_count(const mg_auth_t *a) { return a->n_clients; }

int mg_auth_reload(mg_auth_t *a, int force)
{
    uint64_t sig = s_signature(a->dir);
    if (!force && sig == a->signature) return 0;
    a->signature = sig;
    int before = a->n_clients;
    if (s_load(a) != 0) return 0;
    mg_info("allow-list %s: %d key(s)%s", a->dir, a->n_clients, force ? "" : " (changed)");
    (void)before;
    return 1;
}

unsigned mg_auth_role(const mg_auth_t *a, const char *user_id, const char *key)
{
    for (int i = 0; i < a->n_clients; i++)
        if (strcmp(a->clients[i].name, user_id) == 0) return strcmp(a->clients[i].key, key) == 0 ? a->clients[i].role : 0;
    return 0;
}

/* One ZAP reply (RFC 27): version, request id, status, text, user id, metadata. */
static void s_reply(mg_auth_t *a, const mg_msg_t *req, const char *status, const char *text, const s_client_t *c)
{
    mg_msg_t r;
    mg_msg_init(&r);
    mg_msg_add_str(&r, "1.0");
    mg_msg_add(&r, req->data[1], req->size[1]);
    mg_msg_add_str(&r, status);
    mg_msg_add_str(&r, text);
    mg_msg_add_str(&r, c ? c->name : "");
    /* Metadata, ZMTP property encoding: name length (1 byte), name, value length (4 bytes,
     * network order), value. */
    unsigned char meta[1 + sizeof MG_MSG_PROP_KEY + 4 + MG_CURVE_KEY_LEN];
    size_t mlen = 0;
    if (c) {
        size_t nl = strlen(MG_MSG_PROP_KEY);
        meta[mlen++] = (unsigned char)nl;
        memcpy(meta + mlen, MG_MSG_PROP_KEY, nl);
        mlen += nl;
        meta[mlen++] = 0;
        meta[mlen++] = 0;
        meta[mlen++] = 0;
        meta[mlen++] = MG_CURVE_KEY_LEN;
        memcpy(meta + mlen, c->key, MG_CURVE_KEY_LEN);
        mlen += MG_CURVE_KEY_LEN;
    }
    mg_msg_add(&r, meta, mlen);
    if (mg_msg_send(&r, a->zap, ZMQ_DONTWAIT) != 0) mg_warn("ZAP: cannot answer: %s", zmq_strerror(errno));
    mg_msg_clear(&r);
}

void mg_auth_handle(mg_auth_t *a)
{
    mg_msg_t req;
    mg_msg_init(&req);
    while (mg_msg_recv(&req, a->zap, ZMQ_DONTWAIT) == 0) {
        /* [version, request id, domain, address, routing id, mechanism, credentials...] */
        if (req.n < 6) {
            /* A REP must answer something; a malformed request is libzmq's bug, not a peer's. */
            mg_msg_t r;
            mg_msg_init(&r);
            mg_msg_add_str(&r, "1.0");
            mg_msg_add_str(&r, "");
            mg_msg_add_str(&r, "500");
            mg_msg_add_str(&r, "malformed ZAP request");
            mg_msg_add_str(&r, "");
            mg_msg_add_str(&r, "");
            mg_msg_send(&r, a->zap, ZMQ_DONTWAIT);
            mg_msg_clear(&r);
            continue;
        }
        char address[128];
        mg_msg_str(&req, 3, address, sizeof address);
        const s_client_t *c = NULL;
        const char *why = NULL;
        if (!mg_msg_is(&req, 0, "1.0")) why = "ZAP version";
        else if (!mg_msg_is(&req, 2, MG_CURVE_ZAP_DOMAIN)) why = "ZAP domain";
        else if (!mg_msg_is(&req, 5, "CURVE") || req.n < 7 || req.size[6] != 32) why = "mechanism (CURVE only)";
        else {
            for (int i = 0; i < a->n_clients && !c; i++)
                if (memcmp(a->clients[i].bin, req.data[6], 32) == 0) c = &a->clients[i];
            if (!c) why = "key not in the allow-list";
        }
        if (c) {
            mg_debug("ZAP: %s from %s accepted (role %s)", c->name, address, mg_role_name(c->role));
            s_reply(a, &req, "200", "OK", c);
        } else {
            char z85[MG_CURVE_KEY_LEN + 1] = "";
            if (req.n >= 7 && req.size[6] == 32) zmq_z85_encode(z85, req.data[6], 32);
            mg_warn("ZAP: connection from %s refused: %s%s%s", address, why, *z85 ? ": " : "", z85);
            s_reply(a, &req, "400", why, NULL);
        }
    }
    mg_msg_clear(&req);
}

/* curve.c - CURVE key files and their application to sockets (see curve.h). The coordinator's
 * side of the handshake, the ZAP allow-list, is coordinator/auth.c. */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "util.h"

int mg_curve_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MG_CURVE_NAME_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int mg_curve_check_private(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        mg_set_error(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        unsigned want = S_ISDIR(st.st_mode) ? 0700 : 0600;
        mg_set_error(err, errlen,
                     "%s has mode %04o: group and others may use it; keys must be private (chmod %o '%s')", path,
                     (unsigned)(st.st_mode & 07777), want, path);
        return -1;
    }
    return 0;
}

int mg_curve_generate(mg_curve_key_t *key, const char *name, const char *role, char *err, size_t errlen)
{
    memset(key, 0, sizeof *key);
    if (zmq_curve_keypair(key->public_key, key->secret_key) != 0) {
        mg_set_error(err, errlen, "cannot generate a CURVE keypair: %s (libzmq built without CURVE?)",
                     zmq_strerror(errno));
        return -1;
    }
    mg_strlcpy(key->name, name ? name : "", sizeof key->name);
    mg_strlcpy(key->role, role ? role : "", sizeof key->role);
    return 0;
}

/* Writes text to path with mode; excl: fail if the file exists. */
static int s_write(const char *path, const char *text, unsigned mode, int excl, char *err, size_t errlen)
{
    if (!excl) {
        if (mg_write_file_atomic(path, text, strlen(text)) != 0 || chmod(path, mode) != 0) {
            mg_set_error(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        mg_set_error(err, errlen, "cannot create %s: %s%s", path, strerror(errno),
                     errno == EEXIST ? " (remove it first to make a new key)" : "");
        return -1;
    }
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0 && fchmod(fd, mode) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        mg_set_error(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

int mg_curve_write_secret(const char *path, const mg_curve_key_t *key, char *err, size_t errlen)
{
    char text[512];
    snprintf(text, sizeof text,
             "# mg CURVE secret key: keep this file private (mode 0600); docs/security.md\n"
             "name = %s\npublic = %s\nsecret = %s\n",
             key->name, key->public_key, key->secret_key);
    int rc = s_write(path, text, 0600, 1, err, errlen);
    memset(text, 0, sizeof text);
    return rc;
}

int mg_curve_write_public(const char *path, const mg_curve_key_t *key, char *err, size_t errlen)
{
    char text[512];
    int n = snprintf(text, sizeof text, "# mg CURVE public key; docs/security.md\nname = %s\n", key->name);
    if (key->role[0]) n += snprintf(text + n, sizeof text - (size_t)n, "role = %s\n", key->role);
    snprintf(text + n, sizeof text - (size_t)n, "public = %s\n", key->public_key);
    return s_write(path, text, 0644, 0, err, errlen);
}

/* Is s 40 characters of the Z85 alphabet that decode to 32 bytes? */
static int s_z85_ok(const char *s)
{
    if (strlen(s) != MG_CURVE_KEY_LEN) return 0;
    unsigned char bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

int mg_curve_load(const char *path, int secret, mg_curve_key_t *key, char *err, size_t errlen)
{
    memset(key, 0, sizeof *key);
    if (secret && mg_curve_check_private(path, err, errlen) != 0) return -1;
    size_t len = 0;
    char *text = mg_read_file(path, &len);
    if (!text) {
        mg_set_error(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0, line = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l && rc == 0; l = strtok_r(NULL, "\n", &save)) {
        line++;
        while (*l == ' ' || *l == '\t') l++;
        if (*l == '#' || *l == 0 || *l == '\r') continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            mg_set_error(err, errlen, "%s:%d: expected 'key = value'", path, line);
            rc = -1;
            break;
        }
        char *k = l, *v = eq + 1, *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r')) v[--vl] = 0;
        char *dst = NULL;
        size_t cap = 0;
        if (strcmp(k, "name") == 0) dst = key->name, cap = sizeof key->name;
        else if (strcmp(k, "role") == 0) dst = key->role, cap = sizeof key->role;
        else if (strcmp(k, "public") == 0) dst = key->public_key, cap = sizeof key->public_key;
        else if (strcmp(k, "secret") == 0) dst = key->secret_key, cap = sizeof key->secret_key;
        if (!dst) continue; /* room for later fields */
        if (mg_strlcpy(dst, v, cap) != 0 || ((dst == key->public_key || dst == key->secret_key) && !s_z85_ok(v))) {
            mg_set_error(err, errlen, "%s:%d: %s is not a %s", path, line, k,
                         dst == key->public_key || dst == key->secret_key ? "40-character Z85 CURVE key"
                                                                          : "short enough value");
            rc = -1;
        }
    }
    memset(text, 0, len);
    free(text);
    if (rc != 0) return -1;
    if (!key->public_key[0]) {
        mg_set_error(err, errlen, "%s: no 'public = ' line: not an mg key file", path);
        return -1;
    }
    if (secret) {
        char derived[MG_CURVE_KEY_LEN + 1];
        if (!key->secret_key[0]) {
            mg_set_error(err, errlen, "%s: no 'secret = ' line: this is a public key file, not a secret one", path);
            return -1;
        }
        if (zmq_curve_public(derived, key->secret_key) != 0 || strcmp(derived, key->public_key) != 0) {
            mg_set_error(err, errlen, "%s: the public and secret keys do not form a pair", path);
            return -1;
        }
    } else {
        key->secret_key[0] = 0;
    }
    return 0;
}

int mg_curve_apply_server(void *socket, const mg_curve_key_t *key)
{
    int one = 1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &one, sizeof one) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, key->secret_key, MG_CURVE_KEY_LEN) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, MG_CURVE_ZAP_DOMAIN, strlen(MG_CURVE_ZAP_DOMAIN)) != 0) return -1;
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* a DRAFT option in libzmq 4.3's header */
#endif
    /* Without it, a handshake that finds no ZAP handler is let through. The coordinator binds
     * its handler before this socket, so the option is a second lock; libzmq built without
     * DRAFT options refuses it (EINVAL), which leaves the first. */
    if (zmq_setsockopt(socket, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0 && errno != EINVAL) return -1;
    return 0;
}

int mg_curve_apply_client(void *socket, const mg_curve_key_t *key, const char *server_public)
{
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, server_public, MG_CURVE_KEY_LEN) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, key->public_key, MG_CURVE_KEY_LEN) != 0) return -1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, key->secret_key, MG_CURVE_KEY_LEN) != 0) return -1;
    return 0;
}

int mg_curve_client_setup(void *socket, int *curve_on, char *err, size_t errlen)
{
    if (curve_on) *curve_on = 0;
    const char *sec = mg_config_get(MG_CONFIG_CURVE_KEY, NULL, MG_CURVE_KEY, NULL);
    const char *srv = mg_config_get(MG_CONFIG_COORDINATOR_KEY, NULL, MG_COORDINATOR_KEY, NULL);
    if ((!sec || !*sec) && (!srv || !*srv)) return 0;
    if (!sec || !*sec || !srv || !*srv) {
        mg_set_error(err, errlen, "%s is set but %s is not: CURVE needs both this client's secret key file and "
                                  "the coordinator's public key file (docs/security.md)",
                     sec && *sec ? MG_CONFIG_CURVE_KEY : MG_CONFIG_COORDINATOR_KEY,
                     sec && *sec ? MG_CONFIG_COORDINATOR_KEY : MG_CONFIG_CURVE_KEY);
        return -1;
    }
    mg_curve_key_t mine, server;
    char sec_path[4096];
    mg_strlcpy(sec_path, sec, sizeof sec_path); /* mg_config_get's file values are reused storage */
    if (mg_curve_load(srv, 0, &server, err, errlen) != 0) return -1;
    if (mg_curve_load(sec_path, 1, &mine, err, errlen) != 0) return -1;
    int rc = mg_curve_apply_client(socket, &mine, server.public_key);
    memset(&mine, 0, sizeof mine);
    if (rc != 0) {
        mg_set_error(err, errlen, "cannot set the CURVE keys on the socket: %s", zmq_strerror(errno));
        return -1;
    }
    if (curve_on) *curve_on = 1;
    return 0;
}

/* curve.h - CURVE key files and applying them to a ZeroMQ socket (docs/security.md).
 *
 * Every mg socket is configured in mg_socket_setup (protocol.c); this file adds the CurveZMQ
 * side: the coordinator is a CURVE server (its secret key, ZAP domain "mg"), mgctl and the
 * workers are CURVE clients (their own keypair plus the coordinator's public key). Keys are
 * Z85 text (zmq_curve_keypair), 40 characters each, in small "key = value" files:
 *
 *   NAME.key  (secret, mode 0600 or stricter)   NAME.pub  (public, may be shared)
 *     # mg CURVE secret key ...                   # mg CURVE public key ...
 *     name = alice                                name = alice
 *     public = <z85>                              role = submitter
 *     secret = <z85>                              public = <z85>
 *
 * On the coordinator host $MG_HOME/keys/ (mode 0700) holds coordinator.key / coordinator.pub
 * and the allow-list clients/NAME.pub (one file per client, with its role).
 */
#ifndef MG_CURVE_H
#define MG_CURVE_H

#include <stddef.h>

#define MG_CURVE_KEY_LEN 40        /* Z85 text of a 32-byte key */
#define MG_CURVE_NAME_MAX 64
#define MG_CURVE_ZAP_DOMAIN "mg"   /* ZMQ_ZAP_DOMAIN of the coordinator's socket */

/* What a key file holds. A field absent from the file is "". */
typedef struct {
    char name[MG_CURVE_NAME_MAX + 1];
    char role[32];
    char public_key[MG_CURVE_KEY_LEN + 1];
    char secret_key[MG_CURVE_KEY_LEN + 1]; /* secret files only */
} mg_curve_key_t;

/* Is name a usable key name: 1..64 of [A-Za-z0-9_.-], not starting with '.' (it becomes
 * a file name). 1 or 0. */
int mg_curve_name_ok(const char *name);

/* Fails (-1, message in err naming the path, its mode and the chmod to run) when path is
 * readable or writable by group or others: secret key files and the keys folder must not be. */
int mg_curve_check_private(const char *path, char *err, size_t errlen);

/* Generates a keypair (zmq_curve_keypair) into *key (name and role copied in). 0 or -1. */
int mg_curve_generate(mg_curve_key_t *key, const char *name, const char *role, char *err, size_t errlen);

/* Writes key's secret file (mode 0600, refusing to replace an existing file) and/or its
 * public file (mode 0644, replaced atomically). A NULL path skips that file. 0 or -1. */
int mg_curve_write_secret(const char *path, const mg_curve_key_t *key, char *err, size_t errlen);
int mg_curve_write_public(const char *path, const mg_curve_key_t *key, char *err, size_t errlen);

/* Reads a key file into *key. secret != 0: a secret file (permissions checked with
 * mg_curve_check_private, both keys required and checked to form a pair); 0: a public file
 * (public required). Messages name the file and line. 0 or -1. */
int mg_curve_load(const char *path, int secret, mg_curve_key_t *key, char *err, size_t errlen);

/* Makes socket a CURVE server with key's secret and ZAP domain "mg" (the coordinator's
 * ZAP handler must already be bound: coordinator/auth.c). 0 or -1 (errno from zmq). */
int mg_curve_apply_server(void *socket, const mg_curve_key_t *key);
/* Makes socket a CURVE client of server_public with its own keypair *key. 0 or -1. */
int mg_curve_apply_client(void *socket, const mg_curve_key_t *key, const char *server_public);

/* The client side as every mg client does it, for a socket about to connect: resolves the
 * settings curve_key (MG_CURVE_KEY: this client's secret key file) and coordinator_key
 * (MG_COORDINATOR_KEY: the coordinator's public key file) from the environment and mg.conf
 * (common/config.h; programs turn their flags into those variables), loads both and applies
 * them. Neither set: plaintext, *curve_on = 0 (curve_on may be NULL). Only one set, a file
 * that cannot be read or has loose permissions: -1 with a message in err. 0 otherwise. */
int mg_curve_client_setup(void *socket, int *curve_on, char *err, size_t errlen);

#endif

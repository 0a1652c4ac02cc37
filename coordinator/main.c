/* main.c - mg-coordinator: settings, keys, signals, then the server loop (server.c).
 * All state lives under $MG_HOME (default ~/.local/share/mg): mg.db (SQLite, WAL), outputs/
 * and keys/ (CURVE keys, docs/security.md; the provenance signing key, sign.h: never in the
 * database). Settings: flag > environment > $MG_HOME/mg.conf > default
 * (docs/config.md).
 *
 * Security mode, decided at start (protected mode, after Redis):
 *   keys/clients/ holds a key   -> CURVE, and only the allow-list gets a session (auth.c)
 *   keys/clients/ is empty      -> plaintext, and only a loopback endpoint may be bound
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/file.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "../common/config.h"
#include "../common/curve.h"
#include "../common/protocol.h"
#include "../common/util.h"
#include "provenance.h"
#include "server.h"
#include "sign.h"
#include "store.h"

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig) { (void)sig; s_stop = 1; }

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: mg-coordinator [options]\n"
        "\n"
        "Keeps jobs, renders and provenance in SQLite and leases renders to workers over ZeroMQ.\n"
        "\n"
        "options (flag / environment / mg.conf key, default):\n"
        "  --home DIR           MG_HOME              state folder (~/.local/share/mg)\n"
        "  --endpoint E         MG_ENDPOINT          endpoint  bind address (" MG_DEFAULT_ENDPOINT ")\n"
        "  --heartbeat-ms N     MG_HEARTBEAT_MS      heartbeat_ms (%d)\n"
        "  --liveness N         MG_LIVENESS          liveness: missed heartbeats before a worker is dead (%d)\n"
        "  --lease-ms N         MG_LEASE_MS          lease_ms: lease length, renewed by progress (%d)\n"
        "  --max-attempts N     MG_MAX_ATTEMPTS      max_attempts per render (3)\n"
        "  --blocklist-after N  MG_BLOCKLIST_AFTER   blocklist_after: consecutive failures of a worker on a job (3)\n"
        "  -h, --help\n",
        MG_DEFAULT_HEARTBEAT_MS, MG_DEFAULT_LIVENESS, MG_DEFAULT_LEASE_MS);
}

/* An integer setting (common/config.h); on a bad value says which, where it came from, exit 2. */
static int s_int(const char *key, const char *flag, const char *env, const char *dflt, long lo, long hi, int *out)
{
    long v;
    char err[4600];
    if (mg_config_int(key, flag, env, dflt, lo, hi, &v, err, sizeof err) != 0) {
        fprintf(stderr, "mg-coordinator: %s\n", err);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Is endpoint reachable from this host only: tcp on 127.0.0.0/8, localhost or ::1, or ipc. */
static int s_is_loopback(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0) return 1;
    if (strncmp(endpoint, "tcp://", 6) != 0) return 0;
    const char *h = endpoint + 6;
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 || strncmp(h, "[::1]:", 6) == 0;
}

/* How many NAME.pub files dir holds. */
static int s_count_keys(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += e->d_name[0] != '.' && l > 4 && strcmp(e->d_name + l - 4, ".pub") == 0;
    }
    closedir(d);
    return n;
}

/* keys/ (0700) with the coordinator's keypair, made on first start, and keys/clients/. 0 and
 * *key loaded, or -1 with the reason logged. */
static int s_keys(const char *home, char *keys_dir, size_t len, mg_curve_key_t *key)
{
    char path[4300], pub[4300], clients[4300], err[9000];
    snprintf(keys_dir, len, "%s/keys", home);
    snprintf(clients, sizeof clients, "%s/clients", keys_dir);
    if ((mkdir(keys_dir, 0700) != 0 && errno != EEXIST) || (mkdir(clients, 0700) != 0 && errno != EEXIST)) {
        mg_err("cannot create %s: %s", clients, strerror(errno));
        return -1;
    }
    if (mg_curve_check_private(keys_dir, err, sizeof err) != 0) {
        mg_err("%s", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/coordinator.key", keys_dir);
    snprintf(pub, sizeof pub, "%s/coordinator.pub", keys_dir);
    if (access(path, F_OK) != 0) {
        if (mg_curve_generate(key, "coordinator", "", err, sizeof err) != 0 ||
            mg_curve_write_secret(path, key, err, sizeof err) != 0 || mg_curve_write_public(pub, key, err, sizeof err) != 0) {
            mg_err("%s", err);
            return -1;
        }
        mg_info("created the coordinator's CURVE keypair; its public key (for clients' coordinator_key): %s", pub);
    }
    if (mg_curve_load(path, 1, key, err, sizeof err) != 0) {
        mg_err("%s", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mg_log_init("mg-coordinator");
    const char *f_home = NULL, *f_endpoint = NULL, *f_hb = NULL, *f_live = NULL, *f_lease = NULL, *f_max = NULL,
               *f_block = NULL;
    static const struct option opts[] = {
        {"home", required_argument, 0, 'H'},          {"endpoint", required_argument, 0, 'e'},
        {"heartbeat-ms", required_argument, 0, 'b'},  {"liveness", required_argument, 0, 'l'},
        {"lease-ms", required_argument, 0, 'L'},      {"max-attempts", required_argument, 0, 'm'},
        {"blocklist-after", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H': f_home = optarg; break;
        case 'e': f_endpoint = optarg; break;
        case 'b': f_hb = optarg; break;
        case 'l': f_live = optarg; break;
        case 'L': f_lease = optarg; break;
        case 'm': f_max = optarg; break;
        case 'B': f_block = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mg-coordinator: unexpected argument '%s'\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }
    if (f_home) setenv("MG_HOME", f_home, 1);
    const char *home = mg_home();
    if (mg_mkdir_p(home, 0755) != 0) {
        mg_err("cannot create MG_HOME %s: %m", home);
        return 1;
    }
    /* One coordinator per MG_HOME: two would lease the same renders twice. */
    char lock_path[4200];
    snprintf(lock_path, sizeof lock_path, "%s/coordinator.lock", home);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        mg_err("another mg-coordinator is already using %s (%s is locked): stop it first, or use another --home",
               home, lock_path);
        return 1;
    }
    char pid_text[32];
    int pid_len = snprintf(pid_text, sizeof pid_text, "%d\n", (int)getpid());
    if (ftruncate(lock_fd, 0) != 0 || write(lock_fd, pid_text, (size_t)pid_len) != pid_len)
        mg_warn("cannot write the pid into %s: %s", lock_path, strerror(errno));
    mg_config_reload();
    mg_server_config_t cfg = {0};
    mg_store_policy_t policy = {0};
    int lease_ms = 0;
    cfg.endpoint = mg_config_get("endpoint", f_endpoint, "MG_ENDPOINT", MG_DEFAULT_ENDPOINT);
    if (s_int("heartbeat_ms", f_hb, "MG_HEARTBEAT_MS", "1000", 10, 600000, &cfg.heartbeat_ms) ||
        s_int("liveness", f_live, "MG_LIVENESS", "3", 1, 1000, &cfg.liveness) ||
        s_int("lease_ms", f_lease, "MG_LEASE_MS", "30000", 100, 86400000, &lease_ms) ||
        s_int("max_attempts", f_max, "MG_MAX_ATTEMPTS", "3", 1, 100, &policy.max_attempts) ||
        s_int("blocklist_after", f_block, "MG_BLOCKLIST_AFTER", "3", 1, 1000, &policy.blocklist_after))
        return 2;
    policy.lease_ms = lease_ms;
    cfg.send_timeout_ms = 1000;

    char keys_dir[4200], clients_dir[4300];
    mg_curve_key_t curve_key;
    if (s_keys(home, keys_dir, sizeof keys_dir, &curve_key) != 0) return 1;
    snprintf(clients_dir, sizeof clients_dir, "%s/clients", keys_dir);
    int n_keys = s_count_keys(clients_dir);
    if (n_keys > 0) {
        cfg.curve_key = &curve_key;
        cfg.clients_dir = clients_dir;
        mg_info("CURVE on: %d client key(s) in %s; coordinator public key %s/coordinator.pub", n_keys, clients_dir,
                keys_dir);
    } else if (!s_is_loopback(cfg.endpoint)) {
        mg_err("refusing to listen on %s without keys: with no client key in %s the coordinator speaks "
               "plaintext and binds loopback only. Create keys on this host (mgctl keys add NAME --role admin; "
               "one per worker with --role worker), then start again; or bind tcp://127.0.0.1:PORT "
               "(docs/security.md)",
               cfg.endpoint, clients_dir);
        return 1;
    }

    /* The key before the database: a coordinator that cannot sign must not append records. */
    char err[1024] = "";
    const char *keys = keys_dir;
    int created = 0;
    mg_sign_key_t *key = mg_sign_key_load(keys, &created, err, sizeof err);
    if (!key) {
        mg_err("provenance signing key: %s", err);
        return 1;
    }
    mg_info("%s provenance signing key %s/provenance.key, key id %s, public key %s", created ? "created" : "loaded",
            keys, mg_sign_key_pub(key)->id, mg_sign_key_pub(key)->hex);
    mg_prov_set_signer(key);

    char db_path[4200], outputs[4200];
    snprintf(db_path, sizeof db_path, "%s/mg.db", home);
    snprintf(outputs, sizeof outputs, "%s/outputs", home);
    mg_store_t *store = mg_store_open(db_path, outputs, &policy, err, sizeof err);
    if (!store) {
        mg_err("%s", err);
        mg_sign_key_destroy(&key);
        return 1;
    }
    mg_info("database %s, outputs in %s", db_path, outputs);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = mg_server_run(store, &cfg, &s_stop);
    mg_store_close(&store);
    mg_prov_set_signer(NULL);
    mg_sign_key_destroy(&key);
    return rc == 0 ? 0 : 1;
}

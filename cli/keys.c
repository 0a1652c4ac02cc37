/* keys.c - `mgctl keys add | list | revoke` (see keys.h): writes a client's keypair where the
 * operator asks and installs its public half, with its role, in $MG_HOME/keys/clients/, which
 * the coordinator re-reads within a second (coordinator/auth.c). Works on files only, so it
 * needs no running coordinator, and must run where $MG_HOME is the coordinator's.
 */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/curve.h"
#include "common/util.h"

static const char *const s_roles[] = {"reader", "submitter", "admin", "worker"};

/* $MG_HOME/keys/clients, made (0700) when make is set. 0 or -1 (printed). */
static int s_clients_dir(char *dir, size_t len, int make, FILE *err_f)
{
    char keys[4200];
    snprintf(keys, sizeof keys, "%s/keys", mg_home());
    snprintf(dir, len, "%s/clients", keys);
    if (make) {
        if (mg_mkdir_p(mg_home(), 0755) != 0 || (mkdir(keys, 0700) != 0 && errno != EEXIST) ||
            (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
            fprintf(err_f, "mgctl: cannot create %s: %s\n", dir, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int s_add(const char *name, const char *role, const char *out, FILE *out_f, FILE *err_f)
{
    if (!mg_curve_name_ok(name)) {
        fprintf(err_f, "mgctl: key name '%s' must be 1-64 of A-Z a-z 0-9 _ . - (not starting with '.')\n", name);
        return 2;
    }
    int ok = 0;
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++) ok |= role && strcmp(role, s_roles[i]) == 0;
    if (!ok) {
        fprintf(err_f, "mgctl: keys add needs --role reader|submitter|admin|worker%s%s%s\n", role ? " (got '" : "",
                role ? role : "", role ? "')" : "");
        return 2;
    }
    char dir[4300], installed[4400], sec[4400], pub[4400], err[9000];
    if (s_clients_dir(dir, sizeof dir, 1, err_f) != 0) return 1;
    snprintf(installed, sizeof installed, "%s/%s.pub", dir, name);
    if (access(installed, F_OK) == 0) {
        fprintf(err_f, "mgctl: key '%s' already exists (%s): revoke it first (mgctl keys revoke %s)\n", name,
                installed, name);
        return 1;
    }
    const char *o = out && *out ? out : ".";
    snprintf(sec, sizeof sec, "%s/%s.key", o, name);
    snprintf(pub, sizeof pub, "%s/%s.pub", o, name);
    mg_curve_key_t k;
    if (mg_curve_generate(&k, name, role, err, sizeof err) != 0 || mg_curve_write_secret(sec, &k, err, sizeof err) != 0 ||
        mg_curve_write_public(pub, &k, err, sizeof err) != 0 ||
        mg_curve_write_public(installed, &k, err, sizeof err) != 0) {
        memset(&k, 0, sizeof k);
        fprintf(err_f, "mgctl: %s\n", err);
        return 1;
    }
    memset(&k, 0, sizeof k);
    fprintf(out_f, "key %s (role %s): secret %s, public %s; installed in %s\n", name, role, sec, pub, installed);
    fprintf(out_f, "give the client %s and %s/keys/coordinator.pub (settings curve_key, coordinator_key)\n", sec,
            mg_home());
    return 0;
}

static int s_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int s_list(int json, FILE *out_f, FILE *err_f)
{
    char dir[4300];
    s_clients_dir(dir, sizeof dir, 0, err_f);
    DIR *d = opendir(dir);
    char *names[4096];
    int n = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && n < 4096) {
            size_t l = strlen(e->d_name);
            if (e->d_name[0] != '.' && l > 4 && strcmp(e->d_name + l - 4, ".pub") == 0) names[n++] = strdup(e->d_name);
        }
        closedir(d);
    }
    qsort(names, (size_t)n, sizeof names[0], s_cmp);
    if (json) fprintf(out_f, "[");
    else if (n == 0) fprintf(out_f, "(no client keys in %s: the coordinator speaks plaintext on loopback)\n", dir);
    else fprintf(out_f, "%-24s %-10s %s\n", "name", "role", "public_key");
    for (int i = 0; i < n; i++) {
        char path[8400], err[9000];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        names[i][strlen(names[i]) - 4] = 0;
        mg_curve_key_t k;
        int bad = mg_curve_load(path, 0, &k, err, sizeof err) != 0;
        if (bad) fprintf(err_f, "mgctl: %s\n", err);
        if (json)
            fprintf(out_f, "%s{\"name\":\"%s\",\"role\":\"%s\",\"public_key\":\"%s\"}", i ? "," : "", names[i],
                    bad ? "" : k.role, bad ? "" : k.public_key);
        else fprintf(out_f, "%-24s %-10s %s\n", names[i], bad ? "(unreadable)" : k.role, bad ? "" : k.public_key);
        free(names[i]);
    }
    if (json) fprintf(out_f, "]\n");
    return 0;
}

static int s_revoke(const char *name, FILE *out_f, FILE *err_f)
{
    char dir[4300], path[4400];
    s_clients_dir(dir, sizeof dir, 0, err_f);
    if (!mg_curve_name_ok(name)) {
        fprintf(err_f, "mgctl: '%s' is not a key name\n", name);
        return 2;
    }
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    if (unlink(path) != 0) {
        fprintf(err_f, "mgctl: cannot revoke '%s': %s: %s (mgctl keys list shows the keys)\n", name, path,
                strerror(errno));
        return 1;
    }
    fprintf(out_f, "key %s revoked: the coordinator drops its sessions within a second\n", name);
    return 0;
}

int mg_keys_run(char **pos, int npos, const char *role, const char *out, int json, FILE *out_f, FILE *err_f)
{
    const char *sub = npos > 0 ? pos[0] : "";
    if (strcmp(sub, "add") == 0 && npos == 2) return s_add(pos[1], role, out, out_f, err_f);
    if (strcmp(sub, "list") == 0 && npos == 1) return s_list(json, out_f, err_f);
    if (strcmp(sub, "revoke") == 0 && npos == 2) return s_revoke(pos[1], out_f, err_f);
    fprintf(err_f, "mgctl: usage: mgctl keys add NAME --role ROLE [--out DIR] | keys list [--json] | "
                   "keys revoke NAME\n");
    return 2;
}

/* util.c - shared helpers (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(mg_sha256_t) >= sizeof(crypto_hash_sha256_state), "mg_sha256_t too small");

static const char *s_program = "mg";
static int s_level = 2;

int64_t mg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mg_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mg_format_time(int64_t ms, char *buf, size_t buflen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[32];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, buflen, "%s.%03dZ", tmp, (int)(ms % 1000));
}

void mg_log_init(const char *program)
{
    s_program = program;
    const char *l = getenv("MG_LOG_LEVEL");
    if (l && *l) s_level = atoi(l);
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", program);
        abort();
    }
}

void mg_log(int level, const char *fmt, ...)
{
    if (level > s_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char ts[40];
    mg_format_time(mg_now_ms(), ts, sizeof ts);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s[%d] %s: %s\n", ts, s_program, (int)getpid(),
            names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}

static void s_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = 0;
}

void mg_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, len);
    s_hex(d, sizeof d, hex);
}

void mg_sha256_init(mg_sha256_t *h) { crypto_hash_sha256_init((crypto_hash_sha256_state *)h->opaque); }
void mg_sha256_update(mg_sha256_t *h, const void *data, size_t len)
{
    crypto_hash_sha256_update((crypto_hash_sha256_state *)h->opaque, data, len);
}
void mg_sha256_final_hex(mg_sha256_t *h, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final((crypto_hash_sha256_state *)h->opaque, d);
    s_hex(d, sizeof d, hex);
}

int mg_sha256_file_hex(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    mg_sha256_t h;
    mg_sha256_init(&h);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) mg_sha256_update(&h, buf, n);
    int err = ferror(f);
    fclose(f);
    if (err) { errno = EIO; return -1; }
    mg_sha256_final_hex(&h, hex);
    return 0;
}

char *mg_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) { free(buf); buf = NULL; }
        else buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) { errno = ENOMEM; return NULL; }
    if (err) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int mg_mkdir_p(const char *path, unsigned mode)
{
    char tmp[4096];
    if (mg_strlcpy(tmp, path, sizeof tmp) != 0) { errno = ENAMETOOLONG; return -1; }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

int mg_write_file_atomic(const char *path, const void *data, size_t len)
{
    if (mg_write_file_atomic_nodirsync(path, data, len) != 0) return -1;
    char dir[4200];
    mg_strlcpy(dir, path, sizeof dir);
    return mg_fsync_dir(dirname(dir));
}

int mg_fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

int mg_write_file_atomic_nodirsync(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) goto fail;
    if (close(fd) != 0) { fd = -1; goto fail; }
    fd = -1;
    if (rename(tmp, path) != 0) goto fail;
    return 0;
fail:;
    int saved = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

const char *mg_home(void)
{
    static char buf[4096];
    const char *h = getenv("MG_HOME");
    if (h && *h) return h;
    const char *home = getenv("HOME");
    if (home && *home) snprintf(buf, sizeof buf, "%s/.local/share/mg", home);
    else snprintf(buf, sizeof buf, "./mg-home");
    return buf;
}

void mg_set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int mg_strlcpy(char *dst, const char *src, size_t dstlen)
{
    if (dstlen == 0) return -1;
    size_t n = strlen(src);
    if (n >= dstlen) {
        memcpy(dst, src, dstlen - 1);
        dst[dstlen - 1] = 0;
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

void mg_slugify(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 1 < outlen; in++) {
        char c = *in;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            c = '-';
        if (o == 0 && c == '.') c = '_'; /* never ".", ".." or hidden files */
        out[o++] = c;
    }
    if (o == 0 && outlen > 1) out[o++] = '_';
    out[o] = 0;
}

void mg_join_csv(char *out, size_t outlen, char *const *items, int n)
{
    if (outlen == 0) return;
    out[0] = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? "," : "", items[i]);
        if (w < 0 || (size_t)w >= outlen - used) {
            out[used] = 0;
            break;
        }
        used += (size_t)w;
    }
}

int mg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

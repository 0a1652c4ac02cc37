/* model_file.c - the MGNN loader (layout in model_file.h): reads a whole model or fixture file
 * into one aligned buffer, checks every field, offset and the CRC, and indexes the tensors.
 * Nothing here runs on the per-sample path.
 */
#include "model_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *name;
    char *err;
    size_t errlen;
} s_reader_t;

static int s_fail(s_reader_t *r, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->err && r->errlen) snprintf(r->err, r->errlen, "%s: %s", r->name, msg);
    return -1;
}

static int s_u32(s_reader_t *r, uint32_t *v, const char *what)
{
    if (r->len - r->pos < 4)
        return s_fail(r, "truncated: %s at byte %zu needs 4 bytes, file has %zu "
                         "(re-export the model)", what, r->pos, r->len);
    const unsigned char *b = r->p + r->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    r->pos += 4;
    return 0;
}

static int s_u64(s_reader_t *r, uint64_t *v, const char *what)
{
    uint32_t lo, hi;
    if (s_u32(r, &lo, what) || s_u32(r, &hi, what)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* A name: 1..MG_NN_NAME_MAX printable ASCII bytes. */
static int s_name(s_reader_t *r, char out[MG_NN_NAME_MAX + 1], const char *what)
{
    uint32_t n;
    size_t at = r->pos;
    if (s_u32(r, &n, what)) return -1;
    if (n < 1 || n > MG_NN_NAME_MAX)
        return s_fail(r, "%s at byte %zu has length %u (1..%d allowed)", what, at, n, MG_NN_NAME_MAX);
    if (r->len - r->pos < n)
        return s_fail(r, "truncated: %s at byte %zu needs %u bytes", what, r->pos, n);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char c = r->p[r->pos + i];
        if (c < 0x20 || c > 0x7e)
            return s_fail(r, "%s at byte %zu has a non-printable byte 0x%02x", what, r->pos, c);
    }
    memcpy(out, r->p + r->pos, n);
    out[n] = '\0';
    r->pos += n;
    return 0;
}

uint32_t mg_crc32(uint32_t crc, const void *data, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {   /* idempotent: a racing second initialiser writes the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void mg_nn_file_destroy(mg_nn_file_t **file_p)
{
    if (!file_p || !*file_p) return;
    mg_nn_file_t *f = *file_p;
    for (int i = 0; i < f->n_meta; i++) free(f->meta[i].value);
    free(f->tensors);
    free(f->buf);
    free(f);
    *file_p = NULL;
}

/* Parses f->buf (f->size bytes). */
static int s_parse(mg_nn_file_t *f, char *err, size_t errlen)
{
    s_reader_t r = {f->buf, f->size, 0, f->path, err, errlen};
    if (f->size < 8 || memcmp(f->buf, MG_NN_MAGIC, 4) != 0)
        return s_fail(&r, "not an MGNN model file (the first 4 bytes are not \"MGNN\")");
    r.pos = 4;
    uint32_t n;
    if (s_u32(&r, &f->version, "version")) return -1;
    if (f->version != MG_NN_VERSION)
        return s_fail(&r, "format version %u; this build reads version %d (re-export the model "
                          "with this mg's models/train/export.py)", f->version, MG_NN_VERSION);

    if (s_u32(&r, &n, "hyper-parameter count")) return -1;
    if (n > MG_NN_MAX_HPARAMS)
        return s_fail(&r, "%u hyper-parameters (at most %d)", n, MG_NN_MAX_HPARAMS);
    for (uint32_t i = 0; i < n; i++) {
        mg_nn_hparam_t *h = &f->hparams[i];
        uint32_t type, v;
        if (s_name(&r, h->name, "hyper-parameter name")) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->hparams[j].name, h->name))
                return s_fail(&r, "hyper-parameter '%s' appears twice", h->name);
        if (s_u32(&r, &type, "hyper-parameter type") || s_u32(&r, &v, "hyper-parameter value"))
            return -1;
        if (type != MG_NN_I32 && type != MG_NN_F32)
            return s_fail(&r, "hyper-parameter '%s' has type %u (1 = i32, 2 = f32)", h->name, type);
        h->type = (mg_nn_dtype_t)type;
        memcpy(&h->value, &v, 4);
        f->n_hparams = (int)i + 1;
    }

    if (s_u32(&r, &n, "metadata count")) return -1;
    if (n > MG_NN_MAX_META) return s_fail(&r, "%u metadata entries (at most %d)", n, MG_NN_MAX_META);
    for (uint32_t i = 0; i < n; i++) {
        mg_nn_meta_t *m = &f->meta[i];
        uint32_t vl;
        if (s_name(&r, m->key, "metadata key")) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->meta[j].key, m->key))
                return s_fail(&r, "metadata key '%s' appears twice", m->key);
        if (s_u32(&r, &vl, "metadata value length")) return -1;
        if (vl > MG_NN_META_VALUE_MAX)
            return s_fail(&r, "metadata '%s' is %u bytes (at most %d)", m->key, vl, MG_NN_META_VALUE_MAX);
        if (r.len - r.pos < vl)
            return s_fail(&r, "truncated: metadata '%s' at byte %zu needs %u bytes", m->key, r.pos, vl);
        if (memchr(r.p + r.pos, 0, vl))
            return s_fail(&r, "metadata '%s' contains a NUL byte", m->key);
        m->value = malloc((size_t)vl + 1);
        if (!m->value) return s_fail(&r, "out of memory");
        memcpy(m->value, r.p + r.pos, vl);
        m->value[vl] = '\0';
        r.pos += vl;
        f->n_meta = (int)i + 1;
    }

    if (s_u32(&r, &n, "tensor count")) return -1;
    if (n > MG_NN_MAX_TENSORS) return s_fail(&r, "%u tensors (at most %d)", n, MG_NN_MAX_TENSORS);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return s_fail(&r, "out of memory");
    uint64_t offs[MG_NN_MAX_TENSORS], sizes[MG_NN_MAX_TENSORS];
    for (uint32_t i = 0; i < n; i++) {
        mg_nn_tensor_t *t = &f->tensors[i];
        uint32_t dt, nd;
        if (s_name(&r, t->name, "tensor name")) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->tensors[j].name, t->name))
                return s_fail(&r, "tensor '%s' appears twice", t->name);
        if (s_u32(&r, &dt, "tensor dtype") || s_u32(&r, &nd, "tensor ndim")) return -1;
        if (dt != MG_NN_I32 && dt != MG_NN_F32)
            return s_fail(&r, "tensor '%s' has dtype %u (1 = i32, 2 = f32)", t->name, dt);
        if (nd < 1 || nd > 4)
            return s_fail(&r, "tensor '%s' has %u dimensions (1..4 allowed)", t->name, nd);
        t->dtype = (mg_nn_dtype_t)dt;
        t->ndim = (int)nd;
        uint64_t count = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint32_t v;
            if (s_u32(&r, &v, "tensor dimension")) return -1;
            if (v < 1) return s_fail(&r, "tensor '%s' dimension %u is 0", t->name, d);
            t->dims[d] = v;
            if (v > ((uint64_t)1 << 40) / count)   /* checked before multiplying: no wrap-around */
                return s_fail(&r, "tensor '%s' has more than 2^40 elements", t->name);
            count *= v;
        }
        t->count = (int64_t)count;
        if (s_u64(&r, &offs[i], "tensor offset") || s_u64(&r, &sizes[i], "tensor size")) return -1;
        if (sizes[i] != count * 4)
            return s_fail(&r, "tensor '%s' says %llu bytes; its shape needs %llu", t->name,
                          (unsigned long long)sizes[i], (unsigned long long)(count * 4));
        f->n_tensors = (int)i + 1;
    }
    size_t header_end = r.pos;
    if (f->size < 4 || f->size - 4 < header_end)
        return s_fail(&r, "truncated: the headers end at byte %zu, the file has %zu bytes",
                      header_end, f->size);
    uint64_t data_end = header_end, prev_end = header_end;
    for (uint32_t i = 0; i < n; i++) {
        mg_nn_tensor_t *t = &f->tensors[i];
        if (offs[i] % MG_NN_ALIGN)
            return s_fail(&r, "tensor '%s' offset %llu is not a multiple of %d", t->name,
                          (unsigned long long)offs[i], MG_NN_ALIGN);
        if (offs[i] < prev_end)
            return s_fail(&r, "tensor '%s' offset %llu overlaps the headers or the previous tensor "
                              "(which ends at %llu)", t->name, (unsigned long long)offs[i],
                          (unsigned long long)prev_end);
        if (offs[i] > f->size - 4 || sizes[i] > f->size - 4 - offs[i])
            return s_fail(&r, "truncated: tensor '%s' needs bytes %llu..%llu, the file has %zu "
                              "(%zu before the checksum)", t->name, (unsigned long long)offs[i],
                          (unsigned long long)(offs[i] + sizes[i]), f->size, f->size - 4);
        prev_end = data_end = offs[i] + sizes[i];
        t->data = f->buf + offs[i];
    }
    if (data_end + 4 != f->size)
        return s_fail(&r, "size %zu bytes; the layout says %llu (data end + 4-byte checksum): "
                          "trailing bytes or truncation", f->size, (unsigned long long)(data_end + 4));
    r.pos = f->size - 4;
    uint32_t stored, crc = mg_crc32(0, f->buf, f->size - 4);
    if (s_u32(&r, &stored, "checksum")) return -1;
    if (stored != crc)
        return s_fail(&r, "checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                      stored, crc);
    return 0;
}

int mg_nn_file_parse(const void *data, size_t len, const char *name, mg_nn_file_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    mg_nn_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s", name);
    f->size = len;
    f->buf = aligned_alloc(MG_NN_ALIGN, (len + MG_NN_ALIGN - 1) / MG_NN_ALIGN * MG_NN_ALIGN + MG_NN_ALIGN);
    if (!f->buf) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes", name, len);
        mg_nn_file_destroy(&f);
        return -1;
    }
    if (len) memcpy(f->buf, data, len);
    if (s_parse(f, err, errlen) != 0) {
        mg_nn_file_destroy(&f);
        return -1;
    }
    *out = f;
    return 0;
}

int mg_nn_file_load(const char *path, mg_nn_file_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *data = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0) len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot determine the size: %s", path, strerror(errno));
        fclose(fp);
        return -1;
    }
    data = malloc(len ? (size_t)len : 1);
    if (!data || fread(data, 1, (size_t)len, fp) != (size_t)len) {
        snprintf(err, errlen, "%s: cannot read %ld bytes", path, len);
        free(data);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    int rc = mg_nn_file_parse(data, (size_t)len, path, out, err, errlen);
    free(data);
    return rc;
}

const mg_nn_tensor_t *mg_nn_file_tensor(const mg_nn_file_t *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const mg_nn_hparam_t *mg_nn_file_hparam(const mg_nn_file_t *f, const char *name)
{
    for (int i = 0; i < f->n_hparams; i++)
        if (!strcmp(f->hparams[i].name, name)) return &f->hparams[i];
    return NULL;
}

const char *mg_nn_file_meta(const mg_nn_file_t *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

static void s_shape(char *buf, size_t len, int ndim, const int64_t *dims)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "(");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)dims[d]);
    if (o < len) snprintf(buf + o, len - o, ")");
}

const mg_nn_tensor_t *mg_nn_file_expect(const mg_nn_file_t *f, const char *name,
                                        mg_nn_dtype_t dtype, int ndim, const int64_t *dims,
                                        char *err, size_t errlen)
{
    const mg_nn_tensor_t *t = mg_nn_file_tensor(f, name);
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s' is missing (re-export the model)", f->path, name);
        return NULL;
    }
    if (t->dtype != dtype) {
        snprintf(err, errlen, "%s: tensor '%s' has dtype %s, expected %s", f->path, name,
                 t->dtype == MG_NN_F32 ? "f32" : "i32", dtype == MG_NN_F32 ? "f32" : "i32");
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = dims[d] < 0 || dims[d] == t->dims[d];
    if (!ok) {
        char have[96], want[96];
        s_shape(have, sizeof have, t->ndim, t->dims);
        s_shape(want, sizeof want, ndim, dims);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", f->path, name, have, want);
        return NULL;
    }
    return t;
}

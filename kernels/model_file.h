/* model_file.h - MGNN, the file format of mg's neural models (and of their golden test
 * fixtures): hyper-parameters, key/value metadata and named, aligned tensors. The only writer
 * is models/train/export.py; this loader bounds-checks every field before anything is used.
 *
 * Byte layout, version 1 (all integers little-endian; "str" = u32 length n, then n bytes of
 * UTF-8 without a terminator):
 *   1. magic      4 bytes "MGNN"
 *   2. version    u32 = 1
 *   3. n_hparams  u32 (<= 64), then per hyper-parameter:
 *                   name str (1..63 bytes), type u32 (1 = i32, 2 = f32), value 4 bytes
 *   4. n_meta     u32 (<= 64), then per entry: key str (1..63 bytes), value str (<= 65536 bytes)
 *   5. n_tensors  u32 (<= 256), then per tensor:
 *                   name str (1..63 bytes), dtype u32 (1 = i32, 2 = f32), ndim u32 (1..4),
 *                   dims u32[ndim] (each >= 1), offset u64 (from the file start, a multiple
 *                   of 64, past the headers), nbytes u64 (= 4 * product of dims)
 *   6. data       each tensor at its offset, row-major (last dimension contiguous), zero
 *                 padding between; tensors in header order, never overlapping
 *   7. crc32      u32, CRC-32 (IEEE 802.3, as zlib.crc32) of every byte before it; it is the
 *                 last 4 bytes: the file ends exactly 4 bytes after the last tensor's data
 * Names (hyper-parameters, keys, tensors) are printable ASCII and unique within their section.
 */
#ifndef MG_MODEL_FILE_H
#define MG_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#define MG_NN_MAGIC "MGNN"
#define MG_NN_VERSION 1
#define MG_NN_ALIGN 64
#define MG_NN_NAME_MAX 63
#define MG_NN_MAX_HPARAMS 64
#define MG_NN_MAX_META 64
#define MG_NN_MAX_TENSORS 256
#define MG_NN_META_VALUE_MAX 65536

typedef enum { MG_NN_I32 = 1, MG_NN_F32 = 2 } mg_nn_dtype_t;

typedef struct {
    char name[MG_NN_NAME_MAX + 1];
    mg_nn_dtype_t type;
    union { int32_t i; float f; } value;
} mg_nn_hparam_t;

typedef struct {
    char key[MG_NN_NAME_MAX + 1];
    char *value;                 /* NUL-terminated copy, owned by the file */
} mg_nn_meta_t;

typedef struct {
    char name[MG_NN_NAME_MAX + 1];
    mg_nn_dtype_t dtype;
    int ndim;
    int64_t dims[4];
    int64_t count;               /* product of dims */
    const void *data;            /* 64-byte aligned, inside the file's buffer */
} mg_nn_tensor_t;

typedef struct {
    char path[256];              /* for error messages */
    uint32_t version;
    int n_hparams, n_meta, n_tensors;
    mg_nn_hparam_t hparams[MG_NN_MAX_HPARAMS];
    mg_nn_meta_t meta[MG_NN_MAX_META];
    mg_nn_tensor_t *tensors;     /* (n_tensors), owned */
    unsigned char *buf;          /* the whole file, 64-byte aligned, owned */
    size_t size;
} mg_nn_file_t;

/* Reads and checks the file at path. On success *out is a new file the caller owns
 * (mg_nn_file_destroy) and 0 is returned; on failure -1 with "PATH: what is wrong (byte N)"
 * in err. */
int mg_nn_file_load(const char *path, mg_nn_file_t **out, char *err, size_t errlen);
/* The same from len bytes at data (copied; name is used in messages). */
int mg_nn_file_parse(const void *data, size_t len, const char *name, mg_nn_file_t **out,
                     char *err, size_t errlen);
/* Frees *file_p and sets it to NULL. NULL-safe. */
void mg_nn_file_destroy(mg_nn_file_t **file_p);

/* Look-ups: NULL when absent. The pointers live as long as the file. */
const mg_nn_tensor_t *mg_nn_file_tensor(const mg_nn_file_t *f, const char *name);
const mg_nn_hparam_t *mg_nn_file_hparam(const mg_nn_file_t *f, const char *name);
const char *mg_nn_file_meta(const mg_nn_file_t *f, const char *key);

/* The tensor named name with dtype and exactly the shape dims[0..ndim) (a dim of -1 matches
 * anything), or NULL with "PATH: tensor 'NAME' has shape (a, b), expected (c, d)" in err. */
const mg_nn_tensor_t *mg_nn_file_expect(const mg_nn_file_t *f, const char *name,
                                        mg_nn_dtype_t dtype, int ndim, const int64_t *dims,
                                        char *err, size_t errlen);

/* CRC-32 (IEEE), continuing from crc (start with 0), as zlib.crc32. */
uint32_t mg_crc32(uint32_t crc, const void *data, size_t len);

#endif

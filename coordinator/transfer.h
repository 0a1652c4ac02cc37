/* transfer.h - result files arriving in chunks (the coordinator's side of worker/upload.c).
 *
 * Each CHUNK is checked against its lease, appended to a temporary file under
 * outputs/.transfers (the outputs' filesystem, so the final rename is atomic) and hashed as it
 * lands, so a file of any size costs the coordinator one chunk of memory. The RESULT that follows
 * finds its files here, checked for size and sha256, and the store fsyncs and renames them into
 * place before the transaction that records them commits (store.h, mg_result_file_t.tmp_path).
 * One per coordinator, used by the server thread only. The states are drawn in transfer.c.
 */
#ifndef MG_TRANSFER_H
#define MG_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/kv.h"
#include "../common/protocol.h"
#include "store.h"

typedef struct mg_transfer mg_transfer_t;

/* What a chunk or a RESULT came to. */
enum {
    MG_TRANSFER_OK = 0,      /* chunk: handled, CHUNK_ACK sent; RESULT: every file is here, checked */
    MG_TRANSFER_RESEND,      /* RESULT: bytes are missing (a coordinator restart, a dropped transfer);
                                CHUNK_ACK resend=1 went out for each short file; nothing to record */
    MG_TRANSFER_BAD,         /* malformed chunk, or a RESULT file whose size or sha256 does not match
                                what arrived (why says which): a failed attempt */
    MG_TRANSFER_STALE,       /* the lease is not current (why): refuse, record the rejection */
    MG_TRANSFER_STALE_AGAIN, /* the same lease was refused before: refuse, record nothing more */
    MG_TRANSFER_RECORDED,    /* this lease's result is already recorded (its ACK was lost) */
    MG_TRANSFER_ERR,         /* database or disk error (why): nothing answered, the worker resends */
};

/* Opens outputs_dir/.transfers and removes every file left in it: transfers a stopped
 * coordinator never finished (their workers send them again). Returns an object the caller
 * owns (mg_transfer_destroy), or NULL with a message in err. */
mg_transfer_t *mg_transfer_new(const char *outputs_dir, char *err, size_t errlen);
/* Removes the temporary files of unfinished transfers, frees, sets *t_p = NULL. */
void mg_transfer_destroy(mg_transfer_t **t_p);

/* A CHUNK message m = [routing id, header, "CHUNK", kv, bytes] with its kv decoded. Checks the
 * lease (and renews it when less than half of it is left: an upload is progress), writes the
 * bytes that are new, and answers CHUNK_ACK on router. Returns MG_TRANSFER_OK, _BAD, _STALE,
 * _STALE_AGAIN, _RECORDED or _ERR; the caller answers all but OK and ERR with an ACK. */
int mg_transfer_chunk(mg_transfer_t *t, mg_store_t *s, void *router, const mg_msg_t *m, const mg_kv_t *kv,
                      int64_t now_ms, char *why, size_t whylen);

/* RESULT r (parsed: each file's len and sha256 as the worker claims them; seq from its meta; m
 * the message, for its routing id): points each file's tmp_path at the bytes that arrived for
 * it. Returns MG_TRANSFER_OK (the pointers stay valid until mg_transfer_done), _RESEND, _BAD,
 * _STALE, _STALE_AGAIN, _RECORDED or _ERR. */
int mg_transfer_attach(mg_transfer_t *t, mg_store_t *s, void *router, const mg_msg_t *m, int64_t seq,
                       mg_result_t *r, char *why, size_t whylen);

/* The result of (render_id, token) was dealt with (recorded, rejected or failed): the temporary
 * files still there are removed and the transfer is forgotten. */
void mg_transfer_done(mg_transfer_t *t, int64_t render_id, const char *token);

/* Housekeeping, about once a second: transfers whose lease ended (expired, worker lost,
 * cancelled, leased again) are removed with their files; refused leases are forgotten after a
 * minute. */
void mg_transfer_sweep(mg_transfer_t *t, mg_store_t *s, int64_t now_ms);

/* Open transfers (refused leases not counted), for logs and tests. */
int mg_transfer_count(const mg_transfer_t *t);

#endif

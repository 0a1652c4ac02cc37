/* upload.h - one render's result on its way to the coordinator (the worker's side of
 * coordinator/transfer.c): the encoded files in CHUNKs, never more than a window of bytes
 * unacknowledged, then the RESULT with the files' metadata, resent until the coordinator ACKs.
 * A render thread builds the upload; the main thread, which owns the DEALER, drives it. The
 * states are drawn in upload.c.
 */
#ifndef MG_UPLOAD_H
#define MG_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/kv.h"
#include "pipeline.h"

typedef struct mg_upload mg_upload_t;

typedef struct {
    size_t chunk_bytes; /* bytes per CHUNK, 4 KiB..MG_CHUNK_MAX_BYTES (MG_CHUNK_DEFAULT_BYTES) */
    int window;         /* bytes sent and not yet acknowledged: at most window x chunk_bytes
                           (MG_CHUNK_DEFAULT_WINDOW) */
    int64_t resend_ms;  /* nothing acknowledged for this long: send again (10 s) */
} mg_upload_opts_t;

/* The defaults above. */
void mg_upload_opts_default(mg_upload_opts_t *o);

/* The upload of one render's result. Takes ownership of *meta (the RESULT's meta kv; left
 * empty) and of the files' bytes in res (each res->files[i].data is set to NULL; the caller
 * still frees res). Returns an upload the caller owns (mg_upload_destroy), or NULL when out of
 * memory (nothing taken then). */
mg_upload_t *mg_upload_new(int64_t render_id, const char *token, mg_kv_t *meta, mg_pipeline_result_t *res,
                           const mg_upload_opts_t *opts);
void mg_upload_destroy(mg_upload_t **up_p);

/* Sends what is due on dealer, each message with ZMQ_DONTWAIT: chunks while the window has
 * room, the RESULT once every byte is acknowledged, and either again after resend_ms without
 * an answer. Returns the number of messages sent. */
int mg_upload_pump(mg_upload_t *up, void *dealer, int64_t now_ms);

/* A CHUNK_ACK for this upload (the caller matched render_id and lease_token). */
void mg_upload_on_chunk_ack(mg_upload_t *up, const mg_kv_t *kv, int64_t now_ms);

/* A new connection: what was in flight went with the old socket; the next pump sends again
 * from what the coordinator acknowledged, and the RESULT again if everything was. */
void mg_upload_reconnected(mg_upload_t *up);

/* All the files' bytes, and how many the coordinator acknowledged. */
uint64_t mg_upload_total(const mg_upload_t *up);
uint64_t mg_upload_acked(const mg_upload_t *up);

#ifdef MG_TEST_RENDERER
/* Test builds only (render_test.c): MG_TEST_RESULT_BYTES=N replaces the first file's bytes by N
 * pseudo-random ones before the upload is made, a big incompressible result for the transfer
 * tests without encoding one. */
void mg_render_test_result(const mg_render_spec_t *spec, mg_pipeline_result_t *res);
#endif

#endif

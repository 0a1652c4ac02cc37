/* upload.c - a render's files to the coordinator in CHUNKs, then its RESULT (see upload.h).
 *
 * One upload, driven by the main thread (mg_upload_pump after each message and loop turn):
 *
 *            mg_upload_new (render thread; handed to the main thread as a pointer over inproc)
 *                 |
 *                 v
 *   +------> SENDING: the next chunk is the first file with sent < size, from offset sent; one
 *   |             |   goes out while (sum over files of sent - acked) + its length
 *   |             |   <= window x chunk_bytes (mg_upload_pump)
 *   |             |   CHUNK_ACK have: acked = have (mg_upload_on_chunk_ack)
 *   |             |   nothing acknowledged for resend_ms, or a new connection
 *   |             |   (mg_upload_reconnected): sent = acked, go back
 *   |             | every file has acked == size
 *   |             v
 *   |        RESULT_SENT: RESULT [meta, seq, files][file kv]...; again after resend_ms and on a
 *   |             |      new connection
 *   |             | ACK, accepted or not: the main thread frees the slot (mg_upload_destroy)
 *   |             v
 *   |           (gone)
 *   |
 *   +--- CHUNK_ACK resend=1 file have: the coordinator lacks those bytes (it restarted, it dropped
 *        the transfer, a chunk was lost with a connection): acked = sent = have for that file.
 *        Every chunk carries a sequence number the coordinator echoes; a resend=1 answering a
 *        chunk sent before that file's last go-back (seq < rewind_seq) is ignored, so the chunks
 *        in flight at a restart cost one go-back, not one each. A RESULT carries the sequence
 *        too, so its resend=1 answers always count.
 *   A stale lease: the coordinator answers a chunk with ACK accepted=0; the slot is freed.
 *
 * Flow control: the window bounds what sits in libzmq's send queue (zmq_send copies each
 * chunk) and in the coordinator's receive queue, so the upload adds at most window x
 * chunk_bytes (4 MiB by default) to either process, whatever the result's size; the files
 * themselves are the pipeline's buffers, held until the ACK so that anything can be resent.
 * libzmq's high-water mark counts messages, not bytes, so it cannot do this job.
 */
#include "upload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../common/protocol.h"
#include "../common/util.h"

struct mg_upload {
    int64_t render_id;
    char token[40];
    mg_upload_opts_t o;
    mg_kv_t meta;                                  /* owned: the RESULT's meta */
    mg_msg_t file_kvs;                             /* owned: one encoded file kv per file */
    int n_files;
    unsigned char *data[MG_PIPELINE_MAX_FILES];    /* owned: the encoded files */
    uint64_t size[MG_PIPELINE_MAX_FILES];
    uint64_t sent[MG_PIPELINE_MAX_FILES];          /* bytes [0, sent) went out */
    uint64_t acked[MG_PIPELINE_MAX_FILES];         /* bytes [0, acked) are on the coordinator */
    int64_t rewind_seq[MG_PIPELINE_MAX_FILES];     /* first seq sent after this file's last go-back */
    int64_t seq;                                   /* the next chunk's sequence number */
    int result_sent;
    int64_t result_mono;                           /* when the RESULT last went out */
    int64_t answer_mono;                           /* last acknowledgement, or first chunk in flight */
};

void mg_upload_opts_default(mg_upload_opts_t *o)
{
    o->chunk_bytes = MG_CHUNK_DEFAULT_BYTES;
    o->window = MG_CHUNK_DEFAULT_WINDOW;
    o->resend_ms = 10000;
}

mg_upload_t *mg_upload_new(int64_t render_id, const char *token, mg_kv_t *meta, mg_pipeline_result_t *res,
                           const mg_upload_opts_t *opts)
{
    mg_upload_t *up = calloc(1, sizeof *up);
    if (!up) return NULL;
    up->render_id = render_id;
    mg_strlcpy(up->token, token, sizeof up->token);
    if (opts) up->o = *opts;
    else mg_upload_opts_default(&up->o);
    if (up->o.chunk_bytes < 4096) up->o.chunk_bytes = 4096;
    if (up->o.chunk_bytes > MG_CHUNK_MAX_BYTES) up->o.chunk_bytes = MG_CHUNK_MAX_BYTES;
    if (up->o.window < 1) up->o.window = 1;
    if (up->o.resend_ms < 100) up->o.resend_ms = 100;
    mg_msg_init(&up->file_kvs);
    int rc = 0;
    for (int i = 0; i < res->n_files && i < MG_PIPELINE_MAX_FILES; i++) {
        const mg_encoded_t *f = &res->files[i];
        mg_kv_t fk;
        mg_kv_init(&fk);
        rc |= mg_kv_set(&fk, "format", mg_encoded_ext(f)) | mg_kv_set(&fk, "kind", f->kind) |
              mg_kv_set(&fk, "part", f->part) | mg_kv_set(&fk, "sha256", f->sha256) |
              mg_kv_set_u64(&fk, "bytes", f->len) | mg_kv_set_double(&fk, "duration_s", f->duration_s) |
              mg_kv_set_i64(&fk, "sample_rate", f->sample_rate) | mg_kv_set_i64(&fk, "channels", f->channels);
        if (f->loop_length) rc |= mg_kv_set_u64(&fk, "loop_length", f->loop_length);
        rc |= mg_msg_add_kv(&up->file_kvs, &fk);
        mg_kv_clear(&fk);
    }
    if (rc != 0) {
        mg_msg_clear(&up->file_kvs);
        free(up);
        return NULL;
    }
    for (int i = 0; i < res->n_files && i < MG_PIPELINE_MAX_FILES; i++) {
        up->data[i] = res->files[i].data;
        up->size[i] = res->files[i].len;
        res->files[i].data = NULL;
        up->n_files++;
    }
    up->meta = *meta;
    mg_kv_init(meta);
    return up;
}

void mg_upload_destroy(mg_upload_t **up_p)
{
    if (!up_p || !*up_p) return;
    mg_upload_t *up = *up_p;
    for (int i = 0; i < up->n_files; i++) free(up->data[i]);
    mg_kv_clear(&up->meta);
    mg_msg_clear(&up->file_kvs);
    free(up);
    *up_p = NULL;
}

uint64_t mg_upload_total(const mg_upload_t *up)
{
    uint64_t n = 0;
    for (int i = 0; i < up->n_files; i++) n += up->size[i];
    return n;
}

uint64_t mg_upload_acked(const mg_upload_t *up)
{
    uint64_t n = 0;
    for (int i = 0; i < up->n_files; i++) n += up->acked[i];
    return n;
}

static int s_all_acked(const mg_upload_t *up)
{
    for (int i = 0; i < up->n_files; i++)
        if (up->acked[i] < up->size[i]) return 0;
    return 1;
}

static void s_go_back(mg_upload_t *up)
{
    for (int i = 0; i < up->n_files; i++) {
        up->sent[i] = up->acked[i];
        up->rewind_seq[i] = up->seq;
    }
}

/* Frames [header, command, kv, payload?] with ZMQ_DONTWAIT. Once libzmq takes the first frame
 * it takes the rest of the message, so -1 (EAGAIN: queue full, no connection) means nothing went. */
static int s_send_frames(void *dealer, const char *cmd, const mg_kv_t *kv, const void *payload, size_t len,
                         int has_payload, const mg_msg_t *more)
{
    size_t kv_len;
    char *text = mg_kv_encode(kv, &kv_len);
    if (!text) return -1;
    int tail = has_payload || (more && more->n > 0);
    int rc = zmq_send(dealer, MG_PROTO_WORKER, strlen(MG_PROTO_WORKER), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ? -1 : 0;
    if (rc == 0) rc = zmq_send(dealer, cmd, strlen(cmd), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ? -1 : 0;
    if (rc == 0) rc = zmq_send(dealer, text, kv_len, ZMQ_DONTWAIT | (tail ? ZMQ_SNDMORE : 0)) < 0 ? -1 : 0;
    if (rc == 0 && has_payload) rc = zmq_send(dealer, payload, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
    for (size_t i = 0; rc == 0 && more && i < more->n; i++)
        rc = zmq_send(dealer, more->data[i], more->size[i], ZMQ_DONTWAIT | (i + 1 < more->n ? ZMQ_SNDMORE : 0)) < 0
                 ? -1 : 0;
    free(text);
    return rc;
}

static int s_send_chunk(mg_upload_t *up, void *dealer, int file, uint64_t offset, size_t len)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", up->render_id);
    mg_kv_set(&kv, "lease_token", up->token);
    mg_kv_set_i64(&kv, "file", file);
    mg_kv_set_u64(&kv, "offset", offset);
    mg_kv_set_u64(&kv, "size", up->size[file]);
    mg_kv_set_i64(&kv, "seq", up->seq);
    int rc = s_send_frames(dealer, MG_WCMD_CHUNK, &kv, up->data[file] + offset, len, 1, NULL);
    mg_kv_clear(&kv);
    return rc;
}

static int s_send_result(mg_upload_t *up, void *dealer)
{
    mg_kv_set_i64(&up->meta, "files", up->n_files);
    mg_kv_set_i64(&up->meta, "seq", up->seq);
    return s_send_frames(dealer, MG_WCMD_RESULT, &up->meta, NULL, 0, 0, &up->file_kvs);
}

int mg_upload_pump(mg_upload_t *up, void *dealer, int64_t now_ms)
{
    if (!dealer) return 0;
    int n = 0;
    if (s_all_acked(up)) {
        if ((!up->result_sent || now_ms - up->result_mono >= up->o.resend_ms) && s_send_result(up, dealer) == 0) {
            up->result_sent = 1;
            up->result_mono = now_ms;
            n++;
        }
        return n;
    }
    uint64_t inflight = 0;
    for (int i = 0; i < up->n_files; i++) inflight += up->sent[i] - up->acked[i];
    if (inflight > 0 && now_ms - up->answer_mono >= up->o.resend_ms) {
        mg_warn("render %" PRId64 ": no chunk acknowledged for %lld ms: sending again from %" PRIu64 " of %" PRIu64
                " bytes", up->render_id, (long long)(now_ms - up->answer_mono), mg_upload_acked(up),
                mg_upload_total(up));
        s_go_back(up);
        inflight = 0;
    }
    uint64_t limit = (uint64_t)up->o.window * up->o.chunk_bytes;
    for (int i = 0; i < up->n_files;) {
        if (up->sent[i] >= up->size[i]) {
            i++;
            continue;
        }
        uint64_t left = up->size[i] - up->sent[i];
        size_t len = left < up->o.chunk_bytes ? (size_t)left : up->o.chunk_bytes;
        if (inflight + len > limit) break;
        if (s_send_chunk(up, dealer, i, up->sent[i], len) != 0) break; /* queue full or no peer: later */
        if (inflight == 0) up->answer_mono = now_ms;
        up->sent[i] += len;
        up->seq++;
        inflight += len;
        n++;
    }
    return n;
}

void mg_upload_on_chunk_ack(mg_upload_t *up, const mg_kv_t *kv, int64_t now_ms)
{
    int64_t file = mg_kv_get_i64(kv, "file", -1);
    uint64_t have = mg_kv_get_u64(kv, "have", UINT64_MAX);
    int64_t seq = mg_kv_get_i64(kv, "seq", 0);
    if (file < 0 || file >= up->n_files || have > up->size[file]) return;
    if (mg_kv_get_i64(kv, "resend", 0) == 1) {
        if (seq < up->rewind_seq[file]) return; /* about a chunk sent before the last go-back */
        mg_info("render %" PRId64 ": coordinator holds %" PRIu64 " of %" PRIu64 " bytes of file %d: sending from there",
                up->render_id, have, up->size[file], (int)file + 1);
        up->acked[file] = up->sent[file] = have;
        up->rewind_seq[file] = up->seq;
        up->result_sent = 0;
        up->answer_mono = now_ms;
    } else if (have > up->acked[file]) {
        up->acked[file] = have;
        if (up->sent[file] < have) up->sent[file] = have;
        up->answer_mono = now_ms;
    }
}

void mg_upload_reconnected(mg_upload_t *up)
{
    s_go_back(up);
    up->result_sent = 0;
}

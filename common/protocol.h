/* protocol.h - the mg wire protocol over ZeroMQ (full description: docs/protocol.md).
 *
 * One coordinator ROUTER socket serves two kinds of peers, told apart by the first frame:
 *
 *   worker  (DEALER) <-> coordinator : [MG_PROTO_WORKER, command, body frames...]
 *   mgctl   (DEALER) <-> coordinator : [MG_PROTO_CLIENT, command, body frames...]
 *
 * The header carries the protocol version. Bodies are kv records
 * (kv.h) except encoded audio, which travels as raw bytes.
 *
 * Worker commands (Paranoid Pirate heartbeating: any message counts as a heartbeat; a
 * peer silent for heartbeat_ms x liveness is dead):
 *   W->C READY      [kv: name host pid backend device capacity models protocol held]
 *                   (capacity 0: draining; held = "render_id:token,..." leases still owned)
 *   C->W HEARTBEAT  []                        W->C HEARTBEAT []
 *   C->W LEASE      ([kv: render_id lease_token attempt deadline_ms lease_ms], [kv: render spec])+
 *   W->C PROGRESS   [kv: render_id lease_token done]          (renews the lease)
 *   W->C CHUNK      [kv: render_id lease_token file offset size seq], [bytes <= MG_CHUNK_MAX_BYTES]
 *   C->W CHUNK_ACK  [kv: render_id lease_token file have seq (resend)]  (bytes held from 0)
 *   W->C RESULT     [kv: meta incl. worker files seq], ([kv: file meta incl. sha256 bytes])+
 *                   (sent once every chunk of every file is acknowledged; docs/protocol.md)
 *   W->C FAIL       [kv: render_id lease_token worker retryable message (handback)]
 *   C->W ACK        [kv: render_id lease_token accepted reason]  (reply to RESULT / FAIL)
 *   C->W CANCEL     [kv: job_id] (drop that job's renders), or
 *                   [kv: render_id lease_token reason] (that lease is no longer valid)
 *   both DISCONNECT [kv: reason]
 *
 * Client commands: request [MG_PROTO_CLIENT, command, kv args, (payload)], reply
 * [MG_PROTO_CLIENT, "OK"|"ERR", kv (message, ids...), row kv frames...]. Row frames form a
 * table: every row has the same keys in the same order. Commands: SUBMIT, STATUS, JOBS,
 * RENDERS, CANCEL, RETRY, WORKERS, SCHED_ADD, SCHED_LIST, SCHED_RM, SCHED_PAUSE,
 * SCHED_RESUME, AUDIT, AUDIT_VERIFY, AUDIT_HEAD, VERIFY, EVENTS, PING, FILES, FETCH (FETCH's reply ends
 * in one raw payload frame, not a row). A peer speaking another version of either protocol
 * is answered with DISCONNECT (workers) or ERR (clients).
 */
#ifndef MG_PROTOCOL_H
#define MG_PROTOCOL_H

#include <stddef.h>

#include "kv.h"

#define MG_PROTO_WORKER "MGW02" /* 02: results in CHUNKs, RESULT carries metadata only */
#define MG_PROTO_CLIENT "MGC01"

#define MG_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"      /* coordinator bind / peers connect */
#define MG_DEFAULT_HEARTBEAT_MS 1000
#define MG_DEFAULT_LIVENESS 3
#define MG_DEFAULT_LEASE_MS 30000
/* ZMQ_MAXMSGSIZE of every mg socket; libzmq applies it to each frame and disconnects a peer
 * that sends a larger one. The largest frames are a CHUNK's bytes (MG_CHUNK_MAX_BYTES) and the
 * job file of a SUBMIT / SCHED_ADD (at most 8 MiB - 64 KiB, common/jobspec.c), so no message
 * of either kind passes 8 MiB. */
#define MG_MAX_MESSAGE_BYTES (8LL * 1024 * 1024)

/* Result files travel in CHUNKs (worker/upload.c -> coordinator/transfer.c). The worker sends
 * MG_CHUNK_DEFAULT_BYTES per chunk with at most MG_CHUNK_DEFAULT_WINDOW chunks unacknowledged
 * (4 MiB in flight per uploading worker); the coordinator takes chunks up to MG_CHUNK_MAX_BYTES
 * and files up to MG_MAX_RESULT_FILE_BYTES (a 10-minute 192 kHz 24-bit stereo WAV is 660 MiB). */
#define MG_CHUNK_MAX_BYTES (4 * 1024 * 1024)
#define MG_CHUNK_DEFAULT_BYTES (1024 * 1024)
#define MG_CHUNK_DEFAULT_WINDOW 4
#define MG_MAX_RESULT_FILE_BYTES (2LL * 1024 * 1024 * 1024)

/* Worker protocol commands (frame 2 of a worker message, both directions; see above). Both
 * sides use these names: coordinator/server.c's worker command table, worker/main.c and
 * worker/upload.c. */
#define MG_WCMD_READY "READY"
#define MG_WCMD_HEARTBEAT "HEARTBEAT"
#define MG_WCMD_LEASE "LEASE"
#define MG_WCMD_PROGRESS "PROGRESS"
#define MG_WCMD_CHUNK "CHUNK"
#define MG_WCMD_CHUNK_ACK "CHUNK_ACK"
#define MG_WCMD_RESULT "RESULT"
#define MG_WCMD_FAIL "FAIL"
#define MG_WCMD_ACK "ACK"
#define MG_WCMD_CANCEL "CANCEL"
#define MG_WCMD_DISCONNECT "DISCONNECT"

/* Client commands (frame 2 of a client request), as coordinator/server.c's client command
 * table and cli/ spell them, and the two reply words. */
#define MG_CMD_PING "PING"
#define MG_CMD_SUBMIT "SUBMIT"
#define MG_CMD_STATUS "STATUS"
#define MG_CMD_JOBS "JOBS"
#define MG_CMD_RENDERS "RENDERS"
#define MG_CMD_CANCEL "CANCEL"
#define MG_CMD_RETRY "RETRY"
#define MG_CMD_WORKERS "WORKERS"
#define MG_CMD_SCHED_ADD "SCHED_ADD"
#define MG_CMD_SCHED_LIST "SCHED_LIST"
#define MG_CMD_SCHED_RM "SCHED_RM"
#define MG_CMD_SCHED_PAUSE "SCHED_PAUSE"
#define MG_CMD_SCHED_RESUME "SCHED_RESUME"
#define MG_CMD_AUDIT "AUDIT"
#define MG_CMD_AUDIT_VERIFY "AUDIT_VERIFY"   /* args: public_key, head_* (a saved head) */
#define MG_CMD_AUDIT_HEAD "AUDIT_HEAD"       /* the chain's head, signed by the coordinator */
#define MG_CMD_VERIFY "VERIFY"
#define MG_CMD_EVENTS "EVENTS"
#define MG_REPLY_OK "OK"
#define MG_REPLY_ERR "ERR"

/* Client commands of `mgctl fetch` (coordinator/fetch.c): FILES lists a job's delivered
 * files, FETCH reads up to MG_FETCH_MAX_BYTES of one of them per request, so no reply is
 * ever near MG_MAX_MESSAGE_BYTES whatever the file's size. */
#define MG_CMD_FILES "FILES"
#define MG_CMD_FETCH "FETCH"
#define MG_FETCH_MAX_BYTES (4 * 1024 * 1024)

/* A multipart message: frames are owned byte buffers. A received message also carries what
 * the coordinator's ZAP handler said about its sender (coordinator/auth.c): "" when the socket
 * is plaintext or the peer sent nothing, else the client's name and its Z85 public key. */
typedef struct {
    void **data;   /* owned */
    size_t *size;
    size_t n, cap;
    char user_id[80];  /* ZAP "User-Id" of the sender (the key's name) */
    char peer_key[48]; /* ZAP metadata MG_MSG_PROP_KEY: the key that opened the session */
} mg_msg_t;

/* The ZAP metadata property naming the CURVE key a session was opened with, so a key file
 * replaced under the same name cuts off the sessions of the old key. */
#define MG_MSG_PROP_KEY "X-Mg-Key"

void mg_msg_init(mg_msg_t *m);
void mg_msg_clear(mg_msg_t *m); /* frees all frames */
/* Append a copy of len bytes / a string / an encoded kv. 0 or -1. */
int mg_msg_add(mg_msg_t *m, const void *data, size_t len);
int mg_msg_add_str(mg_msg_t *m, const char *s);
int mg_msg_add_kv(mg_msg_t *m, const mg_kv_t *kv);
/* Append a buffer, taking ownership of *data_p (malloc'd) and nulling it. */
int mg_msg_add_owned(mg_msg_t *m, void **data_p, size_t len);
/* Frame i as a NUL-terminated copy into buf (truncated), and frame i decoded as kv. */
const char *mg_msg_str(const mg_msg_t *m, size_t i, char *buf, size_t buflen);
int mg_msg_kv(const mg_msg_t *m, size_t i, mg_kv_t *kv);
/* Is frame i exactly the string s? */
int mg_msg_is(const mg_msg_t *m, size_t i, const char *s);

/* Send all frames (ZMQ_SNDMORE between them). Frames are not consumed. 0 or -1 (errno
 * from zmq: EAGAIN on send timeout, EHOSTUNREACH for a ROUTER's unknown peer). */
int mg_msg_send(const mg_msg_t *m, void *socket, int flags);
/* Receive one whole multipart message into m (cleared first), with its sender's user_id and
 * peer_key (above). 0 or -1 (errno). */
int mg_msg_recv(mg_msg_t *m, void *socket, int flags);

/* Socket options every mg socket gets: linger, MAXMSGSIZE, send timeout. CURVE keys are
 * applied next to it (common/curve.h: mg_curve_apply_server, mg_curve_client_setup). */
int mg_socket_setup(void *socket, int send_timeout_ms);

#endif

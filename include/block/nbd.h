/*
 * Network Block Device protocol: wire constants, the codec shared by
 * client and server (nbd/common.c), the client handshake (nbd/client.c)
 * and the server with its exports (nbd/server.c).
 *
 * The protocol is described in doc/proto.md of the NetworkBlockDevice/nbd
 * project.  All integers on the wire are big-endian.
 */
#ifndef BLOCK_NBD_H
#define BLOCK_NBD_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/sockets.h"
#include "block/block.h"
#include "crypto/tls-creds.h"

/* ---- Handshake ------------------------------------------------------ */

#define NBD_INIT_MAGIC              0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC              0x49484156454F5054ULL /* "IHAVEOPT" */
#define NBD_CLIENT_MAGIC            0x0000420281861253ULL /* oldstyle */
#define NBD_REP_MAGIC               0x0003e889045565a9ULL

/* Handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE     (1 << 0)
#define NBD_FLAG_NO_ZEROES          (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE   NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES        NBD_FLAG_NO_ZEROES

/* Options */
#define NBD_OPT_EXPORT_NAME         1
#define NBD_OPT_ABORT               2
#define NBD_OPT_LIST                3
#define NBD_OPT_STARTTLS            5
#define NBD_OPT_INFO                6
#define NBD_OPT_GO                  7
#define NBD_OPT_STRUCTURED_REPLY    8
#define NBD_OPT_LIST_META_CONTEXT   9
#define NBD_OPT_SET_META_CONTEXT    10

/* Option replies; error replies have bit 31 set */
#define NBD_REP_ERR(v)              ((1U << 31) | (v))
#define NBD_REP_IS_ERR(v)           (!!((v) & (1U << 31)))
#define NBD_REP_ACK                 1
#define NBD_REP_SERVER              2
#define NBD_REP_INFO                3
#define NBD_REP_META_CONTEXT        4
#define NBD_REP_ERR_UNSUP           NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY          NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID         NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM        NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD        NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN         NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN        NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG         NBD_REP_ERR(9)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT             0
#define NBD_INFO_NAME               1
#define NBD_INFO_DESCRIPTION        2
#define NBD_INFO_BLOCK_SIZE         3

/* Transmission flags */
#define NBD_FLAG_HAS_FLAGS          (1 << 0)
#define NBD_FLAG_READ_ONLY          (1 << 1)
#define NBD_FLAG_SEND_FLUSH         (1 << 2)
#define NBD_FLAG_SEND_FUA           (1 << 3)
#define NBD_FLAG_ROTATIONAL         (1 << 4)
#define NBD_FLAG_SEND_TRIM          (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1 << 6)
#define NBD_FLAG_SEND_DF            (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1 << 8)
#define NBD_FLAG_SEND_RESIZE        (1 << 9)
#define NBD_FLAG_SEND_CACHE         (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1 << 11)

/* ---- Transmission --------------------------------------------------- */

#define NBD_REQUEST_MAGIC           0x25609513
#define NBD_SIMPLE_REPLY_MAGIC      0x67446698
#define NBD_STRUCTURED_REPLY_MAGIC  0x668e33ef

#define NBD_REQUEST_SIZE            28
#define NBD_SIMPLE_REPLY_SIZE       16
#define NBD_STRUCTURED_REPLY_SIZE   20

/* Commands */
#define NBD_CMD_READ                0
#define NBD_CMD_WRITE               1
#define NBD_CMD_DISC                2
#define NBD_CMD_FLUSH               3
#define NBD_CMD_TRIM                4
#define NBD_CMD_CACHE               5
#define NBD_CMD_WRITE_ZEROES        6
#define NBD_CMD_BLOCK_STATUS        7

/* Command flags */
#define NBD_CMD_FLAG_FUA            (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE        (1 << 1)
#define NBD_CMD_FLAG_DF             (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE        (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO      (1 << 4)

/* Structured reply chunks */
#define NBD_REPLY_FLAG_DONE         (1 << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        ((1 << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1 << 15) + 2)
#define NBD_REPLY_TYPE_IS_ERR(t)    (!!((t) & (1 << 15)))

/* Errors on the wire */
#define NBD_SUCCESS                 0
#define NBD_EPERM                   1
#define NBD_EIO                     5
#define NBD_ENOMEM                  12
#define NBD_EINVAL                  22
#define NBD_ENOSPC                  28
#define NBD_EOVERFLOW               75
#define NBD_ENOTSUP                 95
#define NBD_ESHUTDOWN               108

/* Metadata contexts */
#define NBD_META_BASE_ALLOCATION    "base:allocation"
#define NBD_META_ALLOCATION_DEPTH   "qemu:allocation-depth"
#define NBD_META_DIRTY_BITMAP       "qemu:dirty-bitmap:"
#define NBD_STATE_HOLE              (1 << 0)
#define NBD_STATE_ZERO              (1 << 1)

/* Limits */
#define NBD_DEFAULT_PORT            10809
#define NBD_MAX_BUFFER_SIZE         (32 * 1024 * 1024)
#define NBD_MAX_STRING_SIZE         4096
/* Largest option payload either side accepts. */
#define NBD_MAX_OPTION_SIZE         (64 * 1024)

/* ---- Codec (nbd/common.c) ------------------------------------------ */

typedef struct NBDRequest {
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
} NBDRequest;

/*
 * A reply header: simple (error set, length 0) or one structured chunk
 * (flags/type/length set, error 0).
 */
typedef struct NBDReply {
    uint32_t magic;
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint32_t error;             /* simple replies: NBD errno */
    uint32_t length;            /* structured chunks: payload bytes */
} NBDReply;

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline void nbd_put32(uint8_t *p, uint32_t v)
{
    nbd_put16(p, v >> 16);
    nbd_put16(p + 2, v);
}

static inline void nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, v >> 32);
    nbd_put32(p + 4, v);
}

static inline uint16_t nbd_get16(const uint8_t *p)
{
    return (uint16_t)p[0] << 8 | p[1];
}

static inline uint32_t nbd_get32(const uint8_t *p)
{
    return (uint32_t)nbd_get16(p) << 16 | nbd_get16(p + 2);
}

static inline uint64_t nbd_get64(const uint8_t *p)
{
    return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

void nbd_encode_request(uint8_t buf[NBD_REQUEST_SIZE], const NBDRequest *req);
/* Returns false (request untouched) if the magic is wrong. */
bool nbd_decode_request(const uint8_t buf[NBD_REQUEST_SIZE], NBDRequest *req);
void nbd_encode_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                             uint32_t nbd_error, uint64_t cookie);
void nbd_encode_chunk_header(uint8_t buf[NBD_STRUCTURED_REPLY_SIZE],
                             uint16_t flags, uint16_t type, uint64_t cookie,
                             uint32_t length);
/*
 * Decodes the first NBD_SIMPLE_REPLY_SIZE bytes of a reply.  Returns the
 * number of further header bytes to read and decode with
 * nbd_decode_chunk_tail() (4 for structured chunks, 0 for simple replies)
 * or -1 for an unknown magic.
 */
int nbd_decode_reply_head(const uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                          NBDReply *reply);
void nbd_decode_chunk_tail(const uint8_t buf[4], NBDReply *reply);

/* errno <-> NBD error numbers; unknown values map to EIO / NBD_EIO. */
uint32_t system_errno_to_nbd_errno(int err);
int nbd_errno_to_system_errno(uint32_t err);

/* Names for traces and messages ("NBD_OPT_GO"...); "<unknown>" else. */
const char *nbd_opt_lookup(uint32_t opt);
const char *nbd_rep_lookup(uint32_t rep);
const char *nbd_info_lookup(uint16_t info);
const char *nbd_cmd_lookup(uint16_t cmd);
const char *nbd_reply_type_lookup(uint16_t type);
const char *nbd_err_lookup(uint32_t err);
/* " flush fua trim ..." as qemu-nbd --list prints transmission flags. */
char *nbd_flags_to_string(uint16_t flags);

/* ---- Client (nbd/client.c) ----------------------------------------- */

/*
 * What the client asks for and what the server answered.  The caller
 * fills the "in" part; nbd_receive_negotiate() fills the rest.  Free the
 * strings with nbd_export_info_clear().
 */
typedef struct NBDExportInfo {
    /* in */
    char *name;                 /* export to attach to ("" = default) */
    bool request_sizes;         /* ask for NBD_INFO_BLOCK_SIZE */
    bool structured_reply;      /* in: want it; out: negotiated */
    char *meta_context;         /* context to select, e.g. base:allocation */

    /* out */
    bool meta_selected;         /* the server selected meta_context */
    uint32_t meta_context_id;
    uint64_t size;
    uint16_t flags;             /* transmission flags */
    uint32_t min_block;
    uint32_t opt_block;
    uint32_t max_block;
    char *description;          /* listing only */
    GPtrArray *contexts;        /* listing only: available contexts */
} NBDExportInfo;

void nbd_export_info_clear(NBDExportInfo *info);

/*
 * TLS for a client handshake (NULL or no @creds: plain).  With client-
 * endpoint @creds, NBD_OPT_STARTTLS is negotiated first; @session then
 * receives the session layered over the socket, which the caller frees
 * with qcrypto_tls_session_free() after closing the socket.
 */
typedef struct NBDClientTLS {
    QCryptoTLSCreds *creds;
    const char *hostname;       /* checked against the certificate */
    QCryptoTLSSession *session; /* out */
} NBDClientTLS;

/*
 * Performs the handshake on a connected socket and enters transmission
 * for info->name: NBD_OPT_GO (falling back to NBD_OPT_EXPORT_NAME for
 * servers without it), with structured replies and the meta context when
 * asked for.  Returns 0 or -1 with @errp.
 */
int coroutine_fn nbd_receive_negotiate(QemuCoSocket *sock, NBDClientTLS *tls,
                                       NBDExportInfo *info, Error **errp);

/*
 * Lists the server's exports with their details (NBD_OPT_LIST, then
 * NBD_OPT_INFO and NBD_OPT_LIST_META_CONTEXT for each) and ends the
 * session with NBD_OPT_ABORT.  Returns the number of exports (*list is a
 * g_new array to free with nbd_free_export_list) or -1 with @errp.
 */
int coroutine_fn nbd_receive_export_list(QemuCoSocket *sock,
                                         NBDClientTLS *tls,
                                         NBDExportInfo **list, Error **errp);
void nbd_free_export_list(NBDExportInfo *list, int count);

/* Sends one request header with an optional payload. */
int coroutine_fn nbd_send_request(QemuCoSocket *sock, const NBDRequest *req,
                                  QEMUIOVector *payload, Error **errp);
/*
 * Reads the next reply header.  Returns 1, 0 at a clean end-of-file
 * before the header, or -1 with @errp (including an unknown magic).
 */
int coroutine_fn nbd_receive_reply(QemuCoSocket *sock, NBDReply *reply,
                                   Error **errp);

/* ---- Server (nbd/server.c) ----------------------------------------- */

typedef struct NBDServer NBDServer;
typedef struct NBDExport NBDExport;

/*
 * Starts a server.  With @addr it listens there and accepts at most
 * @max_connections simultaneous clients (0 = unlimited; further
 * connections wait in the backlog); without, clients are only added with
 * nbd_server_add_client().
 */
NBDServer *nbd_server_new(const SocketAddress *addr, int max_connections,
                          Error **errp);
/*
 * Disconnects every client, removes every export (hard) and frees the
 * server once the clients are gone.  Not from coroutine context.
 */
void nbd_server_free(NBDServer *srv);
/* Clients that do not finish the handshake in time are dropped. */
#define NBD_DEFAULT_HANDSHAKE_TIMEOUT_NS (10 * NANOSECONDS_PER_SECOND)
void nbd_server_set_handshake_timeout(NBDServer *srv, int64_t ns);
/*
 * With server-endpoint @creds (the server takes a reference), clients
 * must negotiate NBD_OPT_STARTTLS before anything else; NULL: plain.
 */
void nbd_server_set_tls_creds(NBDServer *srv, QCryptoTLSCreds *creds);
/* @cb runs after each client connection has been torn down. */
typedef void NBDClientClosedFunc(void *opaque);
void nbd_server_set_client_closed_cb(NBDServer *srv, NBDClientClosedFunc *cb,
                                     void *opaque);
/* Serves a connected socket (the server takes over @fd). */
void nbd_server_add_client(NBDServer *srv, int fd);
unsigned nbd_server_client_count(NBDServer *srv);

/*
 * Extension point for "qemu:dirty-bitmap:NAME" and similar contexts: the
 * function reports the state flags valid for the first *pnum bytes of
 * [offset, offset + bytes) (for dirty bitmaps: 1 = dirty).  Returns 0 or
 * a negative errno.
 */
typedef int coroutine_fn NBDMetaExtentsFunc(void *opaque, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            uint32_t *flags);

typedef void NBDExportDeletedFunc(NBDExport *exp, void *opaque);

typedef enum NBDExportRemoveMode {
    NBD_EXPORT_REMOVE_SAFE,     /* refuse while clients are connected */
    NBD_EXPORT_REMOVE_HARD,     /* disconnect them */
} NBDExportRemoveMode;

/*
 * Exports @bs as @name (unique on @srv; at most NBD_MAX_STRING_SIZE
 * bytes).  The export attaches @bs to a BlockBackend of its own, which
 * holds a reference on the node until the export is gone.
 */
NBDExport *nbd_export_new(NBDServer *srv, BlockDriverState *bs,
                          const char *name, const char *description,
                          bool writable, bool allocation_depth,
                          Error **errp);
/*
 * Offers "qemu:dirty-bitmap:@bitmap" on the export; @release(@opaque)
 * runs when the export is freed.
 */
bool nbd_export_add_meta_context(NBDExport *exp, const char *bitmap,
                                 NBDMetaExtentsFunc *fn, void *opaque,
                                 GDestroyNotify release, Error **errp);
/* @cb runs once the export is gone (BLOCK_EXPORT_DELETED). */
void nbd_export_set_deleted_cb(NBDExport *exp, NBDExportDeletedFunc *cb,
                               void *opaque);
/*
 * Removes the export from the server: it is no longer offered, and it is
 * freed (dropping its node reference) once its last client is gone.
 * NBD_EXPORT_REMOVE_SAFE fails while clients are connected.
 */
int nbd_export_remove(NBDExport *exp, NBDExportRemoveMode mode, Error **errp);
NBDExport *nbd_export_find(NBDServer *srv, const char *name);
/* Iterates over the exports not being removed (@prev NULL starts). */
NBDExport *nbd_export_next(NBDServer *srv, NBDExport *prev);
const char *nbd_export_get_name(NBDExport *exp);
const char *nbd_export_get_description(NBDExport *exp);
BlockBackend *nbd_export_get_blk(NBDExport *exp);
unsigned nbd_export_client_count(NBDExport *exp);

#endif

/*
 * NBD codec shared by the client and the server.
 */
#include "qemu/osdep.h"
#include "block/nbd.h"

void nbd_encode_request(uint8_t buf[NBD_REQUEST_SIZE], const NBDRequest *req)
{
    nbd_put32(buf, NBD_REQUEST_MAGIC);
    nbd_put16(buf + 4, req->flags);
    nbd_put16(buf + 6, req->type);
    nbd_put64(buf + 8, req->cookie);
    nbd_put64(buf + 16, req->offset);
    nbd_put32(buf + 24, req->len);
}

bool nbd_decode_request(const uint8_t buf[NBD_REQUEST_SIZE], NBDRequest *req)
{
    if (nbd_get32(buf) != NBD_REQUEST_MAGIC) {
        return false;
    }
    req->flags = nbd_get16(buf + 4);
    req->type = nbd_get16(buf + 6);
    req->cookie = nbd_get64(buf + 8);
    req->offset = nbd_get64(buf + 16);
    req->len = nbd_get32(buf + 24);
    return true;
}

void nbd_encode_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                             uint32_t nbd_error, uint64_t cookie)
{
    nbd_put32(buf, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(buf + 4, nbd_error);
    nbd_put64(buf + 8, cookie);
}

void nbd_encode_chunk_header(uint8_t buf[NBD_STRUCTURED_REPLY_SIZE],
                             uint16_t flags, uint16_t type, uint64_t cookie,
                             uint32_t length)
{
    nbd_put32(buf, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16(buf + 4, flags);
    nbd_put16(buf + 6, type);
    nbd_put64(buf + 8, cookie);
    nbd_put32(buf + 16, length);
}

int nbd_decode_reply_head(const uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                          NBDReply *reply)
{
    memset(reply, 0, sizeof(*reply));
    reply->magic = nbd_get32(buf);
    switch (reply->magic) {
    case NBD_SIMPLE_REPLY_MAGIC:
        reply->error = nbd_get32(buf + 4);
        reply->cookie = nbd_get64(buf + 8);
        return 0;
    case NBD_STRUCTURED_REPLY_MAGIC:
        reply->flags = nbd_get16(buf + 4);
        reply->type = nbd_get16(buf + 6);
        reply->cookie = nbd_get64(buf + 8);
        return 4;
    default:
        return -1;
    }
}

void nbd_decode_chunk_tail(const uint8_t buf[4], NBDReply *reply)
{
    reply->length = nbd_get32(buf);
}

uint32_t system_errno_to_nbd_errno(int err)
{
    switch (err) {
    case 0:
        return NBD_SUCCESS;
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case EIO:
        return NBD_EIO;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
        return NBD_EINVAL;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG:
    case ENOSPC:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
    case EOPNOTSUPP:
#endif
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

int nbd_errno_to_system_errno(uint32_t err)
{
    switch (err) {
    case NBD_SUCCESS:
        return 0;
    case NBD_EPERM:
        return EPERM;
    case NBD_EIO:
        return EIO;
    case NBD_ENOMEM:
        return ENOMEM;
    case NBD_EINVAL:
        return EINVAL;
    case NBD_ENOSPC:
        return ENOSPC;
    case NBD_EOVERFLOW:
        return EOVERFLOW;
    case NBD_ENOTSUP:
        return ENOTSUP;
    case NBD_ESHUTDOWN:
        return ESHUTDOWN;
    default:
        /* The spec asks clients to treat unknown values as EINVAL. */
        return EINVAL;
    }
}

const char *nbd_opt_lookup(uint32_t opt)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return "NBD_OPT_EXPORT_NAME";
    case NBD_OPT_ABORT:
        return "NBD_OPT_ABORT";
    case NBD_OPT_LIST:
        return "NBD_OPT_LIST";
    case NBD_OPT_STARTTLS:
        return "NBD_OPT_STARTTLS";
    case NBD_OPT_INFO:
        return "NBD_OPT_INFO";
    case NBD_OPT_GO:
        return "NBD_OPT_GO";
    case NBD_OPT_STRUCTURED_REPLY:
        return "NBD_OPT_STRUCTURED_REPLY";
    case NBD_OPT_LIST_META_CONTEXT:
        return "NBD_OPT_LIST_META_CONTEXT";
    case NBD_OPT_SET_META_CONTEXT:
        return "NBD_OPT_SET_META_CONTEXT";
    default:
        return "<unknown>";
    }
}

const char *nbd_rep_lookup(uint32_t rep)
{
    switch (rep) {
    case NBD_REP_ACK:
        return "NBD_REP_ACK";
    case NBD_REP_SERVER:
        return "NBD_REP_SERVER";
    case NBD_REP_INFO:
        return "NBD_REP_INFO";
    case NBD_REP_META_CONTEXT:
        return "NBD_REP_META_CONTEXT";
    case NBD_REP_ERR_UNSUP:
        return "NBD_REP_ERR_UNSUP";
    case NBD_REP_ERR_POLICY:
        return "NBD_REP_ERR_POLICY";
    case NBD_REP_ERR_INVALID:
        return "NBD_REP_ERR_INVALID";
    case NBD_REP_ERR_PLATFORM:
        return "NBD_REP_ERR_PLATFORM";
    case NBD_REP_ERR_TLS_REQD:
        return "NBD_REP_ERR_TLS_REQD";
    case NBD_REP_ERR_UNKNOWN:
        return "NBD_REP_ERR_UNKNOWN";
    case NBD_REP_ERR_SHUTDOWN:
        return "NBD_REP_ERR_SHUTDOWN";
    case NBD_REP_ERR_BLOCK_SIZE_REQD:
        return "NBD_REP_ERR_BLOCK_SIZE_REQD";
    case NBD_REP_ERR_TOO_BIG:
        return "NBD_REP_ERR_TOO_BIG";
    default:
        return "<unknown>";
    }
}

const char *nbd_info_lookup(uint16_t info)
{
    switch (info) {
    case NBD_INFO_EXPORT:
        return "NBD_INFO_EXPORT";
    case NBD_INFO_NAME:
        return "NBD_INFO_NAME";
    case NBD_INFO_DESCRIPTION:
        return "NBD_INFO_DESCRIPTION";
    case NBD_INFO_BLOCK_SIZE:
        return "NBD_INFO_BLOCK_SIZE";
    default:
        return "<unknown>";
    }
}

const char *nbd_cmd_lookup(uint16_t cmd)
{
    switch (cmd) {
    case NBD_CMD_READ:
        return "NBD_CMD_READ";
    case NBD_CMD_WRITE:
        return "NBD_CMD_WRITE";
    case NBD_CMD_DISC:
        return "NBD_CMD_DISC";
    case NBD_CMD_FLUSH:
        return "NBD_CMD_FLUSH";
    case NBD_CMD_TRIM:
        return "NBD_CMD_TRIM";
    case NBD_CMD_CACHE:
        return "NBD_CMD_CACHE";
    case NBD_CMD_WRITE_ZEROES:
        return "NBD_CMD_WRITE_ZEROES";
    case NBD_CMD_BLOCK_STATUS:
        return "NBD_CMD_BLOCK_STATUS";
    default:
        return "<unknown>";
    }
}

const char *nbd_reply_type_lookup(uint16_t type)
{
    switch (type) {
    case NBD_REPLY_TYPE_NONE:
        return "NBD_REPLY_TYPE_NONE";
    case NBD_REPLY_TYPE_OFFSET_DATA:
        return "NBD_REPLY_TYPE_OFFSET_DATA";
    case NBD_REPLY_TYPE_OFFSET_HOLE:
        return "NBD_REPLY_TYPE_OFFSET_HOLE";
    case NBD_REPLY_TYPE_BLOCK_STATUS:
        return "NBD_REPLY_TYPE_BLOCK_STATUS";
    case NBD_REPLY_TYPE_ERROR:
        return "NBD_REPLY_TYPE_ERROR";
    case NBD_REPLY_TYPE_ERROR_OFFSET:
        return "NBD_REPLY_TYPE_ERROR_OFFSET";
    default:
        return "<unknown>";
    }
}

const char *nbd_err_lookup(uint32_t err)
{
    switch (err) {
    case NBD_SUCCESS:
        return "success";
    case NBD_EPERM:
        return "EPERM";
    case NBD_EIO:
        return "EIO";
    case NBD_ENOMEM:
        return "ENOMEM";
    case NBD_EINVAL:
        return "EINVAL";
    case NBD_ENOSPC:
        return "ENOSPC";
    case NBD_EOVERFLOW:
        return "EOVERFLOW";
    case NBD_ENOTSUP:
        return "ENOTSUP";
    case NBD_ESHUTDOWN:
        return "ESHUTDOWN";
    default:
        return "<unknown>";
    }
}

char *nbd_flags_to_string(uint16_t flags)
{
    /* Bit 0 (HAS_FLAGS) is implied and not listed. */
    static const char *const names[] = {
        NULL, "readonly", "flush", "fua", "rotational", "trim", "zeroes",
        "df", "multi-conn", "resize", "cache", "fast-zero",
    };
    GString *s = g_string_new("");

    for (size_t i = 1; i < ARRAY_SIZE(names); i++) {
        if (flags & (1 << i)) {
            g_string_append_printf(s, " %s", names[i]);
        }
    }
    return g_string_free(s, false);
}

/*
 * NBD client: handshake, export listing and the request/reply framing
 * used by the nbd block driver (block/nbd.c) and qblock-nbd --list.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "block/nbd.h"
#include "nbd-trace.h"

void nbd_export_info_clear(NBDExportInfo *info)
{
    g_free(info->name);
    g_free(info->meta_context);
    g_free(info->description);
    if (info->contexts) {
        g_ptr_array_free(info->contexts, true);
    }
    memset(info, 0, sizeof(*info));
}

void nbd_free_export_list(NBDExportInfo *list, int count)
{
    for (int i = 0; i < count; i++) {
        nbd_export_info_clear(&list[i]);
    }
    g_free(list);
}

/* ---- Options -------------------------------------------------------- */

static int coroutine_fn nbd_send_option(QemuCoSocket *sock, uint32_t opt,
                                        const void *data, uint32_t len,
                                        Error **errp)
{
    uint8_t hdr[16];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)data, .iov_len = len },
    };

    trace_nbd_client_option(opt, nbd_opt_lookup(opt));
    nbd_put64(hdr, NBD_OPTS_MAGIC);
    nbd_put32(hdr + 8, opt);
    nbd_put32(hdr + 12, len);
    if (qemu_co_sock_writev_all(sock, iov, 2, errp) < 0) {
        error_prepend(errp, "Failed to send option request %s: ",
                      nbd_opt_lookup(opt));
        return -1;
    }
    return 0;
}

/* Sends an option whose payload is an export name and info requests. */
static int coroutine_fn nbd_send_info_option(QemuCoSocket *sock, uint32_t opt,
                                             const char *name,
                                             const uint16_t *reqs,
                                             uint16_t nreqs, Error **errp)
{
    size_t nlen = strlen(name);
    g_autofree uint8_t *buf = g_malloc(4 + nlen + 2 + 2 * nreqs);

    nbd_put32(buf, nlen);
    memcpy(buf + 4, name, nlen);
    nbd_put16(buf + 4 + nlen, nreqs);
    for (uint16_t i = 0; i < nreqs; i++) {
        nbd_put16(buf + 6 + nlen + 2 * i, reqs[i]);
    }
    return nbd_send_option(sock, opt, buf, 6 + nlen + 2 * nreqs, errp);
}

typedef struct NBDOptReply {
    uint32_t type;
    uint32_t len;
    uint8_t *data;              /* g_malloc'd, len bytes (+ NUL) */
} NBDOptReply;

static int coroutine_fn nbd_receive_option_reply(QemuCoSocket *sock,
                                                 uint32_t opt,
                                                 NBDOptReply *rep,
                                                 Error **errp)
{
    uint8_t hdr[20];

    rep->data = NULL;
    if (qemu_co_sock_read_all(sock, hdr, sizeof(hdr), errp) < 0) {
        error_prepend(errp, "Failed to read option reply: ");
        return -1;
    }
    if (nbd_get64(hdr) != NBD_REP_MAGIC) {
        error_setg(errp, "Unexpected option reply magic");
        return -1;
    }
    if (nbd_get32(hdr + 8) != opt) {
        error_setg(errp, "Unexpected option type %" PRIu32 " (%s), expected "
                   "%" PRIu32 " (%s)", nbd_get32(hdr + 8),
                   nbd_opt_lookup(nbd_get32(hdr + 8)), opt,
                   nbd_opt_lookup(opt));
        return -1;
    }
    rep->type = nbd_get32(hdr + 12);
    rep->len = nbd_get32(hdr + 16);
    trace_nbd_client_option_reply(opt, rep->type, nbd_rep_lookup(rep->type),
                                  rep->len);
    if (rep->len > NBD_MAX_OPTION_SIZE) {
        error_setg(errp, "server's reply to option %s is too long",
                   nbd_opt_lookup(opt));
        return -1;
    }
    rep->data = g_malloc0(rep->len + 1);
    if (qemu_co_sock_read_all(sock, rep->data, rep->len, errp) < 0) {
        error_prepend(errp, "Failed to read option reply: ");
        g_free(rep->data);
        rep->data = NULL;
        return -1;
    }
    return 0;
}

/* Turns an error reply into @errp, with the server's message as hint. */
static void nbd_option_error(uint32_t opt, NBDOptReply *rep, Error **errp)
{
    switch (rep->type) {
    case NBD_REP_ERR_UNSUP:
        error_setg(errp, "Unsupported option %s", nbd_opt_lookup(opt));
        break;
    case NBD_REP_ERR_POLICY:
        error_setg(errp, "Denied by server for option %s",
                   nbd_opt_lookup(opt));
        break;
    case NBD_REP_ERR_INVALID:
        error_setg(errp, "Invalid parameters for option %s",
                   nbd_opt_lookup(opt));
        break;
    case NBD_REP_ERR_TLS_REQD:
        error_setg(errp, "TLS negotiation required before option %s",
                   nbd_opt_lookup(opt));
        break;
    case NBD_REP_ERR_UNKNOWN:
        error_setg(errp, "Requested export not available");
        break;
    case NBD_REP_ERR_SHUTDOWN:
        error_setg(errp, "Server shutting down before option %s",
                   nbd_opt_lookup(opt));
        break;
    default:
        error_setg(errp, "Unknown error 0x%" PRIx32 " for option %s",
                   rep->type, nbd_opt_lookup(opt));
        break;
    }
    if (rep->len) {
        error_append_hint(errp, "server reported: %s\n",
                          (const char *)rep->data);
    }
}

/* Structured replies: 1 negotiated, 0 refused, -1 on error. */
static int coroutine_fn nbd_request_structured(QemuCoSocket *sock,
                                               Error **errp)
{
    NBDOptReply rep;
    int ret;

    if (nbd_send_option(sock, NBD_OPT_STRUCTURED_REPLY, NULL, 0, errp) < 0 ||
        nbd_receive_option_reply(sock, NBD_OPT_STRUCTURED_REPLY, &rep,
                                 errp) < 0) {
        return -1;
    }
    ret = rep.type == NBD_REP_ACK;
    g_free(rep.data);
    return ret;
}

/*
 * Selects (SET) or lists (LIST) meta contexts of @name.  With SET,
 * @query is the one context asked for and *id and *selected report it; with
 * LIST, the names are appended to @names.
 */
static int coroutine_fn nbd_meta_context(QemuCoSocket *sock, uint32_t opt,
                                         const char *name, const char *query,
                                         uint32_t *id, bool *selected,
                                         GPtrArray *names, Error **errp)
{
    size_t nlen = strlen(name);
    size_t qlen = query ? strlen(query) : 0;
    g_autofree uint8_t *buf = g_malloc(12 + nlen + qlen);
    size_t len = 8 + nlen;

    nbd_put32(buf, nlen);
    memcpy(buf + 4, name, nlen);
    nbd_put32(buf + 4 + nlen, query ? 1 : 0);
    if (query) {
        nbd_put32(buf + 8 + nlen, qlen);
        memcpy(buf + 12 + nlen, query, qlen);
        len += 4 + qlen;
    }
    if (nbd_send_option(sock, opt, buf, len, errp) < 0) {
        return -1;
    }
    for (;;) {
        NBDOptReply rep;

        if (nbd_receive_option_reply(sock, opt, &rep, errp) < 0) {
            return -1;
        }
        if (rep.type == NBD_REP_ACK) {
            g_free(rep.data);
            return 0;
        }
        if (NBD_REP_IS_ERR(rep.type)) {
            /* Contexts are optional: carry on without them. */
            g_free(rep.data);
            return 0;
        }
        if (rep.type == NBD_REP_META_CONTEXT && rep.len >= 4) {
            const char *ctx = (const char *)rep.data + 4;

            if (names) {
                g_ptr_array_add(names, g_strdup(ctx));
            } else if (query && !strcmp(ctx, query)) {
                *id = nbd_get32(rep.data);
                *selected = true;
            }
        }
        g_free(rep.data);
    }
}

/* Parses one NBD_REP_INFO payload into @info. */
static void nbd_parse_info(NBDExportInfo *info, NBDOptReply *rep)
{
    const uint8_t *d = rep->data;

    if (rep->len < 2) {
        return;
    }
    switch (nbd_get16(d)) {
    case NBD_INFO_EXPORT:
        if (rep->len >= 12) {
            info->size = nbd_get64(d + 2);
            info->flags = nbd_get16(d + 10);
        }
        break;
    case NBD_INFO_BLOCK_SIZE:
        if (rep->len >= 14) {
            info->min_block = nbd_get32(d + 2);
            info->opt_block = nbd_get32(d + 6);
            info->max_block = nbd_get32(d + 10);
        }
        break;
    case NBD_INFO_DESCRIPTION:
        g_free(info->description);
        info->description = g_strndup((const char *)d + 2, rep->len - 2);
        break;
    default:
        break;
    }
}

/*
 * NBD_OPT_INFO / NBD_OPT_GO.  Returns 1 on success, 0 if the server does
 * not know the option, -1 on error.
 */
static int coroutine_fn nbd_opt_info_go(QemuCoSocket *sock, uint32_t opt,
                                        NBDExportInfo *info, Error **errp)
{
    static const uint16_t reqs[] = {
        NBD_INFO_BLOCK_SIZE, NBD_INFO_DESCRIPTION, NBD_INFO_NAME,
    };
    uint16_t nreqs = opt == NBD_OPT_INFO ? 3 : (info->request_sizes ? 1 : 0);
    bool have_export = false;

    if (nbd_send_info_option(sock, opt, info->name, reqs, nreqs, errp) < 0) {
        return -1;
    }
    for (;;) {
        NBDOptReply rep;

        if (nbd_receive_option_reply(sock, opt, &rep, errp) < 0) {
            return -1;
        }
        if (rep.type == NBD_REP_ACK) {
            g_free(rep.data);
            if (!have_export) {
                error_setg(errp, "server did not send export information");
                return -1;
            }
            return 1;
        }
        if (rep.type == NBD_REP_ERR_UNSUP) {
            g_free(rep.data);
            return 0;
        }
        if (NBD_REP_IS_ERR(rep.type)) {
            nbd_option_error(opt, &rep, errp);
            g_free(rep.data);
            return -1;
        }
        if (rep.type == NBD_REP_INFO) {
            have_export |= rep.len >= 12 &&
                           nbd_get16(rep.data) == NBD_INFO_EXPORT;
            nbd_parse_info(info, &rep);
        }
        g_free(rep.data);
    }
}

/* NBD_OPT_EXPORT_NAME: the old way in; no error reply exists. */
static int coroutine_fn nbd_opt_export_name(QemuCoSocket *sock,
                                            NBDExportInfo *info,
                                            bool no_zeroes, Error **errp)
{
    uint8_t buf[10 + 124];

    if (nbd_send_option(sock, NBD_OPT_EXPORT_NAME, info->name,
                        strlen(info->name), errp) < 0) {
        return -1;
    }
    if (qemu_co_sock_read_all(sock, buf, no_zeroes ? 10 : sizeof(buf),
                              errp) < 0) {
        error_prepend(errp, "Failed to read export information: ");
        return -1;
    }
    info->size = nbd_get64(buf);
    info->flags = nbd_get16(buf + 8);
    return 0;
}

/*
 * NBD_OPT_STARTTLS and the TLS handshake; on success tls->session is
 * layered over @sock.
 */
static int coroutine_fn nbd_starttls(QemuCoSocket *sock, NBDClientTLS *tls,
                                     Error **errp)
{
    g_autoptr(QCryptoTLSSession) sess = NULL;
    NBDOptReply rep;

    if (nbd_send_option(sock, NBD_OPT_STARTTLS, NULL, 0, errp) < 0 ||
        nbd_receive_option_reply(sock, NBD_OPT_STARTTLS, &rep, errp) < 0) {
        return -1;
    }
    g_free(rep.data);
    if (rep.type != NBD_REP_ACK) {
        if (NBD_REP_IS_ERR(rep.type)) {
            nbd_option_error(NBD_OPT_STARTTLS, &rep, errp);
            error_prepend(errp, "Server rejected request to start TLS: ");
        } else {
            error_setg(errp, "Unexpected reply type %" PRIu32 " (%s) to "
                       "NBD_OPT_STARTTLS", rep.type,
                       nbd_rep_lookup(rep.type));
        }
        return -1;
    }
    sess = qcrypto_tls_session_new(tls->creds, tls->hostname, errp);
    if (!sess || qcrypto_tls_session_handshake(sess, sock, errp) < 0) {
        return -1;
    }
    tls->session = g_steal_pointer(&sess);
    return 0;
}

/*
 * Reads the greeting and sends our flags; *fixed and *no_zeroes report
 * them.  With @tls credentials, TLS is started before returning.
 */
static int coroutine_fn nbd_start_negotiate(QemuCoSocket *sock,
                                            NBDClientTLS *tls, bool *fixed,
                                            bool *no_zeroes, Error **errp)
{
    uint8_t buf[18];
    uint8_t cflags[4];
    uint16_t hflags;

    if (qemu_co_sock_read_all(sock, buf, 16, errp) < 0) {
        error_prepend(errp, "Failed to read initial magic: ");
        return -1;
    }
    if (nbd_get64(buf) != NBD_INIT_MAGIC) {
        error_setg(errp, "Invalid magic received");
        return -1;
    }
    if (nbd_get64(buf + 8) == NBD_CLIENT_MAGIC) {
        error_setg(errp, "Server uses the unsupported oldstyle protocol");
        return -1;
    }
    if (nbd_get64(buf + 8) != NBD_OPTS_MAGIC) {
        error_setg(errp, "Bad server magic received");
        return -1;
    }
    if (qemu_co_sock_read_all(sock, buf + 16, 2, errp) < 0) {
        error_prepend(errp, "Failed to read server flags: ");
        return -1;
    }
    hflags = nbd_get16(buf + 16);
    *fixed = hflags & NBD_FLAG_FIXED_NEWSTYLE;
    *no_zeroes = hflags & NBD_FLAG_NO_ZEROES;
    nbd_put32(cflags, (*fixed ? NBD_FLAG_C_FIXED_NEWSTYLE : 0) |
                      (*no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));
    if (qemu_co_sock_write_all(sock, cflags, 4, errp) < 0) {
        error_prepend(errp, "Failed to send client flags: ");
        return -1;
    }
    if (tls && tls->creds) {
        if (!*fixed) {
            error_setg(errp, "Server does not support STARTTLS");
            return -1;
        }
        return nbd_starttls(sock, tls, errp);
    }
    return 0;
}

int coroutine_fn nbd_receive_negotiate(QemuCoSocket *sock, NBDClientTLS *tls,
                                       NBDExportInfo *info, Error **errp)
{
    bool fixed, no_zeroes;
    int ret;

    if (!info->name) {
        info->name = g_strdup("");
    }
    info->meta_selected = false;
    if (nbd_start_negotiate(sock, tls, &fixed, &no_zeroes, errp) < 0) {
        return -1;
    }
    if (!fixed) {
        info->structured_reply = false;
        return nbd_opt_export_name(sock, info, no_zeroes, errp);
    }
    if (info->structured_reply) {
        ret = nbd_request_structured(sock, errp);
        if (ret < 0) {
            return -1;
        }
        info->structured_reply = ret;
    }
    if (info->structured_reply && info->meta_context &&
        nbd_meta_context(sock, NBD_OPT_SET_META_CONTEXT, info->name,
                         info->meta_context, &info->meta_context_id,
                         &info->meta_selected, NULL, errp) < 0) {
        return -1;
    }
    ret = nbd_opt_info_go(sock, NBD_OPT_GO, info, errp);
    if (ret < 0) {
        return -1;
    }
    if (ret == 0) {
        /* A server without NBD_OPT_GO. */
        ret = nbd_opt_export_name(sock, info, no_zeroes, errp);
        if (ret < 0) {
            return -1;
        }
    }
    trace_nbd_client_export(info->size, info->flags);
    return 0;
}

int coroutine_fn nbd_receive_export_list(QemuCoSocket *sock,
                                         NBDClientTLS *tls,
                                         NBDExportInfo **list, Error **errp)
{
    g_autoptr(GArray) exports = g_array_new(false, true,
                                            sizeof(NBDExportInfo));
    bool fixed, no_zeroes, structured;
    NBDOptReply rep;
    int ret;

    *list = NULL;
    if (nbd_start_negotiate(sock, tls, &fixed, &no_zeroes, errp) < 0) {
        return -1;
    }
    if (!fixed) {
        error_setg(errp, "Server does not support option listing");
        return -1;
    }
    ret = nbd_request_structured(sock, errp);
    if (ret < 0) {
        return -1;
    }
    structured = ret;

    if (nbd_send_option(sock, NBD_OPT_LIST, NULL, 0, errp) < 0) {
        return -1;
    }
    for (;;) {
        NBDExportInfo info = { 0 };
        uint32_t nlen;

        if (nbd_receive_option_reply(sock, NBD_OPT_LIST, &rep, errp) < 0) {
            goto fail;
        }
        if (rep.type == NBD_REP_ACK) {
            g_free(rep.data);
            break;
        }
        if (NBD_REP_IS_ERR(rep.type) || rep.type != NBD_REP_SERVER ||
            rep.len < 4 || (nlen = nbd_get32(rep.data)) > rep.len - 4) {
            if (NBD_REP_IS_ERR(rep.type)) {
                nbd_option_error(NBD_OPT_LIST, &rep, errp);
            } else {
                error_setg(errp, "Unexpected reply to NBD_OPT_LIST");
            }
            g_free(rep.data);
            goto fail;
        }
        info.name = g_strndup((const char *)rep.data + 4, nlen);
        if (rep.len > 4 + nlen) {
            info.description = g_strndup((const char *)rep.data + 4 + nlen,
                                         rep.len - 4 - nlen);
        }
        g_free(rep.data);
        g_array_append_val(exports, info);
    }

    for (guint i = 0; i < exports->len; i++) {
        NBDExportInfo *info = &g_array_index(exports, NBDExportInfo, i);

        info->structured_reply = structured;
        info->contexts = g_ptr_array_new_with_free_func(g_free);
        ret = nbd_opt_info_go(sock, NBD_OPT_INFO, info, errp);
        if (ret == 0) {
            error_setg(errp, "Server does not support NBD_OPT_INFO");
        }
        if (ret <= 0) {
            goto fail;
        }
        if (structured &&
            nbd_meta_context(sock, NBD_OPT_LIST_META_CONTEXT, info->name,
                             NULL, NULL, NULL, info->contexts, errp) < 0) {
            goto fail;
        }
    }

    /* Polite goodbye; the server may close without answering. */
    if (nbd_send_option(sock, NBD_OPT_ABORT, NULL, 0, NULL) == 0 &&
        nbd_receive_option_reply(sock, NBD_OPT_ABORT, &rep, NULL) == 0) {
        g_free(rep.data);
    }
    ret = exports->len;
    *list = (NBDExportInfo *)g_array_free(g_steal_pointer(&exports), false);
    return ret;

fail:
    for (guint i = 0; i < exports->len; i++) {
        nbd_export_info_clear(&g_array_index(exports, NBDExportInfo, i));
    }
    return -1;
}

/* ---- Transmission --------------------------------------------------- */

int coroutine_fn nbd_send_request(QemuCoSocket *sock, const NBDRequest *req,
                                  QEMUIOVector *payload, Error **errp)
{
    uint8_t hdr[NBD_REQUEST_SIZE];
    int niov = 1 + (payload ? payload->niov : 0);
    g_autofree struct iovec *iov = g_new(struct iovec, niov);

    nbd_encode_request(hdr, req);
    iov[0] = (struct iovec) { .iov_base = hdr, .iov_len = sizeof(hdr) };
    if (payload) {
        memcpy(iov + 1, payload->iov, payload->niov * sizeof(*iov));
    }
    return qemu_co_sock_writev_all(sock, iov, niov, errp);
}

int coroutine_fn nbd_receive_reply(QemuCoSocket *sock, NBDReply *reply,
                                   Error **errp)
{
    uint8_t buf[NBD_SIMPLE_REPLY_SIZE];
    uint8_t tail[4];
    int ret = qemu_co_sock_read_all_eof(sock, buf, sizeof(buf), errp);

    if (ret <= 0) {
        return ret;
    }
    ret = nbd_decode_reply_head(buf, reply);
    if (ret < 0) {
        error_setg(errp, "invalid reply magic 0x%" PRIx32, nbd_get32(buf));
        return -1;
    }
    if (ret > 0) {
        if (qemu_co_sock_read_all(sock, tail, sizeof(tail), errp) < 0) {
            return -1;
        }
        nbd_decode_chunk_tail(tail, reply);
    }
    return 1;
}

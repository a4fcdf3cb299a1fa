/*
 * The daemon's NBD server: nbd-server-start, nbd-server-add,
 * nbd-server-remove and nbd-server-stop.
 *
 * There is at most one server.  Its exports are block exports
 * (block/export.c), so nbd-server-add is block-export-add with the
 * export name as id.  Stopping the server removes every export (hard);
 * their BLOCK_EXPORT_DELETED events follow as each one goes.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/export.h"
#include "qapi/qapi-commands.h"

static NBDServer *nbd_server;

NBDServer *nbd_server_get(Error **errp)
{
    if (!nbd_server) {
        error_setg(errp, "NBD server not running");
    }
    return nbd_server;
}

/* The flat SocketAddress of a legacy one ({type, data: {...}}). */
static SocketAddress *nbd_address_from_legacy(SocketAddressLegacy *addr,
                                              Error **errp)
{
    switch (addr->type) {
    case SOCKET_ADDRESS_TYPE_INET:
        return socket_address_new_inet(addr->u.inet.data->host,
                                       addr->u.inet.data->port);
    case SOCKET_ADDRESS_TYPE_UNIX:
        return socket_address_new_unix(addr->u.q_unix.data->path);
    default:
        error_setg(errp, "NBD server address type '%s' is not supported",
                   SocketAddressType_str(addr->type));
        return NULL;
    }
}

bool nbd_server_start(const SocketAddress *addr, const char *tls_creds,
                      const char *tls_authz, uint32_t max_connections,
                      Error **errp)
{
    if (nbd_server) {
        error_setg(errp, "NBD server already running");
        return false;
    }
    QCryptoTLSCreds *creds = NULL;

    if (tls_authz) {
        error_setg(errp, "'tls-authz' is not supported");
        return false;
    }
    if (tls_creds) {
        creds = qcrypto_tls_creds_find(tls_creds,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                       errp);
        if (!creds) {
            return false;
        }
    }
    nbd_server = nbd_server_new(addr, max_connections, errp);
    if (nbd_server) {
        nbd_server_set_tls_creds(nbd_server, creds);
    }
    return nbd_server != NULL;
}

void qmp_nbd_server_start(SocketAddressLegacy *addr, const char *tls_creds,
                          const char *tls_authz, bool has_max_connections,
                          uint32_t max_connections, Error **errp)
{
    g_autoptr(SocketAddress) saddr = NULL;

    if (nbd_server) {
        error_setg(errp, "NBD server already running");
        return;
    }
    saddr = nbd_address_from_legacy(addr, errp);
    if (saddr) {
        nbd_server_start(saddr, tls_creds, tls_authz,
                         has_max_connections ? max_connections : 0, errp);
    }
}

void qmp_nbd_server_add(NbdServerAddOptions *arg, Error **errp)
{
    BlockExportOptions opts = { .type = BLOCK_EXPORT_TYPE_NBD };
    BlockDirtyBitmapOrStr bitmap_ref = { .type = QTYPE_QSTRING };
    BlockDirtyBitmapOrStrList bitmaps = { .value = &bitmap_ref };
    BlockDriverState *bs;

    if (!nbd_server_get(errp)) {
        return;
    }
    bs = bdrv_lookup_bs(arg->device, arg->device, errp);
    if (!bs) {
        return;
    }
    /* Borrowed strings only: nothing here is freed. */
    opts.id = arg->name ? arg->name : arg->device;
    opts.node_name = (char *)bdrv_get_node_name(bs);
    opts.has_writable = arg->has_writable;
    opts.writable = arg->writable;
    opts.u.nbd.name = opts.id;
    opts.u.nbd.description = arg->description;
    if (arg->bitmap) {
        bitmap_ref.u.local = arg->bitmap;
        opts.u.nbd.bitmaps = &bitmaps;
    }
    blk_exp_add(&opts, errp);
}

void qmp_nbd_server_remove(const char *name, bool has_mode,
                           BlockExportRemoveMode mode, Error **errp)
{
    blk_exp_del_nbd_name(name, has_mode ? mode : BLOCK_EXPORT_REMOVE_MODE_SAFE,
                         errp);
}

static void nbd_server_stop(void)
{
    NBDServer *srv = nbd_server;

    /* Cleared first: the exports' deleted callbacks may run inside. */
    nbd_server = NULL;
    blk_exp_server_stopping();
    nbd_server_free(srv);
}

void qmp_nbd_server_stop(Error **errp)
{
    if (!nbd_server_get(errp)) {
        return;
    }
    nbd_server_stop();
}

void blockdev_nbd_close_all_for_exit(void)
{
    if (nbd_server) {
        nbd_server_stop();
    }
    /* Clients are disconnected; each export goes once its last one has. */
    AIO_WAIT_WHILE(blk_exp_any());
}

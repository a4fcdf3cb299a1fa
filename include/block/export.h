/*
 * Block exports of the daemon: the registry behind block-export-add/-del,
 * query-block-exports and BLOCK_EXPORT_DELETED (block/export.c), and the
 * daemon's one NBD server (blockdev-nbd.c).
 *
 * Ownership: each export holds its node through the NBD export's own
 * BlockBackend; the registry entry lives until the NBD export reports
 * that it is gone (its last client left), then BLOCK_EXPORT_DELETED is
 * sent and the entry freed.
 */
#ifndef BLOCK_EXPORT_H
#define BLOCK_EXPORT_H

#include "block/nbd.h"
#include "qapi/qapi-types.h"

/*
 * Starts the daemon's NBD server on @addr (nbd-server-start and
 * --nbd-server).  TLS is refused until it exists.
 */
bool nbd_server_start(const SocketAddress *addr, const char *tls_creds,
                      const char *tls_authz, uint32_t max_connections,
                      Error **errp);
/* The running NBD server, or NULL with "NBD server not running". */
NBDServer *nbd_server_get(Error **errp);

/* block-export-add's semantics; also used by nbd-server-add. */
bool blk_exp_add(BlockExportOptions *opts, Error **errp);
/* Removes the export with id @id. */
bool blk_exp_del(const char *id, BlockExportRemoveMode mode, Error **errp);
/* Removes the NBD export named @name. */
bool blk_exp_del_nbd_name(const char *name, BlockExportRemoveMode mode,
                          Error **errp);
/*
 * Marks every export as shutting down (the NBD server is going away and
 * removes them itself); their entries go when the exports are gone.
 */
void blk_exp_server_stopping(void);
/* True while any export (even one shutting down) exists. */
bool blk_exp_any(void);

/*
 * Exit path: stops the NBD server and waits until every export is gone,
 * so their node references are dropped before the nodes are closed.
 */
void blockdev_nbd_close_all_for_exit(void);

#endif

/*
 * TLS credentials (GnuTLS) and TLS sessions layered over coroutine
 * sockets, for NBD's STARTTLS.
 *
 * Credentials are named objects created from the command line, in the
 * spelling of QEMU's -object:
 *
 *   tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]
 *   tls-creds-psk,id=ID,dir=DIR[,endpoint=server|client][,username=NAME]
 *
 * x509 reads ca-cert.pem, server-cert.pem and server-key.pem (servers) or
 * ca-cert.pem and optionally client-cert.pem + client-key.pem (clients)
 * from DIR.  PSK reads DIR/keys.psk, lines of "username:hexkey".
 *
 * Everything runs in the main loop thread.
 */
#ifndef CRYPTO_TLS_CREDS_H
#define CRYPTO_TLS_CREDS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/sockets.h"

typedef enum QCryptoTLSCredsEndpoint {
    QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
    QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
} QCryptoTLSCredsEndpoint;

typedef struct QCryptoTLSCreds QCryptoTLSCreds;
typedef struct QCryptoTLSSession QCryptoTLSSession;

/* Loaders; the result holds one reference. */
QCryptoTLSCreds *qcrypto_tls_creds_new_x509(const char *dir,
                                            QCryptoTLSCredsEndpoint endpoint,
                                            bool verify_peer, Error **errp);
/* @username: the client's identity (default "qemu"); ignored by servers. */
QCryptoTLSCreds *qcrypto_tls_creds_new_psk(const char *dir,
                                           QCryptoTLSCredsEndpoint endpoint,
                                           const char *username,
                                           Error **errp);
QCryptoTLSCreds *qcrypto_tls_creds_ref(QCryptoTLSCreds *creds);
void qcrypto_tls_creds_unref(QCryptoTLSCreds *creds);
QCryptoTLSCredsEndpoint qcrypto_tls_creds_get_endpoint(QCryptoTLSCreds *c);

/*
 * The object registry behind --object.  qcrypto_tls_creds_object_add()
 * parses "tls-creds-x509,id=..." (or tls-creds-psk) and registers the
 * credentials under their id, which must be new.
 */
bool qcrypto_tls_creds_object_add(const char *optarg, Error **errp);
/* Borrowed (the registry keeps its reference); NULL with @errp. */
QCryptoTLSCreds *qcrypto_tls_creds_find(const char *id,
                                        QCryptoTLSCredsEndpoint endpoint,
                                        Error **errp);
/* Drops every registered object (at exit, for leak checkers). */
void qcrypto_tls_creds_object_del_all(void);

/*
 * A session for one connection.  @hostname (clients, x509 only) is
 * checked against the server certificate; NULL skips that check.
 */
QCryptoTLSSession *qcrypto_tls_session_new(QCryptoTLSCreds *creds,
                                           const char *hostname,
                                           Error **errp);
/*
 * Runs the handshake over @sock, checks the peer and then layers the
 * session over @sock: from here on its reads and writes go through TLS.
 * The session must outlive every later use of @sock.  0 or -1.
 */
int coroutine_fn qcrypto_tls_session_handshake(QCryptoTLSSession *sess,
                                               QemuCoSocket *sock,
                                               Error **errp);
void qcrypto_tls_session_free(QCryptoTLSSession *sess);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QCryptoTLSSession, qcrypto_tls_session_free)

#endif

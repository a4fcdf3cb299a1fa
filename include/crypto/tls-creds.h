/*
 * TLS credentials (GnuTLS) and TLS sessions layered over coroutine
 * sockets, for NBD's STARTTLS.
 *
 * Credentials are named objects (qom/object-interfaces.c) created by QMP
 * object-add or from the command line, in the spelling of QEMU's -object:
 *
 *   tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]
 *   tls-creds-psk,id=ID,dir=DIR[,endpoint=server|client][,username=NAME]
 *   tls-creds-anon,id=ID[,endpoint=server|client]
 *
 * x509 reads ca-cert.pem, server-cert.pem and server-key.pem (servers) or
 * ca-cert.pem and optionally client-cert.pem + client-key.pem (clients)
 * from DIR.  PSK reads DIR/keys.psk, lines of "username:hexkey".  Anon
 * credentials encrypt without authenticating either side.
 *
 * Everything runs in the main loop thread.
 */
#ifndef CRYPTO_TLS_CREDS_H
#define CRYPTO_TLS_CREDS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/sockets.h"
/* QCryptoTLSCredsEndpoint and ObjectOptions come from the schema. */
#include "qapi/qapi-types.h"

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
/* Anonymous credentials: encryption only, nobody is authenticated. */
QCryptoTLSCreds *qcrypto_tls_creds_new_anon(QCryptoTLSCredsEndpoint endpoint,
                                            Error **errp);
/*
 * Credentials from object-add's options (@opts->qom_type is one of the
 * tls-creds types): dir, endpoint, verify-peer, priority, username.
 */
QCryptoTLSCreds *qcrypto_tls_creds_new(const ObjectOptions *opts,
                                       Error **errp);
QCryptoTLSCreds *qcrypto_tls_creds_ref(QCryptoTLSCreds *creds);
void qcrypto_tls_creds_unref(QCryptoTLSCreds *creds);
QCryptoTLSCredsEndpoint qcrypto_tls_creds_get_endpoint(QCryptoTLSCreds *c);

/*
 * --object for the tools: "tls-creds-x509,id=..." (or -psk, -anon) is
 * created like QMP object-add creates it (user_creatable_add_str()).
 */
bool qcrypto_tls_creds_object_add(const char *optarg, Error **errp);
/*
 * The credentials object @id, checked to be for @endpoint.  Borrowed:
 * take a reference to keep them, as object-del may drop the object's.
 * NULL with @errp.
 */
QCryptoTLSCreds *qcrypto_tls_creds_find(const char *id,
                                        QCryptoTLSCredsEndpoint endpoint,
                                        Error **errp);
/* Drops every object (at exit, for leak checkers). */
void qcrypto_tls_creds_object_del_all(void);

/*
 * A session for one connection.  @hostname (clients, x509 only) is
 * checked against the server certificate.  Clients that verify the
 * server (verify-peer, the default) need one: without, the handshake
 * fails with "No hostname for certificate validation", as in QEMU.
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

/*
 * TLS credentials (x509, PSK and anonymous) and TLS sessions layered over
 * QemuCoSocket with GnuTLS.  The objects naming credentials live in
 * qom/object-interfaces.c.
 */
#include "qemu/osdep.h"
#include "crypto/tls-creds.h"
#include "qom/object-interfaces.h"
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define QCRYPTO_TLS_CA_CERT         "ca-cert.pem"
#define QCRYPTO_TLS_SERVER_CERT     "server-cert.pem"
#define QCRYPTO_TLS_SERVER_KEY      "server-key.pem"
#define QCRYPTO_TLS_CLIENT_CERT     "client-cert.pem"
#define QCRYPTO_TLS_CLIENT_KEY      "client-key.pem"
#define QCRYPTO_TLS_PSK_FILE        "keys.psk"
#define QCRYPTO_TLS_PSK_DEFAULT_USER "qemu"

/* The default priority; PSK and anon add the key exchanges they need. */
#define QCRYPTO_TLS_PRIORITY_DEFAULT "NORMAL"
#define QCRYPTO_TLS_PRIORITY_PSK_SUFFIX ":+ECDHE-PSK:+DHE-PSK:+PSK"
#define QCRYPTO_TLS_PRIORITY_ANON_SUFFIX ":+ANON-DH"

typedef enum QCryptoTLSCredsType {
    QCRYPTO_TLS_CREDS_X509,
    QCRYPTO_TLS_CREDS_PSK,
    QCRYPTO_TLS_CREDS_ANON,
} QCryptoTLSCredsType;

struct QCryptoTLSCreds {
    int refcnt;
    QCryptoTLSCredsType type;
    QCryptoTLSCredsEndpoint endpoint;
    bool verify_peer;                   /* x509 */
    char *dir;                          /* PSK servers look keys up here */
    char *priority;                     /* GnuTLS priority of sessions */
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t psk_server;
    gnutls_psk_client_credentials_t psk_client;
    gnutls_anon_server_credentials_t anon_server;
    gnutls_anon_client_credentials_t anon_client;
};

struct QCryptoTLSSession {
    QCryptoTLSCreds *creds;             /* reference */
    char *hostname;
    gnutls_session_t session;
};

static bool qcrypto_tls_gnutls_ready;

static void qcrypto_tls_init(void)
{
    if (!qcrypto_tls_gnutls_ready) {
        gnutls_global_init();
        qcrypto_tls_gnutls_ready = true;
    }
}

/* ---- Credentials ------------------------------------------------------ */

/*
 * DIR/NAME if it exists; NULL if it does not and is @optional, else
 * NULL with @errp.
 */
static char *qcrypto_tls_creds_file(const char *dir, const char *name,
                                    bool optional, Error **errp)
{
    char *path = g_build_filename(dir, name, NULL);

    if (access(path, R_OK) < 0) {
        if (!optional || errno != ENOENT) {
            error_setg_errno(errp, errno, "Unable to access credentials %s",
                             path);
        }
        g_free(path);
        return NULL;
    }
    return path;
}

static QCryptoTLSCreds *qcrypto_tls_creds_alloc(QCryptoTLSCredsType type,
                                                const char *dir,
                                                QCryptoTLSCredsEndpoint ep)
{
    QCryptoTLSCreds *creds = g_new0(QCryptoTLSCreds, 1);

    qcrypto_tls_init();
    creds->refcnt = 1;
    creds->type = type;
    creds->endpoint = ep;
    creds->dir = g_strdup(dir);
    creds->priority = g_strdup(QCRYPTO_TLS_PRIORITY_DEFAULT);
    return creds;
}

static bool qcrypto_tls_creds_load_x509(QCryptoTLSCreds *creds,
                                        Error **errp)
{
    bool server = creds->endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER;
    g_autofree char *ca = NULL;
    g_autofree char *cert = NULL;
    g_autofree char *key = NULL;
    int ret;

    /* Servers always need their certificate; clients only to verify. */
    ca = qcrypto_tls_creds_file(creds->dir, QCRYPTO_TLS_CA_CERT,
                                !creds->verify_peer && !server, errp);
    if (!ca && (creds->verify_peer || server)) {
        return false;
    }
    cert = qcrypto_tls_creds_file(creds->dir,
                                  server ? QCRYPTO_TLS_SERVER_CERT :
                                  QCRYPTO_TLS_CLIENT_CERT, !server, errp);
    if (!cert && server) {
        return false;
    }
    if (cert) {
        key = qcrypto_tls_creds_file(creds->dir,
                                     server ? QCRYPTO_TLS_SERVER_KEY :
                                     QCRYPTO_TLS_CLIENT_KEY, false, errp);
        if (!key) {
            return false;
        }
    }

    gnutls_certificate_allocate_credentials(&creds->x509);
    if (ca) {
        ret = gnutls_certificate_set_x509_trust_file(creds->x509, ca,
                                                     GNUTLS_X509_FMT_PEM);
        /* It returns how many certificates it took: none is an error. */
        if (ret <= 0) {
            error_setg(errp, "Cannot load CA certificate '%s': %s", ca,
                       ret < 0 ? gnutls_strerror(ret) :
                       "no certificate found");
            return false;
        }
    }
    if (cert) {
        ret = gnutls_certificate_set_x509_key_file(creds->x509, cert, key,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            error_setg(errp, "Cannot load certificate '%s' & key '%s': %s",
                       cert, key, gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}

QCryptoTLSCreds *qcrypto_tls_creds_new_x509(const char *dir,
                                            QCryptoTLSCredsEndpoint endpoint,
                                            bool verify_peer, Error **errp)
{
    QCryptoTLSCreds *creds = qcrypto_tls_creds_alloc(QCRYPTO_TLS_CREDS_X509,
                                                     dir, endpoint);

    creds->verify_peer = verify_peer;
    if (!qcrypto_tls_creds_load_x509(creds, errp)) {
        qcrypto_tls_creds_unref(creds);
        return NULL;
    }
    return creds;
}

/*
 * Finds @username's line in keys.psk and decodes its hex key into
 * @key (g_malloc'd data).  False with @errp when absent or malformed.
 */
static bool qcrypto_tls_psk_lookup(const char *dir, const char *username,
                                   gnutls_datum_t *key, Error **errp)
{
    g_autofree char *path = NULL;
    g_autofree char *content = NULL;
    g_auto(GStrv) lines = NULL;
    size_t ulen = strlen(username);
    GError *gerr = NULL;

    path = qcrypto_tls_creds_file(dir, QCRYPTO_TLS_PSK_FILE, false, errp);
    if (!path) {
        return false;
    }
    if (!g_file_get_contents(path, &content, NULL, &gerr)) {
        error_setg(errp, "Cannot read PSK file '%s': %s", path,
                   gerr->message);
        g_error_free(gerr);
        return false;
    }
    lines = g_strsplit(content, "\n", -1);
    for (char **l = lines; *l; l++) {
        gnutls_datum_t hex;
        int ret;

        if (strncmp(*l, username, ulen) || (*l)[ulen] != ':') {
            continue;
        }
        hex.data = (unsigned char *)*l + ulen + 1;
        hex.size = strlen((char *)hex.data);
        ret = gnutls_hex_decode2(&hex, key);
        if (ret < 0) {
            error_setg(errp, "Malformed key for user '%s' in PSK file '%s'",
                       username, path);
            return false;
        }
        return true;
    }
    error_setg(errp, "Username %s not found in PSK file %s", username, path);
    return false;
}

/* GnuTLS asks servers for the key of the identity a client presented. */
static int qcrypto_tls_psk_server_key(gnutls_session_t session,
                                      const char *username,
                                      gnutls_datum_t *key)
{
    QCryptoTLSCreds *creds = gnutls_session_get_ptr(session);
    Error *err = NULL;

    if (!qcrypto_tls_psk_lookup(creds->dir, username, key, &err)) {
        error_free(err);
        return -1;
    }
    return 0;
}

QCryptoTLSCreds *qcrypto_tls_creds_new_psk(const char *dir,
                                           QCryptoTLSCredsEndpoint endpoint,
                                           const char *username,
                                           Error **errp)
{
    QCryptoTLSCreds *creds = qcrypto_tls_creds_alloc(QCRYPTO_TLS_CREDS_PSK,
                                                     dir, endpoint);
    gnutls_datum_t key = { NULL, 0 };
    g_autofree char *path = NULL;
    int ret;

    if (endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER) {
        /* Keys are looked up per handshake; check the file is there. */
        path = qcrypto_tls_creds_file(dir, QCRYPTO_TLS_PSK_FILE, false,
                                      errp);
        if (!path) {
            goto fail;
        }
        gnutls_psk_allocate_server_credentials(&creds->psk_server);
        gnutls_psk_set_server_credentials_function(
            creds->psk_server, qcrypto_tls_psk_server_key);
        return creds;
    }

    username = username ? username : QCRYPTO_TLS_PSK_DEFAULT_USER;
    if (!qcrypto_tls_psk_lookup(dir, username, &key, errp)) {
        goto fail;
    }
    gnutls_psk_allocate_client_credentials(&creds->psk_client);
    ret = gnutls_psk_set_client_credentials(creds->psk_client, username,
                                            &key, GNUTLS_PSK_KEY_RAW);
    gnutls_free(key.data);
    if (ret < 0) {
        error_setg(errp, "Cannot set PSK client credentials: %s",
                   gnutls_strerror(ret));
        goto fail;
    }
    return creds;

fail:
    qcrypto_tls_creds_unref(creds);
    return NULL;
}

QCryptoTLSCreds *qcrypto_tls_creds_new_anon(QCryptoTLSCredsEndpoint endpoint,
                                            Error **errp)
{
    QCryptoTLSCreds *creds = qcrypto_tls_creds_alloc(QCRYPTO_TLS_CREDS_ANON,
                                                     NULL, endpoint);
    int ret;

    if (endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT) {
        gnutls_anon_allocate_client_credentials(&creds->anon_client);
        return creds;
    }
    gnutls_anon_allocate_server_credentials(&creds->anon_server);
    /* Anonymous Diffie-Hellman needs a group: one of RFC 7919's. */
    ret = gnutls_anon_set_server_known_dh_params(creds->anon_server,
                                                 GNUTLS_SEC_PARAM_MEDIUM);
    if (ret < 0) {
        error_setg(errp, "Cannot set Diffie-Hellman parameters: %s",
                   gnutls_strerror(ret));
        qcrypto_tls_creds_unref(creds);
        return NULL;
    }
    return creds;
}

QCryptoTLSCreds *qcrypto_tls_creds_ref(QCryptoTLSCreds *creds)
{
    creds->refcnt++;
    return creds;
}

void qcrypto_tls_creds_unref(QCryptoTLSCreds *creds)
{
    if (!creds || --creds->refcnt > 0) {
        return;
    }
    if (creds->x509) {
        gnutls_certificate_free_credentials(creds->x509);
    }
    if (creds->psk_server) {
        gnutls_psk_free_server_credentials(creds->psk_server);
    }
    if (creds->psk_client) {
        gnutls_psk_free_client_credentials(creds->psk_client);
    }
    if (creds->anon_server) {
        gnutls_anon_free_server_credentials(creds->anon_server);
    }
    if (creds->anon_client) {
        gnutls_anon_free_client_credentials(creds->anon_client);
    }
    g_free(creds->dir);
    g_free(creds->priority);
    g_free(creds);
}

QCryptoTLSCredsEndpoint qcrypto_tls_creds_get_endpoint(QCryptoTLSCreds *c)
{
    return c->endpoint;
}

/* ---- Objects ------------------------------------------------------------ */

/*
 * What x509 and PSK properties share.  QEMU 7.2 has no writable 'loaded'
 * (credentials load when the object is complete), nor a default dir.
 */
static bool qcrypto_tls_creds_check_props(const TlsCredsProperties *props,
                                          bool has_loaded,
                                          const char *type, Error **errp)
{
    if (has_loaded) {
        error_setg(errp, "Property '%s.loaded' is not writable", type);
        return false;
    }
    if (!props->dir) {
        error_setg(errp, "Missing 'dir' property value");
        return false;
    }
    return true;
}

QCryptoTLSCreds *qcrypto_tls_creds_new(const ObjectOptions *opts,
                                       Error **errp)
{
    const char *type = ObjectType_str(opts->qom_type);
    /* Both property structs start with their TlsCredsProperties base. */
    const TlsCredsProperties *props;
    QCryptoTLSCredsEndpoint endpoint;
    QCryptoTLSCreds *creds;

    switch (opts->qom_type) {
    case OBJECT_TYPE_TLS_CREDS_X509: {
        const TlsCredsX509Properties *x509 = &opts->u.tls_creds_x509;

        props = (const TlsCredsProperties *)x509;
        if (!qcrypto_tls_creds_check_props(props, x509->has_loaded, type,
                                           errp)) {
            return NULL;
        }
        /* Encrypted keys need a secret object, and there are none. */
        if (x509->passwordid) {
            error_setg(errp, "No secret with id '%s'", x509->passwordid);
            return NULL;
        }
        /* QEMU's defaults: client endpoint, peers verified. */
        endpoint = props->has_endpoint ? props->endpoint :
                   QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT;
        creds = qcrypto_tls_creds_new_x509(props->dir, endpoint,
                                           !props->has_verify_peer ||
                                           props->verify_peer, errp);
        break;
    }
    case OBJECT_TYPE_TLS_CREDS_PSK: {
        const TlsCredsPskProperties *psk = &opts->u.tls_creds_psk;

        props = (const TlsCredsProperties *)psk;
        if (!qcrypto_tls_creds_check_props(props, psk->has_loaded, type,
                                           errp)) {
            return NULL;
        }
        endpoint = props->has_endpoint ? props->endpoint :
                   QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT;
        creds = qcrypto_tls_creds_new_psk(props->dir, endpoint,
                                          psk->username, errp);
        break;
    }
    case OBJECT_TYPE_TLS_CREDS_ANON: {
        const TlsCredsAnonProperties *anon = &opts->u.tls_creds_anon;

        props = (const TlsCredsProperties *)anon;
        /* Unlike x509 and PSK, anon needs no files: dir is optional. */
        if (anon->has_loaded) {
            error_setg(errp, "Property '%s.loaded' is not writable", type);
            return NULL;
        }
        creds = qcrypto_tls_creds_new_anon(props->has_endpoint ?
                                           props->endpoint :
                                           QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                           errp);
        break;
    }
    default:
        g_assert_not_reached();
    }
    if (creds && props->priority) {
        g_free(creds->priority);
        creds->priority = g_strdup(props->priority);
    }
    return creds;
}

bool qcrypto_tls_creds_object_add(const char *optarg, Error **errp)
{
    return user_creatable_add_str(optarg, errp);
}

QCryptoTLSCreds *qcrypto_tls_creds_find(const char *id,
                                        QCryptoTLSCredsEndpoint endpoint,
                                        Error **errp)
{
    QCryptoTLSCreds *creds = user_creatable_find(id);

    if (!creds) {
        error_setg(errp, "No TLS credentials with id '%s'", id);
        return NULL;
    }
    if (creds->endpoint != endpoint) {
        error_setg(errp, "Expected TLS credentials for a %s endpoint",
                   QCryptoTLSCredsEndpoint_str(endpoint));
        return NULL;
    }
    return creds;
}

void qcrypto_tls_creds_object_del_all(void)
{
    user_creatable_cleanup();
}

/* ---- Sessions ------------------------------------------------------------ */

QCryptoTLSSession *qcrypto_tls_session_new(QCryptoTLSCreds *creds,
                                           const char *hostname,
                                           Error **errp)
{
    bool server = creds->endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER;
    g_autoptr(QCryptoTLSSession) sess = g_new0(QCryptoTLSSession, 1);
    g_autofree char *priority = NULL;
    int ret;

    sess->creds = qcrypto_tls_creds_ref(creds);
    sess->hostname = g_strdup(hostname);
    ret = gnutls_init(&sess->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT)
                      | GNUTLS_NONBLOCK);
    if (ret < 0) {
        error_setg(errp, "Cannot initialize TLS session: %s",
                   gnutls_strerror(ret));
        sess->session = NULL;
        return NULL;
    }
    priority = g_strconcat(creds->priority,
                           creds->type == QCRYPTO_TLS_CREDS_PSK ?
                           QCRYPTO_TLS_PRIORITY_PSK_SUFFIX :
                           creds->type == QCRYPTO_TLS_CREDS_ANON ?
                           QCRYPTO_TLS_PRIORITY_ANON_SUFFIX : "", NULL);
    ret = gnutls_priority_set_direct(sess->session, priority, NULL);
    if (ret < 0) {
        /* QEMU 7.2 words the x509 case differently. */
        error_setg(errp, creds->type == QCRYPTO_TLS_CREDS_X509 ?
                   "Cannot set default TLS session priority %s: %s" :
                   "Unable to set TLS session priority %s: %s",
                   priority, gnutls_strerror(ret));
        return NULL;
    }
    switch (creds->type) {
    case QCRYPTO_TLS_CREDS_X509:
        ret = gnutls_credentials_set(sess->session, GNUTLS_CRD_CERTIFICATE,
                                     creds->x509);
        if (server && creds->verify_peer) {
            gnutls_certificate_server_set_request(sess->session,
                                                  GNUTLS_CERT_REQUIRE);
        }
        break;
    case QCRYPTO_TLS_CREDS_PSK:
        ret = gnutls_credentials_set(sess->session, GNUTLS_CRD_PSK,
                                     server ? (void *)creds->psk_server :
                                     (void *)creds->psk_client);
        break;
    case QCRYPTO_TLS_CREDS_ANON:
        ret = gnutls_credentials_set(sess->session, GNUTLS_CRD_ANON,
                                     server ? (void *)creds->anon_server :
                                     (void *)creds->anon_client);
        break;
    }
    if (ret < 0) {
        error_setg(errp, "Cannot set TLS session credentials: %s",
                   gnutls_strerror(ret));
        return NULL;
    }
    if (!server && hostname && creds->type == QCRYPTO_TLS_CREDS_X509) {
        gnutls_server_name_set(sess->session, GNUTLS_NAME_DNS, hostname,
                               strlen(hostname));
    }
    /* The PSK server callback finds its key file through the session. */
    gnutls_session_set_ptr(sess->session, creds);
    return g_steal_pointer(&sess);
}

void qcrypto_tls_session_free(QCryptoTLSSession *sess)
{
    if (!sess) {
        return;
    }
    if (sess->session) {
        gnutls_deinit(sess->session);
    }
    qcrypto_tls_creds_unref(sess->creds);
    g_free(sess->hostname);
    g_free(sess);
}

/* GnuTLS's record errors as errno values for QemuCoSocket. */
static ssize_t qcrypto_tls_session_errno(ssize_t ret)
{
    switch (ret) {
    case GNUTLS_E_AGAIN:
        errno = EAGAIN;
        return -1;
    case GNUTLS_E_INTERRUPTED:
        errno = EINTR;
        return -1;
    case GNUTLS_E_PREMATURE_TERMINATION:
        /* Peers may close without close_notify: that is end-of-file. */
        return 0;
    default:
        errno = EIO;
        return -1;
    }
}

static ssize_t qcrypto_tls_session_read(void *opaque, void *buf, size_t len)
{
    QCryptoTLSSession *sess = opaque;
    ssize_t ret = gnutls_record_recv(sess->session, buf, len);

    return ret >= 0 ? ret : qcrypto_tls_session_errno(ret);
}

static ssize_t qcrypto_tls_session_write(void *opaque, const void *buf,
                                         size_t len)
{
    QCryptoTLSSession *sess = opaque;
    ssize_t ret = gnutls_record_send(sess->session, buf, len);

    return ret >= 0 ? ret : qcrypto_tls_session_errno(ret);
}

static const QemuCoSocketLayer qcrypto_tls_session_layer = {
    .read = qcrypto_tls_session_read,
    .write = qcrypto_tls_session_write,
};

/*
 * A client's check of the server certificate's name against @hostname,
 * QEMU's way: a client that verifies the server must know whom it
 * expects (over a unix socket only tls-hostname says).
 */
static int qcrypto_tls_session_check_hostname(QCryptoTLSSession *sess,
                                              Error **errp)
{
    const gnutls_datum_t *certs;
    gnutls_x509_crt_t crt;
    unsigned ncerts = 0;
    int ok;

    if (!sess->hostname) {
        error_setg(errp, "No hostname for certificate validation");
        return -1;
    }
    certs = gnutls_certificate_get_peers(sess->session, &ncerts);
    if (!certs || !ncerts) {
        error_setg(errp, "No certificate peers");
        return -1;
    }
    if (gnutls_x509_crt_init(&crt) < 0) {
        error_setg(errp, "Cannot initialize certificate");
        return -1;
    }
    /* The first certificate is the server's own; the rest is its chain. */
    ok = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
         gnutls_x509_crt_check_hostname(crt, sess->hostname);
    gnutls_x509_crt_deinit(crt);
    if (!ok) {
        error_setg(errp, "Certificate does not match the hostname %s",
                   sess->hostname);
        return -1;
    }
    return 0;
}

/* Checks the peer's certificate chain, then the server's host name. */
static int qcrypto_tls_session_check_peer(QCryptoTLSSession *sess,
                                          Error **errp)
{
    unsigned status = 0;
    gnutls_datum_t out;
    int ret;

    if (sess->creds->type != QCRYPTO_TLS_CREDS_X509 ||
        !sess->creds->verify_peer) {
        return 0;
    }
    ret = gnutls_certificate_verify_peers2(sess->session, &status);
    if (ret < 0) {
        error_setg(errp, "Verify failed: %s", gnutls_strerror(ret));
        return -1;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        error_setg(errp, "The certificate hasn't got a known issuer");
        return -1;
    }
    if (status) {
        ret = gnutls_certificate_verification_status_print(
            status, GNUTLS_CRT_X509, &out, 0);
        error_setg(errp, "Peer certificate is not valid: %s",
                   ret < 0 ? "unknown reason" : (char *)out.data);
        if (ret >= 0) {
            gnutls_free(out.data);
        }
        return -1;
    }
    if (sess->creds->endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT) {
        return qcrypto_tls_session_check_hostname(sess, errp);
    }
    return 0;
}

int coroutine_fn qcrypto_tls_session_handshake(QCryptoTLSSession *sess,
                                               QemuCoSocket *sock,
                                               Error **errp)
{
    int ret;

    gnutls_transport_set_int(sess->session, sock->fd);
    for (;;) {
        if (sock->shut) {
            error_setg(errp, "Connection shut down");
            return -1;
        }
        ret = gnutls_handshake(sess->session);
        if (ret >= 0) {
            break;
        }
        if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED) {
            error_setg(errp, "TLS handshake failed: %s",
                       gnutls_strerror(ret));
            return -1;
        }
        if (ret == GNUTLS_E_AGAIN) {
            qemu_co_sock_wait_fd(sock,
                                 gnutls_record_get_direction(sess->session));
        }
    }
    if (qcrypto_tls_session_check_peer(sess, errp) < 0) {
        return -1;
    }
    qemu_co_sock_set_layer(sock, &qcrypto_tls_session_layer, sess);
    return 0;
}

/*
 * TLS credentials: loading errors, the --object registry, PSK sessions
 * over a socketpair, and NBD's STARTTLS between our server and client.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/aio.h"
#include "qemu/sockets.h"
#include "block/block.h"
#include "block/nbd.h"
#include "crypto/tls-creds.h"

#include <sys/socket.h>

#define PSK_KEY "0123456789abcdef0123456789abcdef"

static char *test_dir;

/* A fresh subdirectory of test_dir holding @files (name, content pairs). */
static char *make_dir(const char *name, ...)
{
    char *dir = g_build_filename(test_dir, name, NULL);
    const char *file;
    va_list ap;

    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    va_start(ap, name);
    while ((file = va_arg(ap, const char *))) {
        g_autofree char *path = g_build_filename(dir, file, NULL);

        g_assert_true(g_file_set_contents(path, va_arg(ap, const char *), -1,
                                          NULL));
    }
    va_end(ap);
    return dir;
}

/* Asserts @err is set and mentions @needle; frees it. */
static void assert_error(Error *err, const char *needle)
{
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_error("error '%s' lacks '%s'", error_get_pretty(err), needle);
    }
    error_free(err);
}

/* ---- loading ------------------------------------------------------------ */

static void test_x509_errors(void)
{
    g_autofree char *empty = make_dir("x509-empty", NULL);
    g_autofree char *ca_only = make_dir("x509-ca", "ca-cert.pem", "junk\n",
                                        NULL);
    g_autofree char *no_key = make_dir("x509-nokey", "ca-cert.pem", "junk\n",
                                       "client-cert.pem", "junk\n", NULL);
    g_autofree char *missing = g_build_filename(test_dir, "none", NULL);
    QCryptoTLSCreds *creds;
    Error *err = NULL;

    creds = qcrypto_tls_creds_new_x509(missing,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                       true, &err);
    g_assert_null(creds);
    assert_error(err, "Unable to access credentials");
    err = NULL;

    /* Servers need their certificate even when the CA is there. */
    creds = qcrypto_tls_creds_new_x509(ca_only,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                       true, &err);
    g_assert_null(creds);
    assert_error(err, "server-cert.pem");
    err = NULL;

    /* A client certificate without its key. */
    creds = qcrypto_tls_creds_new_x509(no_key,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                       true, &err);
    g_assert_null(creds);
    assert_error(err, "client-key.pem");
    err = NULL;

    /* A CA file that is not PEM. */
    creds = qcrypto_tls_creds_new_x509(ca_only,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                       true, &err);
    g_assert_null(creds);
    assert_error(err, "Cannot load CA certificate");
    err = NULL;

    /* Clients that do not verify need no file at all. */
    creds = qcrypto_tls_creds_new_x509(empty,
                                       QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                       false, &error_abort);
    g_assert_nonnull(creds);
    g_assert_cmpint(qcrypto_tls_creds_get_endpoint(creds), ==,
                    QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT);
    qcrypto_tls_creds_unref(creds);
}

static void test_psk_errors(void)
{
    g_autofree char *dir = make_dir("psk-bad", "keys.psk",
                                    "alice:" PSK_KEY "\nbob:xyz\n", NULL);
    g_autofree char *empty = make_dir("psk-empty", NULL);
    QCryptoTLSCreds *creds;
    Error *err = NULL;

    creds = qcrypto_tls_creds_new_psk(empty,
                                      QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                      NULL, &err);
    g_assert_null(creds);
    assert_error(err, "keys.psk");
    err = NULL;

    creds = qcrypto_tls_creds_new_psk(dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                      "carol", &err);
    g_assert_null(creds);
    assert_error(err, "Username carol not found");
    err = NULL;

    creds = qcrypto_tls_creds_new_psk(dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                      "bob", &err);
    g_assert_null(creds);
    assert_error(err, "Malformed key for user 'bob'");
    err = NULL;

    /* The default identity is "qemu"; "alicex" must not match "alice". */
    creds = qcrypto_tls_creds_new_psk(dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                      NULL, &err);
    g_assert_null(creds);
    assert_error(err, "Username qemu not found");
    err = NULL;
    creds = qcrypto_tls_creds_new_psk(dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                      "alic", &err);
    g_assert_null(creds);
    assert_error(err, "Username alic not found");
    err = NULL;

    creds = qcrypto_tls_creds_new_psk(dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                      "alice", &error_abort);
    qcrypto_tls_creds_unref(creds);
}

static void test_registry(void)
{
    g_autofree char *dir = make_dir("psk-reg", "keys.psk",
                                    "qemu:" PSK_KEY "\n", NULL);
    g_autofree char *srv = g_strdup_printf("tls-creds-psk,id=s0,dir=%s,"
                                           "endpoint=server", dir);
    g_autofree char *cli = g_strdup_printf("tls-creds-psk,id=c0,dir=%s", dir);
    g_autofree char *bad_ep = g_strdup_printf("tls-creds-psk,id=b0,dir=%s,"
                                              "endpoint=both", dir);
    Error *err = NULL;

    g_assert_true(qcrypto_tls_creds_object_add(srv, &error_abort));
    /* The default endpoint is client, as in QEMU. */
    g_assert_true(qcrypto_tls_creds_object_add(cli, &error_abort));

    g_assert_false(qcrypto_tls_creds_object_add(srv, &err));
    assert_error(err, "duplicate");
    err = NULL;
    g_assert_false(qcrypto_tls_creds_object_add("secret,id=x,dir=/", &err));
    assert_error(err, "Parameter 'qom-type' does not accept value 'secret'");
    err = NULL;
    g_assert_false(qcrypto_tls_creds_object_add("tls-creds-x509,dir=/",
                                                &err));
    assert_error(err, "'id' is missing");
    err = NULL;
    g_assert_false(qcrypto_tls_creds_object_add("tls-creds-x509,id=x",
                                                &err));
    assert_error(err, "Missing 'dir' property value");
    err = NULL;
    g_assert_false(qcrypto_tls_creds_object_add(bad_ep, &err));
    assert_error(err, "endpoint");
    err = NULL;

    g_assert_nonnull(qcrypto_tls_creds_find(
        "s0", QCRYPTO_TLS_CREDS_ENDPOINT_SERVER, &error_abort));
    g_assert_nonnull(qcrypto_tls_creds_find(
        "c0", QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, &error_abort));
    g_assert_null(qcrypto_tls_creds_find(
        "c0", QCRYPTO_TLS_CREDS_ENDPOINT_SERVER, &err));
    assert_error(err, "server endpoint");
    err = NULL;
    g_assert_null(qcrypto_tls_creds_find(
        "b0", QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, &err));
    assert_error(err, "No TLS credentials with id 'b0'");
    qcrypto_tls_creds_object_del_all();
}

/* ---- sessions over a socketpair --------------------------------------- */

#define XFER_SIZE (3 * MiB)

typedef struct Peer {
    QCryptoTLSCreds *creds;
    QemuCoSocket sock;
    QCryptoTLSSession *sess;
    uint8_t *out;               /* XFER_SIZE bytes sent */
    uint8_t *in;                /* XFER_SIZE bytes received */
    bool handshake_only;
    int ret;                    /* -EINPROGRESS until done */
    Error *err;
} Peer;

static void coroutine_fn peer_reader_co(void *opaque)
{
    Peer *p = opaque;

    if (qemu_co_sock_read_all(&p->sock, p->in, XFER_SIZE, &p->err) < 0) {
        p->ret = -1;
    }
}

/* Handshakes, then writes while a second coroutine reads. */
static void coroutine_fn peer_co(void *opaque)
{
    Peer *p = opaque;

    p->sess = qcrypto_tls_session_new(p->creds, NULL, &error_abort);
    if (qcrypto_tls_session_handshake(p->sess, &p->sock, &p->err) < 0) {
        qemu_co_sock_shutdown(&p->sock);
        p->ret = -1;
        return;
    }
    if (!p->handshake_only) {
        qemu_coroutine_enter(qemu_coroutine_create(peer_reader_co, p));
        if (qemu_co_sock_write_all(&p->sock, p->out, XFER_SIZE,
                                   &p->err) < 0) {
            p->ret = -1;
            return;
        }
    }
    p->ret = 0;
}

#define POLL_UNTIL(cond) ({                                             \
    int64_t deadline_ = qemu_clock_get_ns() + 10 * NANOSECONDS_PER_SECOND; \
    while (!(cond) && qemu_clock_get_ns() < deadline_) {                \
        if (!aio_poll(qemu_get_aio_context(), false)) {                 \
            g_usleep(1000);                                             \
        }                                                               \
    }                                                                   \
    (cond);                                                             \
})

static void peers_run(Peer *srv, Peer *cli, bool handshake_only)
{
    int fds[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
    for (int i = 0; i < 2; i++) {
        Peer *p = i ? cli : srv;

        qemu_co_sock_init(&p->sock, fds[i]);
        p->handshake_only = handshake_only;
        p->ret = -EINPROGRESS;
        if (!handshake_only) {
            p->out = g_malloc(XFER_SIZE);
            p->in = g_malloc0(XFER_SIZE);
            for (size_t j = 0; j < XFER_SIZE; j++) {
                p->out[j] = (j * (i + 3)) ^ (j >> 12);
            }
        }
    }
    qemu_coroutine_enter(qemu_coroutine_create(peer_co, srv));
    qemu_coroutine_enter(qemu_coroutine_create(peer_co, cli));
    g_assert_true(POLL_UNTIL(srv->ret != -EINPROGRESS &&
                             cli->ret != -EINPROGRESS));
}

static void peer_clear(Peer *p)
{
    /* Let a parked reader fail and finish before the socket goes. */
    qemu_co_sock_shutdown(&p->sock);
    POLL_UNTIL(!p->sock.read_co && !p->sock.write_co);
    qemu_co_sock_close(&p->sock);
    qcrypto_tls_session_free(p->sess);
    qcrypto_tls_creds_unref(p->creds);
    error_free(p->err);
    g_free(p->out);
    g_free(p->in);
}

static void test_psk_session(void)
{
    g_autofree char *dir = make_dir("psk-ok", "keys.psk",
                                    "other:00ff\nalice:" PSK_KEY "\n", NULL);
    Peer srv = { 0 }, cli = { 0 };

    srv.creds = qcrypto_tls_creds_new_psk(
        dir, QCRYPTO_TLS_CREDS_ENDPOINT_SERVER, NULL, &error_abort);
    cli.creds = qcrypto_tls_creds_new_psk(
        dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, "alice", &error_abort);
    peers_run(&srv, &cli, false);
    g_assert_cmpint(srv.ret, ==, 0);
    g_assert_cmpint(cli.ret, ==, 0);
    /* Both directions at once, through many TLS records each. */
    g_assert_true(POLL_UNTIL(!memcmp(srv.in, cli.out, XFER_SIZE) &&
                             !memcmp(cli.in, srv.out, XFER_SIZE)));
    peer_clear(&srv);
    peer_clear(&cli);
}

static void test_psk_wrong_key(void)
{
    g_autofree char *sdir = make_dir("psk-s", "keys.psk",
                                     "alice:" PSK_KEY "\n", NULL);
    g_autofree char *cdir = make_dir("psk-c", "keys.psk",
                                     "alice:00" PSK_KEY "\n", NULL);
    Peer srv = { 0 }, cli = { 0 };

    srv.creds = qcrypto_tls_creds_new_psk(
        sdir, QCRYPTO_TLS_CREDS_ENDPOINT_SERVER, NULL, &error_abort);
    cli.creds = qcrypto_tls_creds_new_psk(
        cdir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, "alice", &error_abort);
    peers_run(&srv, &cli, true);
    g_assert_cmpint(srv.ret, ==, -1);
    g_assert_cmpint(cli.ret, ==, -1);
    assert_error(g_steal_pointer(&srv.err), "TLS handshake failed");
    peer_clear(&srv);
    peer_clear(&cli);
}

/* Anonymous credentials need no files and still encrypt both ways. */
static void test_anon_session(void)
{
    Peer srv = { 0 }, cli = { 0 };

    srv.creds = qcrypto_tls_creds_new_anon(QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                           &error_abort);
    cli.creds = qcrypto_tls_creds_new_anon(QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                           &error_abort);
    peers_run(&srv, &cli, false);
    g_assert_cmpint(srv.ret, ==, 0);
    g_assert_cmpint(cli.ret, ==, 0);
    g_assert_true(POLL_UNTIL(!memcmp(srv.in, cli.out, XFER_SIZE) &&
                             !memcmp(cli.in, srv.out, XFER_SIZE)));
    peer_clear(&srv);
    peer_clear(&cli);
}

/* ---- NBD STARTTLS ------------------------------------------------------- */

typedef struct ListCo {
    int fd;
    NBDClientTLS tls;
    int ret;                    /* exports, -1, or -EINPROGRESS */
    Error *err;
} ListCo;

static void coroutine_fn list_co(void *opaque)
{
    ListCo *c = opaque;
    NBDExportInfo *list = NULL;
    QemuCoSocket sock;

    qemu_co_sock_init(&sock, c->fd);
    c->ret = nbd_receive_export_list(&sock, &c->tls, &list, &c->err);
    if (c->ret >= 0) {
        g_assert_cmpstr(list[0].name, ==, "tls-export");
        g_assert_cmpint(list[0].size, ==, MiB);
        nbd_free_export_list(list, c->ret);
    }
    qemu_co_sock_close(&sock);
    g_clear_pointer(&c->tls.session, qcrypto_tls_session_free);
}

/* Lists @srv's exports through a socketpair; returns the client's result. */
static int nbd_list(NBDServer *srv, QCryptoTLSCreds *creds, Error **errp)
{
    ListCo c = { .tls = { creds, NULL, NULL }, .ret = -EINPROGRESS };
    int fds[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
    c.fd = fds[1];
    nbd_server_add_client(srv, fds[0]);
    qemu_coroutine_enter(qemu_coroutine_create(list_co, &c));
    g_assert_true(POLL_UNTIL(c.ret != -EINPROGRESS &&
                             nbd_server_client_count(srv) == 0));
    error_propagate(errp, c.err);
    return c.ret;
}

static void test_nbd_starttls(void)
{
    g_autofree char *dir = make_dir("psk-nbd", "keys.psk",
                                    "qemu:" PSK_KEY "\n", NULL);
    QCryptoTLSCreds *screds, *ccreds;
    BlockDriverState *bs;
    NBDServer *srv;
    QDict *opts = qdict_new();
    Error *err = NULL;

    qdict_put_str(opts, "driver", "null-co");
    qdict_put_int(opts, "size", MiB);
    bs = bdrv_open(NULL, NULL, opts, 0, &error_abort);
    srv = nbd_server_new(NULL, 0, &error_abort);
    g_assert_nonnull(nbd_export_new(srv, bs, "tls-export", NULL, false,
                                    false, &error_abort));
    screds = qcrypto_tls_creds_new_psk(
        dir, QCRYPTO_TLS_CREDS_ENDPOINT_SERVER, NULL, &error_abort);
    ccreds = qcrypto_tls_creds_new_psk(
        dir, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, NULL, &error_abort);

    /* Without TLS on the server, a TLS client is denied by policy. */
    g_assert_cmpint(nbd_list(srv, ccreds, &err), ==, -1);
    assert_error(err, "Server rejected request to start TLS");
    err = NULL;

    nbd_server_set_tls_creds(srv, screds);
    /* The server holds its own reference. */
    qcrypto_tls_creds_unref(screds);
    g_assert_cmpint(nbd_list(srv, NULL, &err), ==, -1);
    assert_error(err, "TLS negotiation required before option NBD_OPT_LIST");
    err = NULL;
    g_assert_cmpint(nbd_list(srv, ccreds, &error_abort), ==, 1);

    qcrypto_tls_creds_unref(ccreds);
    nbd_server_free(srv);
    bdrv_unref(bs);
}

int main(int argc, char **argv)
{
    g_autofree char *cmd = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    qemu_get_aio_context();
    bdrv_init();
    test_dir = g_dir_make_tmp("test-tls-creds-XXXXXX", NULL);
    g_assert(test_dir);

    g_test_add_func("/tls-creds/x509/errors", test_x509_errors);
    g_test_add_func("/tls-creds/psk/errors", test_psk_errors);
    g_test_add_func("/tls-creds/registry", test_registry);
    g_test_add_func("/tls-creds/session/psk", test_psk_session);
    g_test_add_func("/tls-creds/session/psk-wrong-key", test_psk_wrong_key);
    g_test_add_func("/tls-creds/session/anon", test_anon_session);
    g_test_add_func("/tls-creds/nbd/starttls", test_nbd_starttls);

    ret = g_test_run();

    cmd = g_strdup_printf("rm -rf '%s'", test_dir);
    g_assert_cmpint(system(cmd), ==, 0);
    return ret;
}

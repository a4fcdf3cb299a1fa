/*
 * qblock-nbd: serve one image over NBD (qemu-nbd's command line), or
 * list the exports of an NBD server (-L).
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "qemu/sockets.h"
#include "qemu/trace.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "block/nbd.h"

#include <getopt.h>
#include <signal.h>
#include <glib-unix.h>

static const char *progname;

static void usage(void)
{
    printf(
"Usage: %s [OPTIONS] FILE\n"
"  or:  %s -L [OPTIONS]\n"
"QEMU-compatible Disk Network Block Device Utility\n"
"\n"
"  -h, --help                display this help and exit\n"
"  -V, --version             output version information and exit\n"
"\n"
"Connection properties:\n"
"  -p, --port=PORT           port to listen on (default `%d')\n"
"  -b, --bind=IFACE          interface to bind to (default `0.0.0.0')\n"
"  -k, --socket=PATH         path to the unix socket\n"
"  -e, --shared=NUM          device can be shared by NUM clients (default '1')\n"
"  -t, --persistent          don't exit on the last connection\n"
"  -x, --export-name=NAME    expose export by name (default is empty string)\n"
"  -D, --description=TEXT    export a human-readable description\n"
"\n"
"Exposing part of the image:\n"
"  -A, --allocation-depth    expose the allocation depth\n"
"  -B, --bitmap=NAME         expose a persistent dirty bitmap\n"
"\n"
"General purpose options:\n"
"  -L, --list                list exports available from another NBD server\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>]\n"
"                            specify tracing options\n"
"  --fork                    fork off the server process and exit the parent\n"
"                            once the server is running\n"
"  --pid-file=PATH           store the server's process ID in the given file\n"
"\n"
"Block device options:\n"
"  -f, --format=FORMAT       set image format (raw, qcow2, ...)\n"
"  -r, --read-only           export read-only\n"
"\n"
"TLS:\n"
"  --object tls-creds-x509,id=ID,dir=DIR,endpoint=server|client[,verify-peer=on|off]\n"
"  --object tls-creds-psk,id=ID,dir=DIR,endpoint=server|client[,username=NAME]\n"
"                            define TLS credentials (see docs/nbd.md)\n"
"  --tls-creds=ID            use id of an earlier --object to provide TLS\n"
"  --tls-hostname=HOSTNAME   override hostname used to check x509 certificate\n",
           progname, progname, NBD_DEFAULT_PORT);
}

static int usage_error(void)
{
    fprintf(stderr, "Try `%s --help' for more information.\n", progname);
    return EXIT_FAILURE;
}

/* ---- -L ------------------------------------------------------------- */

typedef struct ListCo {
    SocketAddress *addr;
    NBDClientTLS tls;
    int ret;
} ListCo;

static void print_export(NBDExportInfo *info)
{
    g_autofree char *flags = nbd_flags_to_string(info->flags);

    printf(" export: '%s'\n", info->name);
    if (info->description && *info->description) {
        printf("  description: %s\n", info->description);
    }
    printf("  size:  %" PRIu64 "\n", info->size);
    printf("  flags: 0x%x (%s )\n", info->flags, flags);
    if (info->min_block) {
        printf("  min block: %" PRIu32 "\n", info->min_block);
        printf("  opt block: %" PRIu32 "\n", info->opt_block);
        printf("  max block: %" PRIu32 "\n", info->max_block);
    }
    if (info->contexts) {
        printf("  available meta contexts: %u\n", info->contexts->len);
        for (guint i = 0; i < info->contexts->len; i++) {
            printf("   %s\n", (const char *)info->contexts->pdata[i]);
        }
    }
}

static void coroutine_fn list_exports_co(void *opaque)
{
    ListCo *c = opaque;
    Error *local_err = NULL;
    NBDExportInfo *list;
    QemuCoSocket sock;
    int fd, n;

    fd = socket_connect(c->addr, &local_err);
    if (fd < 0) {
        error_report_err(local_err);
        c->ret = 1;
        return;
    }
    qemu_co_sock_init(&sock, fd);
    n = nbd_receive_export_list(&sock, &c->tls, &list, &local_err);
    qemu_co_sock_close(&sock);
    g_clear_pointer(&c->tls.session, qcrypto_tls_session_free);
    if (n < 0) {
        error_report_err(local_err);
        c->ret = 1;
        return;
    }
    printf("exports available: %d\n", n);
    for (int i = 0; i < n; i++) {
        print_export(&list[i]);
    }
    nbd_free_export_list(list, n);
    c->ret = 0;
}

static int list_exports(SocketAddress *addr, QCryptoTLSCreds *creds,
                        const char *hostname)
{
    ListCo c = { .addr = addr, .tls = { creds, hostname, NULL },
                 .ret = -EINPROGRESS };

    qemu_coroutine_enter(qemu_coroutine_create(list_exports_co, &c));
    AIO_WAIT_WHILE(c.ret == -EINPROGRESS);
    return c.ret;
}

/* ---- Serving -------------------------------------------------------- */

typedef struct ServeState {
    NBDServer *srv;
    bool persistent;
    bool terminate;
} ServeState;

static void client_closed(void *opaque)
{
    ServeState *st = opaque;

    /* Like qemu-nbd: without -t, stop once the last client is gone. */
    if (!st->persistent && nbd_server_client_count(st->srv) == 0) {
        st->terminate = true;
    }
}

static gboolean terminate_signal(gpointer opaque)
{
    ServeState *st = opaque;

    st->terminate = true;
    return G_SOURCE_CONTINUE;
}

/* "qemu:dirty-bitmap:NAME" extents: 1 where the bitmap is dirty. */
static int coroutine_fn bitmap_extents(void *opaque, int64_t offset,
                                       int64_t bytes, int64_t *pnum,
                                       uint32_t *flags)
{
    BdrvDirtyBitmap *bitmap = opaque;
    int64_t size = bdrv_dirty_bitmap_size(bitmap);

    if (offset >= size) {
        *pnum = bytes;
        *flags = 0;
        return 0;
    }
    *flags = bdrv_dirty_bitmap_status(bitmap, offset, MIN(bytes, size - offset),
                                      pnum) ? 1 : 0;
    return 0;
}

static void bitmap_release(void *opaque)
{
    bdrv_dirty_bitmap_set_busy(opaque, false);
}

/* Finds @name on @bs or below it (through filters and backing files). */
static bool export_bitmap(NBDExport *exp, BlockDriverState *bs,
                          const char *name, Error **errp)
{
    BdrvDirtyBitmap *bitmap = NULL;

    for (BlockDriverState *p = bs; p && !bitmap; p = bdrv_backing_bs(p)) {
        p = bdrv_skip_filters(p);
        bitmap = bdrv_find_dirty_bitmap(p, name);
        if (!bitmap && bdrv_file_bs(p)) {
            bitmap = bdrv_find_dirty_bitmap(bdrv_file_bs(p), name);
        }
    }
    if (!bitmap) {
        error_setg(errp, "Bitmap '%s' is not found", name);
        return false;
    }
    if (bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO, errp) < 0) {
        return false;
    }
    if (!nbd_export_add_meta_context(exp, name, bitmap_extents, bitmap,
                                     bitmap_release, errp)) {
        return false;
    }
    bdrv_dirty_bitmap_set_busy(bitmap, true);
    return true;
}

/* SIGTERM, SIGINT and SIGHUP end the server cleanly. */
static void install_signal_handlers(ServeState *st)
{
    GMainContext *ctx = aio_get_g_main_context(qemu_get_aio_context());
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
        GSource *src = g_unix_signal_source_new(sigs[i]);

        g_source_set_callback(src, terminate_signal, st, NULL);
        g_source_attach(src, ctx);
        g_source_unref(src);
    }
}

static void write_pid_file(const char *path)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    GError *gerr = NULL;

    if (!g_file_set_contents(path, pid, -1, &gerr)) {
        error_report("Failed to write PID file %s: %s", path, gerr->message);
        g_error_free(gerr);
        exit(EXIT_FAILURE);
    }
}

/*
 * --fork: the child does all the work (threads must not predate the
 * fork) and reports readiness through a pipe; the parent exits with the
 * child's verdict.
 */
static int fork_server(void)
{
    int fds[2];
    pid_t pid;
    char c;

    if (pipe(fds) < 0) {
        error_report("Failed to create pipe: %s", strerror(errno));
        exit(EXIT_FAILURE);
    }
    pid = fork();
    if (pid < 0) {
        error_report("Failed to fork: %s", strerror(errno));
        exit(EXIT_FAILURE);
    }
    if (pid == 0) {
        close(fds[0]);
        setsid();
        return fds[1];
    }
    close(fds[1]);
    while (read(fds[0], &c, 1) < 0 && errno == EINTR) {
        /* retry */
    }
    /* No byte: the child failed and reported why on stderr. */
    exit(c == 'R' ? EXIT_SUCCESS : EXIT_FAILURE);
}

/* Tells the waiting parent that we serve, and detaches from its stdio. */
static void fork_ready(int fd)
{
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
    if (write(fd, "R", 1) != 1) {
        exit(EXIT_FAILURE);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    enum { OPT_FORK = 256, OPT_PID_FILE, OPT_OBJECT, OPT_TLS_CREDS,
           OPT_TLS_HOSTNAME };
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "socket", required_argument, NULL, 'k' },
        { "shared", required_argument, NULL, 'e' },
        { "persistent", no_argument, NULL, 't' },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "allocation-depth", no_argument, NULL, 'A' },
        { "bitmap", required_argument, NULL, 'B' },
        { "list", no_argument, NULL, 'L' },
        { "trace", required_argument, NULL, 'T' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
        { "tls-hostname", required_argument, NULL, OPT_TLS_HOSTNAME },
        { NULL, 0, NULL, 0 },
    };
    const char *port = NULL, *bindto = NULL, *sockpath = NULL;
    const char *export_name = NULL, *description = NULL, *format = NULL;
    const char *bitmap = NULL, *pid_file = NULL;
    const char *tls_creds_id = NULL, *tls_hostname = NULL;
    QCryptoTLSCreds *tls_creds = NULL;
    bool list = false, readonly = false, alloc_depth = false;
    bool do_fork = false, device_opts = false;
    ServeState st = { 0 };
    g_autoptr(SocketAddress) addr = NULL;
    Error *local_err = NULL;
    BlockBackend *blk = NULL;
    NBDExport *exp;
    QDict *opts;
    int shared = 1, ready_fd = -1, c, ret = EXIT_FAILURE;

    progname = g_path_get_basename(argv[0]);
    error_set_progname(progname);
    trace_init_from_env();

    while ((c = getopt_long(argc, argv, "hVp:b:k:e:tx:D:AB:LT:f:r",
                            long_options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage();
            return EXIT_SUCCESS;
        case 'V':
            printf("%s version %s\nqemu-nbd 7.2 compatible command line\n",
                   progname, QBLOCK_VERSION);
            return EXIT_SUCCESS;
        case 'p': {
            int p;

            if (qemu_strtoi(optarg, NULL, 0, &p) < 0 || p < 1 || p > 65535) {
                error_report("Invalid port number '%s'", optarg);
                return EXIT_FAILURE;
            }
            port = optarg;
            break;
        }
        case 'b':
            bindto = optarg;
            break;
        case 'k':
            sockpath = optarg;
            if (sockpath[0] != '/') {
                error_report("socket path must be absolute");
                return EXIT_FAILURE;
            }
            break;
        case 'e':
            if (qemu_strtoi(optarg, NULL, 0, &shared) < 0 || shared < 0) {
                error_report("Invalid shared device number '%s'", optarg);
                return EXIT_FAILURE;
            }
            device_opts = true;
            break;
        case 't':
            st.persistent = true;
            device_opts = true;
            break;
        case 'x':
            export_name = optarg;
            if (strlen(optarg) > NBD_MAX_STRING_SIZE) {
                error_report("export name '%s' too long", optarg);
                return EXIT_FAILURE;
            }
            device_opts = true;
            break;
        case 'D':
            description = optarg;
            if (strlen(optarg) > NBD_MAX_STRING_SIZE) {
                error_report("export description '%s' too long", optarg);
                return EXIT_FAILURE;
            }
            device_opts = true;
            break;
        case 'A':
            alloc_depth = true;
            device_opts = true;
            break;
        case 'B':
            bitmap = optarg;
            device_opts = true;
            break;
        case 'L':
            list = true;
            break;
        case 'T':
            if (!trace_opt_parse(optarg)) {
                return EXIT_FAILURE;
            }
            break;
        case 'f':
            format = optarg;
            device_opts = true;
            break;
        case 'r':
            readonly = true;
            device_opts = true;
            break;
        case OPT_FORK:
            do_fork = true;
            break;
        case OPT_PID_FILE:
            pid_file = optarg;
            break;
        case OPT_OBJECT:
            if (!qcrypto_tls_creds_object_add(optarg, &local_err)) {
                error_report_err(local_err);
                return EXIT_FAILURE;
            }
            break;
        case OPT_TLS_CREDS:
            tls_creds_id = optarg;
            break;
        case OPT_TLS_HOSTNAME:
            tls_hostname = optarg;
            break;
        default:
            return usage_error();
        }
    }

    if (list) {
        if (argc != optind) {
            error_report("List mode is incompatible with a file name");
            return EXIT_FAILURE;
        }
        if (device_opts || do_fork || pid_file) {
            error_report("List mode is incompatible with per-device "
                         "settings");
            return EXIT_FAILURE;
        }
    } else if (argc - optind != 1) {
        error_report("Invalid number of arguments");
        return usage_error();
    }
    if (tls_hostname && !(list && tls_creds_id)) {
        error_report("--tls-hostname is only permitted with --list and "
                     "--tls-creds");
        return EXIT_FAILURE;
    }
    if (tls_creds_id) {
        tls_creds = qcrypto_tls_creds_find(tls_creds_id,
                                           list ?
                                           QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT :
                                           QCRYPTO_TLS_CREDS_ENDPOINT_SERVER,
                                           &local_err);
        if (!tls_creds) {
            error_reportf_err(local_err, "Failed to get TLS creds: ");
            return EXIT_FAILURE;
        }
    }
    if (sockpath && (port || bindto)) {
        error_report("-k is incompatible with -p and -b");
        return EXIT_FAILURE;
    }
    if (sockpath) {
        addr = socket_address_new_unix(sockpath);
    } else {
        g_autofree char *p = g_strdup_printf("%d", NBD_DEFAULT_PORT);

        addr = socket_address_new_inet(bindto ? bindto :
                                       list ? "localhost" : "0.0.0.0",
                                       port ? port : p);
    }

    if (list) {
        bdrv_init();
        ret = list_exports(addr, tls_creds,
                           tls_hostname ? tls_hostname :
                           addr->type == SOCKET_ADDRESS_TYPE_INET ?
                           addr->u.inet.host : NULL);
        qcrypto_tls_creds_object_del_all();
        return ret;
    }

    if (do_fork) {
        ready_fd = fork_server();
    }
    bdrv_init();
    opts = qdict_new();
    if (format) {
        qdict_put_str(opts, "driver", format);
    }
    blk = blk_new_open(argv[optind], NULL, opts,
                       readonly ? 0 : BDRV_O_RDWR, &local_err);
    if (!blk) {
        error_reportf_err(local_err, "Failed to blk_new_open '%s': ",
                          argv[optind]);
        return EXIT_FAILURE;
    }

    st.srv = nbd_server_new(addr, shared, &local_err);
    if (!st.srv) {
        error_report_err(local_err);
        goto out;
    }
    nbd_server_set_tls_creds(st.srv, tls_creds);
    exp = nbd_export_new(st.srv, blk_bs(blk), export_name, description,
                         !readonly, alloc_depth, &local_err);
    if (!exp || (bitmap &&
                 !export_bitmap(exp, blk_bs(blk), bitmap, &local_err))) {
        error_report_err(local_err);
        goto out;
    }
    /* The export holds its own reference on the node. */
    blk_unref(blk);
    blk = NULL;
    nbd_server_set_client_closed_cb(st.srv, client_closed, &st);

    install_signal_handlers(&st);
    signal(SIGPIPE, SIG_IGN);

    if (pid_file) {
        write_pid_file(pid_file);
    }
    if (ready_fd >= 0) {
        fork_ready(ready_fd);
    }
    while (!st.terminate) {
        aio_poll(qemu_get_aio_context(), true);
    }
    ret = EXIT_SUCCESS;

out:
    nbd_server_free(st.srv);
    blk_unref(blk);
    bdrv_close_all();
    if (pid_file && ret == EXIT_SUCCESS) {
        unlink(pid_file);
    }
    qcrypto_tls_creds_object_del_all();
    return ret;
}

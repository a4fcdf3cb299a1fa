/*
 * qblockd: the block daemon.  Opens drives and nodes from the command
 * line, serves QMP on sockets, and runs until "quit", SIGTERM or SIGINT,
 * then closes every image cleanly.
 *
 * It accepts qemu-system's spellings (-drive, -blockdev, -qmp, -chardev +
 * -mon, -device virtio-blk) and qemu-storage-daemon's (--blockdev,
 * --chardev, --monitor).  Options that only an emulator has are accepted
 * and ignored: there is no guest CPU.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/trace.h"
#include "qemu/cutils.h"
#include "block/block.h"
#include "qemu/job.h"
#include "monitor/monitor.h"
#include "monitor/qjson.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "sysemu/blockdev.h"
#include "block/export.h"
#include "hw/block/virtio-blk.h"
#include "qom/object-interfaces.h"
#include <glib-unix.h>

/* Every option, in command-line order, is processed in phases. */
typedef enum OptKind {
    OPT_DRIVE, OPT_BLOCKDEV, OPT_QMP, OPT_QMP_PRETTY, OPT_CHARDEV, OPT_MON,
    OPT_MONITOR, OPT_TRACE, OPT_PIDFILE, OPT_DAEMONIZE, OPT_DEVICE,
    OPT_IGNORED, OPT_IGNORED_FLAG, OPT_NONE_ONLY, OPT_HELP, OPT_VERSION,
    OPT_NBD_SERVER, OPT_EXPORT, OPT_OBJECT,
} OptKind;

typedef struct OptDesc {
    const char *name;
    OptKind kind;
    bool has_arg;
} OptDesc;

static const OptDesc opt_descs[] = {
    { "drive", OPT_DRIVE, true },
    { "blockdev", OPT_BLOCKDEV, true },
    { "qmp", OPT_QMP, true },
    { "qmp-pretty", OPT_QMP_PRETTY, true },
    { "chardev", OPT_CHARDEV, true },
    { "mon", OPT_MON, true },
    { "monitor", OPT_MONITOR, true },
    { "trace", OPT_TRACE, true },
    { "T", OPT_TRACE, true },
    { "pidfile", OPT_PIDFILE, true },
    { "daemonize", OPT_DAEMONIZE, false },
    { "device", OPT_DEVICE, true },
    { "nbd-server", OPT_NBD_SERVER, true },
    { "export", OPT_EXPORT, true },
    { "object", OPT_OBJECT, true },
    /* Emulator options: accepted, ignored (no guest CPU). */
    { "machine", OPT_IGNORED, true },
    { "M", OPT_IGNORED, true },
    { "accel", OPT_IGNORED, true },
    { "m", OPT_IGNORED, true },
    { "display", OPT_NONE_ONLY, true },
    { "vga", OPT_NONE_ONLY, true },
    { "nodefaults", OPT_IGNORED_FLAG, false },
    { "nographic", OPT_IGNORED_FLAG, false },
    { "S", OPT_IGNORED_FLAG, false },
    { "help", OPT_HELP, false },
    { "h", OPT_HELP, false },
    { "version", OPT_VERSION, false },
    { "V", OPT_VERSION, false },
    { NULL },
};

typedef struct Opt {
    const OptDesc *desc;
    const char *spelling;       /* as typed, for messages */
    const char *arg;
} Opt;

/* A -chardev: a listening socket (or stdio) a monitor can use. */
typedef struct Chardev {
    char *id;
    char *addr;                 /* "unix:PATH" or "HOST:PORT"; NULL: stdio */
    bool wait;
    bool used;
} Chardev;

static GPtrArray *chardevs;     /* Chardev * */
static char *pidfile;
static bool pidfile_written;
static int daemon_pipe = -1;    /* write end: tells the parent we are up */

static void usage(void)
{
    printf(
"Usage: qblockd [options]\n"
"\n"
"The qblock daemon: opens block nodes and serves QMP until 'quit',\n"
"SIGTERM or SIGINT, then flushes and closes every image.\n"
"\n"
"  -drive OPTIONS             a drive (file=,if=none|virtio,id=,format=,\n"
"                             node-name=,cache=,aio=,readonly=,discard=,\n"
"                             detect-zeroes=,file.*=,backing.*=)\n"
"  -blockdev, --blockdev JSON|KEYS\n"
"                             a node, as QMP blockdev-add takes it\n"
"  -device virtio-blk[-pci],drive=X[,id=Y]\n"
"                             a virtio-blk front end holding drive X\n"
"  --nbd-server addr.type=unix,addr.path=PATH|addr.type=inet,addr.host=H,\n"
"               addr.port=P[,max-connections=N]\n"
"                             start the NBD server\n"
"  --export type=nbd,id=ID,node-name=NODE[,name=NAME][,writable=on]\n"
"           [,description=TEXT][,allocation-depth=on]\n"
"                             export a node over the NBD server\n"
"  --object tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client]\n"
"           [,verify-peer=on|off][,priority=PRIO]\n"
"  --object tls-creds-psk,id=ID,dir=DIR[,endpoint=server|client]\n"
"           [,username=NAME][,priority=PRIO]\n"
"  --object tls-creds-anon,id=ID[,endpoint=server|client]\n"
"                             TLS credentials for the NBD server\n"
"                             (--nbd-server tls-creds=ID) or NBD nodes,\n"
"                             as QMP object-add creates them\n"
"  -qmp unix:PATH,server=on,wait=off\n"
"  -qmp tcp:HOST:PORT,server=on,wait=off\n"
"  -qmp stdio                 a QMP monitor (-qmp-pretty: pretty JSON)\n"
"  -chardev, --chardev socket,id=ID,path=PATH|host=H,port=P,server=on[,wait=off]\n"
"  -chardev stdio,id=ID       a character device for a monitor\n"
"  -mon chardev=ID,mode=control[,pretty=on]\n"
"  --monitor [chardev=]ID[,pretty=on]\n"
"                             a QMP monitor on a character device\n"
"  -trace, -T [enable=]PATTERN|events=FILE\n"
"                             enable trace events\n"
"  --pidfile PATH             write the process id to PATH (removed at exit)\n"
"  --daemonize                detach once every option has been applied\n"
"  -h, --help                 show this help\n"
"  -V, --version              show the version\n"
"\n"
"Accepted and ignored (qblockd runs no guest): -machine, -M, -accel, -m,\n"
"-nodefaults, -nographic, -S, -display none, -vga none.\n");
}

/* --- command line scanning --- */

static const OptDesc *find_opt(const char *name)
{
    for (const OptDesc *d = opt_descs; d->name; d++) {
        if (!strcmp(d->name, name)) {
            return d;
        }
    }
    return NULL;
}

/*
 * Splits argv into options.  "-x ARG", "--x ARG" and "--x=ARG" are all
 * accepted.  Exits with a message on anything else.
 */
static GArray *scan_args(int argc, char **argv)
{
    GArray *opts = g_array_new(FALSE, TRUE, sizeof(Opt));

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        g_autofree char *name = NULL;
        const char *eq;
        Opt o = { .spelling = a };

        if (a[0] != '-' || !a[1]) {
            error_report("%s: invalid option", a);
            exit(1);
        }
        a += a[1] == '-' ? 2 : 1;
        eq = strchr(a, '=');
        name = eq ? g_strndup(a, eq - a) : g_strdup(a);
        o.desc = find_opt(name);
        if (!o.desc) {
            error_report("%s: invalid option", argv[i]);
            exit(1);
        }
        if (o.desc->has_arg) {
            if (eq) {
                o.arg = eq + 1;
            } else if (i + 1 < argc) {
                o.arg = argv[++i];
            } else {
                error_report("%s: requires an argument", argv[i]);
                exit(1);
            }
        } else if (eq) {
            error_report("%s: does not take an argument", argv[i]);
            exit(1);
        }
        g_array_append_val(opts, o);
    }
    return opts;
}

/* --- chardev and monitor specifications --- */

/*
 * Rewrites QEMU's bare flags ("server", "nowait", "wait") in a chardev
 * option string into key=value form for keyval_parse(); ",," escapes are
 * kept.  The first item is left alone (the backend or address).
 */
static char *normalize_flags(const char *spec)
{
    GString *out = g_string_new(NULL);
    const char *p = spec;
    bool first = true;

    while (*p || first) {
        GString *item = g_string_new(NULL);

        while (*p) {
            if (*p == ',' && p[1] == ',') {
                g_string_append(item, ",,");
                p += 2;
                continue;
            }
            if (*p == ',') {
                break;
            }
            g_string_append_c(item, *p++);
        }
        if (!first) {
            g_string_append_c(out, ',');
        }
        if (!first && !strcmp(item->str, "server")) {
            g_string_append(out, "server=on");
        } else if (!first && !strcmp(item->str, "nowait")) {
            g_string_append(out, "wait=off");
        } else if (!first && !strcmp(item->str, "wait")) {
            g_string_append(out, "wait=on");
        } else {
            g_string_append(out, item->str);
        }
        g_string_free(item, TRUE);
        first = false;
        if (*p == ',') {
            p++;
        } else {
            break;
        }
    }
    return g_string_free(out, FALSE);
}

static bool take_bool(QDict *opts, const char *key, bool def, bool *value,
                      Error **errp)
{
    if (!qdict_get_bool_opt(opts, key, def, value, errp)) {
        return false;
    }
    qdict_del(opts, key);
    return true;
}

/* Fails on the first option nobody consumed. */
static bool check_leftover(QDict *opts, Error **errp)
{
    g_autoptr(GList) keys = qdict_keys(opts);

    if (keys) {
        error_setg(errp, "Invalid parameter '%s'", (char *)keys->data);
        return false;
    }
    return true;
}

/*
 * The socket part of a chardev: path= or host=/port=, server=on,
 * wait=on|off.  Consumes the keys it knows from @opts.
 */
static char *socket_from_opts(QDict *opts, bool *wait, Error **errp)
{
    g_autofree char *path = g_strdup(qdict_get_try_str(opts, "path"));
    g_autofree char *host = g_strdup(qdict_get_try_str(opts, "host"));
    g_autofree char *port = g_strdup(qdict_get_try_str(opts, "port"));
    bool server;

    qdict_del(opts, "path");
    qdict_del(opts, "host");
    qdict_del(opts, "port");
    if (!take_bool(opts, "server", false, &server, errp) ||
        !take_bool(opts, "wait", true, wait, errp)) {
        return NULL;
    }
    if (!server) {
        error_setg(errp, "qblockd only serves sockets: server=on is "
                   "required");
        return NULL;
    }
    if (path) {
        if (host || port) {
            error_setg(errp, "'path' cannot be combined with 'host' or "
                       "'port'");
            return NULL;
        }
        return g_strdup_printf("unix:%s", path);
    }
    if (!port) {
        error_setg(errp, "chardev: socket: no host given");
        return NULL;
    }
    if (host && strchr(host, ':')) {
        return g_strdup_printf("[%s]:%s", host, port);
    }
    return g_strdup_printf("%s:%s", host ? host : "127.0.0.1", port);
}

static bool add_chardev(const char *spec, Error **errp)
{
    g_autofree char *norm = normalize_flags(spec);
    g_autoptr(QDict) opts = keyval_parse(norm, "backend", errp);
    g_autofree char *backend = NULL;
    g_autofree char *id = NULL;
    Chardev *chr;

    if (!opts) {
        return false;
    }
    backend = g_strdup(qdict_get_try_str(opts, "backend"));
    id = g_strdup(qdict_get_try_str(opts, "id"));
    qdict_del(opts, "backend");
    qdict_del(opts, "id");
    if (!id) {
        error_setg(errp, "chardev: no id specified");
        return false;
    }
    for (guint i = 0; i < chardevs->len; i++) {
        if (!strcmp(((Chardev *)chardevs->pdata[i])->id, id)) {
            error_setg(errp, "attempt to add duplicate property '%s' to "
                       "object (type 'container')", id);
            return false;
        }
    }
    chr = g_new0(Chardev, 1);
    if (backend && !strcmp(backend, "socket")) {
        chr->addr = socket_from_opts(opts, &chr->wait, errp);
        if (!chr->addr) {
            g_free(chr);
            return false;
        }
    } else if (!backend || strcmp(backend, "stdio") != 0) {
        error_setg(errp, "'%s' is not a valid char driver name",
                   backend ? backend : "");
        g_free(chr);
        return false;
    }
    if (!check_leftover(opts, errp)) {
        g_free(chr->addr);
        g_free(chr);
        return false;
    }
    chr->id = g_steal_pointer(&id);
    g_ptr_array_add(chardevs, chr);
    return true;
}

static bool start_monitor_on(Chardev *chr, bool pretty, Error **errp)
{
    if (chr->used) {
        error_setg(errp, "Chardev '%s' is busy", chr->id);
        return false;
    }
    chr->used = true;
    if (!chr->addr) {
        monitor_new_qmp_fds(dup(STDIN_FILENO), dup(STDOUT_FILENO), pretty);
        return true;
    }
    return monitor_add_qmp_server(chr->addr, pretty, chr->wait, errp);
}

/* -qmp unix:PATH,... | tcp:HOST:PORT,... | stdio */
static bool add_qmp(const char *spec, bool pretty, Error **errp)
{
    g_autofree char *norm = normalize_flags(spec);
    g_autoptr(QDict) opts = keyval_parse(norm, "addr", errp);
    g_autofree char *addr_str = NULL;
    Chardev chr = { .id = (char *)"qmp" };
    bool server = true;

    if (!opts) {
        return false;
    }
    addr_str = g_strdup(qdict_get_try_str(opts, "addr"));
    qdict_del(opts, "addr");
    if (!addr_str) {
        error_setg(errp, "-qmp: an address is required");
        return false;
    }
    if (!strcmp(addr_str, "stdio")) {
        return check_leftover(opts, errp) &&
               start_monitor_on(&chr, pretty, errp);
    }
    if (!take_bool(opts, "server", false, &server, errp) ||
        !take_bool(opts, "wait", true, &chr.wait, errp) ||
        !check_leftover(opts, errp)) {
        return false;
    }
    if (!server) {
        error_setg(errp, "qblockd only serves sockets: server=on is "
                   "required");
        return false;
    }
    chr.addr = g_str_has_prefix(addr_str, "tcp:") ? addr_str + 4 : addr_str;
    return start_monitor_on(&chr, pretty, errp);
}

/* -mon chardev=ID,mode=control / --monitor [chardev=]ID */
static bool add_mon(const char *spec, bool storage_daemon, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(spec, storage_daemon ? "chardev" :
                                         NULL, errp);
    g_autofree char *id = NULL;
    g_autofree char *mode = NULL;
    bool pretty;

    if (!opts) {
        return false;
    }
    id = g_strdup(qdict_get_try_str(opts, "chardev"));
    mode = g_strdup(qdict_get_try_str(opts, "mode"));
    qdict_del(opts, "chardev");
    qdict_del(opts, "mode");
    qdict_del(opts, "id");
    if (!take_bool(opts, "pretty", false, &pretty, errp) ||
        !check_leftover(opts, errp)) {
        return false;
    }
    if (!id) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    /* QEMU's -mon defaults to the human monitor, which qblockd lacks. */
    if (storage_daemon ? (mode && strcmp(mode, "control")) :
        (!mode || strcmp(mode, "control"))) {
        error_setg(errp, "Only QMP monitors are supported: use "
                   "mode=control");
        return false;
    }
    for (guint i = 0; i < chardevs->len; i++) {
        Chardev *chr = chardevs->pdata[i];

        if (!strcmp(chr->id, id)) {
            return start_monitor_on(chr, pretty, errp);
        }
    }
    error_setg(errp, "chardev \"%s\" not found", id);
    return false;
}

/* --- block options --- */

/*
 * Dotted-key -blockdev options are all strings; the QAPI visitor wants
 * JSON types.  Each type error names the member and the type it wants,
 * so that member is converted and the visit retried.
 */
static bool coerce_member(QDict *root, const char *path, const char *type)
{
    g_auto(GStrv) parts = g_strsplit(path, ".", -1);
    QDict *dict = root;
    const char *str;
    char **p;

    for (p = parts; p[1]; p++) {
        dict = qdict_get_qdict(dict, *p);
        if (!dict) {
            return false;
        }
    }
    str = qdict_get_try_str(dict, *p);
    if (!str) {
        return false;
    }
    if (!strcmp(type, "boolean")) {
        if (!strcmp(str, "on") || !strcmp(str, "true") ||
            !strcmp(str, "yes")) {
            qdict_put_bool(dict, *p, true);
        } else if (!strcmp(str, "off") || !strcmp(str, "false") ||
                   !strcmp(str, "no")) {
            qdict_put_bool(dict, *p, false);
        } else {
            return false;
        }
        return true;
    }
    if (!strcmp(type, "integer") || !strcmp(type, "number")) {
        uint64_t size;
        int64_t val;
        const char *end;

        if (str[0] == '-') {
            if (qemu_strtoi64(str, &end, 10, &val) < 0 || *end) {
                return false;
            }
        } else if (qemu_strtosz(str, NULL, &size) == 0) {
            val = size;
        } else {
            return false;
        }
        qdict_put_int(dict, *p, val);
        return true;
    }
    return false;
}

/* A generated visitor, its output pointer cast to void **. */
typedef bool KeyvalVisitFunc(JsonNode *root, void **out, Error **errp);

/* Visits @opts, converting string members to the JSON types wanted. */
static void *keyval_visit(QDict *opts, KeyvalVisitFunc *visit, Error **errp)
{
    g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(),
                                                     opts);

    /* Each round converts one member, so the member count bounds it. */
    for (;;) {
        void *out = NULL;
        Error *err = NULL;
        char path[256], type[32];

        if (visit(root, &out, &err)) {
            return out;
        }
        if (sscanf(error_get_pretty(err), "Invalid parameter type for "
                   "'%255[^']', expected: %31s", path, type) != 2 ||
            !coerce_member(opts, path, type)) {
            error_propagate(errp, err);
            return NULL;
        }
        error_free(err);
    }
}

static bool visit_blockdev_options(JsonNode *root, void **out, Error **errp)
{
    return visit_type_BlockdevOptions(root, (BlockdevOptions **)out, errp);
}

static bool visit_export_options(JsonNode *root, void **out, Error **errp)
{
    return visit_type_BlockExportOptions(root, (BlockExportOptions **)out,
                                         errp);
}

static BlockdevOptions *blockdev_options_from_keyval(QDict *opts,
                                                     Error **errp)
{
    return keyval_visit(opts, visit_blockdev_options, errp);
}

static bool add_blockdev(const char *arg, Error **errp)
{
    g_autoptr(QDict) opts = NULL;
    BlockdevOptions *bo;

    if (arg[0] == '{') {
        Error *err = NULL;
        g_autoptr(JsonNode) node = qjson_parse(arg, strlen(arg), &err);

        if (!node) {
            error_propagate(errp, err);
            return false;
        }
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            error_setg(errp, "-blockdev: JSON object expected");
            return false;
        }
        if (!visit_type_BlockdevOptions(node, &bo, errp)) {
            return false;
        }
    } else {
        opts = keyval_parse(arg, NULL, errp);
        if (!opts || !(bo = blockdev_options_from_keyval(opts, errp))) {
            return false;
        }
    }
    qmp_blockdev_add(bo, errp);
    qapi_free_BlockdevOptions(bo);
    return !*errp;
}

static bool add_drive(const char *arg, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(arg, NULL, errp);

    return opts && drive_new(opts, errp);
}

static bool add_device(const char *arg, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(arg, "driver", errp);

    return opts && virtio_blk_device_add(opts, errp);
}

/* --- NBD --- */

/* Only the TLS keys may be left once addr and max-connections are taken. */
static bool nbd_server_check_keys(QDict *opts, Error **errp)
{
    g_autoptr(GList) keys = json_object_get_members(opts);

    for (GList *l = keys; l; l = l->next) {
        if (strcmp(l->data, "tls-creds") && strcmp(l->data, "tls-authz")) {
            error_setg(errp, "Parameter '%s' is unexpected", (char *)l->data);
            return false;
        }
    }
    return true;
}

/* --nbd-server: qemu-storage-daemon's keys (addr.*, tls-*, max-connections). */
static bool add_nbd_server(const char *arg, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(arg, NULL, errp);
    g_autoptr(SocketAddress) addr = NULL;
    const char *max_str;
    uint64_t max_connections = 0;
    QDict *addr_dict;

    if (!opts) {
        return false;
    }
    addr_dict = qdict_get_qdict(opts, "addr");
    if (!addr_dict) {
        error_setg(errp, "Parameter 'addr' is missing");
        return false;
    }
    addr = socket_address_from_qdict(addr_dict, errp);
    if (!addr) {
        return false;
    }
    max_str = qdict_get_try_str(opts, "max-connections");
    if (max_str && (qemu_strtou64(max_str, NULL, 10, &max_connections) < 0 ||
                    max_connections > UINT32_MAX)) {
        error_setg(errp, "Parameter 'max-connections' expects uint32_t");
        return false;
    }
    qdict_del(opts, "addr");
    qdict_del(opts, "max-connections");
    if (!nbd_server_check_keys(opts, errp)) {
        return false;
    }
    return nbd_server_start(addr, qdict_get_try_str(opts, "tls-creds"),
                            qdict_get_try_str(opts, "tls-authz"),
                            max_connections, errp);
}

/* --export: the options of QMP block-export-add as dotted keys. */
static bool add_export(const char *arg, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(arg, NULL, errp);
    BlockExportOptions *eo;
    bool ok;

    if (!opts || !(eo = keyval_visit(opts, visit_export_options, errp))) {
        return false;
    }
    ok = blk_exp_add(eo, errp);
    qapi_free_BlockExportOptions(eo);
    return ok;
}

/* --- process set-up --- */

static gboolean on_signal(gpointer opaque)
{
    monitor_request_exit();
    return G_SOURCE_CONTINUE;
}

static void watch_signal(int sig)
{
    GSource *src = g_unix_signal_source_new(sig);

    g_source_set_callback(src, on_signal, NULL, NULL);
    g_source_attach(src, aio_get_g_main_context(qemu_get_aio_context()));
    g_source_unref(src);
}

/*
 * Forks; the parent waits until the child reports that start-up is done
 * (exit 0) or failed (exit 1).  Runs before any thread exists.
 */
static void daemonize_start(void)
{
    int fds[2];
    pid_t pid;
    char status = 1;

    if (pipe(fds) < 0) {
        error_report("pipe: %s", strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        error_report("fork: %s", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(fds[1]);
        if (read(fds[0], &status, 1) != 1) {
            status = 1;
        }
        _exit(status);
    }
    close(fds[0]);
    setsid();
    daemon_pipe = fds[1];
}

static void daemonize_finish(void)
{
    char ok = 0;
    int null_fd;

    if (daemon_pipe < 0) {
        return;
    }
    null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDOUT_FILENO);
        dup2(null_fd, STDERR_FILENO);
        close(null_fd);
    }
    if (write(daemon_pipe, &ok, 1) != 1) {
        /* The parent is gone; nobody is left to tell. */
    }
    close(daemon_pipe);
    daemon_pipe = -1;
}

static bool write_pidfile(const char *path, Error **errp)
{
    g_autofree char *content = g_strdup_printf("%d\n", (int)getpid());
    GError *gerr = NULL;

    if (!g_file_set_contents(path, content, -1, &gerr)) {
        error_setg(errp, "Cannot write pid file: %s", gerr->message);
        g_error_free(gerr);
        return false;
    }
    return true;
}

/*
 * Fails start-up: one message, exit status 1; sockets already listening
 * and the pid file are removed.
 */
static void G_NORETURN fail(const Opt *o, Error *err)
{
    monitor_cleanup();
    /* An NBD server started earlier on the command line removes its socket. */
    blockdev_nbd_close_all_for_exit();
    if (pidfile_written) {
        unlink(pidfile);
    }
    if (o) {
        error_reportf_err(err, "%s %s: ", o->spelling, o->arg ? o->arg : "");
    } else {
        error_report_err(err);
    }
    exit(1);
}

static void chardev_free(gpointer data)
{
    Chardev *chr = data;

    g_free(chr->id);
    g_free(chr->addr);
    g_free(chr);
}

/* Runs the options of @kinds (a mask of 1 << OptKind) in order. */
static void run_phase(GArray *opts, unsigned kinds)
{
    for (guint i = 0; i < opts->len; i++) {
        Opt *o = &g_array_index(opts, Opt, i);
        Error *err = NULL;
        bool ok = true;

        if (!(kinds & (1u << o->desc->kind))) {
            continue;
        }
        switch (o->desc->kind) {
        case OPT_TRACE:
            if (!trace_opt_parse(o->arg)) {
                exit(1);
            }
            break;
        case OPT_CHARDEV:
            ok = add_chardev(o->arg, &err);
            break;
        case OPT_BLOCKDEV:
            ok = add_blockdev(o->arg, &err);
            break;
        case OPT_DRIVE:
            ok = add_drive(o->arg, &err);
            break;
        case OPT_DEVICE:
            ok = add_device(o->arg, &err);
            break;
        case OPT_NBD_SERVER:
            ok = add_nbd_server(o->arg, &err);
            break;
        case OPT_EXPORT:
            ok = add_export(o->arg, &err);
            break;
        case OPT_OBJECT:
            ok = user_creatable_add_str(o->arg, &err);
            break;
        case OPT_QMP:
        case OPT_QMP_PRETTY:
            ok = add_qmp(o->arg, o->desc->kind == OPT_QMP_PRETTY, &err);
            break;
        case OPT_MON:
        case OPT_MONITOR:
            ok = add_mon(o->arg, o->desc->kind == OPT_MONITOR, &err);
            break;
        case OPT_NONE_ONLY:
            if (strcmp(o->arg, "none") != 0) {
                error_setg(&err, "qblockd has no display: only 'none' is "
                           "accepted");
                ok = false;
            }
            break;
        default:
            break;
        }
        if (!ok) {
            fail(o, err);
        }
    }
}

#define PHASE(k) (1u << (k))

int main(int argc, char **argv)
{
    g_autoptr(GArray) opts = NULL;
    bool daemonize = false;
    AioContext *ctx;

    error_set_progname(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    opts = scan_args(argc, argv);
    for (guint i = 0; i < opts->len; i++) {
        Opt *o = &g_array_index(opts, Opt, i);

        switch (o->desc->kind) {
        case OPT_HELP:
            usage();
            return 0;
        case OPT_VERSION:
            printf("qblockd version %s\n", QBLOCK_VERSION);
            return 0;
        case OPT_DAEMONIZE:
            daemonize = true;
            break;
        case OPT_PIDFILE:
            pidfile = g_strdup(o->arg);
            break;
        default:
            break;
        }
    }
    if (daemonize) {
        daemonize_start();
    }

    trace_init_from_env();
    ctx = qemu_get_aio_context();
    bdrv_init();
    monitor_init_globals();
    chardevs = g_ptr_array_new_with_free_func(chardev_free);
    watch_signal(SIGTERM);
    watch_signal(SIGINT);
    watch_signal(SIGHUP);

    /*
     * Nodes before the devices that use them; sockets last, so a client
     * that can connect finds every node in place.
     */
    run_phase(opts, PHASE(OPT_TRACE) | PHASE(OPT_NONE_ONLY));
    /* Objects first: nodes and the NBD server refer to them by id. */
    run_phase(opts, PHASE(OPT_OBJECT));
    run_phase(opts, PHASE(OPT_CHARDEV));
    run_phase(opts, PHASE(OPT_BLOCKDEV) | PHASE(OPT_DRIVE));
    run_phase(opts, PHASE(OPT_DEVICE));
    run_phase(opts, PHASE(OPT_NBD_SERVER));
    run_phase(opts, PHASE(OPT_EXPORT));
    if (pidfile) {
        Error *err = NULL;

        if (!write_pidfile(pidfile, &err)) {
            fail(NULL, err);
        }
        pidfile_written = true;
    }
    run_phase(opts, PHASE(OPT_QMP) | PHASE(OPT_QMP_PRETTY) | PHASE(OPT_MON) |
              PHASE(OPT_MONITOR));
    daemonize_finish();

    while (!monitor_exit_requested()) {
        aio_poll(ctx, true);
    }

    /*
     * QEMU's order, while the monitors are still open so that the events
     * reach the clients: exports (BLOCK_EXPORT_DELETED; they hold node
     * references and must be gone before nodes close), then each running
     * job's cancellation (aborting, BLOCK_JOB_CANCELLED, concluded, null).
     */
    blockdev_nbd_close_all_for_exit();
    job_cancel_sync_all();
    /* Answer what is pending, stop listening, then close the images. */
    monitor_cleanup();
    blockdev_close_all_for_exit();
    /* After the server and the nodes, which may hold credentials. */
    user_creatable_cleanup();
    if (pidfile) {
        unlink(pidfile);
        g_free(pidfile);
    }
    g_ptr_array_free(chardevs, TRUE);
    return 0;
}

/*
 * human-monitor-command: the few HMP commands a storage daemon has
 * (qemu-io, info block, info block-jobs, help), with QEMU's syntax, output
 * and messages.  Output lines end in "\r\n" as QEMU's HMP output does.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "block/block.h"
#include "block/block-backend.h"
#include "qapi/qapi-commands.h"
#include "qemu-io.h"
#include "sysemu/blockdev.h"

/*
 * Optional: present once the block job code is linked into the program.
 * Until then "info block-jobs" reports no jobs.
 */
#pragma weak qmp_query_block_jobs

typedef struct HmpCommand {
    const char *name;
    const char *args;
    const char *help;
    /* @args is the rest of the line after the command name. */
    void (*fn)(GString *out, const char *args);
} HmpCommand;

static void hmp_help(GString *out, const char *args);
static void hmp_info(GString *out, const char *args);
static void hmp_qemu_io(GString *out, const char *args);
static void hmp_info_block(GString *out, const char *args);
static void hmp_info_block_jobs(GString *out, const char *args);

static const HmpCommand hmp_commands[] = {
    { "help|?", "[cmd]", "show the help", hmp_help },
    { "info", "[subcommand]", "show various information about the system "
      "state", hmp_info },
    { "qemu-io", "[-d] [device] \"[command]\"", "run a qemu-io command on a "
      "block device\n\t\t\t-d: [device] is a device ID rather than a drive "
      "ID or node name", hmp_qemu_io },
    { NULL },
};

static const HmpCommand hmp_info_commands[] = {
    { "block", "[-n] [device]", "show info of one block device or all block "
      "devices (-n: show named nodes)", hmp_info_block },
    { "block-jobs", "", "show progress of ongoing block device operations",
      hmp_info_block_jobs },
    { NULL },
};

/* --- line parsing --- */

static const char *skip_ws(const char *p)
{
    while (g_ascii_isspace(*p)) {
        p++;
    }
    return p;
}

/* The next whitespace-delimited word (new string) or NULL at the end. */
static char *next_word(const char **pp)
{
    const char *p = skip_ws(*pp);
    const char *start = p;

    if (!*p) {
        *pp = p;
        return NULL;
    }
    while (*p && !g_ascii_isspace(*p)) {
        p++;
    }
    *pp = p;
    return g_strndup(start, p - start);
}

/*
 * An HMP string argument: a double-quoted string (escapes \\ \" \' \n
 * \r) or a single word.  NULL with @err set when malformed.
 */
static char *next_string(const char **pp, const char **err)
{
    const char *p = skip_ws(*pp);
    GString *s;

    if (!*p) {
        *err = "string expected";
        return NULL;
    }
    if (*p != '"') {
        return next_word(pp);
    }
    s = g_string_new(NULL);
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\') {
            switch (*++p) {
            case '\\': case '"': case '\'':
                g_string_append_c(s, *p);
                continue;
            case 'n':
                g_string_append_c(s, '\n');
                continue;
            case 'r':
                g_string_append_c(s, '\r');
                continue;
            default:
                *err = "unsupported escape code";
                g_string_free(s, TRUE);
                return NULL;
            }
        }
        g_string_append_c(s, *p);
    }
    if (*p != '"') {
        *err = "unterminated string";
        g_string_free(s, TRUE);
        return NULL;
    }
    *pp = p + 1;
    return g_string_free(s, FALSE);
}

/* Matches @name against "a|b" alternatives. */
static bool name_matches(const char *names, const char *name)
{
    g_auto(GStrv) alts = g_strsplit(names, "|", -1);

    for (char **a = alts; *a; a++) {
        if (!strcmp(*a, name)) {
            return true;
        }
    }
    return false;
}

static void print_command_list(GString *out, const char *prefix,
                               const HmpCommand *cmds)
{
    for (const HmpCommand *c = cmds; c->name; c++) {
        g_string_append_printf(out, "%s%s %s -- %s\n", prefix, c->name,
                               c->args, c->help);
    }
}

static void bad_syntax(GString *out, const char *cmd, const char *msg)
{
    g_string_append_printf(out, "%s: %s\nTry \"help %s\" for more "
                           "information\n", cmd, msg, cmd);
}

/* --- help and info --- */

static void hmp_help(GString *out, const char *args)
{
    g_autofree char *what = next_word(&args);

    if (what && !strcmp(what, "info")) {
        print_command_list(out, "info ", hmp_info_commands);
        return;
    }
    for (const HmpCommand *c = hmp_commands; c->name; c++) {
        if (!what || name_matches(c->name, what)) {
            g_string_append_printf(out, "%s %s -- %s\n", c->name, c->args,
                                   c->help);
        }
    }
}

static void hmp_info(GString *out, const char *args)
{
    g_autofree char *what = next_word(&args);

    if (!what) {
        print_command_list(out, "info ", hmp_info_commands);
        return;
    }
    for (const HmpCommand *c = hmp_info_commands; c->name; c++) {
        if (!strcmp(c->name, what)) {
            c->fn(out, args);
            return;
        }
    }
    g_string_append_printf(out, "unknown command: 'info %s'\n", what);
}

static void hmp_info_block(GString *out, const char *args)
{
    g_autofree char *word = next_word(&args);
    g_autofree char *device = NULL;
    Error *err = NULL;
    bool nodes = false;

    if (word && !strcmp(word, "-n")) {
        nodes = true;
        device = next_word(&args);
    } else {
        device = g_steal_pointer(&word);
    }
    if (!blockdev_hmp_info_block(out, device, nodes, &err)) {
        g_string_append_printf(out, "Error: %s\n", error_get_pretty(err));
        error_free(err);
    }
}

static void hmp_info_block_jobs(GString *out, const char *args)
{
    BlockJobInfoList *list = NULL;
    Error *err = NULL;

    if (qmp_query_block_jobs) {
        list = qmp_query_block_jobs(&err);
    }
    if (err) {
        g_string_append_printf(out, "Error: %s\n", error_get_pretty(err));
        error_free(err);
        return;
    }
    if (!list) {
        g_string_append(out, "No active jobs\n");
        return;
    }
    for (BlockJobInfoList *l = list; l; l = l->next) {
        BlockJobInfo *j = l->value;

        if (!strcmp(j->type, "stream")) {
            g_string_append_printf(out, "Streaming device %s", j->device);
        } else {
            g_string_append_printf(out, "Type %s, device %s", j->type,
                                   j->device);
        }
        g_string_append_printf(out, ": Completed %" PRId64 " of %" PRId64
                               " bytes, speed limit %" PRId64 " bytes/s\n",
                               j->offset, j->len, j->speed);
    }
    qapi_free_BlockJobInfoList(list);
}

/* --- qemu-io --- */

/*
 * Runs @cmd with the qemu-io interpreter and returns what it printed.
 * The interpreter prints with printf() and fprintf(stderr); both streams
 * are pointed at one memory stream while it runs (glibc lets a program
 * assign stdout and stderr), so messages keep their order.  Asynchronous
 * requests are waited for before the streams are restored, so their
 * completion lines are captured too.
 */
static char *qemuio_capture(BlockBackend *blk, const char *cmd)
{
    char *data = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&data, &size);
    FILE *saved_out = stdout;
    FILE *saved_err = stderr;

    if (!mem) {
        return g_strdup_printf("Error: %s\n", strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    stdout = mem;
    stderr = mem;
    qemuio_command(blk, cmd);
    qemuio_wait_aio();
    fflush(mem);
    stdout = saved_out;
    stderr = saved_err;
    fclose(mem);
    return data;
}

static void hmp_qemu_io(GString *out, const char *args)
{
    const char *p = skip_ws(args);
    const char *err = NULL;
    g_autofree char *device = NULL;
    g_autofree char *cmd = NULL;
    g_autofree char *printed = NULL;
    BlockBackend *blk;
    BlockBackend *local_blk = NULL;
    BlockDriverState *bs;
    Error *local_err = NULL;
    bool qdev = false;

    if (!strncmp(p, "-d", 2) && (!p[2] || g_ascii_isspace(p[2]))) {
        qdev = true;
        p += 2;
    }
    device = next_word(&p);
    if (!device) {
        bad_syntax(out, "qemu-io", "block device name expected");
        return;
    }
    cmd = next_string(&p, &err);
    if (!cmd) {
        bad_syntax(out, "qemu-io", err);
        return;
    }
    if (*skip_ws(p)) {
        bad_syntax(out, "qemu-io", "extraneous characters at the end of line");
        return;
    }

    if (qdev) {
        /* Guest devices have no qemu-io access of their own here. */
        g_string_append_printf(out, "Error: Device '%s' not found\n", device);
        return;
    }
    blk = blk_by_name(device);
    if (!blk) {
        bs = bdrv_find_node(device);
        if (!bs) {
            g_string_append_printf(out, "Error: Cannot find device='' nor "
                                   "node-name='%s'\n", device);
            return;
        }
        /* A node without a drive gets a temporary BlockBackend. */
        local_blk = blk_new();
        if (blk_insert_bs(local_blk, bs, &local_err) < 0) {
            g_string_append_printf(out, "Error: %s\n",
                                   error_get_pretty(local_err));
            error_free(local_err);
            blk_unref(local_blk);
            return;
        }
        blk = local_blk;
    }
    printed = qemuio_capture(blk, cmd);
    g_string_append(out, printed);
    if (local_blk) {
        blk_unref(local_blk);
    }
}

/* --- entry point --- */

/* QEMU's HMP output uses "\r\n" line ends. */
static char *to_crlf(const char *s)
{
    GString *out = g_string_sized_new(strlen(s) + 16);

    for (; *s; s++) {
        if (*s == '\n') {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *s);
    }
    return g_string_free(out, FALSE);
}

char *qmp_human_monitor_command(const char *command_line, bool has_cpu_index,
                                int64_t cpu_index, Error **errp)
{
    g_autoptr(GString) out = g_string_new(NULL);
    const char *p = command_line;
    g_autofree char *name = next_word(&p);

    if (name) {
        const HmpCommand *c;

        for (c = hmp_commands; c->name; c++) {
            if (name_matches(c->name, name)) {
                c->fn(out, p);
                break;
            }
        }
        if (!c->name) {
            g_string_append_printf(out, "unknown command: '%s'\n", name);
        }
    }
    return to_crlf(out->str);
}

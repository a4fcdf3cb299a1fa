/*
 * The qemu-io command set: I/O with patterns and statistics, allocation
 * queries, blkdebug breakpoints.  Output follows qemu-io's shapes so that
 * scripts and golden test output written for qemu-io keep working.
 *
 * Printing conventions (as in qemu-io): results, I/O errors, usage lines
 * and argument errors go to stdout; "command not found", argument counts,
 * "no file open" and getopt complaints go to stderr.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "qemu-io.h"
#include "img-common.h"

#include <getopt.h>
#include <signal.h>

/* qemu-io's request size limit: INT_MAX rounded down to a sector. */
#define QEMUIO_MAX_BYTES \
    ((int64_t)QEMU_ALIGN_DOWN(INT_MAX, BDRV_SECTOR_SIZE))
#define QEMUIO_BUF_ALIGN    4096
#define QEMUIO_DEFAULT_PATTERN  0xcd

bool qemuio_misalign;

/* Command table, kept sorted by name for "help". */
static const QemuIOCommand **cmdtab;
static size_t ncmds;

/* aio requests submitted and not yet reported. */
static unsigned aio_pending;

void qemuio_add_command(const QemuIOCommand *cmd)
{
    size_t i;

    cmdtab = g_renew(const QemuIOCommand *, cmdtab, ncmds + 1);
    for (i = ncmds; i > 0 && strcmp(cmdtab[i - 1]->name, cmd->name) > 0; i--) {
        cmdtab[i] = cmdtab[i - 1];
    }
    cmdtab[i] = cmd;
    ncmds++;
}

static const QemuIOCommand *find_command(const char *name)
{
    for (size_t i = 0; i < ncmds; i++) {
        if (!strcmp(cmdtab[i]->name, name) ||
            (cmdtab[i]->altname && !strcmp(cmdtab[i]->altname, name))) {
            return cmdtab[i];
        }
    }
    return NULL;
}

void qemuio_command_usage(const QemuIOCommand *cmd)
{
    printf("%s ", cmd->name);
    if (cmd->args) {
        printf("%s ", cmd->args);
    }
    printf("-- %s\n", cmd->oneline);
}

/* --- number and pattern parsing --- */

/* Parses a size ("4k", "0x200"); prints qemu-io's message on failure. */
static bool parse_num(const char *arg, int64_t *value)
{
    uint64_t v;
    int ret = qemu_strtosz(arg, NULL, &v);

    if (ret == 0 && v > INT64_MAX) {
        ret = -ERANGE;
    }
    if (ret == -ERANGE) {
        printf("Parsing error: argument too large -- %s\n", arg);
        return false;
    }
    if (ret < 0) {
        printf("Parsing error: non-numeric argument, or extraneous/"
               "unrecognized suffix -- %s\n", arg);
        return false;
    }
    *value = v;
    return true;
}

/* A byte pattern: decimal, 0x hex or 0 octal, 0..255. */
static bool parse_pattern(const char *arg, int *pattern)
{
    int64_t v;

    if (qemu_strtoi64(arg, NULL, 0, &v) < 0 || v < 0 || v > UCHAR_MAX) {
        printf("%s is not a valid pattern byte\n", arg);
        return false;
    }
    *pattern = v;
    return true;
}

static bool check_request_len(int64_t len, const char *arg,
                              const char *qualifier)
{
    if (len > QEMUIO_MAX_BYTES) {
        printf("length cannot exceed %" PRId64 "%s, given %s\n",
               QEMUIO_MAX_BYTES, qualifier, arg);
        return false;
    }
    return true;
}

static bool check_sector_aligned(int64_t value, const char *what)
{
    if (!QEMU_IS_ALIGNED(value, BDRV_SECTOR_SIZE)) {
        printf("%" PRId64 " is not a sector-aligned value for '%s'\n",
               value, what);
        return false;
    }
    return true;
}

/* --- buffers --- */

/*
 * I/O buffers are aligned for O_DIRECT; with -m they deliberately start
 * 512 bytes past the alignment.  qemuio_buf_free() takes the pointer
 * qemuio_buf_alloc() returned.
 */
static void *qemuio_buf_alloc(size_t len)
{
    size_t skew = qemuio_misalign ? BDRV_SECTOR_SIZE : 0;

    return (char *)qemu_memalign(QEMUIO_BUF_ALIGN, MAX(len + skew, 1)) + skew;
}

static void qemuio_buf_free(void *buf)
{
    size_t skew = qemuio_misalign ? BDRV_SECTOR_SIZE : 0;

    qemu_vfree((char *)buf - skew);
}

/* Fills @buf by repeating the contents of @path; prints why it failed. */
static bool fill_from_file(void *buf, size_t len, const char *path)
{
    FILE *f = fopen(path, "r");
    size_t got;

    if (!f) {
        perror(path);
        return false;
    }
    got = fread(buf, 1, len, f);
    if (ferror(f)) {
        perror(path);
        fclose(f);
        return false;
    }
    fclose(f);
    if (got == 0 && len > 0) {
        fprintf(stderr, "%s: file is empty\n", path);
        return false;
    }
    /* Repeat the file contents to fill the rest, doubling each copy. */
    for (size_t done = got; done < len; done += MIN(done, len - done)) {
        memcpy((char *)buf + done, buf, MIN(done, len - done));
    }
    return true;
}

/* True if all @len bytes at @buf equal @pattern. */
static bool buf_matches(const uint8_t *buf, size_t len, int pattern)
{
    uint8_t ref[4096];
    size_t chunk;

    memset(ref, pattern, MIN(len, sizeof(ref)));
    for (; len > 0; buf += chunk, len -= chunk) {
        chunk = MIN(len, sizeof(ref));
        if (memcmp(buf, ref, chunk)) {
            return false;
        }
    }
    return true;
}

/* "%08x:  xx xx ...  chars": 16 bytes a line, only alnum shown. */
static void dump_buffer(const uint8_t *buf, int64_t offset, int64_t len)
{
    for (int64_t i = 0; i < len; i += 16) {
        int n = MIN(16, len - i);

        printf("%08" PRIx64 ":  ", offset + i);
        for (int j = 0; j < n; j++) {
            printf("%02x ", buf[i + j]);
        }
        putchar(' ');
        for (int j = 0; j < n; j++) {
            putchar(g_ascii_isalnum(buf[i + j]) ? buf[i + j] : '.');
        }
        putchar('\n');
    }
}

/* --- statistics --- */

/*
 * A quantity with a binary unit: "64 KiB", "1.500 MiB", "5.001 GiB",
 * "512 bytes".  Bytes print with six decimals and larger units with
 * three; a fraction starting with ".000" is dropped.
 */
static void cvtstr(double value, char *buf, size_t size)
{
    static const char *const units[] = {
        "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
    };
    const char *unit = "bytes";
    char num[48];
    char *zero;

    for (int i = ARRAY_SIZE(units) - 1; i >= 0; i--) {
        double scale = (double)(UINT64_C(1) << (10 * (i + 1)));

        if (value >= scale) {
            value /= scale;
            unit = units[i];
            break;
        }
    }
    snprintf(num, sizeof(num), strcmp(unit, "bytes") ? "%.3f" : "%f", value);
    zero = strstr(num, ".000");
    if (zero) {
        *zero = '\0';
    }
    snprintf(buf, size, "%s %s", num, unit);
}

/* "00.12 sec" below a second, else (and always when @fixed) "H:MM:SS.ss". */
static void timestr(int64_t ns, char *buf, size_t size, bool fixed)
{
    int64_t secs = ns / NANOSECONDS_PER_SECOND;
    double frac = (double)(ns % NANOSECONDS_PER_SECOND) / 1e9;

    if (!fixed && secs == 0) {
        snprintf(buf, size, "%05.2f sec", frac);
    } else {
        snprintf(buf, size, "%u:%02u:%05.2f", (unsigned)(secs / 3600),
                 (unsigned)(secs / 60 % 60), (double)(secs % 60) + frac);
    }
}

/*
 * The two result lines ("wrote 512/512 bytes at offset 0" and the rate),
 * or with @csv the single "bytes,ops,time,bytes/s,ops/s" line.
 */
static void print_report(const char *op, int64_t ns, int64_t offset,
                         int64_t count, int64_t total, int ops, bool csv)
{
    double secs = (double)MAX(ns, 1) / 1e9;
    char tbuf[64], sbuf[64], rbuf[64];

    timestr(ns, tbuf, sizeof(tbuf), csv);
    if (csv) {
        printf("%" PRId64 ",%d,%s,%.3f,%.3f\n", total, ops, tbuf,
               total / secs, ops / secs);
        return;
    }
    printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n",
           op, count, total, offset);
    cvtstr(total, sbuf, sizeof(sbuf));
    cvtstr(total / secs, rbuf, sizeof(rbuf));
    printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n",
           sbuf, ops, tbuf, rbuf, ops / secs);
}

/* --- read / readv --- */

static const QemuIOCommand read_cmd;

static void read_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'read -v 512 1k' - dumps 1 KiB read 512 bytes into the image\n"
"\n"
" Reads part of the open image; -v dumps what was read to stdout.\n"
" -b, -- read from the VM state area instead of the disk\n"
" -C, -- print statistics as one comma-separated line\n"
" -l, -- length of the pattern check (only with -P)\n"
" -p, -- accepted and ignored (compatibility)\n"
" -P, -- check that the data read equals this byte pattern\n"
" -q, -- quiet: no statistics\n"
" -s, -- start of the pattern check in the buffer (only with -P)\n"
" -v, -- hexdump the data read to stdout\n"
"\n");
}

static int read_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false, verbose = false, vmstate = false;
    bool pflag = false, sflag = false, lflag = false;
    int pattern = 0, c, ret;
    int64_t offset, count, pattern_offset = 0, pattern_count = 0;
    int64_t start;
    uint8_t *buf;

    while ((c = getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        switch (c) {
        case 'b':
            vmstate = true;
            break;
        case 'C':
            csv = true;
            break;
        case 'l':
            lflag = true;
            if (!parse_num(optarg, &pattern_count)) {
                return -EINVAL;
            }
            break;
        case 'p':
            break;
        case 'P':
            pflag = true;
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            sflag = true;
            if (!parse_num(optarg, &pattern_offset)) {
                return -EINVAL;
            }
            break;
        case 'v':
            verbose = true;
            break;
        default:
            qemuio_command_usage(&read_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2 || (!pflag && (lflag || sflag))) {
        qemuio_command_usage(&read_cmd);
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset) ||
        !parse_num(argv[optind + 1], &count) ||
        !check_request_len(count, argv[optind + 1], "")) {
        return -EINVAL;
    }
    if (pflag) {
        if (!lflag) {
            pattern_count = count - pattern_offset;
        }
        if (pattern_count < 0 || pattern_offset + pattern_count > count) {
            printf("pattern verification range exceeds end of read data\n");
            return -EINVAL;
        }
    }
    if (vmstate && (!check_sector_aligned(offset, "offset") ||
                    !check_sector_aligned(count, "count"))) {
        return -EINVAL;
    }

    buf = qemuio_buf_alloc(count);
    start = qemu_clock_get_ns();
    /* The block layer has no VM state area (qcow2 savevm) to read. */
    ret = vmstate ? -ENOTSUP : blk_pread(blk, offset, count, buf, 0);
    start = qemu_clock_get_ns() - start;
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    if (pflag && !buf_matches(buf + pattern_offset, pattern_count, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %"
               PRId64 " bytes\n", offset + pattern_offset, pattern_count);
        ret = -EINVAL;
    }
    if (quiet) {
        goto out;
    }
    if (verbose) {
        dump_buffer(buf, offset, count);
    }
    print_report("read", start, offset, count, count, 1, csv);
out:
    qemuio_buf_free(buf);
    return ret;
}

static const QemuIOCommand read_cmd = {
    .name = "read",
    .altname = "r",
    .func = read_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-abCqv] [-P pattern [-s off] [-l len]] off len",
    .oneline = "reads a number of bytes at a specified offset",
    .help = read_help,
};

/*
 * Builds @qiov over one buffer covering the lengths in @args (each a size
 * argument); the iovec array lives in the same allocation, after the
 * data.  Returns the buffer (free with qemuio_buf_free) or NULL after
 * printing why.
 */
static void *build_qiov(QEMUIOVector *qiov, char **args, int nargs,
                        int fill, size_t extra, void **extra_out)
{
    int64_t total = 0, pos = 0, lens[nargs > 0 ? nargs : 1];
    size_t data_end;
    struct iovec *iov;
    char *buf;

    for (int i = 0; i < nargs; i++) {
        if (!parse_num(args[i], &lens[i])) {
            return NULL;
        }
        if (lens[i] > QEMUIO_MAX_BYTES) {
            printf("Argument '%s' exceeds maximum size %" PRId64 "\n",
                   args[i], QEMUIO_MAX_BYTES);
            return NULL;
        }
        if (total + lens[i] > QEMUIO_MAX_BYTES) {
            printf("The total number of bytes exceed the maximum size %"
                   PRId64 "\n", QEMUIO_MAX_BYTES);
            return NULL;
        }
        total += lens[i];
    }

    data_end = ROUND_UP(total, 16);
    buf = qemuio_buf_alloc(data_end + nargs * sizeof(struct iovec) + extra);
    iov = (struct iovec *)(buf + data_end);
    if (fill >= 0) {
        memset(buf, fill, total);
    }
    for (int i = 0; i < nargs; pos += lens[i], i++) {
        iov[i] = (struct iovec) { .iov_base = buf + pos, .iov_len = lens[i] };
    }
    qemu_iovec_init_external(qiov, iov, nargs);
    if (extra_out) {
        *extra_out = (char *)(iov + nargs);
    }
    return buf;
}

static const QemuIOCommand readv_cmd;

static void readv_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset into several buffers\n"
"\n"
" Example:\n"
" 'readv -v 512 1k 1k ' - dumps 2 KiB read 512 bytes into the image\n"
"\n"
" Reads part of the open image, one buffer per length given.\n"
" -C, -- print statistics as one comma-separated line\n"
" -P, -- check that the data read equals this byte pattern\n"
" -v, -- hexdump the data read to stdout\n"
" -q, -- quiet: no statistics\n"
"\n");
}

static int readv_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false, verbose = false, pflag = false;
    int pattern = 0, c, ret;
    int64_t offset, start;
    QEMUIOVector qiov;
    uint8_t *buf;

    while ((c = getopt(argc, argv, "CP:qv")) != -1) {
        switch (c) {
        case 'C':
            csv = true;
            break;
        case 'P':
            pflag = true;
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
            break;
        default:
            qemuio_command_usage(&readv_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&readv_cmd);
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset)) {
        return -EINVAL;
    }
    buf = build_qiov(&qiov, argv + optind + 1, argc - optind - 1, -1, 0,
                     NULL);
    if (!buf) {
        return -EINVAL;
    }

    start = qemu_clock_get_ns();
    ret = blk_preadv(blk, offset, qiov.size, &qiov, 0);
    start = qemu_clock_get_ns() - start;
    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
        goto out;
    }
    if (pflag && !buf_matches(buf, qiov.size, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %zu "
               "bytes\n", offset, qiov.size);
        ret = -EINVAL;
    }
    if (quiet) {
        goto out;
    }
    if (verbose) {
        dump_buffer(buf, offset, qiov.size);
    }
    print_report("read", start, offset, qiov.size, qiov.size, 1, csv);
out:
    qemuio_buf_free(buf);
    return ret;
}

static const QemuIOCommand readv_cmd = {
    .name = "readv",
    .func = readv_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-Cqv] [-P pattern] off len [len..]",
    .oneline = "reads a number of bytes at a specified offset",
    .help = readv_help,
};

/* --- write / writev --- */

static const QemuIOCommand write_cmd;

static void write_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'write 512 1k' - writes 1 KiB at 512 bytes into the open image\n"
"\n"
" Writes part of the open image from a buffer filled with a byte\n"
" pattern (0xcd unless -P says otherwise).\n"
" -b, -- write to the VM state area instead of the disk\n"
" -c, -- write compressed data (blk_pwrite_compressed)\n"
" -f, -- force unit access (FUA)\n"
" -n, -- with -z, fail instead of falling back to writing zero buffers\n"
" -p, -- accepted and ignored (compatibility)\n"
" -P, -- fill the buffer with this byte pattern\n"
" -s, -- fill the buffer by repeating the contents of this file\n"
" -C, -- print statistics as one comma-separated line\n"
" -q, -- quiet: no statistics\n"
" -u, -- with -z, allow the zeroed range to be unmapped\n"
" -z, -- write zeroes (blk_co_pwrite_zeroes)\n"
"\n");
}

static int write_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false, vmstate = false, compressed = false;
    bool zflag = false, pflag = false;
    BdrvRequestFlags flags = 0;
    const char *src_file = NULL;
    int pattern = QEMUIO_DEFAULT_PATTERN, c, ret;
    int64_t offset, count, start;
    void *buf = NULL;

    while ((c = getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'b':
            vmstate = true;
            break;
        case 'c':
            compressed = true;
            break;
        case 'C':
            csv = true;
            break;
        case 'f':
            flags |= BDRV_REQ_FUA;
            break;
        case 'n':
            flags |= BDRV_REQ_NO_FALLBACK;
            break;
        case 'p':
            break;
        case 'P':
            pflag = true;
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            src_file = optarg;
            break;
        case 'u':
            flags |= BDRV_REQ_MAY_UNMAP;
            break;
        case 'z':
            zflag = true;
            break;
        default:
            qemuio_command_usage(&write_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qemuio_command_usage(&write_cmd);
        return -EINVAL;
    }
    if (vmstate && zflag) {
        printf("-b and -z cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (zflag + pflag + !!src_file > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same "
               "time\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && !zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_NO_FALLBACK) && !zflag) {
        printf("-n requires -z to be specified\n");
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset) ||
        !parse_num(argv[optind + 1], &count)) {
        return -EINVAL;
    }
    /* Only a write-zeroes that may not fall back can exceed the limit. */
    if (!(flags & BDRV_REQ_NO_FALLBACK) &&
        !check_request_len(count, argv[optind + 1], " without -n")) {
        return -EINVAL;
    }
    if ((vmstate || compressed) &&
        (!check_sector_aligned(offset, "offset") ||
         !check_sector_aligned(count, "count"))) {
        return -EINVAL;
    }

    if (!zflag) {
        buf = qemuio_buf_alloc(count);
        if (src_file) {
            if (!fill_from_file(buf, count, src_file)) {
                qemuio_buf_free(buf);
                return -EINVAL;
            }
        } else {
            memset(buf, pattern, count);
        }
    }

    start = qemu_clock_get_ns();
    if (vmstate) {
        ret = -ENOTSUP;     /* no VM state area, see read_f() */
    } else if (zflag) {
        ret = blk_pwrite_zeroes(blk, offset, count, flags);
    } else {
        if (compressed) {
            flags |= BDRV_REQ_WRITE_COMPRESSED;
        }
        ret = blk_pwrite(blk, offset, count, buf, flags);
    }
    start = qemu_clock_get_ns() - start;
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
    } else if (!quiet) {
        print_report("wrote", start, offset, count, count, 1, csv);
    }
    if (buf) {
        qemuio_buf_free(buf);
    }
    return ret;
}

static const QemuIOCommand write_cmd = {
    .name = "write",
    .altname = "w",
    .func = write_f,
    .argmin = 2,
    .argmax = -1,
    .flags = QEMUIO_CMD_WRITE,
    .args = "[-bcCfnquz] [-P pattern | -s source_file] off len",
    .oneline = "writes a number of bytes at a specified offset",
    .help = write_help,
};

static const QemuIOCommand writev_cmd;

static void writev_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset out of several buffers\n"
"\n"
" Example:\n"
" 'writev 512 1k 1k' - writes 2 KiB at 512 bytes into the open image\n"
"\n"
" Writes part of the open image, one buffer per length given, filled\n"
" with a byte pattern (0xcd unless -P says otherwise).\n"
" -P, -- fill the buffers with this byte pattern\n"
" -C, -- print statistics as one comma-separated line\n"
" -f, -- force unit access (FUA)\n"
" -q, -- quiet: no statistics\n"
"\n");
}

static int writev_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false;
    BdrvRequestFlags flags = 0;
    int pattern = QEMUIO_DEFAULT_PATTERN, c, ret;
    int64_t offset, start;
    QEMUIOVector qiov;
    void *buf;

    while ((c = getopt(argc, argv, "CfqP:")) != -1) {
        switch (c) {
        case 'C':
            csv = true;
            break;
        case 'f':
            flags |= BDRV_REQ_FUA;
            break;
        case 'q':
            quiet = true;
            break;
        case 'P':
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        default:
            qemuio_command_usage(&writev_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&writev_cmd);
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset)) {
        return -EINVAL;
    }
    buf = build_qiov(&qiov, argv + optind + 1, argc - optind - 1, pattern, 0,
                     NULL);
    if (!buf) {
        return -EINVAL;
    }

    start = qemu_clock_get_ns();
    ret = blk_pwritev(blk, offset, qiov.size, &qiov, flags);
    start = qemu_clock_get_ns() - start;
    if (ret < 0) {
        printf("writev failed: %s\n", strerror(-ret));
    } else if (!quiet) {
        print_report("wrote", start, offset, qiov.size, qiov.size, 1, csv);
    }
    qemuio_buf_free(buf);
    return ret;
}

static const QemuIOCommand writev_cmd = {
    .name = "writev",
    .func = writev_f,
    .argmin = 2,
    .argmax = -1,
    .flags = QEMUIO_CMD_WRITE,
    .args = "[-Cfq] [-P pattern] off len [len..]",
    .oneline = "writes a number of bytes at a specified offset",
    .help = writev_help,
};

/* --- aio_read / aio_write / aio_flush --- */

/*
 * One asynchronous request.  It lives at the end of the request's data
 * allocation (see build_qiov()), so an aio command costs one allocation;
 * the completion callback frees it.  It holds a reference on @blk until
 * then, so the backend survives a "close" issued in the meantime.
 */
typedef struct QemuIOAioReq {
    BlockBackend *blk;
    void *buf;
    QEMUIOVector qiov;
    int64_t offset;
    int64_t bytes;              /* for write-zeroes (no qiov data) */
    BdrvRequestFlags flags;
    int64_t start;
    bool csv, quiet, verbose, pflag;
    int pattern;
} QemuIOAioReq;

static void aio_req_finish(QemuIOAioReq *req)
{
    blk_unref(req->blk);
    qemuio_buf_free(req->buf);
    aio_pending--;
}

static void aio_read_done(void *opaque, int ret)
{
    QemuIOAioReq *req = opaque;
    int64_t ns = qemu_clock_get_ns() - req->start;

    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
    } else {
        if (req->pflag && !buf_matches(req->buf, req->qiov.size,
                                       req->pattern)) {
            printf("Pattern verification failed at offset %" PRId64 ", %zu "
                   "bytes\n", req->offset, req->qiov.size);
        }
        if (!req->quiet) {
            if (req->verbose) {
                dump_buffer(req->buf, req->offset, req->qiov.size);
            }
            print_report("read", ns, req->offset, req->qiov.size,
                         req->qiov.size, 1, req->csv);
        }
    }
    aio_req_finish(req);
}

static void aio_write_done(void *opaque, int ret)
{
    QemuIOAioReq *req = opaque;
    int64_t ns = qemu_clock_get_ns() - req->start;

    if (ret < 0) {
        printf("aio_write failed: %s\n", strerror(-ret));
    } else if (!req->quiet) {
        print_report("wrote", ns, req->offset, req->bytes, req->bytes, 1,
                     req->csv);
    }
    aio_req_finish(req);
}

/* blk_aio_pwritev() needs data; write-zeroes runs in its own coroutine. */
static void coroutine_fn aio_write_zeroes_co(void *opaque)
{
    QemuIOAioReq *req = opaque;

    aio_write_done(req, blk_co_pwrite_zeroes(req->blk, req->offset,
                                             req->bytes, req->flags));
}

/*
 * Parses "off len [len..]" of an aio command into a new request whose
 * buffer is filled with @fill (< 0: left as is).  NULL after printing.
 */
static QemuIOAioReq *aio_req_new(BlockBackend *blk, char **args, int nargs,
                                 int fill)
{
    QemuIOAioReq *req;
    QEMUIOVector qiov;
    int64_t offset;
    void *buf;

    if (!parse_num(args[0], &offset)) {
        return NULL;
    }
    buf = build_qiov(&qiov, args + 1, nargs - 1, fill, sizeof(*req),
                     (void **)&req);
    if (!buf) {
        return NULL;
    }
    *req = (QemuIOAioReq) {
        .blk = blk, .buf = buf, .qiov = qiov, .offset = offset,
        .bytes = qiov.size,
    };
    blk_ref(blk);
    aio_pending++;
    return req;
}

static const QemuIOCommand aio_read_cmd;

static void aio_read_help(void)
{
    printf(
"\n"
" asynchronously reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'aio_read -v 512 1k 1k ' - dumps 2 KiB read 512 bytes into the image\n"
"\n"
" Starts a read of part of the open image and returns at once; the\n"
" result is printed when the read completes.  'aio_flush' waits for all\n"
" outstanding requests.  The command succeeds once the request is\n"
" submitted, whatever the outcome of the I/O or of the pattern check.\n"
" -C, -- print statistics as one comma-separated line\n"
" -P, -- check that the data read equals this byte pattern\n"
" -i, -- only report an invalid request, do no I/O\n"
" -v, -- hexdump the data read to stdout\n"
" -q, -- quiet: no statistics\n"
"\n");
}

static int aio_read_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false, verbose = false, pflag = false;
    bool invalid = false;
    int pattern = 0, c;
    QemuIOAioReq *req;

    while ((c = getopt(argc, argv, "CiP:qv")) != -1) {
        switch (c) {
        case 'C':
            csv = true;
            break;
        case 'i':
            invalid = true;
            break;
        case 'P':
            pflag = true;
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
            break;
        default:
            qemuio_command_usage(&aio_read_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&aio_read_cmd);
        return -EINVAL;
    }
    if (invalid) {
        printf("injecting invalid read request\n");
        return 0;
    }
    req = aio_req_new(blk, argv + optind, argc - optind, -1);
    if (!req) {
        return -EINVAL;
    }
    req->csv = csv;
    req->quiet = quiet;
    req->verbose = verbose;
    req->pflag = pflag;
    req->pattern = pattern;
    req->start = qemu_clock_get_ns();
    blk_aio_preadv(blk, req->offset, &req->qiov, 0, aio_read_done, req);
    return 0;
}

static const QemuIOCommand aio_read_cmd = {
    .name = "aio_read",
    .func = aio_read_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-Ciqv] [-P pattern] off len [len..]",
    .oneline = "asynchronously reads a number of bytes",
    .help = aio_read_help,
};

static const QemuIOCommand aio_write_cmd;

static void aio_write_help(void)
{
    printf(
"\n"
" asynchronously writes a range of bytes from the given offset out of\n"
" several buffers\n"
"\n"
" Example:\n"
" 'aio_write 512 1k 1k' - writes 2 KiB at 512 bytes into the open image\n"
"\n"
" Starts a write of part of the open image from buffers filled with a\n"
" byte pattern (0xcd unless -P says otherwise) and returns at once; the\n"
" result is printed when the write completes.  'aio_flush' waits for\n"
" all outstanding requests.  The command succeeds once the request is\n"
" submitted, whatever the outcome of the I/O.\n"
" -P, -- fill the buffers with this byte pattern\n"
" -C, -- print statistics as one comma-separated line\n"
" -f, -- force unit access (FUA)\n"
" -i, -- only report an invalid request, do no I/O\n"
" -q, -- quiet: no statistics\n"
" -u, -- with -z, allow the zeroed range to be unmapped\n"
" -z, -- write zeroes (one length only)\n"
"\n");
}

static int aio_write_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false, invalid = false, zflag = false;
    BdrvRequestFlags flags = 0;
    int pattern = QEMUIO_DEFAULT_PATTERN, c;
    QemuIOAioReq *req;

    while ((c = getopt(argc, argv, "CfiqP:uz")) != -1) {
        switch (c) {
        case 'C':
            csv = true;
            break;
        case 'f':
            flags |= BDRV_REQ_FUA;
            break;
        case 'i':
            invalid = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'P':
            if (!parse_pattern(optarg, &pattern)) {
                return -EINVAL;
            }
            break;
        case 'u':
            flags |= BDRV_REQ_MAY_UNMAP;
            break;
        case 'z':
            zflag = true;
            break;
        default:
            qemuio_command_usage(&aio_write_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&aio_write_cmd);
        return -EINVAL;
    }
    if (zflag && optind != argc - 2) {
        printf("-z supports only a single length parameter\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && !zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (invalid) {
        printf("injecting invalid write request\n");
        return 0;
    }
    if (zflag) {
        /* No data: the buffer part of the request is empty. */
        int64_t bytes;

        if (!parse_num(argv[optind + 1], &bytes)) {
            return -EINVAL;
        }
        req = aio_req_new(blk, argv + optind, 1, -1);
        if (!req) {
            return -EINVAL;
        }
        req->bytes = bytes;
    } else {
        req = aio_req_new(blk, argv + optind, argc - optind, pattern);
        if (!req) {
            return -EINVAL;
        }
    }
    req->csv = csv;
    req->quiet = quiet;
    req->flags = flags;
    req->start = qemu_clock_get_ns();
    if (zflag) {
        /* Started from the loop: completion never precedes the return. */
        aio_co_schedule(qemu_get_aio_context(),
                        qemu_coroutine_create(aio_write_zeroes_co, req));
    } else {
        blk_aio_pwritev(blk, req->offset, &req->qiov, flags, aio_write_done,
                        req);
    }
    return 0;
}

static const QemuIOCommand aio_write_cmd = {
    .name = "aio_write",
    .func = aio_write_f,
    .argmin = 2,
    .argmax = -1,
    .flags = QEMUIO_CMD_WRITE,
    .args = "[-Cfiquz] [-P pattern] off len [len..]",
    .oneline = "asynchronously writes a number of bytes",
    .help = aio_write_help,
};

void qemuio_wait_aio(void)
{
    AIO_WAIT_WHILE(aio_pending > 0);
}

static int aio_flush_f(BlockBackend *blk, int argc, char **argv)
{
    qemuio_wait_aio();
    blk_drain(blk);
    return 0;
}

static const QemuIOCommand aio_flush_cmd = {
    .name = "aio_flush",
    .func = aio_flush_f,
    .argmin = 0,
    .argmax = 0,
    .oneline = "completes all outstanding aio requests",
};

/* --- flush, discard, truncate, length --- */

static int flush_f(BlockBackend *blk, int argc, char **argv)
{
    return blk_flush(blk);
}

static const QemuIOCommand flush_cmd = {
    .name = "flush",
    .altname = "f",
    .func = flush_f,
    .argmin = 0,
    .argmax = 0,
    .oneline = "flush all in-core file state to disk",
};

static const QemuIOCommand discard_cmd;

static void discard_help(void)
{
    printf(
"\n"
" discards a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'discard 512 1k' - discards 1 KiB at 512 bytes into the open image\n"
"\n"
" Discards part of the open image.\n"
" -C, -- print statistics as one comma-separated line\n"
" -q, -- quiet: no statistics\n"
"\n");
}

static int discard_f(BlockBackend *blk, int argc, char **argv)
{
    bool csv = false, quiet = false;
    int64_t offset, bytes, start;
    int c, ret;

    while ((c = getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C':
            csv = true;
            break;
        case 'q':
            quiet = true;
            break;
        default:
            qemuio_command_usage(&discard_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qemuio_command_usage(&discard_cmd);
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset) ||
        !parse_num(argv[optind + 1], &bytes) ||
        !check_request_len(bytes, argv[optind + 1], "")) {
        return -EINVAL;
    }

    start = qemu_clock_get_ns();
    ret = blk_pdiscard(blk, offset, bytes);
    start = qemu_clock_get_ns() - start;
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
    } else if (!quiet) {
        print_report("discard", start, offset, bytes, bytes, 1, csv);
    }
    return ret;
}

static const QemuIOCommand discard_cmd = {
    .name = "discard",
    .altname = "d",
    .func = discard_f,
    .argmin = 2,
    .argmax = -1,
    .flags = QEMUIO_CMD_WRITE,
    .args = "[-Cq] off len",
    .oneline = "discards a number of bytes at a specified offset",
    .help = discard_help,
};

static const QemuIOCommand truncate_cmd;

static int truncate_f(BlockBackend *blk, int argc, char **argv)
{
    PreallocMode prealloc = PREALLOC_MODE_OFF;
    Error *err = NULL;
    int64_t offset;
    int c, ret;

    while ((c = getopt(argc, argv, "m:")) != -1) {
        switch (c) {
        case 'm':
            for (prealloc = 0; prealloc < PREALLOC_MODE__MAX; prealloc++) {
                if (!strcmp(PreallocMode_str(prealloc), optarg)) {
                    break;
                }
            }
            if (prealloc == PREALLOC_MODE__MAX) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return -EINVAL;
            }
            break;
        default:
            qemuio_command_usage(&truncate_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        qemuio_command_usage(&truncate_cmd);
        return -EINVAL;
    }
    if (!parse_num(argv[optind], &offset)) {
        return -EINVAL;
    }
    ret = blk_truncate(blk, offset, false, prealloc, 0, &err);
    if (ret < 0) {
        error_report_err(err);
    }
    return ret;
}

static const QemuIOCommand truncate_cmd = {
    .name = "truncate",
    .altname = "t",
    .func = truncate_f,
    .argmin = 1,
    .argmax = 3,
    .flags = QEMUIO_CMD_WRITE,
    .args = "[-m prealloc_mode] off",
    .oneline = "truncates the current file at the given offset",
};

static int length_f(BlockBackend *blk, int argc, char **argv)
{
    int64_t size = blk_getlength(blk);
    char buf[64];

    if (size < 0) {
        printf("getlength: %s\n", strerror(-size));
        return size;
    }
    cvtstr(size, buf, sizeof(buf));
    printf("%s\n", buf);
    return 0;
}

static const QemuIOCommand length_cmd = {
    .name = "length",
    .altname = "l",
    .func = length_f,
    .argmin = 0,
    .argmax = 0,
    .oneline = "gets the length of the current file",
};

/* --- info, map, alloc --- */

static int info_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    BlockDriverInfo bdi;
    Error *err = NULL;
    JsonNode *spec;
    char buf[64];
    int ret;

    printf("format name: %s\n", bdrv_get_format_name(bs));
    ret = bdrv_get_info(bs, &bdi);
    if (ret < 0) {
        return ret;
    }
    cvtstr(bdi.cluster_size, buf, sizeof(buf));
    printf("cluster size: %s\n", buf);
    cvtstr(bdi.vm_state_offset, buf, sizeof(buf));
    printf("vm state offset: %s\n", buf);

    spec = bdrv_get_specific_info(bs, &err);
    if (err) {
        error_report_err(err);
        return -EIO;
    }
    if (spec) {
        JsonObject *obj = json_node_get_object(spec);

        printf("Format specific information:\n");
        img_dump_human(stdout, json_object_get_member(obj, "data"), 4);
        json_node_unref(spec);
    }
    return 0;
}

static const QemuIOCommand info_cmd = {
    .name = "info",
    .altname = "i",
    .func = info_f,
    .argmin = 0,
    .argmax = 0,
    .oneline = "prints information about the current file",
};

/*
 * Length of the run starting at @offset (up to @bytes) whose allocation
 * in the top layer is the same; *allocated says which.  0 or -errno.
 */
static int allocation_run(BlockDriverState *bs, int64_t offset,
                          int64_t bytes, bool *allocated, int64_t *run)
{
    int64_t num;
    int ret = bdrv_is_allocated(bs, offset, bytes, &num);

    if (ret < 0) {
        return ret;
    }
    *allocated = ret;
    *run = num;
    while (num > 0 && *run < bytes) {
        ret = bdrv_is_allocated(bs, offset + *run, bytes - *run, &num);
        if (ret < 0) {
            return ret;
        }
        if (!!ret != *allocated) {
            break;
        }
        *run += num;
    }
    return 0;
}

static int map_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t length = blk_getlength(blk), offset = 0, run;
    char sbuf[64], obuf[64];
    bool allocated;
    int ret;

    if (length < 0) {
        error_report("Failed to query image length: %s", strerror(-length));
        return length;
    }
    while (offset < length) {
        ret = allocation_run(bs, offset, length - offset, &allocated, &run);
        if (ret < 0) {
            error_report("Failed to get allocation status: %s",
                         strerror(-ret));
            return ret;
        }
        if (run == 0) {
            break;
        }
        cvtstr(run, sbuf, sizeof(sbuf));
        cvtstr(offset, obuf, sizeof(obuf));
        printf("%s (0x%" PRIx64 ") bytes %s at offset %s (0x%" PRIx64 ")\n",
               sbuf, run, allocated ? "    allocated" : "not allocated",
               obuf, offset);
        offset += run;
    }
    return 0;
}

static const QemuIOCommand map_cmd = {
    .name = "map",
    .func = map_f,
    .argmin = 0,
    .argmax = 0,
    .args = "",
    .oneline = "prints the allocated areas of a file",
};

static int alloc_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t offset, count = BDRV_SECTOR_SIZE, remaining, pos, num;
    int64_t allocated = 0;
    char obuf[64];
    int ret;

    if (!parse_num(argv[1], &offset) ||
        (argc == 3 && !parse_num(argv[2], &count))) {
        return -EINVAL;
    }
    /* The count shown is what could be examined: it stops at EOF. */
    for (pos = offset, remaining = count; remaining > 0;
         pos += num, remaining -= num) {
        ret = bdrv_is_allocated(bs, pos, remaining, &num);
        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        if (ret) {
            allocated += num;
        }
        if (num == 0) {
            count -= remaining;
            break;
        }
    }
    cvtstr(offset, obuf, sizeof(obuf));
    printf("%" PRId64 "/%" PRId64 " bytes allocated at offset %s\n",
           allocated, count, obuf);
    return 0;
}

static const QemuIOCommand alloc_cmd = {
    .name = "alloc",
    .altname = "a",
    .func = alloc_f,
    .argmin = 1,
    .argmax = 2,
    .args = "offset [count]",
    .oneline = "checks if offset is allocated in the file",
};

/* --- blkdebug breakpoints --- */

static int break_f(BlockBackend *blk, int argc, char **argv)
{
    int ret = bdrv_debug_breakpoint(blk_bs(blk), argv[1], argv[2]);

    if (ret < 0) {
        printf("Could not set breakpoint: %s\n", strerror(-ret));
    }
    return ret;
}

static const QemuIOCommand break_cmd = {
    .name = "break",
    .func = break_f,
    .argmin = 2,
    .argmax = 2,
    .args = "event tag",
    .oneline = "sets a breakpoint on event and tags the stopped request as tag",
};

static int remove_break_f(BlockBackend *blk, int argc, char **argv)
{
    int ret = bdrv_debug_remove_breakpoint(blk_bs(blk), argv[1]);

    if (ret < 0) {
        printf("Could not remove breakpoint %s: %s\n", argv[1],
               strerror(-ret));
    }
    return ret;
}

static const QemuIOCommand remove_break_cmd = {
    .name = "remove_break",
    .func = remove_break_f,
    .argmin = 1,
    .argmax = 1,
    .args = "tag",
    .oneline = "remove a breakpoint by tag",
};

static int resume_f(BlockBackend *blk, int argc, char **argv)
{
    int ret = bdrv_debug_resume(blk_bs(blk), argv[1]);

    if (ret < 0) {
        printf("Could not resume request: %s\n", strerror(-ret));
    }
    return ret;
}

static const QemuIOCommand resume_cmd = {
    .name = "resume",
    .func = resume_f,
    .argmin = 1,
    .argmax = 1,
    .args = "tag",
    .oneline = "resumes the request tagged as tag",
};

/* Runs the main loop until a request stops at breakpoint @argv[1]. */
static int wait_break_f(BlockBackend *blk, int argc, char **argv)
{
    AIO_WAIT_WHILE(!bdrv_debug_is_suspended(blk_bs(blk), argv[1]));
    return 0;
}

static const QemuIOCommand wait_break_cmd = {
    .name = "wait_break",
    .func = wait_break_f,
    .argmin = 1,
    .argmax = 1,
    .args = "tag",
    .oneline = "waits for the suspension of a request",
};

/* --- help, sleep, abort, sigraise --- */

static int help_f(BlockBackend *blk, int argc, char **argv)
{
    const QemuIOCommand *cmd;

    if (argc == 1) {
        for (size_t i = 0; i < ncmds; i++) {
            qemuio_command_usage(cmdtab[i]);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    cmd = find_command(argv[1]);
    if (!cmd) {
        printf("command %s not found\n", argv[1]);
        return -EINVAL;
    }
    qemuio_command_usage(cmd);
    if (cmd->help) {
        cmd->help();
    }
    return 0;
}

static const QemuIOCommand help_cmd = {
    .name = "help",
    .altname = "?",
    .func = help_f,
    .argmin = 0,
    .argmax = 1,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .args = "[command]",
    .oneline = "help for one or all commands",
};

static void sleep_expired(void *opaque)
{
    *(bool *)opaque = true;
}

/* Sleeps while running the main loop, so aio completions are reported. */
static int sleep_f(BlockBackend *blk, int argc, char **argv)
{
    QEMUTimer *timer;
    bool expired = false;
    int64_t ms;

    if (qemu_strtoi64(argv[1], NULL, 0, &ms) < 0 || ms < 0) {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    timer = aio_timer_new(qemu_get_aio_context(), sleep_expired, &expired);
    timer_mod_ns(timer, qemu_clock_get_ns() + ms * 1000000);
    AIO_WAIT_WHILE(!expired);
    timer_free(timer);
    return 0;
}

static const QemuIOCommand sleep_cmd = {
    .name = "sleep",
    .func = sleep_f,
    .argmin = 1,
    .argmax = 1,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .oneline = "waits for the given value in milliseconds",
};

static int abort_f(BlockBackend *blk, int argc, char **argv)
{
    abort();
}

static const QemuIOCommand abort_cmd = {
    .name = "abort",
    .func = abort_f,
    .argmin = 0,
    .argmax = 0,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .oneline = "simulate a program crash using abort(3)",
};

static int sigraise_f(BlockBackend *blk, int argc, char **argv)
{
    int64_t sig;

    if (!parse_num(argv[1], &sig)) {
        return -EINVAL;
    }
    if (sig > INT_MAX) {
        printf("signal argument '%s' is too large to be a valid signal\n",
               argv[1]);
        return -EINVAL;
    }
    /* Whatever the signal does, buffered output must be out first. */
    fflush(stdout);
    fflush(stderr);
    raise(sig);
    return 0;
}

static void sigraise_help(void)
{
    printf(
"\n"
" raises the given signal\n"
"\n"
" Example:\n"
" 'sigraise 15' - raises SIGTERM\n"
"\n"
" Calls raise(3) with the signal number given as the only argument.\n"
"\n");
}

static const QemuIOCommand sigraise_cmd = {
    .name = "sigraise",
    .func = sigraise_f,
    .argmin = 1,
    .argmax = 1,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .args = "signal",
    .oneline = "raises a signal",
    .help = sigraise_help,
};

/* --- dispatch --- */

static void register_builtin_commands(void)
{
    static const QemuIOCommand *const builtins[] = {
        &read_cmd, &readv_cmd, &write_cmd, &writev_cmd, &aio_read_cmd,
        &aio_write_cmd, &aio_flush_cmd, &flush_cmd, &discard_cmd,
        &truncate_cmd, &length_cmd, &info_cmd, &map_cmd, &alloc_cmd,
        &break_cmd, &remove_break_cmd, &resume_cmd, &wait_break_cmd,
        &help_cmd, &sleep_cmd, &abort_cmd, &sigraise_cmd,
    };
    static bool done;

    if (done) {
        return;
    }
    done = true;
    for (size_t i = 0; i < ARRAY_SIZE(builtins); i++) {
        qemuio_add_command(builtins[i]);
    }
}

/*
 * Splits @line at spaces (empty words are dropped; tabs are not
 * separators, as in qemu-io).  The argv array and the words share one
 * allocation, freed with g_free(argv).
 */
static char **split_line(const char *line, int *argc)
{
    size_t len = strlen(line);
    int max_words = len / 2 + 2;
    char **argv = g_malloc(max_words * sizeof(char *) + len + 1);
    char *p = (char *)(argv + max_words);
    int n = 0;

    memcpy(p, line, len + 1);
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " ")) {
        argv[n++] = tok;
    }
    argv[n] = NULL;
    *argc = n;
    return argv;
}

static bool check_arg_count(const QemuIOCommand *cmd, const char *name,
                            int nargs)
{
    if (nargs >= cmd->argmin && (cmd->argmax < 0 || nargs <= cmd->argmax)) {
        return true;
    }
    fprintf(stderr, "bad argument count %d to %s, ", nargs, name);
    if (cmd->argmax < 0) {
        fprintf(stderr, "expected at least %d arguments\n", cmd->argmin);
    } else if (cmd->argmin == cmd->argmax) {
        fprintf(stderr, "expected %d arguments\n", cmd->argmin);
    } else {
        fprintf(stderr, "expected between %d and %d arguments\n",
                cmd->argmin, cmd->argmax);
    }
    return false;
}

int qemuio_command(BlockBackend *blk, const char *line)
{
    const QemuIOCommand *cmd;
    int argc, ret;
    char **argv;

    register_builtin_commands();
    argv = split_line(line, &argc);
    if (argc == 0) {
        g_free(argv);
        return 0;
    }
    cmd = find_command(argv[0]);
    if (!cmd) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        ret = -EINVAL;
    } else if (!blk && !(cmd->flags & QEMUIO_CMD_NOFILE_OK)) {
        fprintf(stderr, "no file open, try 'help open'\n");
        ret = -EINVAL;
    } else if (!check_arg_count(cmd, argv[0], argc - 1)) {
        ret = -EINVAL;
    } else if (blk && (cmd->flags & QEMUIO_CMD_WRITE) &&
               blk_is_read_only(blk)) {
        error_report("Block node is read-only");
        ret = -EACCES;
    } else {
        /* 0 makes glibc's getopt() reinitialise fully for a new argv. */
        optind = 0;
        ret = cmd->func(blk, argc, argv);
    }
    g_free(argv);
    return ret;
}

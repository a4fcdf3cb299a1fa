/*
 * NBD tests: the codec, an in-process server with the nbd block driver as
 * its client over a unix socket (I/O, block status, many requests in
 * flight), export lifetime, and hostile clients speaking raw protocol.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/aio.h"
#include "qemu/sockets.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/nbd.h"

#include <sys/socket.h>

#define IMG_SIZE (4 * MiB)

static char *test_dir;
static char *image;
static char *sock_path;

/* ---- codec ------------------------------------------------------------ */

static void test_codec_request(void)
{
    NBDRequest in = {
        .flags = NBD_CMD_FLAG_FUA, .type = NBD_CMD_WRITE,
        .cookie = 0x0102030405060708ULL, .offset = 0x1122334455667788ULL,
        .len = 0xdeadbeef,
    };
    NBDRequest out = { 0 };
    uint8_t buf[NBD_REQUEST_SIZE];

    nbd_encode_request(buf, &in);
    /* Big-endian on the wire, as the spec lays it out. */
    g_assert_cmphex(buf[0], ==, 0x25);
    g_assert_cmphex(buf[3], ==, 0x13);
    g_assert_cmphex(buf[7], ==, NBD_CMD_WRITE);
    g_assert_cmphex(buf[8], ==, 0x01);
    g_assert_cmphex(buf[27], ==, 0xef);
    g_assert_true(nbd_decode_request(buf, &out));
    g_assert_cmpint(out.flags, ==, in.flags);
    g_assert_cmpint(out.type, ==, in.type);
    g_assert_cmphex(out.cookie, ==, in.cookie);
    g_assert_cmphex(out.offset, ==, in.offset);
    g_assert_cmphex(out.len, ==, in.len);

    buf[0] ^= 1;
    g_assert_false(nbd_decode_request(buf, &out));
}

static void test_codec_reply(void)
{
    uint8_t buf[NBD_STRUCTURED_REPLY_SIZE];
    NBDReply r;

    nbd_encode_simple_reply(buf, NBD_ENOSPC, 42);
    g_assert_cmpint(nbd_decode_reply_head(buf, &r), ==, 0);
    g_assert_cmphex(r.magic, ==, NBD_SIMPLE_REPLY_MAGIC);
    g_assert_cmpint(r.error, ==, NBD_ENOSPC);
    g_assert_cmpint(r.cookie, ==, 42);

    nbd_encode_chunk_header(buf, NBD_REPLY_FLAG_DONE,
                            NBD_REPLY_TYPE_OFFSET_HOLE, 7, 12);
    g_assert_cmpint(nbd_decode_reply_head(buf, &r), ==, 4);
    nbd_decode_chunk_tail(buf + NBD_SIMPLE_REPLY_SIZE, &r);
    g_assert_cmphex(r.magic, ==, NBD_STRUCTURED_REPLY_MAGIC);
    g_assert_cmpint(r.flags, ==, NBD_REPLY_FLAG_DONE);
    g_assert_cmpint(r.type, ==, NBD_REPLY_TYPE_OFFSET_HOLE);
    g_assert_cmpint(r.cookie, ==, 7);
    g_assert_cmpint(r.length, ==, 12);

    buf[1] ^= 0xff;
    g_assert_cmpint(nbd_decode_reply_head(buf, &r), ==, -1);
}

static void test_codec_errno(void)
{
    static const int errs[] = {
        EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN,
    };

    for (size_t i = 0; i < ARRAY_SIZE(errs); i++) {
        uint32_t e = system_errno_to_nbd_errno(errs[i]);

        g_assert_cmpint(nbd_errno_to_system_errno(e), ==, errs[i]);
    }
    g_assert_cmpint(system_errno_to_nbd_errno(0), ==, 0);
    g_assert_cmpint(system_errno_to_nbd_errno(EROFS), ==, NBD_EPERM);
    g_assert_cmpint(system_errno_to_nbd_errno(EFBIG), ==, NBD_ENOSPC);
    g_assert_cmpint(system_errno_to_nbd_errno(ENOENT), ==, NBD_EIO);
    /* Unknown values from a server read as EINVAL (spec). */
    g_assert_cmpint(nbd_errno_to_system_errno(9999), ==, EINVAL);
}

static void test_codec_flags(void)
{
    g_autofree char *s = nbd_flags_to_string(0xced);
    g_autofree char *ro = nbd_flags_to_string(0x48f);

    g_assert_cmpstr(s, ==, " flush fua trim zeroes df cache fast-zero");
    g_assert_cmpstr(ro, ==, " readonly flush fua df cache");
}

/* ---- helpers ---------------------------------------------------------- */

typedef struct Env {
    NBDServer *srv;
    NBDExport *exp;
    BlockDriverState *bs;       /* the exported node (our reference) */
    bool deleted;
} Env;

static void export_deleted(NBDExport *exp, void *opaque)
{
    ((Env *)opaque)->deleted = true;
}

static void env_start(Env *env, bool writable)
{
    g_autoptr(SocketAddress) addr = socket_address_new_unix(sock_path);
    QDict *opts = qdict_new();
    int fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0644);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, IMG_SIZE), ==, 0);
    close(fd);
    qdict_put_str(opts, "driver", "file");
    env->bs = bdrv_open(image, NULL, opts, BDRV_O_RDWR, &error_abort);
    env->srv = nbd_server_new(addr, 0, &error_abort);
    env->exp = nbd_export_new(env->srv, env->bs, "exp", "test export",
                              writable, true, &error_abort);
    nbd_export_set_deleted_cb(env->exp, export_deleted, env);
    env->deleted = false;
}

static void env_stop(Env *env)
{
    nbd_server_free(env->srv);
    g_assert_true(env->deleted);
    /* Only our reference is left once the export is gone. */
    g_assert_cmpint(bdrv_get_refcnt(env->bs), ==, 1);
    bdrv_unref(env->bs);
}

static BlockBackend *open_client(int flags, Error **errp)
{
    g_autofree char *uri = g_strdup_printf("nbd+unix:///exp?socket=%s",
                                           sock_path);

    return blk_new_open(uri, NULL, NULL, flags | BDRV_O_PROTOCOL, errp);
}

/* Polls the loop until @cond or ~5 s; returns the final @cond. */
#define POLL_UNTIL(cond) ({                                             \
    int64_t deadline_ = qemu_clock_get_ns() + 5 * NANOSECONDS_PER_SECOND; \
    while (!(cond) && qemu_clock_get_ns() < deadline_) {                \
        if (!aio_poll(qemu_get_aio_context(), false)) {                 \
            g_usleep(1000);                                             \
        }                                                               \
    }                                                                   \
    (cond);                                                             \
})

/* ---- block driver as client ------------------------------------------ */

static void test_client_io(void)
{
    Env env;
    BlockBackend *blk;
    BlockBackend *direct;
    g_autofree uint8_t *buf = g_malloc(256 * KiB);
    g_autofree uint8_t *cmp = g_malloc(256 * KiB);
    int64_t pnum, map;
    BlockDriverState *file;
    int ret;

    env_start(&env, true);
    blk = open_client(BDRV_O_RDWR, &error_abort);
    direct = nbd_export_get_blk(env.exp);
    g_assert_cmpint(blk_getlength(blk), ==, IMG_SIZE);
    g_assert_cmpint(nbd_export_client_count(env.exp), ==, 1);

    /* A write lands in the image and reads back through both paths. */
    memset(buf, 0xa5, 256 * KiB);
    g_assert_cmpint(blk_pwrite(blk, 64 * KiB, 256 * KiB, buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(direct, 64 * KiB, 256 * KiB, cmp, 0), ==, 0);
    g_assert_cmpmem(buf, 256 * KiB, cmp, 256 * KiB);
    memset(cmp, 0, 256 * KiB);
    g_assert_cmpint(blk_pread(blk, 64 * KiB, 256 * KiB, cmp, 0), ==, 0);
    g_assert_cmpmem(buf, 256 * KiB, cmp, 256 * KiB);
    /* FUA writes and unaligned ones too. */
    g_assert_cmpint(blk_pwrite(blk, 1000, 77, buf, BDRV_REQ_FUA), ==, 0);
    g_assert_cmpint(blk_pread(direct, 1000, 77, cmp, 0), ==, 0);
    g_assert_cmpmem(buf, 77, cmp, 77);

    /* Sparse read: a hole followed by data comes back correctly. */
    memset(cmp, 0xff, 256 * KiB);
    g_assert_cmpint(blk_pread(blk, 2 * MiB - 128 * KiB, 256 * KiB, cmp, 0),
                    ==, 0);
    g_assert_true(buffer_is_zero(cmp, 256 * KiB));

    /* Block status through base:allocation. */
    ret = bdrv_block_status(blk_bs(blk), 64 * KiB, 256 * KiB, &pnum, &map,
                            &file);
    g_assert_cmpint(ret, >=, 0);
    g_assert_true(ret & BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, >, 0);
    ret = bdrv_block_status(blk_bs(blk), 3 * MiB, 512 * KiB, &pnum, &map,
                            &file);
    g_assert_cmpint(ret, >=, 0);
    g_assert_false(ret & BDRV_BLOCK_DATA);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 512 * KiB);

    /* Write zeroes and discard; flush. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 64 * KiB, 64 * KiB, 0), ==, 0);
    g_assert_cmpint(blk_pread(direct, 64 * KiB, 64 * KiB, cmp, 0), ==, 0);
    g_assert_true(buffer_is_zero(cmp, 64 * KiB));
    g_assert_cmpint(blk_pwrite_zeroes(blk, 128 * KiB, 64 * KiB,
                                      BDRV_REQ_MAY_UNMAP), ==, 0);
    g_assert_cmpint(blk_pread(direct, 128 * KiB, 64 * KiB, cmp, 0), ==, 0);
    g_assert_true(buffer_is_zero(cmp, 64 * KiB));
    g_assert_cmpint(blk_pdiscard(blk, 192 * KiB, 64 * KiB), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, 0);

    /* The last sector is reachable; beyond it the block layer refuses. */
    g_assert_cmpint(blk_pread(blk, IMG_SIZE - 512, 512, cmp, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, IMG_SIZE - 512, 1024, cmp, 0), <, 0);

    blk_unref(blk);
    g_assert_true(POLL_UNTIL(nbd_server_client_count(env.srv) == 0));
    env_stop(&env);
}

typedef struct AioState {
    int pending;
    int errors;
} AioState;

static void aio_done(void *opaque, int ret)
{
    AioState *st = opaque;

    st->pending--;
    st->errors += ret < 0;
}

static void test_client_concurrent(void)
{
    enum { N = 64, LEN = 64 * KiB };
    Env env;
    BlockBackend *blk;
    AioState st = { 0 };
    QEMUIOVector qiov[N];
    uint8_t *bufs[N];

    env_start(&env, true);
    blk = open_client(BDRV_O_RDWR, &error_abort);

    /* More requests than the client's slots: some wait for a slot. */
    for (int i = 0; i < N; i++) {
        bufs[i] = g_malloc(LEN);
        memset(bufs[i], i + 1, LEN);
        qemu_iovec_init_buf(&qiov[i], bufs[i], LEN);
        st.pending++;
        blk_aio_pwritev(blk, (int64_t)i * LEN, &qiov[i], 0, aio_done, &st);
    }
    g_assert_true(POLL_UNTIL(st.pending == 0));
    g_assert_cmpint(st.errors, ==, 0);

    for (int i = 0; i < N; i++) {
        memset(bufs[i], 0, LEN);
        st.pending++;
        blk_aio_preadv(blk, (int64_t)i * LEN, &qiov[i], 0, aio_done, &st);
    }
    g_assert_true(POLL_UNTIL(st.pending == 0));
    g_assert_cmpint(st.errors, ==, 0);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < LEN; j += 4096) {
            g_assert_cmpint(bufs[i][j], ==, i + 1);
        }
        g_free(bufs[i]);
    }
    blk_unref(blk);
    env_stop(&env);
}

static void test_read_only_export(void)
{
    Env env;
    Error *err = NULL;
    BlockBackend *blk;
    uint8_t buf[512] = { 1 };

    env_start(&env, false);
    blk = open_client(BDRV_O_RDWR, &err);
    g_assert_null(blk);
    g_assert_nonnull(strstr(error_get_pretty(err), "read-only"));
    error_free(err);
    blk = open_client(0, &error_abort);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    blk_unref(blk);
    env_stop(&env);
}

static void test_export_lifetime(void)
{
    Env env;
    Error *err = NULL;
    BlockBackend *blk;
    uint8_t buf[512];

    env_start(&env, true);
    /* The export holds a reference on the node. */
    g_assert_cmpint(bdrv_get_refcnt(env.bs), ==, 2);
    g_assert_null(nbd_export_new(env.srv, env.bs, "exp", NULL, false, false,
                                 &err));
    error_free_or_abort(&err);
    g_assert_true(nbd_export_find(env.srv, "exp") == env.exp);
    g_assert_null(nbd_export_find(env.srv, "nope"));
    g_assert_true(nbd_export_next(env.srv, NULL) == env.exp);
    g_assert_null(nbd_export_next(env.srv, env.exp));

    blk = open_client(BDRV_O_RDWR, &error_abort);
    /* Safe removal refuses while a client is connected. */
    g_assert_cmpint(nbd_export_remove(env.exp, NBD_EXPORT_REMOVE_SAFE, &err),
                    <, 0);
    error_free_or_abort(&err);
    g_assert_false(env.deleted);
    /* Hard removal disconnects; the export goes when the client has. */
    g_assert_cmpint(nbd_export_remove(env.exp, NBD_EXPORT_REMOVE_HARD,
                                      &error_abort), ==, 0);
    g_assert_null(nbd_export_find(env.srv, "exp"));
    g_assert_true(POLL_UNTIL(env.deleted));
    g_assert_cmpint(bdrv_get_refcnt(env.bs), ==, 1);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), <, 0);
    blk_unref(blk);
    env_stop(&env);
}

/* ---- hostile clients over a raw socket ------------------------------- */

static int raw_connect(void)
{
    g_autoptr(SocketAddress) addr = socket_address_new_unix(sock_path);
    int fd = socket_connect(addr, &error_abort);

    qemu_socket_set_nonblock(fd, true);
    return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
    g_assert_cmpint(send(fd, buf, len, MSG_NOSIGNAL), ==, len);
}

/* Reads @len bytes while the server runs; false on EOF or timeout. */
static bool raw_recv(int fd, void *buf, size_t len)
{
    size_t got = 0;
    bool eof = false;

    POLL_UNTIL(({
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n > 0) {
            got += n;
        } else if (n == 0) {
            eof = true;
        }
        got == len || eof;
    }));
    return got == len;
}

/* True once the server has closed the connection. */
static bool raw_wait_eof(int fd)
{
    char c;

    return POLL_UNTIL(recv(fd, &c, 1, 0) == 0);
}

static void raw_send_option(int fd, uint32_t opt, const void *data,
                            uint32_t len)
{
    uint8_t hdr[16];

    nbd_put64(hdr, NBD_OPTS_MAGIC);
    nbd_put32(hdr + 8, opt);
    nbd_put32(hdr + 12, len);
    raw_send(fd, hdr, 16);
    if (len) {
        raw_send(fd, data, len);
    }
}

/* Reads one option reply; returns its type. */
static uint32_t raw_option_reply(int fd)
{
    uint8_t hdr[20];
    g_autofree uint8_t *data = NULL;

    g_assert_true(raw_recv(fd, hdr, 20));
    g_assert_cmphex(nbd_get64(hdr), ==, NBD_REP_MAGIC);
    data = g_malloc(nbd_get32(hdr + 16) + 1);
    g_assert_true(raw_recv(fd, data, nbd_get32(hdr + 16)));
    return nbd_get32(hdr + 12);
}

/* Greeting and client flags. */
static int raw_start(void)
{
    int fd = raw_connect();
    uint8_t greet[18], cflags[4];

    g_assert_true(raw_recv(fd, greet, 18));
    g_assert_cmphex(nbd_get64(greet), ==, NBD_INIT_MAGIC);
    g_assert_cmphex(nbd_get64(greet + 8), ==, NBD_OPTS_MAGIC);
    g_assert_cmphex(nbd_get16(greet + 16), ==,
                    NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    nbd_put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    raw_send(fd, cflags, 4);
    return fd;
}

/* Enters transmission on "exp" with simple replies. */
static int raw_go(void)
{
    int fd = raw_start();
    uint8_t data[4 + 3 + 2];
    uint32_t rep;

    nbd_put32(data, 3);
    memcpy(data + 4, "exp", 3);
    nbd_put16(data + 7, 0);
    raw_send_option(fd, NBD_OPT_GO, data, sizeof(data));
    while ((rep = raw_option_reply(fd)) == NBD_REP_INFO) {
        /* skip */
    }
    g_assert_cmphex(rep, ==, NBD_REP_ACK);
    return fd;
}

static void raw_request(int fd, uint16_t type, uint16_t flags,
                        uint64_t offset, uint32_t len, uint64_t cookie)
{
    NBDRequest req = {
        .type = type, .flags = flags, .offset = offset, .len = len,
        .cookie = cookie,
    };
    uint8_t buf[NBD_REQUEST_SIZE];

    nbd_encode_request(buf, &req);
    raw_send(fd, buf, sizeof(buf));
}

/* Reads a simple reply to @cookie; returns its error. */
static uint32_t raw_simple_reply(int fd, uint64_t cookie)
{
    uint8_t buf[NBD_SIMPLE_REPLY_SIZE];
    NBDReply r;

    g_assert_true(raw_recv(fd, buf, sizeof(buf)));
    g_assert_cmpint(nbd_decode_reply_head(buf, &r), ==, 0);
    g_assert_cmpint(r.cookie, ==, cookie);
    return r.error;
}

static void test_hostile_handshake(void)
{
    Env env;
    uint8_t junk[16] = "not an option!!";
    int fd;

    env_start(&env, true);

    /* Bad option magic: dropped. */
    fd = raw_start();
    raw_send(fd, junk, sizeof(junk));
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Unknown option: ERR_UNSUP, and the session goes on. */
    fd = raw_start();
    raw_send_option(fd, 4242, "xyz", 3);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ERR_UNSUP);
    raw_send_option(fd, NBD_OPT_STARTTLS, NULL, 0);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ERR_POLICY);
    raw_send_option(fd, NBD_OPT_LIST, NULL, 0);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_SERVER);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ACK);
    /* SET_META_CONTEXT needs structured replies first. */
    raw_send_option(fd, NBD_OPT_SET_META_CONTEXT, NULL, 0);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ERR_INVALID);
    raw_send_option(fd, NBD_OPT_ABORT, NULL, 0);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ACK);
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Oversized option payload: dropped without reading it. */
    fd = raw_start();
    {
        uint8_t hdr[16];

        nbd_put64(hdr, NBD_OPTS_MAGIC);
        nbd_put32(hdr + 8, NBD_OPT_GO);
        nbd_put32(hdr + 12, 0x7fffffff);
        raw_send(fd, hdr, 16);
    }
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Unknown export via EXPORT_NAME: disconnect (no error reply exists). */
    fd = raw_start();
    raw_send_option(fd, NBD_OPT_EXPORT_NAME, "nope", 4);
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* A handshake that never finishes times out. */
    nbd_server_set_handshake_timeout(env.srv, 100 * 1000 * 1000);
    fd = raw_connect();
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Disconnect in the middle of the greeting exchange. */
    fd = raw_connect();
    close(fd);
    g_assert_true(POLL_UNTIL(nbd_server_client_count(env.srv) == 0));
    env_stop(&env);
}

static void test_hostile_requests(void)
{
    Env env;
    BlockBackend *direct;
    uint8_t buf[4096];
    int fd;

    env_start(&env, true);
    direct = nbd_export_get_blk(env.exp);

    fd = raw_go();
    /* Reads too big or out of range: EINVAL, connection stays. */
    raw_request(fd, NBD_CMD_READ, 0, 0, 64 * MiB, 1);
    g_assert_cmpint(raw_simple_reply(fd, 1), ==, NBD_EINVAL);
    raw_request(fd, NBD_CMD_READ, 0, IMG_SIZE - 512, 1024, 2);
    g_assert_cmpint(raw_simple_reply(fd, 2), ==, NBD_EINVAL);
    raw_request(fd, NBD_CMD_READ, 0, UINT64_MAX - 10, 512, 3);
    g_assert_cmpint(raw_simple_reply(fd, 3), ==, NBD_EINVAL);
    /* A write past the end: payload consumed, ENOSPC, no change. */
    memset(buf, 0x77, sizeof(buf));
    raw_request(fd, NBD_CMD_WRITE, 0, IMG_SIZE - 512, sizeof(buf), 4);
    raw_send(fd, buf, sizeof(buf));
    g_assert_cmpint(raw_simple_reply(fd, 4), ==, NBD_ENOSPC);
    /* Unknown command and unknown flags: EINVAL. */
    raw_request(fd, 99, 0, 0, 0, 5);
    g_assert_cmpint(raw_simple_reply(fd, 5), ==, NBD_EINVAL);
    raw_request(fd, NBD_CMD_FLUSH, 0x8000, 0, 0, 6);
    g_assert_cmpint(raw_simple_reply(fd, 6), ==, NBD_EINVAL);
    /* Block status without a negotiated context: EINVAL. */
    raw_request(fd, NBD_CMD_BLOCK_STATUS, 0, 0, 4096, 7);
    g_assert_cmpint(raw_simple_reply(fd, 7), ==, NBD_EINVAL);
    /* A valid write and read still work on the same connection. */
    raw_request(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 8192, sizeof(buf), 8);
    raw_send(fd, buf, sizeof(buf));
    g_assert_cmpint(raw_simple_reply(fd, 8), ==, 0);
    raw_request(fd, NBD_CMD_READ, 0, 8192, sizeof(buf), 9);
    g_assert_cmpint(raw_simple_reply(fd, 9), ==, 0);
    memset(buf, 0, sizeof(buf));
    g_assert_true(raw_recv(fd, buf, sizeof(buf)));
    g_assert_cmpint(buf[0], ==, 0x77);
    g_assert_cmpint(buf[sizeof(buf) - 1], ==, 0x77);
    /* A write larger than the maximum: the server hangs up. */
    raw_request(fd, NBD_CMD_WRITE, 0, 0, 64 * MiB, 10);
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Bad request magic: hang up. */
    fd = raw_go();
    raw_send(fd, "garbage garbage garbage garbage", 28);
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    /* Truncated request header, then EOF. */
    fd = raw_go();
    raw_send(fd, "\x25\x60\x95\x13\0\0", 6);
    close(fd);

    /* Disconnect in the middle of a write payload: nothing is written. */
    fd = raw_go();
    raw_request(fd, NBD_CMD_WRITE, 0, 1 * MiB, 64 * KiB, 11);
    raw_send(fd, buf, 1024);
    close(fd);
    g_assert_true(POLL_UNTIL(nbd_server_client_count(env.srv) == 0));
    g_assert_cmpint(blk_pread(direct, 1 * MiB, sizeof(buf), buf, 0), ==, 0);
    g_assert_true(buffer_is_zero(buf, sizeof(buf)));
    g_assert_cmpint(blk_pread(direct, IMG_SIZE - 512, 512, buf, 0), ==, 0);
    g_assert_true(buffer_is_zero(buf, 512));

    /* NBD_CMD_DISC with requests in flight: they are answered first. */
    fd = raw_go();
    raw_request(fd, NBD_CMD_FLUSH, 0, 0, 0, 12);
    raw_request(fd, NBD_CMD_DISC, 0, 0, 0, 13);
    g_assert_cmpint(raw_simple_reply(fd, 12), ==, 0);
    g_assert_true(raw_wait_eof(fd));
    close(fd);

    g_assert_true(POLL_UNTIL(nbd_server_client_count(env.srv) == 0));
    env_stop(&env);
}

/* Read-only export: writes get EPERM, multi-conn is advertised. */
static void test_hostile_read_only(void)
{
    Env env;
    uint8_t buf[512] = { 0 };
    uint8_t data[4 + 3 + 2];
    uint8_t rep[20 + 12];
    int fd;

    env_start(&env, false);
    fd = raw_start();
    nbd_put32(data, 3);
    memcpy(data + 4, "exp", 3);
    nbd_put16(data + 7, 0);
    raw_send_option(fd, NBD_OPT_INFO, data, sizeof(data));
    for (;;) {
        g_assert_true(raw_recv(fd, rep, 20));
        g_assert_cmphex(nbd_get32(rep + 12), ==, NBD_REP_INFO);
        g_assert_true(raw_recv(fd, rep + 20, nbd_get32(rep + 16)));
        if (nbd_get16(rep + 20) == NBD_INFO_EXPORT) {
            break;
        }
    }
    g_assert_cmpint(nbd_get64(rep + 22), ==, IMG_SIZE);
    g_assert_true(nbd_get16(rep + 30) & NBD_FLAG_READ_ONLY);
    g_assert_true(nbd_get16(rep + 30) & NBD_FLAG_CAN_MULTI_CONN);
    g_assert_cmphex(raw_option_reply(fd), ==, NBD_REP_ACK);
    close(fd);

    fd = raw_go();
    raw_request(fd, NBD_CMD_WRITE, 0, 0, sizeof(buf), 1);
    raw_send(fd, buf, sizeof(buf));
    g_assert_cmpint(raw_simple_reply(fd, 1), ==, NBD_EPERM);
    raw_request(fd, NBD_CMD_TRIM, 0, 0, 512, 2);
    g_assert_cmpint(raw_simple_reply(fd, 2), ==, NBD_EPERM);
    raw_request(fd, NBD_CMD_WRITE_ZEROES, 0, 0, 512, 3);
    g_assert_cmpint(raw_simple_reply(fd, 3), ==, NBD_EPERM);
    close(fd);
    g_assert_true(POLL_UNTIL(nbd_server_client_count(env.srv) == 0));
    env_stop(&env);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    qemu_get_aio_context();
    bdrv_init();
    test_dir = g_dir_make_tmp("test-nbd-XXXXXX", NULL);
    g_assert(test_dir);
    image = g_build_filename(test_dir, "image.raw", NULL);
    sock_path = g_build_filename(test_dir, "nbd.sock", NULL);

    g_test_add_func("/nbd/codec/request", test_codec_request);
    g_test_add_func("/nbd/codec/reply", test_codec_reply);
    g_test_add_func("/nbd/codec/errno", test_codec_errno);
    g_test_add_func("/nbd/codec/flags", test_codec_flags);
    g_test_add_func("/nbd/client/io", test_client_io);
    g_test_add_func("/nbd/client/concurrent", test_client_concurrent);
    g_test_add_func("/nbd/client/read-only", test_read_only_export);
    g_test_add_func("/nbd/export/lifetime", test_export_lifetime);
    g_test_add_func("/nbd/hostile/handshake", test_hostile_handshake);
    g_test_add_func("/nbd/hostile/requests", test_hostile_requests);
    g_test_add_func("/nbd/hostile/read-only", test_hostile_read_only);

    ret = g_test_run();

    unlink(image);
    unlink(sock_path);
    rmdir(test_dir);
    return ret;
}

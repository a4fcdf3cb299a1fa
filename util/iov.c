/*
 * I/O vector helpers.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/cutils.h"

size_t iov_size(const struct iovec *iov, unsigned int iov_cnt)
{
    size_t len = 0;

    for (unsigned int i = 0; i < iov_cnt; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

/*
 * Walks the bytes [offset, offset + bytes) of @iov, calling @fn on each
 * contiguous piece; returns the number of bytes visited.
 */
static size_t iov_walk(const struct iovec *iov, unsigned int iov_cnt,
                       size_t offset, size_t bytes,
                       void (*fn)(void *base, size_t len, size_t done,
                                  void *opaque),
                       void *opaque)
{
    size_t done = 0;

    for (unsigned int i = 0; i < iov_cnt && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t len = MIN(iov[i].iov_len - offset, bytes - done);
        fn((char *)iov[i].iov_base + offset, len, done, opaque);
        done += len;
        offset = 0;
    }
    return done;
}

static void copy_from_buf(void *base, size_t len, size_t done, void *opaque)
{
    memcpy(base, (const char *)opaque + done, len);
}

static void copy_to_buf(void *base, size_t len, size_t done, void *opaque)
{
    memcpy((char *)opaque + done, base, len);
}

static void fill_piece(void *base, size_t len, size_t done, void *opaque)
{
    memset(base, *(int *)opaque, len);
}

size_t iov_from_buf(const struct iovec *iov, unsigned int iov_cnt,
                    size_t offset, const void *buf, size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, copy_from_buf, (void *)buf);
}

size_t iov_to_buf(const struct iovec *iov, unsigned int iov_cnt,
                  size_t offset, void *buf, size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, copy_to_buf, buf);
}

size_t iov_memset(const struct iovec *iov, unsigned int iov_cnt,
                  size_t offset, int fillc, size_t bytes)
{
    return iov_walk(iov, iov_cnt, offset, bytes, fill_piece, &fillc);
}

void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint)
{
    qiov->iov = g_new(struct iovec, MAX(alloc_hint, 1));
    qiov->niov = 0;
    qiov->nalloc = MAX(alloc_hint, 1);
    qiov->size = 0;
}

void qemu_iovec_init_external(QEMUIOVector *qiov, struct iovec *iov, int niov)
{
    qiov->iov = iov;
    qiov->niov = niov;
    qiov->nalloc = -1;
    qiov->size = iov_size(iov, niov);
}

void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf, size_t len)
{
    *qiov = (QEMUIOVector) QEMU_IOVEC_INIT_BUF(*qiov, buf, len);
}

void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len)
{
    assert(qiov->nalloc != -1);
    if (len == 0) {
        return;
    }
    /* Merge with the previous element when contiguous. */
    if (qiov->niov > 0) {
        struct iovec *last = &qiov->iov[qiov->niov - 1];
        if ((char *)last->iov_base + last->iov_len == (char *)base) {
            last->iov_len += len;
            qiov->size += len;
            return;
        }
    }
    if (qiov->niov == qiov->nalloc) {
        qiov->nalloc = 2 * qiov->nalloc + 1;
        qiov->iov = g_renew(struct iovec, qiov->iov, qiov->nalloc);
    }
    qiov->iov[qiov->niov].iov_base = base;
    qiov->iov[qiov->niov].iov_len = len;
    qiov->size += len;
    qiov->niov++;
}

void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                       size_t soffset, size_t sbytes)
{
    for (int i = 0; i < src->niov && sbytes; i++) {
        if (soffset >= src->iov[i].iov_len) {
            soffset -= src->iov[i].iov_len;
            continue;
        }
        size_t len = MIN(src->iov[i].iov_len - soffset, sbytes);
        qemu_iovec_add(dst, (char *)src->iov[i].iov_base + soffset, len);
        sbytes -= len;
        soffset = 0;
    }
    assert(sbytes == 0);
}

void qemu_iovec_init_slice(QEMUIOVector *qiov, QEMUIOVector *source,
                           size_t offset, size_t len)
{
    assert(offset + len <= source->size);
    qemu_iovec_init(qiov, source->niov);
    qemu_iovec_concat(qiov, source, offset, len);
}

void qemu_iovec_reset(QEMUIOVector *qiov)
{
    assert(qiov->nalloc != -1);
    qiov->niov = 0;
    qiov->size = 0;
}

void qemu_iovec_destroy(QEMUIOVector *qiov)
{
    if (qiov->nalloc != -1) {
        g_free(qiov->iov);
    }
    memset(qiov, 0, sizeof(*qiov));
}

size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                         void *buf, size_t bytes)
{
    return iov_to_buf(qiov->iov, qiov->niov, offset, buf, bytes);
}

size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                           const void *buf, size_t bytes)
{
    return iov_from_buf(qiov->iov, qiov->niov, offset, buf, bytes);
}

size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset,
                         int fillc, size_t bytes)
{
    return iov_memset(qiov->iov, qiov->niov, offset, fillc, bytes);
}

bool qemu_iovec_is_zero(QEMUIOVector *qiov, size_t offset, size_t bytes)
{
    for (int i = 0; i < qiov->niov && bytes; i++) {
        if (offset >= qiov->iov[i].iov_len) {
            offset -= qiov->iov[i].iov_len;
            continue;
        }
        size_t len = MIN(qiov->iov[i].iov_len - offset, bytes);
        if (!buffer_is_zero((char *)qiov->iov[i].iov_base + offset, len)) {
            return false;
        }
        bytes -= len;
        offset = 0;
    }
    return true;
}

ssize_t qemu_iovec_compare(QEMUIOVector *a, QEMUIOVector *b)
{
    size_t off = 0;
    char buf_a[4096], buf_b[4096];

    assert(a->size == b->size);
    while (off < a->size) {
        size_t len = MIN(sizeof(buf_a), a->size - off);

        qemu_iovec_to_buf(a, off, buf_a, len);
        qemu_iovec_to_buf(b, off, buf_b, len);
        for (size_t i = 0; i < len; i++) {
            if (buf_a[i] != buf_b[i]) {
                return off + i;
            }
        }
        off += len;
    }
    return -1;
}

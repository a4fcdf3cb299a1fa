/*
 * I/O vectors.
 */
#ifndef QEMU_IOV_H
#define QEMU_IOV_H

#include "qemu/osdep.h"

size_t iov_size(const struct iovec *iov, unsigned int iov_cnt);
size_t iov_from_buf(const struct iovec *iov, unsigned int iov_cnt,
                    size_t offset, const void *buf, size_t bytes);
size_t iov_to_buf(const struct iovec *iov, unsigned int iov_cnt,
                  size_t offset, void *buf, size_t bytes);
size_t iov_memset(const struct iovec *iov, unsigned int iov_cnt,
                  size_t offset, int fillc, size_t bytes);

/*
 * A scatter/gather list with its total size.  A QEMUIOVector either owns
 * its iovec array (nalloc >= 0, built with qemu_iovec_init/add) or points
 * at a single buffer through local_iov (nalloc == -1, from
 * qemu_iovec_init_buf) or at external storage (init_external).
 */
typedef struct QEMUIOVector {
    struct iovec *iov;
    int niov;
    int nalloc;
    size_t size;
    struct iovec local_iov;
} QEMUIOVector;

void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint);
void qemu_iovec_init_external(QEMUIOVector *qiov, struct iovec *iov, int niov);
void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf, size_t len);
/* @qiov describes bytes [offset, offset + len) of @source. */
void qemu_iovec_init_slice(QEMUIOVector *qiov, QEMUIOVector *source,
                           size_t offset, size_t len);
void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len);
void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                       size_t soffset, size_t sbytes);
void qemu_iovec_reset(QEMUIOVector *qiov);
void qemu_iovec_destroy(QEMUIOVector *qiov);
size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                         void *buf, size_t bytes);
size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                           const void *buf, size_t bytes);
size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset,
                         int fillc, size_t bytes);
bool qemu_iovec_is_zero(QEMUIOVector *qiov, size_t offset, size_t bytes);
/* Compares two vectors of equal size; returns the first differing offset or -1. */
ssize_t qemu_iovec_compare(QEMUIOVector *a, QEMUIOVector *b);

#define QEMU_IOVEC_INIT_BUF(self, buf, len) {           \
    .iov = &(self).local_iov, .niov = 1, .nalloc = -1, \
    .size = (len),                                      \
    .local_iov = { .iov_base = (void *)(buf), .iov_len = (len) } }

#endif

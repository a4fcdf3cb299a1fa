/*
 * Assorted string and buffer utilities.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"

/* True if the @len bytes at @buf are all zero (vectorised). */
bool buffer_is_zero(const void *buf, size_t len);

/*
 * Parses a size with an optional suffix (B, k/K, M, G, T, P, E; binary
 * multiples); a bare number is bytes.  Fractions ("1.5G") are accepted
 * when the result is a whole number of bytes.  Returns 0 or -EINVAL /
 * -ERANGE; *end (if non-NULL) is set past the parsed text, otherwise
 * trailing garbage is an error.
 */
int qemu_strtosz(const char *nptr, const char **end, uint64_t *result);
/* Like qemu_strtosz but a bare number is in MiB (qemu-img -S style: bytes). */
int qemu_strtosz_MiB(const char *nptr, const char **end, uint64_t *result);

/* Strict integer parsers: 0 or -EINVAL/-ERANGE; whole string unless @end. */
int qemu_strtoi64(const char *nptr, const char **end, int base,
                  int64_t *result);
int qemu_strtou64(const char *nptr, const char **end, int base,
                  uint64_t *result);
int qemu_strtoi(const char *nptr, const char **end, int base, int *result);

/* "1 GiB", "512 KiB", "1.5 MiB", "100 B" as qemu-img prints sizes. */
char *size_to_str(uint64_t val);

/* Copies with truncation, always NUL-terminating. */
void pstrcpy(char *buf, int buf_size, const char *str);
/* If @str starts with @val, sets *ptr past it and returns true. */
bool strstart(const char *str, const char *val, const char **ptr);

/*
 * Resolves @filename relative to the directory of @base_path (unless it is
 * absolute or has a protocol prefix); returns a newly allocated string.
 */
char *path_combine(const char *base_path, const char *filename);

/* True if @filename has a "proto:" prefix before any '/'. */
bool path_has_protocol(const char *path);

/*
 * QEMU's rule for user-chosen IDs (drive, device, job, object): a letter
 * first, then letters, digits, '-', '.' and '_'.
 */
bool id_wellformed(const char *id);

#endif

/*
 * Error propagation in the "Error **errp" style.
 *
 * A function that can fail takes a trailing Error **errp.  On failure it
 * sets *errp with error_setg() (when errp is non-NULL) and returns a failure
 * value; the caller owns the Error and must free it or propagate it.
 * Passing &error_abort aborts on error; &error_fatal reports and exits(1).
 */
#ifndef QEMU_ERROR_H
#define QEMU_ERROR_H

#include "qemu/osdep.h"

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR = 0,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

typedef struct Error Error;

extern Error *error_abort;
extern Error *error_fatal;

void error_setg_internal(Error **errp, const char *src, int line,
                         const char *func, ErrorClass cls,
                         const char *fmt, ...) QEMU_PRINTF(6, 7);
void error_setg_errno_internal(Error **errp, const char *src, int line,
                               const char *func, int os_errno,
                               const char *fmt, ...) QEMU_PRINTF(6, 7);

#define error_setg(errp, ...) \
    error_setg_internal((errp), __FILE__, __LINE__, __func__, \
                        ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set(errp, cls, ...) \
    error_setg_internal((errp), __FILE__, __LINE__, __func__, (cls), __VA_ARGS__)
/* Appends ": strerror(os_errno)" to the message. */
#define error_setg_errno(errp, os_errno, ...) \
    error_setg_errno_internal((errp), __FILE__, __LINE__, __func__, \
                              (os_errno), __VA_ARGS__)

/* Moves local_err into *dst_errp (or frees it if dst_errp is NULL). */
void error_propagate(Error **dst_errp, Error *local_err);
/* Like error_propagate() and prepends a formatted string to the message. */
void error_propagate_prepend(Error **dst_errp, Error *local_err,
                             const char *fmt, ...) QEMU_PRINTF(3, 4);
void error_prepend(Error **errp, const char *fmt, ...) QEMU_PRINTF(2, 3);
void error_append_hint(Error **errp, const char *fmt, ...) QEMU_PRINTF(2, 3);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
Error *error_copy(const Error *err);
void error_free(Error *err);
void error_free_or_abort(Error **errp);

/* Prints "prog: message" (with hint) to stderr and frees err. */
void error_report_err(Error *err);
void error_reportf_err(Error *err, const char *fmt, ...) QEMU_PRINTF(2, 3);
void error_report(const char *fmt, ...) QEMU_PRINTF(1, 2);
void warn_report(const char *fmt, ...) QEMU_PRINTF(1, 2);
void info_report(const char *fmt, ...) QEMU_PRINTF(1, 2);

/* Program name used as prefix by error_report(). */
void error_set_progname(const char *name);

/*
 * ERRP_GUARD: lets a function dereference errp (check *errp after a call)
 * even when the caller passed NULL or &error_fatal.
 */
typedef struct ErrorPropagator {
    Error *local_err;
    Error **errp;
} ErrorPropagator;

static inline void error_propagator_cleanup(ErrorPropagator *prop)
{
    error_propagate(prop->errp, prop->local_err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ErrorPropagator, error_propagator_cleanup)

#define ERRP_GUARD()                                                    \
    g_auto(ErrorPropagator) _auto_errp_prop = { .errp = errp };         \
    do {                                                                \
        if (!errp || errp == &error_fatal) {                            \
            errp = &_auto_errp_prop.local_err;                          \
        }                                                               \
    } while (0)

#endif

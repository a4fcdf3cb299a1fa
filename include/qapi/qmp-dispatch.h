/*
 * QMP command table and request dispatch.
 *
 * The generated qmp_init_marshal() fills a QmpCommandList with every
 * command whose handler is linked into the program; qmp_dispatch() checks
 * one request object, runs the command and builds the response.  The
 * monitor owns the connection, capability negotiation, events and the
 * command's coroutine context (QCO_COROUTINE).
 */
#ifndef QAPI_QMP_DISPATCH_H
#define QAPI_QMP_DISPATCH_H

#include "qapi/util.h"

/*
 * A marshaller: @args is the request's "arguments" object (borrowed, never
 * NULL).  On success it sets *ret to a new node; on failure it sets @errp
 * and leaves *ret alone.
 */
typedef void QmpCommandFunc(JsonObject *args, JsonNode **ret, Error **errp);

typedef enum QmpCommandOptions {
    QCO_NO_OPTIONS = 0,
    QCO_NO_SUCCESS_RESP = 1u << 0,
    QCO_ALLOW_OOB = 1u << 1,
    QCO_ALLOW_PRECONFIG = 1u << 2,
    QCO_COROUTINE = 1u << 3,
} QmpCommandOptions;

typedef struct QmpCommand {
    char *name;
    QmpCommandFunc *fn;
    unsigned options;           /* QmpCommandOptions bits */
    unsigned special_features;  /* QAPI_FEATURE_* bits */
} QmpCommand;

typedef struct QmpCommandList QmpCommandList;

QmpCommandList *qmp_command_list_new(void);
void qmp_command_list_free(QmpCommandList *cmds);
/* Registering a name twice replaces the earlier entry. */
void qmp_register_command(QmpCommandList *cmds, const char *name,
                          QmpCommandFunc *fn, unsigned options,
                          unsigned special_features);
const QmpCommand *qmp_find_command(const QmpCommandList *cmds,
                                   const char *name);
/* Calls @fn for each command in name order (for query-commands). */
void qmp_for_each_command(const QmpCommandList *cmds,
                          void (*fn)(const QmpCommand *cmd, void *opaque),
                          void *opaque);

/* "GenericError", "CommandNotFound", ... */
const char *qapi_error_class_name(ErrorClass cls);

/* {"error": {"class": ..., "desc": ...}}; consumes @err. */
JsonNode *qmp_error_response(Error *err);

/*
 * Runs one request ({"execute": NAME, "arguments": {...}, "id": ...}, or
 * "exec-oob" for commands that allow it) and returns the response object
 * with the request's "id" copied, or NULL for a successful command
 * registered with QCO_NO_SUCCESS_RESP.
 */
JsonNode *qmp_dispatch(const QmpCommandList *cmds, JsonNode *request);

#endif

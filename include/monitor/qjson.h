/*
 * JSON for the QMP wire: a streaming splitter that cuts a byte stream into
 * messages, a parser with QEMU's extensions and messages, and a writer
 * that produces QEMU's spelling of JSON.
 *
 * The splitter counts braces and brackets outside strings, so several
 * messages in one buffer, one message split over many buffers and
 * pretty-printed input all work.  Each message is bounded in size and
 * nesting depth; a message over a bound is reported once and its bytes
 * are skipped up to its end, after which the stream continues normally.
 *
 * Accepted beyond RFC 8259, as QEMU accepts it: single-quoted strings
 * (with \' as an escape) and any JSON value at the top level (the monitor
 * rejects non-objects itself).
 */
#ifndef MONITOR_QJSON_H
#define MONITOR_QJSON_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

/* Default bounds of one message. */
#define QJSON_MAX_MESSAGE_SIZE  (64 * 1024 * 1024)
#define QJSON_MAX_DEPTH         1024

/*
 * Called once per message with either the parsed value (@msg, owned by
 * the callee) or the reason it was rejected (@err, owned by the callee).
 */
typedef void QJsonMessageFunc(void *opaque, JsonNode *msg, Error *err);

typedef struct QJsonStreamer QJsonStreamer;

QJsonStreamer *qjson_streamer_new(QJsonMessageFunc *emit, void *opaque);
/* Changes the bounds (tests use small ones). */
void qjson_streamer_set_limits(QJsonStreamer *s, size_t max_size,
                               int max_depth);
/* Feeds bytes; @emit runs for each message they complete. */
void qjson_streamer_feed(QJsonStreamer *s, const char *buf, size_t len);
void qjson_streamer_free(QJsonStreamer *s);

/*
 * Parses exactly one JSON value from @text (@len bytes; surrounding
 * whitespace allowed).  Errors read "JSON parse error, ...".
 */
JsonNode *qjson_parse(const char *text, size_t len, Error **errp);

/*
 * Appends @node as JSON: ", " and ": " separators (or QEMU's 4-space
 * pretty layout), every non-ASCII character escaped as \uXXXX.
 */
void qjson_append(GString *out, JsonNode *node, bool pretty);
char *qjson_to_string(JsonNode *node, bool pretty);

#endif

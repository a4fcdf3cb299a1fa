/*
 * QDict: string-keyed option dictionaries for the block layer.
 *
 * A QDict is a json-glib JsonObject, so options from QMP (JSON), from
 * -blockdev JSON and from dotted command-line keys ("file.filename=x",
 * parsed by keyval_parse()) share one nested representation.  Values from
 * the command line arrive as strings; the typed getters accept both the
 * JSON type and its string spelling ("on"/"off", "64k").
 *
 * Ownership: qdict_new() returns a reference owned by the caller; release
 * it with qobject_unref().  qdict_put_qdict() takes over the reference it
 * is given.  Getters return borrowed pointers.
 */
#ifndef QEMU_QDICT_H
#define QEMU_QDICT_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

typedef JsonObject QDict;

QDict *qdict_new(void);
QDict *qdict_ref(QDict *qdict);
void qobject_unref(QDict *qdict);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QDict, qobject_unref)

bool qdict_haskey(QDict *qdict, const char *key);
void qdict_del(QDict *qdict, const char *key);
unsigned qdict_size(QDict *qdict);
/* Deep copies: nothing is shared with the original. */
QDict *qdict_clone(QDict *qdict);
JsonNode *qnode_deep_copy(JsonNode *node);

void qdict_put_str(QDict *qdict, const char *key, const char *value);
void qdict_put_int(QDict *qdict, const char *key, int64_t value);
void qdict_put_bool(QDict *qdict, const char *key, bool value);
void qdict_put_null(QDict *qdict, const char *key);
void qdict_put_qdict(QDict *qdict, const char *key, QDict *value);
void qdict_put_node(QDict *qdict, const char *key, JsonNode *value);

/* Borrowed; NULL if absent or of another type. */
JsonNode *qdict_get(QDict *qdict, const char *key);
const char *qdict_get_try_str(QDict *qdict, const char *key);
QDict *qdict_get_qdict(QDict *qdict, const char *key);
bool qdict_is_null(QDict *qdict, const char *key);

/*
 * Typed option getters: absent -> *value = @def, return true.  Present
 * but malformed -> error "Parameter 'KEY' expects ..." and return false.
 */
bool qdict_get_bool_opt(QDict *qdict, const char *key, bool def,
                        bool *value, Error **errp);
bool qdict_get_int_opt(QDict *qdict, const char *key, int64_t def,
                       int64_t *value, Error **errp);
bool qdict_get_size_opt(QDict *qdict, const char *key, uint64_t def,
                        uint64_t *value, Error **errp);
/* Matches against a NULL-terminated list; *value is the index. */
bool qdict_get_enum_opt(QDict *qdict, const char *key,
                        const char *const *names, int def, int *value,
                        Error **errp);

/* Scalars (and null) rendered as strings for display; NULL for objects. */
char *qdict_get_as_string(QDict *qdict, const char *key);

/*
 * Moves every "PREFIX.rest" and nested PREFIX object member into a new
 * dict (returned, owned by the caller, possibly empty).
 */
QDict *qdict_extract_subqdict(QDict *qdict, const char *prefix);

/* Turns "a.b=x" flat keys into nested objects, in place. */
void qdict_crumple(QDict *qdict);

/* Iteration over member names (a GList of borrowed strings; g_list_free). */
GList *qdict_keys(QDict *qdict);

QDict *qdict_from_json(const char *json, Error **errp);
char *qdict_to_json(QDict *qdict, bool pretty);
char *qnode_to_json(JsonNode *node, bool pretty);

/*
 * Parses "key=value,key2.sub=value2" (",," escapes a comma in values).
 * A first item without '=' is the value of @implied_key (if non-NULL).
 * Dotted keys become nested dicts.  Returns NULL and sets @errp on error.
 */
QDict *keyval_parse(const char *params, const char *implied_key,
                    Error **errp);

#endif

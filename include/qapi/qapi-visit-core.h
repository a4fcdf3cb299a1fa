/*
 * Helpers for the generated JSON visitors (qapi-visit.c).
 *
 * Input visitors walk a json-glib tree and fill generated C types, checking
 * types, required members and unexpected members with QEMU's messages:
 *   Parameter 'a.b' is missing / is unexpected
 *   Invalid parameter type for 'a.b', expected: integer
 *   Parameter 'x' expects uint32_t
 *   Parameter 'driver' does not accept value 'foo'
 * Error paths name nested members "file.filename" and list elements
 * "actions[0].type".  Output helpers return new JsonNodes (caller owns).
 */
#ifndef QAPI_VISIT_CORE_H
#define QAPI_VISIT_CORE_H

#include "qapi/util.h"

/*
 * Where a value sits in the input, as a stack-allocated chain from the
 * innermost value up to the root (parent NULL).  A member has a name and
 * index -1; a list element has no name and its index.
 */
typedef struct QapiPath {
    const struct QapiPath *parent;
    const char *name;
    int index;
} QapiPath;

/* "a.b[0].c" (newly allocated); "null" for the root value. */
char *qapi_path_str(const QapiPath *path);

QType qapi_json_qtype(JsonNode *node);

/* Member @name of @o (borrowed) or NULL; records @name as consumed. */
JsonNode *qapi_in_member(JsonObject *o, GHashTable *seen, const char *name);
void qapi_error_missing(const QapiPath *path, Error **errp);
void qapi_error_alternate(const QapiPath *path, const char *type_name,
                          Error **errp);
/* Type checks returning borrowed containers, or NULL with an error. */
JsonObject *qapi_in_object(const QapiPath *path, JsonNode *node, Error **errp);
JsonArray *qapi_in_array(const QapiPath *path, JsonNode *node, Error **errp);
/* Fails on the first member of @o (in input order) not in @seen. */
bool qapi_in_check_unexpected(const QapiPath *path, JsonObject *o,
                              GHashTable *seen, Error **errp);
/* For commands without arguments: @args (may be NULL) must be empty. */
bool qapi_in_no_args(JsonObject *args, Error **errp);

bool qapi_in_str(const QapiPath *path, JsonNode *node, char **out,
                 Error **errp);
bool qapi_in_number(const QapiPath *path, JsonNode *node, double *out,
                    Error **errp);
bool qapi_in_bool(const QapiPath *path, JsonNode *node, bool *out,
                  Error **errp);
/* Any JSON value; *out is a new reference. */
bool qapi_in_any(const QapiPath *path, JsonNode *node, JsonNode **out,
                 Error **errp);
bool qapi_in_int(const QapiPath *path, JsonNode *node, int64_t *out,
                 Error **errp);
bool qapi_in_int8(const QapiPath *path, JsonNode *node, int8_t *out,
                  Error **errp);
bool qapi_in_int16(const QapiPath *path, JsonNode *node, int16_t *out,
                   Error **errp);
bool qapi_in_int32(const QapiPath *path, JsonNode *node, int32_t *out,
                   Error **errp);
bool qapi_in_int64(const QapiPath *path, JsonNode *node, int64_t *out,
                   Error **errp);
/*
 * Unsigned types accept negative integers as their two's complement
 * (QEMU does the same), so -1 is UINT64_MAX.
 */
bool qapi_in_uint8(const QapiPath *path, JsonNode *node, uint8_t *out,
                   Error **errp);
bool qapi_in_uint16(const QapiPath *path, JsonNode *node, uint16_t *out,
                    Error **errp);
bool qapi_in_uint32(const QapiPath *path, JsonNode *node, uint32_t *out,
                    Error **errp);
bool qapi_in_uint64(const QapiPath *path, JsonNode *node, uint64_t *out,
                    Error **errp);
bool qapi_in_size(const QapiPath *path, JsonNode *node, uint64_t *out,
                  Error **errp);
bool qapi_in_enum(const QapiPath *path, JsonNode *node,
                  const QEnumLookup *lookup, int *out, Error **errp);

/* A new node holding a reference to @o. */
JsonNode *qapi_object_node(JsonObject *o);
JsonNode *qapi_empty_object_node(void);
/* NULL is written as "" (a required string left unset). */
JsonNode *qapi_str_to_json(const char *str);
JsonNode *qapi_int_to_json(int64_t val);
/*
 * json-glib stores integers as gint64: values above INT64_MAX come out
 * negative, and read back to the same uint64_t.
 */
JsonNode *qapi_uint_to_json(uint64_t val);
JsonNode *qapi_number_to_json(double val);
JsonNode *qapi_bool_to_json(bool val);
JsonNode *qapi_enum_to_json(const QEnumLookup *lookup, int val);

#endif

/*
 * Runtime helpers for the generated JSON input/output visitors.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-visit-core.h"

char *qapi_path_str(const QapiPath *path)
{
    GPtrArray *chain = g_ptr_array_new();
    GString *out = g_string_new(NULL);
    const QapiPath *p;
    int i;

    if (!path) {
        g_ptr_array_free(chain, TRUE);
        g_string_free(out, TRUE);
        return g_strdup("null");
    }
    for (p = path; p; p = p->parent) {
        g_ptr_array_add(chain, (gpointer)p);
    }
    for (i = chain->len - 1; i >= 0; i--) {
        p = g_ptr_array_index(chain, i);
        if (p->name) {
            if (out->len) {
                g_string_append_c(out, '.');
            }
            g_string_append(out, p->name);
        } else {
            g_string_append_printf(out, "[%d]", p->index);
        }
    }
    g_ptr_array_free(chain, TRUE);
    return g_string_free(out, FALSE);
}

/*
 * QEMU names the innermost member only (or "null" for list elements) in
 * enum and alternate errors; keep that wording.
 */
static const char *qapi_path_leaf(const QapiPath *path)
{
    return path && path->name ? path->name : "null";
}

static void qapi_error_type(const QapiPath *path, const char *expected,
                            Error **errp)
{
    g_autofree char *name = qapi_path_str(path);

    error_setg(errp, "Invalid parameter type for '%s', expected: %s", name,
               expected);
}

static void qapi_error_expects(const QapiPath *path, const char *what,
                               Error **errp)
{
    g_autofree char *name = qapi_path_str(path);

    error_setg(errp, "Parameter '%s' expects %s", name, what);
}

QType qapi_json_qtype(JsonNode *node)
{
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        return QTYPE_QDICT;
    case JSON_NODE_ARRAY:
        return QTYPE_QLIST;
    case JSON_NODE_NULL:
        return QTYPE_QNULL;
    case JSON_NODE_VALUE:
        break;
    }
    switch (json_node_get_value_type(node)) {
    case G_TYPE_INT64:
    case G_TYPE_DOUBLE:
        return QTYPE_QNUM;
    case G_TYPE_BOOLEAN:
        return QTYPE_QBOOL;
    case G_TYPE_STRING:
        return QTYPE_QSTRING;
    default:
        return QTYPE_NONE;
    }
}

static bool holds(JsonNode *node, GType type)
{
    return JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == type;
}

JsonNode *qapi_in_member(JsonObject *o, GHashTable *seen, const char *name)
{
    g_hash_table_add(seen, (gpointer)name);
    return json_object_get_member(o, name);
}

void qapi_error_missing(const QapiPath *path, Error **errp)
{
    g_autofree char *name = qapi_path_str(path);

    error_setg(errp, "Parameter '%s' is missing", name);
}

void qapi_error_alternate(const QapiPath *path, const char *type_name,
                          Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               qapi_path_leaf(path), type_name);
}

JsonObject *qapi_in_object(const QapiPath *path, JsonNode *node, Error **errp)
{
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        qapi_error_type(path, "object", errp);
        return NULL;
    }
    return json_node_get_object(node);
}

JsonArray *qapi_in_array(const QapiPath *path, JsonNode *node, Error **errp)
{
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        qapi_error_type(path, "array", errp);
        return NULL;
    }
    return json_node_get_array(node);
}

bool qapi_in_check_unexpected(const QapiPath *path, JsonObject *o,
                              GHashTable *seen, Error **errp)
{
    g_autoptr(GList) names = json_object_get_members(o);
    GList *l;

    for (l = names; l; l = l->next) {
        if (!g_hash_table_contains(seen, l->data)) {
            QapiPath mp = { .parent = path, .name = l->data, .index = -1 };
            g_autofree char *name = qapi_path_str(&mp);

            error_setg(errp, "Parameter '%s' is unexpected", name);
            return false;
        }
    }
    return true;
}

bool qapi_in_no_args(JsonObject *args, Error **errp)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    return !args || qapi_in_check_unexpected(NULL, args, seen, errp);
}

bool qapi_in_str(const QapiPath *path, JsonNode *node, char **out,
                 Error **errp)
{
    if (!holds(node, G_TYPE_STRING)) {
        qapi_error_type(path, "string", errp);
        return false;
    }
    *out = g_strdup(json_node_get_string(node));
    return true;
}

bool qapi_in_number(const QapiPath *path, JsonNode *node, double *out,
                    Error **errp)
{
    if (holds(node, G_TYPE_INT64)) {
        *out = json_node_get_int(node);
        return true;
    }
    if (!holds(node, G_TYPE_DOUBLE)) {
        qapi_error_type(path, "number", errp);
        return false;
    }
    *out = json_node_get_double(node);
    return true;
}

bool qapi_in_bool(const QapiPath *path, JsonNode *node, bool *out,
                  Error **errp)
{
    if (!holds(node, G_TYPE_BOOLEAN)) {
        qapi_error_type(path, "boolean", errp);
        return false;
    }
    *out = json_node_get_boolean(node);
    return true;
}

bool qapi_in_any(const QapiPath *path, JsonNode *node, JsonNode **out,
                 Error **errp)
{
    *out = json_node_copy(node);
    return true;
}

/* A signed integer within [min, max]; @type names the C type in errors. */
static bool in_signed(const QapiPath *path, JsonNode *node, int64_t min,
                      int64_t max, const char *type, int64_t *out,
                      Error **errp)
{
    int64_t val;

    if (!holds(node, G_TYPE_INT64)) {
        qapi_error_type(path, "integer", errp);
        return false;
    }
    val = json_node_get_int(node);
    if (val < min || val > max) {
        qapi_error_expects(path, type, errp);
        return false;
    }
    *out = val;
    return true;
}

static bool in_unsigned(const QapiPath *path, JsonNode *node, uint64_t max,
                        const char *type, uint64_t *out, Error **errp)
{
    uint64_t val;

    if (!holds(node, G_TYPE_INT64)) {
        qapi_error_expects(path, "uint64", errp);
        return false;
    }
    val = (uint64_t)json_node_get_int(node);
    if (val > max) {
        qapi_error_expects(path, type, errp);
        return false;
    }
    *out = val;
    return true;
}

bool qapi_in_int(const QapiPath *path, JsonNode *node, int64_t *out,
                 Error **errp)
{
    return in_signed(path, node, INT64_MIN, INT64_MAX, "int64_t", out, errp);
}

bool qapi_in_int64(const QapiPath *path, JsonNode *node, int64_t *out,
                   Error **errp)
{
    return qapi_in_int(path, node, out, errp);
}

#define DEFINE_IN_SIGNED(bits)                                              \
bool qapi_in_int##bits(const QapiPath *path, JsonNode *node,                \
                       int##bits##_t *out, Error **errp)                    \
{                                                                           \
    int64_t val;                                                            \
                                                                            \
    if (!in_signed(path, node, INT##bits##_MIN, INT##bits##_MAX,            \
                   "int" #bits "_t", &val, errp)) {                         \
        return false;                                                       \
    }                                                                       \
    *out = val;                                                             \
    return true;                                                            \
}

DEFINE_IN_SIGNED(8)
DEFINE_IN_SIGNED(16)
DEFINE_IN_SIGNED(32)

#define DEFINE_IN_UNSIGNED(bits)                                            \
bool qapi_in_uint##bits(const QapiPath *path, JsonNode *node,               \
                        uint##bits##_t *out, Error **errp)                  \
{                                                                           \
    uint64_t val;                                                           \
                                                                            \
    if (!in_unsigned(path, node, UINT##bits##_MAX, "uint" #bits "_t",       \
                     &val, errp)) {                                         \
        return false;                                                       \
    }                                                                       \
    *out = val;                                                             \
    return true;                                                            \
}

DEFINE_IN_UNSIGNED(8)
DEFINE_IN_UNSIGNED(16)
DEFINE_IN_UNSIGNED(32)

bool qapi_in_uint64(const QapiPath *path, JsonNode *node, uint64_t *out,
                    Error **errp)
{
    return in_unsigned(path, node, UINT64_MAX, "uint64", out, errp);
}

bool qapi_in_size(const QapiPath *path, JsonNode *node, uint64_t *out,
                  Error **errp)
{
    return in_unsigned(path, node, UINT64_MAX, "uint64", out, errp);
}

bool qapi_in_enum(const QapiPath *path, JsonNode *node,
                  const QEnumLookup *lookup, int *out, Error **errp)
{
    const char *str;
    int i;

    if (!holds(node, G_TYPE_STRING)) {
        qapi_error_type(path, "string", errp);
        return false;
    }
    str = json_node_get_string(node);
    for (i = 0; i < lookup->size; i++) {
        if (lookup->array[i] && !strcmp(lookup->array[i], str)) {
            *out = i;
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'",
               qapi_path_leaf(path), str);
    return false;
}

JsonNode *qapi_object_node(JsonObject *o)
{
    return json_node_init_object(json_node_alloc(), o);
}

JsonNode *qapi_empty_object_node(void)
{
    JsonObject *o = json_object_new();
    JsonNode *node = qapi_object_node(o);

    json_object_unref(o);
    return node;
}

JsonNode *qapi_str_to_json(const char *str)
{
    return json_node_init_string(json_node_alloc(), str ? str : "");
}

JsonNode *qapi_int_to_json(int64_t val)
{
    return json_node_init_int(json_node_alloc(), val);
}

JsonNode *qapi_uint_to_json(uint64_t val)
{
    return json_node_init_int(json_node_alloc(), (int64_t)val);
}

JsonNode *qapi_number_to_json(double val)
{
    return json_node_init_double(json_node_alloc(), val);
}

JsonNode *qapi_bool_to_json(bool val)
{
    return json_node_init_boolean(json_node_alloc(), val);
}

JsonNode *qapi_enum_to_json(const QEnumLookup *lookup, int val)
{
    return qapi_str_to_json(qapi_enum_lookup(lookup, val));
}

/*
 * QDict helpers over json-glib's JsonObject.
 */
#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "qemu/cutils.h"

QDict *qdict_new(void)
{
    return json_object_new();
}

QDict *qdict_ref(QDict *qdict)
{
    return json_object_ref(qdict);
}

void qobject_unref(QDict *qdict)
{
    if (qdict) {
        json_object_unref(qdict);
    }
}

bool qdict_haskey(QDict *qdict, const char *key)
{
    return json_object_has_member(qdict, key);
}

void qdict_del(QDict *qdict, const char *key)
{
    if (json_object_has_member(qdict, key)) {
        json_object_remove_member(qdict, key);
    }
}

unsigned qdict_size(QDict *qdict)
{
    return json_object_get_size(qdict);
}

/*
 * json_node_copy() shares nested objects and arrays with the original;
 * option dicts are edited in place, so copies must not share anything.
 */
JsonNode *qnode_deep_copy(JsonNode *node)
{
    JsonNode *copy;

    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT:
        copy = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(copy, qdict_clone(json_node_get_object(node)));
        return copy;
    case JSON_NODE_ARRAY: {
        JsonArray *src = json_node_get_array(node);
        JsonArray *dst = json_array_sized_new(json_array_get_length(src));

        for (guint i = 0; i < json_array_get_length(src); i++) {
            json_array_add_element(dst, qnode_deep_copy(
                                   json_array_get_element(src, i)));
        }
        copy = json_node_new(JSON_NODE_ARRAY);
        json_node_take_array(copy, dst);
        return copy;
    }
    default:
        return json_node_copy(node);
    }
}

QDict *qdict_clone(QDict *qdict)
{
    QDict *result = json_object_new();
    GList *keys = json_object_get_members(qdict);

    for (GList *l = keys; l; l = l->next) {
        json_object_set_member(result, l->data,
                               qnode_deep_copy(json_object_get_member(
                                               qdict, l->data)));
    }
    g_list_free(keys);
    return result;
}

void qdict_put_str(QDict *qdict, const char *key, const char *value)
{
    json_object_set_string_member(qdict, key, value);
}

void qdict_put_int(QDict *qdict, const char *key, int64_t value)
{
    json_object_set_int_member(qdict, key, value);
}

void qdict_put_bool(QDict *qdict, const char *key, bool value)
{
    json_object_set_boolean_member(qdict, key, value);
}

void qdict_put_null(QDict *qdict, const char *key)
{
    json_object_set_null_member(qdict, key);
}

void qdict_put_qdict(QDict *qdict, const char *key, QDict *value)
{
    /* json_object_set_object_member takes over our reference. */
    json_object_set_object_member(qdict, key, value);
}

void qdict_put_node(QDict *qdict, const char *key, JsonNode *value)
{
    json_object_set_member(qdict, key, value);
}

JsonNode *qdict_get(QDict *qdict, const char *key)
{
    return json_object_get_member(qdict, key);
}

const char *qdict_get_try_str(QDict *qdict, const char *key)
{
    JsonNode *n = json_object_get_member(qdict, key);

    if (!n || JSON_NODE_TYPE(n) != JSON_NODE_VALUE ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(n);
}

QDict *qdict_get_qdict(QDict *qdict, const char *key)
{
    JsonNode *n = json_object_get_member(qdict, key);

    if (!n || JSON_NODE_TYPE(n) != JSON_NODE_OBJECT) {
        return NULL;
    }
    return json_node_get_object(n);
}

bool qdict_is_null(QDict *qdict, const char *key)
{
    JsonNode *n = json_object_get_member(qdict, key);

    return n && JSON_NODE_TYPE(n) == JSON_NODE_NULL;
}

static bool qnode_is_type(JsonNode *n, GType type)
{
    return JSON_NODE_TYPE(n) == JSON_NODE_VALUE &&
           json_node_get_value_type(n) == type;
}

bool qdict_get_bool_opt(QDict *qdict, const char *key, bool def,
                        bool *value, Error **errp)
{
    JsonNode *n = json_object_get_member(qdict, key);
    const char *s;

    *value = def;
    if (!n) {
        return true;
    }
    if (qnode_is_type(n, G_TYPE_BOOLEAN)) {
        *value = json_node_get_boolean(n);
        return true;
    }
    s = qnode_is_type(n, G_TYPE_STRING) ? json_node_get_string(n) : NULL;
    if (s && (!strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes"))) {
        *value = true;
        return true;
    }
    if (s && (!strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no"))) {
        *value = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
    return false;
}

bool qdict_get_int_opt(QDict *qdict, const char *key, int64_t def,
                       int64_t *value, Error **errp)
{
    JsonNode *n = json_object_get_member(qdict, key);

    *value = def;
    if (!n) {
        return true;
    }
    if (qnode_is_type(n, G_TYPE_INT64)) {
        *value = json_node_get_int(n);
        return true;
    }
    if (qnode_is_type(n, G_TYPE_STRING) &&
        qemu_strtoi64(json_node_get_string(n), NULL, 0, value) == 0) {
        return true;
    }
    *value = def;
    error_setg(errp, "Parameter '%s' expects a number", key);
    return false;
}

bool qdict_get_size_opt(QDict *qdict, const char *key, uint64_t def,
                        uint64_t *value, Error **errp)
{
    JsonNode *n = json_object_get_member(qdict, key);

    *value = def;
    if (!n) {
        return true;
    }
    if (qnode_is_type(n, G_TYPE_INT64) && json_node_get_int(n) >= 0) {
        *value = json_node_get_int(n);
        return true;
    }
    if (qnode_is_type(n, G_TYPE_STRING) &&
        qemu_strtosz(json_node_get_string(n), NULL, value) == 0) {
        return true;
    }
    *value = def;
    error_setg(errp, "Parameter '%s' expects a non-negative number below "
               "2^64", key);
    error_append_hint(errp, "Optional suffix k, M, G, T, P or E means kilo-, "
                      "mega-, giga-, tera-, peta-\nand exabytes, "
                      "respectively.\n");
    return false;
}

bool qdict_get_enum_opt(QDict *qdict, const char *key,
                        const char *const *names, int def, int *value,
                        Error **errp)
{
    const char *s;
    JsonNode *n = json_object_get_member(qdict, key);

    *value = def;
    if (!n) {
        return true;
    }
    s = qnode_is_type(n, G_TYPE_STRING) ? json_node_get_string(n) : NULL;
    for (int i = 0; s && names[i]; i++) {
        if (!strcmp(s, names[i])) {
            *value = i;
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", key,
               s ? s : "(non-string)");
    return false;
}

char *qdict_get_as_string(QDict *qdict, const char *key)
{
    JsonNode *n = json_object_get_member(qdict, key);

    if (!n) {
        return NULL;
    }
    switch (JSON_NODE_TYPE(n)) {
    case JSON_NODE_NULL:
        return g_strdup("null");
    case JSON_NODE_VALUE:
        if (qnode_is_type(n, G_TYPE_STRING)) {
            return g_strdup(json_node_get_string(n));
        }
        if (qnode_is_type(n, G_TYPE_BOOLEAN)) {
            return g_strdup(json_node_get_boolean(n) ? "on" : "off");
        }
        if (qnode_is_type(n, G_TYPE_INT64)) {
            return g_strdup_printf("%" PRId64, json_node_get_int(n));
        }
        return g_strdup_printf("%g", json_node_get_double(n));
    default:
        return NULL;
    }
}

GList *qdict_keys(QDict *qdict)
{
    return json_object_get_members(qdict);
}

QDict *qdict_extract_subqdict(QDict *qdict, const char *prefix)
{
    QDict *dst = qdict_new();
    size_t plen = strlen(prefix);
    GList *keys = json_object_get_members(qdict);
    QDict *nested = qdict_get_qdict(qdict, prefix);

    if (nested) {
        json_object_unref(dst);
        dst = qdict_clone(nested);
    }
    for (GList *l = keys; l; l = l->next) {
        const char *key = l->data;

        if (!strncmp(key, prefix, plen) && key[plen] == '.' && key[plen + 1]) {
            JsonNode *n = qnode_deep_copy(json_object_get_member(qdict, key));
            json_object_set_member(dst, key + plen + 1, n);
        }
    }
    for (GList *l = keys; l; l = l->next) {
        const char *key = l->data;

        if (!strncmp(key, prefix, plen) && key[plen] == '.') {
            json_object_remove_member(qdict, key);
        }
    }
    g_list_free(keys);
    if (nested) {
        json_object_remove_member(qdict, prefix);
    }
    qdict_crumple(dst);
    return dst;
}

void qdict_crumple(QDict *qdict)
{
    GList *keys = json_object_get_members(qdict);

    for (GList *l = keys; l; l = l->next) {
        const char *key = l->data;
        const char *dot = strchr(key, '.');
        g_autofree char *head = NULL;
        QDict *sub;

        if (!dot || dot == key) {
            continue;
        }
        head = g_strndup(key, dot - key);
        sub = qdict_get_qdict(qdict, head);
        if (!sub) {
            if (json_object_has_member(qdict, head)) {
                continue;       /* scalar and dotted keys clash: keep flat */
            }
            sub = qdict_new();
            json_object_set_object_member(qdict, head, sub);
        }
        json_object_set_member(sub, dot + 1,
                               qnode_deep_copy(json_object_get_member(qdict,
                                                                      key)));
        json_object_remove_member(qdict, key);
    }
    g_list_free(keys);

    keys = json_object_get_members(qdict);
    for (GList *l = keys; l; l = l->next) {
        QDict *sub = qdict_get_qdict(qdict, l->data);
        if (sub) {
            qdict_crumple(sub);
        }
    }
    g_list_free(keys);
}

QDict *qdict_from_json(const char *json, Error **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) gerr = NULL;
    JsonNode *root;

    if (!json_parser_load_from_data(parser, json, -1, &gerr)) {
        error_setg(errp, "JSON parse error: %s", gerr->message);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || JSON_NODE_TYPE(root) != JSON_NODE_OBJECT) {
        error_setg(errp, "JSON value must be an object");
        return NULL;
    }
    return json_object_ref(json_node_get_object(root));
}

char *qnode_to_json(JsonNode *node, bool pretty)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();

    json_generator_set_pretty(gen, pretty);
    if (pretty) {
        json_generator_set_indent(gen, 4);
    }
    json_generator_set_root(gen, node);
    return json_generator_to_data(gen, NULL);
}

char *qdict_to_json(QDict *qdict, bool pretty)
{
    JsonNode *node = json_node_alloc();
    char *s;

    json_node_init_object(node, qdict);
    s = qnode_to_json(node, pretty);
    json_node_unref(node);
    return s;
}

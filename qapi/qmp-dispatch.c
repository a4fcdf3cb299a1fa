/*
 * QMP command table and request dispatch.
 */
#include "qemu/osdep.h"
#include "qapi/qmp-dispatch.h"

struct QmpCommandList {
    GTree *by_name;     /* name -> QmpCommand *, owned */
};

static void qmp_command_free(gpointer data)
{
    QmpCommand *cmd = data;

    g_free(cmd->name);
    g_free(cmd);
}

static gint name_cmp(gconstpointer a, gconstpointer b, gpointer opaque)
{
    return strcmp(a, b);
}

QmpCommandList *qmp_command_list_new(void)
{
    QmpCommandList *cmds = g_new0(QmpCommandList, 1);

    /* Keys point into the QmpCommand, so only values are freed. */
    cmds->by_name = g_tree_new_full(name_cmp, NULL, NULL, qmp_command_free);
    return cmds;
}

void qmp_command_list_free(QmpCommandList *cmds)
{
    if (!cmds) {
        return;
    }
    g_tree_destroy(cmds->by_name);
    g_free(cmds);
}

void qmp_register_command(QmpCommandList *cmds, const char *name,
                          QmpCommandFunc *fn, unsigned options,
                          unsigned special_features)
{
    QmpCommand *cmd = g_new0(QmpCommand, 1);

    cmd->name = g_strdup(name);
    cmd->fn = fn;
    cmd->options = options;
    cmd->special_features = special_features;
    g_tree_remove(cmds->by_name, name);
    g_tree_insert(cmds->by_name, cmd->name, cmd);
}

const QmpCommand *qmp_find_command(const QmpCommandList *cmds,
                                   const char *name)
{
    return g_tree_lookup(cmds->by_name, name);
}

typedef struct ForEach {
    void (*fn)(const QmpCommand *cmd, void *opaque);
    void *opaque;
} ForEach;

static gboolean for_each_one(gpointer key, gpointer value, gpointer data)
{
    ForEach *fe = data;

    fe->fn(value, fe->opaque);
    return FALSE;
}

void qmp_for_each_command(const QmpCommandList *cmds,
                          void (*fn)(const QmpCommand *cmd, void *opaque),
                          void *opaque)
{
    ForEach fe = { fn, opaque };

    g_tree_foreach(cmds->by_name, for_each_one, &fe);
}

const char *qapi_error_class_name(ErrorClass cls)
{
    switch (cls) {
    case ERROR_CLASS_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case ERROR_CLASS_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case ERROR_CLASS_KVM_MISSING_CAP:
        return "KVMMissingCap";
    case ERROR_CLASS_GENERIC_ERROR:
        break;
    }
    return "GenericError";
}

JsonNode *qmp_error_response(Error *err)
{
    JsonObject *resp = json_object_new();
    JsonObject *error = json_object_new();
    JsonNode *node;

    json_object_set_string_member(error, "class",
                                  qapi_error_class_name(error_get_class(err)));
    json_object_set_string_member(error, "desc", error_get_pretty(err));
    json_object_set_object_member(resp, "error", error);
    node = json_node_init_object(json_node_alloc(), resp);
    json_object_unref(resp);
    error_free(err);
    return node;
}

/*
 * Checks the request's members in input order, as QEMU reports the first
 * offending one.  Sets *name and *oob from "execute"/"exec-oob" and *args
 * from "arguments" (borrowed, NULL when absent).
 */
static bool check_request(JsonObject *req, const char **name, bool *oob,
                          JsonObject **args, Error **errp)
{
    g_autoptr(GList) members = json_object_get_members(req);
    GList *l;

    *name = NULL;
    *args = NULL;
    for (l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *val = json_object_get_member(req, key);

        if (!strcmp(key, "execute") || !strcmp(key, "exec-oob")) {
            if (!JSON_NODE_HOLDS_VALUE(val) ||
                json_node_get_value_type(val) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member '%s' must be a string",
                           key);
                return false;
            }
            if (*name) {
                error_setg(errp, "QMP input must not contain both 'execute' "
                           "and 'exec-oob'");
                return false;
            }
            *name = json_node_get_string(val);
            *oob = !strcmp(key, "exec-oob");
        } else if (!strcmp(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(val)) {
                error_setg(errp, "QMP input member 'arguments' must be an "
                           "object");
                return false;
            }
            *args = json_node_get_object(val);
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!*name) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    return true;
}

/* The response without "id", or NULL when none is to be sent. */
static JsonNode *run_command(const QmpCommandList *cmds, JsonObject *req)
{
    const QmpCommand *cmd;
    const char *name;
    JsonObject *args;
    JsonObject *empty = NULL;
    JsonNode *ret = NULL;
    JsonObject *resp;
    JsonNode *node;
    Error *err = NULL;
    bool oob = false;

    if (!check_request(req, &name, &oob, &args, &err)) {
        return qmp_error_response(err);
    }
    cmd = qmp_find_command(cmds, name);
    if (!cmd) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return qmp_error_response(err);
    }
    if (oob && !(cmd->options & QCO_ALLOW_OOB)) {
        error_setg(&err, "The command %s does not support OOB", name);
        return qmp_error_response(err);
    }
    if (!args) {
        args = empty = json_object_new();
    }
    cmd->fn(args, &ret, &err);
    if (empty) {
        json_object_unref(empty);
    }
    if (err) {
        return qmp_error_response(err);
    }
    if (cmd->options & QCO_NO_SUCCESS_RESP) {
        json_node_unref(ret);
        return NULL;
    }
    resp = json_object_new();
    json_object_set_member(resp, "return", ret);
    node = json_node_init_object(json_node_alloc(), resp);
    json_object_unref(resp);
    return node;
}

JsonNode *qmp_dispatch(const QmpCommandList *cmds, JsonNode *request)
{
    JsonObject *req;
    JsonNode *resp;
    JsonNode *id;

    if (!JSON_NODE_HOLDS_OBJECT(request)) {
        Error *err = NULL;

        error_setg(&err, "QMP input must be a JSON object");
        return qmp_error_response(err);
    }
    req = json_node_get_object(request);
    resp = run_command(cmds, req);
    if (!resp) {
        return NULL;
    }
    id = json_object_get_member(req, "id");
    if (id) {
        json_object_set_member(json_node_get_object(resp), "id",
                               json_node_copy(id));
    }
    return resp;
}

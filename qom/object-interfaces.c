/*
 * The registry of user-creatable objects behind object-add, object-del
 * and --object.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/qdict.h"
#include "qapi/qapi-visit.h"
#include "qom/object-interfaces.h"

/* id -> QCryptoTLSCreds (one reference each); created on first use. */
static GHashTable *user_objects;

bool user_creatable_add_qapi(const ObjectOptions *options, Error **errp)
{
    QCryptoTLSCreds *creds;

    if (!id_wellformed(options->id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
        return false;
    }
    /* QEMU's wording: objects are children of the /objects container. */
    if (user_objects && g_hash_table_contains(user_objects, options->id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", options->id);
        return false;
    }
    creds = qcrypto_tls_creds_new(options, errp);
    if (!creds) {
        return false;
    }
    if (!user_objects) {
        user_objects = g_hash_table_new_full(
            g_str_hash, g_str_equal, g_free,
            (GDestroyNotify)qcrypto_tls_creds_unref);
    }
    g_hash_table_insert(user_objects, g_strdup(options->id), creds);
    return true;
}

/* The boolean members of ObjectOptions, which keyval gives as strings. */
static const char *const user_creatable_bool_keys[] = {
    "verify-peer", "loaded", "sanity-check", NULL,
};

bool user_creatable_add_str(const char *optarg, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(optarg, "qom-type", errp);
    g_autoptr(JsonNode) root = NULL;
    g_autoptr(ObjectOptions) options = NULL;

    if (!opts) {
        return false;
    }
    for (const char *const *k = user_creatable_bool_keys; *k; k++) {
        bool value;

        if (!qdict_get_try_str(opts, *k)) {
            continue;
        }
        if (!qdict_get_bool_opt(opts, *k, false, &value, errp)) {
            return false;
        }
        qdict_put_bool(opts, *k, value);
    }
    root = json_node_init_object(json_node_alloc(), opts);
    if (!visit_type_ObjectOptions(root, &options, errp)) {
        return false;
    }
    return user_creatable_add_qapi(options, errp);
}

bool user_creatable_del(const char *id, Error **errp)
{
    /*
     * Users hold references of their own (see the header), so an object
     * in use can go: QEMU 7.2 deletes TLS credentials in use as well.
     */
    if (!user_objects || !g_hash_table_remove(user_objects, id)) {
        error_setg(errp, "object '%s' not found", id);
        return false;
    }
    return true;
}

QCryptoTLSCreds *user_creatable_find(const char *id)
{
    return user_objects ? g_hash_table_lookup(user_objects, id) : NULL;
}

void user_creatable_cleanup(void)
{
    g_clear_pointer(&user_objects, g_hash_table_destroy);
}

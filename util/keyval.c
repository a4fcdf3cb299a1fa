/*
 * Parser for "key=value,key.sub=value" option strings.
 *
 * Values are kept as strings; ",," stands for a literal comma inside a
 * value.  Dotted keys build nested dictionaries.  A first element without
 * '=' is the value of the implied key, if the caller has one (as in
 * "-drive file.qcow2" or "-blockdev node-name=x,..." shorthands).
 */
#include "qemu/osdep.h"
#include "qemu/qdict.h"

static bool keyval_valid_key(const char *key)
{
    if (!*key) {
        return false;
    }
    for (const char *p = key; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-_.+", *p)) {
            return false;
        }
        if (*p == '.' && (p == key || p[1] == '.' || p[1] == '\0')) {
            return false;
        }
    }
    return true;
}

/* Stores @value at the dotted @key path in @qdict. */
static bool keyval_store(QDict *qdict, const char *key, const char *value,
                         Error **errp)
{
    const char *dot = strchr(key, '.');
    g_autofree char *head = NULL;
    QDict *sub;

    if (!dot) {
        if (qdict_haskey(qdict, key)) {
            error_setg(errp, "Parameter '%s' is specified more than once",
                       key);
            return false;
        }
        qdict_put_str(qdict, key, value);
        return true;
    }
    head = g_strndup(key, dot - key);
    sub = qdict_get_qdict(qdict, head);
    if (!sub) {
        if (qdict_haskey(qdict, head)) {
            error_setg(errp, "Parameters '%s.*' conflict with parameter '%s'",
                       head, head);
            return false;
        }
        sub = qdict_new();
        qdict_put_qdict(qdict, head, sub);
    }
    return keyval_store(sub, dot + 1, value, errp);
}

/* Reads up to an unescaped ',' into @out; returns the position after it. */
static const char *keyval_read_value(const char *p, GString *out)
{
    while (*p) {
        if (*p == ',') {
            if (p[1] != ',') {
                return p + 1;
            }
            p++;
        }
        g_string_append_c(out, *p++);
    }
    return p;
}

QDict *keyval_parse(const char *params, const char *implied_key,
                    Error **errp)
{
    QDict *qdict = qdict_new();
    const char *p = params;
    bool first = true;

    while (*p) {
        const char *eq = strchr(p, '=');
        const char *comma = strchr(p, ',');
        g_autoptr(GString) value = g_string_new(NULL);
        g_autofree char *key = NULL;

        if (!eq || (comma && comma < eq)) {
            /* No '=' in this element: the implied key's value. */
            if (!first || !implied_key) {
                g_autofree char *elem = comma ? g_strndup(p, comma - p)
                                              : g_strdup(p);
                error_setg(errp, "Expected '=' after parameter '%s'", elem);
                goto fail;
            }
            p = keyval_read_value(p, value);
            if (!keyval_store(qdict, implied_key, value->str, errp)) {
                goto fail;
            }
            first = false;
            continue;
        }
        key = g_strndup(p, eq - p);
        if (!keyval_valid_key(key)) {
            error_setg(errp, "Invalid parameter '%s'", key);
            goto fail;
        }
        p = keyval_read_value(eq + 1, value);
        if (!keyval_store(qdict, key, value->str, errp)) {
            goto fail;
        }
        first = false;
    }
    return qdict;

fail:
    qobject_unref(qdict);
    return NULL;
}

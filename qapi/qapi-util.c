/*
 * QAPI runtime: enum lookups and introspection text parsing.
 */
#include "qemu/osdep.h"
#include "qapi/util.h"

const char *qapi_enum_lookup(const QEnumLookup *lookup, int val)
{
    assert(val >= 0 && val < lookup->size);
    return lookup->array[val];
}

int qapi_enum_parse(const QEnumLookup *lookup, const char *buf, int def,
                    Error **errp)
{
    int i;

    if (!buf) {
        return def;
    }
    for (i = 0; i < lookup->size; i++) {
        /* Values compiled out by 'if' leave NULL holes in the table. */
        if (lookup->array[i] && !strcmp(lookup->array[i], buf)) {
            return i;
        }
    }
    error_setg(errp, "Invalid parameter '%s'", buf);
    return def;
}

JsonNode *qapi_introspection_parse(const char *text)
{
    GString *clean = g_string_sized_new(strlen(text));
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) gerr = NULL;
    const char *p;
    JsonNode *root;

    /*
     * Drop every comma that precedes a closing bracket.  Schema names and
     * enum values cannot contain ',', ']' or '}', so no string is touched.
     */
    for (p = text; *p; p++) {
        if (*p == ',') {
            const char *q = p + 1;

            while (*q == ' ') {
                q++;
            }
            if (*q == ']' || *q == '}') {
                continue;
            }
        }
        g_string_append_c(clean, *p);
    }
    if (!json_parser_load_from_data(parser, clean->str, -1, &gerr)) {
        g_error("generated introspection data is invalid: %s",
                gerr->message);
    }
    g_string_free(clean, TRUE);
    root = json_parser_steal_root(parser);
    return root;
}

/*
 * QAPI runtime support shared by all generated code: enum lookup tables,
 * the JSON kinds alternates dispatch on, special feature flags and list
 * helpers.
 */
#ifndef QAPI_UTIL_H
#define QAPI_UTIL_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

/*
 * Generated for every enum T as T_lookup; T_str(val) indexes it.
 * array[size] is NULL, so the array is also a NULL-terminated name list
 * (as long as no value is compiled out by an 'if' condition).
 */
typedef struct QEnumLookup {
    const char *const *array;
    int size;
} QEnumLookup;

/* The name of @val; @val must be in range. */
const char *qapi_enum_lookup(const QEnumLookup *lookup, int val);

/*
 * The value named @buf, or @def when @buf is NULL.  An unknown name sets
 * "Invalid parameter 'BUF'" and returns @def.
 */
int qapi_enum_parse(const QEnumLookup *lookup, const char *buf, int def,
                    Error **errp);

/* JSON value kinds; an alternate's 'type' member holds one of these. */
typedef enum QType {
    QTYPE_NONE,
    QTYPE_QNULL,
    QTYPE_QNUM,
    QTYPE_QSTRING,
    QTYPE_QDICT,
    QTYPE_QLIST,
    QTYPE_QBOOL,
    QTYPE__MAX,
} QType;

/* Bits for the schema's special features of commands (and members). */
enum {
    QAPI_FEATURE_DEPRECATED = 1u << 0,
    QAPI_FEATURE_UNSTABLE = 1u << 1,
};

/* Deep copy of a QAPI object via its JSON form, e.g. QAPI_CLONE(T, p). */
#define QAPI_CLONE(type, obj) qapi_##type##_clone(obj)

/* Prepends @element to a generated FooList *@list. */
#define QAPI_LIST_PREPEND(list, element) do {                   \
        typeof(list) _tmp = g_malloc(sizeof(*(list)));          \
        _tmp->value = (element);                                \
        _tmp->next = (list);                                    \
        (list) = _tmp;                                          \
    } while (0)

/*
 * Appends through @tail, a pointer to the last 'next' field (start with
 * tail = &head): keeps list order without walking the list.
 */
#define QAPI_LIST_APPEND(tail, element) do {                    \
        *(tail) = g_malloc0(sizeof(**(tail)));                  \
        (*(tail))->value = (element);                           \
        (tail) = &(*(tail))->next;                              \
    } while (0)

/*
 * Parses the generated introspection text (see qapi-introspect.c, whose
 * fragments end in commas) into a new JSON array node.
 */
JsonNode *qapi_introspection_parse(const char *text);

#endif

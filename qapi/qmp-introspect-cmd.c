/*
 * query-qmp-schema: the generated introspection data, typed.
 *
 * Going through visit_type_SchemaInfoList() means every entry the generator
 * emits is checked against the SchemaInfo definition in introspect.json.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-introspect.h"
#include "qapi/qapi-visit.h"

SchemaInfoList *qmp_query_qmp_schema(Error **errp)
{
    JsonNode *schema = qapi_introspect_schema();
    SchemaInfoList *list = NULL;

    visit_type_SchemaInfoList(schema, &list, errp);
    json_node_unref(schema);
    return list;
}

/*
 * QMP object-add and object-del (qapi/qom.json): the registry of
 * qom/object-interfaces.c, as --object uses it.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-commands.h"
#include "qom/object-interfaces.h"

void qmp_object_add(ObjectOptions *arg, Error **errp)
{
    user_creatable_add_qapi(arg, errp);
}

void qmp_object_del(const char *id, Error **errp)
{
    user_creatable_del(id, errp);
}

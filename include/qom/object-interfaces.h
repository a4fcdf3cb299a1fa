/*
 * User-creatable objects: what QMP object-add / object-del and the
 * command line's --object create and delete, named by a unique id.
 *
 * Every object type qblock knows (ObjectType in qapi/qom.json) is a kind
 * of TLS credentials, so the objects are QCryptoTLSCreds.  The registry
 * holds one reference on each; users (an NBD server, an nbd node) take
 * their own, so deleting an object never pulls credentials from under
 * a connection.  Main loop thread only.
 */
#ifndef QOM_OBJECT_INTERFACES_H
#define QOM_OBJECT_INTERFACES_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/tls-creds.h"

/*
 * Creates the object @options describes and registers it under its id,
 * which must be a well-formed identifier not yet taken.
 */
bool user_creatable_add_qapi(const ObjectOptions *options, Error **errp);

/*
 * --object TYPE,id=ID,KEY=VALUE...: the same options in keyval syntax
 * (the first item without '=' is qom-type), created like object-add.
 */
bool user_creatable_add_str(const char *optarg, Error **errp);

/* Unregisters @id, dropping the registry's reference. */
bool user_creatable_del(const char *id, Error **errp);

/* The object @id (borrowed), or NULL if there is none. */
QCryptoTLSCreds *user_creatable_find(const char *id);

/* Deletes every object (at exit). */
void user_creatable_cleanup(void);

#endif

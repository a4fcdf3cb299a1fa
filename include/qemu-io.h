/*
 * The qemu-io command interpreter: "read", "write", "map", "alloc", ...
 * on a BlockBackend, printing what qemu-io prints.
 *
 * qblock-io's main loop and the monitor's "qemu-io DRIVE CMD" both drive
 * it through qemuio_command().  Commands that manage the BlockBackend
 * itself (open, close, quit) belong to the program that owns it and are
 * registered by that program with qemuio_add_command().
 */
#ifndef QEMU_IO_H
#define QEMU_IO_H

#include "block/block-backend.h"

/*
 * A command handler.  @argv[0] is the name the user typed (possibly an
 * alias); options are parsed with getopt().  Returns 0 on success or a
 * negative errno; the message has been printed already.
 */
typedef int (*QemuIOCmdFunc)(BlockBackend *blk, int argc, char **argv);

/* The command needs no open image. */
#define QEMUIO_CMD_NOFILE_OK    0x1
/* The command modifies the image: refused on a read-only node. */
#define QEMUIO_CMD_WRITE        0x2

typedef struct QemuIOCommand {
    const char *name;
    const char *altname;        /* short alias ("r" for read), or NULL */
    QemuIOCmdFunc func;
    int argmin;                 /* arguments after the name */
    int argmax;                 /* -1: no upper bound */
    int flags;                  /* QEMUIO_CMD_* */
    const char *args;           /* synopsis of the arguments, or NULL */
    const char *oneline;        /* one-line description for "help" */
    void (*help)(void);         /* extended help, or NULL */
} QemuIOCommand;

/*
 * Adds @cmd (borrowed: it must stay valid, normally a static) to the
 * command table used by qemuio_command().
 */
void qemuio_add_command(const QemuIOCommand *cmd);

/* Prints "NAME ARGS -- ONELINE" as the usage line of @cmd (stdout). */
void qemuio_command_usage(const QemuIOCommand *cmd);

/*
 * Runs one command line on @blk (NULL: no image open; only commands
 * flagged QEMUIO_CMD_NOFILE_OK run).  The line is split at spaces, with
 * no quoting.  Returns 0 on success, negative on failure.  Asynchronous
 * commands (aio_read, aio_write) succeed once the request is submitted;
 * their completion is printed from the main loop later.
 */
int qemuio_command(BlockBackend *blk, const char *cmd);

/* Set by qblock-io -m: I/O buffers start 512 bytes past an alignment. */
extern bool qemuio_misalign;

/*
 * Polls the main loop until every aio_read/aio_write issued through
 * qemuio_command() has completed and printed its result.
 */
void qemuio_wait_aio(void);

#endif

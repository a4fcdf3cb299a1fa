/*
 * Shared declarations of qblock-img's source files.
 */
#ifndef QBLOCK_IMG_COMMON_H
#define QBLOCK_IMG_COMMON_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/qdict.h"
#include "block/block.h"
#include "block/block-backend.h"
#include "block/block_int.h"

/* Exit status of a command that could not run (bad usage, open error). */
#define IMG_EXIT_FAILURE 1

typedef enum {
    OFORMAT_HUMAN,
    OFORMAT_JSON,
} OutputFormat;

/* --- img-output.c: qemu-img compatible printing --- */

/*
 * Prints @node as qemu-img prints JSON: 4-space indentation, object
 * members in qemu-img's member order, no trailing newline.
 */
void img_json_print(FILE *f, JsonNode *node);
/* Prints an object's members as qemu-img's "Format specific information". */
void img_dump_human(FILE *f, JsonNode *node, int indent);

/* The "    (12.34/100%)" progress indicator (stdout, only when enabled). */
void img_progress_init(bool enabled);
/* Reports @done of @total units; prints after more than one percent. */
void img_progress_update(uint64_t done, uint64_t total);
/* Prints the 100% state again (qemu-img does so when a copy finishes). */
void img_progress_final(void);
/* Ends the progress line. */
void img_progress_end(void);

/* --- qblock-img.c: helpers shared by the commands --- */

void QEMU_NORETURN img_error_exit_usage(const char *fmt, ...)
    QEMU_PRINTF(1, 2);
/* Reports getopt_long()'s '?' (unknown option) or ':' (missing value). */
void QEMU_NORETURN img_bad_option(int c, char **argv);
/* Prints the usage text and exits with status 0. */
void QEMU_NORETURN img_help(void);
/* True if a "-o" string contains "help" or "?". */
bool img_opts_want_help(const char *options);
/* "-o help": the creation options of @fmt (and its protocol if @filename). */
int img_print_create_opts_help(const char *fmt, const char *filename);
/*
 * Creation options for @drv from a "-o" string (may be NULL), checked
 * against the driver's and its protocol's lists, which are returned in
 * @lists.  NULL and @errp set on error.
 */
QDict *img_build_create_opts(const char *options, BlockDriver *drv,
                             const CreateOptDesc *lists[2], Error **errp);
/*
 * Opens an image through a BlockBackend.  @image_opts: @filename is a
 * "key=value,..." option string instead of a file name.  Reports errors
 * as "Could not open 'FILENAME': ..." and returns NULL.
 */
BlockBackend *img_open(bool image_opts, const char *filename,
                       const char *fmt, int flags);
/*
 * Turns a qemu-img cache mode (none, writeback, unsafe, directsync,
 * writethrough) into open flags; false for an unknown mode.  writethrough
 * is treated as writeback: the tools flush before they close anyway.
 */
bool img_parse_cache_mode(const char *mode, int *flags);
/*
 * Runs @entry(@opaque) in a new coroutine and polls the main loop until
 * *@done becomes true (the entry sets it as its last action).
 */
void img_run_co(CoroutineEntry *entry, void *opaque, bool *done);

/* --- img-convert.c --- */
int img_convert(int argc, char **argv);

/* --- img-bitmap.c --- */
int img_bitmap(int argc, char **argv);

#endif

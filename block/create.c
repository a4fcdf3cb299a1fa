/*
 * blockdev-create: image creation as a job.
 *
 * The QAPI creation options are translated into the drivers' creation
 * options (the ones qemu-img create -o takes) and the driver's create
 * function runs in the job's coroutine.  For qcow2 the image is written
 * into the file of an existing "file" node (a node name, or a definition
 * opened for the job's duration); the job holds that node while it works.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "qemu/job.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"

typedef struct BlockdevCreateJob {
    BlockdevCreateOptions *opts;    /* a copy owned by the job */
} BlockdevCreateJob;

static QDict *file_create_opts(const BlockdevCreateOptionsFile *o)
{
    QDict *opts = qdict_new();

    qdict_put_int(opts, "size", o->size);
    if (o->has_preallocation) {
        qdict_put_str(opts, "preallocation",
                      PreallocMode_str(o->preallocation));
    }
    if (o->has_nocow) {
        qdict_put_bool(opts, "nocow", o->nocow);
    }
    return opts;
}

static QDict *qcow2_create_opts(const BlockdevCreateOptionsQcow2 *o)
{
    QDict *opts = qdict_new();

    qdict_put_int(opts, "size", o->size);
    if (o->has_version) {
        qdict_put_str(opts, "compat",
                      o->version == BLOCKDEV_QCOW2_VERSION_V2 ? "0.10"
                                                              : "1.1");
    }
    if (o->backing_file) {
        qdict_put_str(opts, "backing_file", o->backing_file);
    }
    if (o->has_backing_fmt) {
        qdict_put_str(opts, "backing_fmt",
                      BlockdevDriver_str(o->backing_fmt));
    }
    if (o->has_cluster_size) {
        qdict_put_int(opts, "cluster_size", o->cluster_size);
    }
    if (o->has_preallocation) {
        qdict_put_str(opts, "preallocation",
                      PreallocMode_str(o->preallocation));
    }
    if (o->has_lazy_refcounts) {
        qdict_put_bool(opts, "lazy_refcounts", o->lazy_refcounts);
    }
    if (o->has_refcount_bits) {
        qdict_put_int(opts, "refcount_bits", o->refcount_bits);
    }
    if (o->has_compression_type) {
        qdict_put_str(opts, "compression_type",
                      Qcow2CompressionType_str(o->compression_type));
    }
    if (o->has_extended_l2) {
        qdict_put_bool(opts, "extended_l2", o->extended_l2);
    }
    return opts;
}

/*
 * The node @ref names or defines, as a new reference owned by the caller.
 * Definitions are opened read-write as protocol nodes.
 */
static BlockDriverState *create_open_ref(const BlockdevRef *ref, Error **errp)
{
    QDict *opts;
    JsonNode *json;
    BlockDriverState *bs;

    if (ref->type == QTYPE_QSTRING) {
        bs = bdrv_lookup_bs(ref->u.reference, ref->u.reference, errp);
        if (bs) {
            bdrv_ref(bs);
        }
        return bs;
    }
    json = qapi_BlockdevOptions_to_json(&ref->u.definition);
    opts = qdict_ref(json_node_get_object(json));
    json_node_unref(json);
    /* bdrv_open() takes over @opts. */
    return bdrv_open(NULL, NULL, opts, BDRV_O_RDWR | BDRV_O_PROTOCOL, errp);
}

static int coroutine_fn create_qcow2(Job *job,
                                     const BlockdevCreateOptionsQcow2 *o,
                                     Error **errp)
{
    BlockDriverState *file_bs;
    BdrvChild *file;
    g_autoptr(QDict) opts = NULL;
    int ret;

    if (o->data_file || o->has_data_file_raw) {
        error_setg(errp, "External data files are not supported");
        return -ENOTSUP;
    }
    file_bs = create_open_ref(o->file, errp);
    if (!file_bs) {
        return -EINVAL;
    }
    if (strcmp(bdrv_get_format_name(file_bs), "file") != 0) {
        error_setg(errp, "Node '%s' is not a 'file' node; qcow2 images can "
                   "only be created on files", bdrv_get_node_name(file_bs));
        bdrv_unref(file_bs);
        return -ENOTSUP;
    }
    /* The job's edge keeps the node (and its file) while the job runs. */
    file = job_add_node(job, file_bs, "file", errp);
    bdrv_unref(file_bs);
    if (!file) {
        return -EINVAL;
    }
    opts = qcow2_create_opts(o);
    ret = bdrv_create(bdrv_find_format("qcow2"), bdrv_get_filename(file->bs),
                      opts, errp);
    /* The image was written beside the node: its cached length is stale. */
    bdrv_refresh_total_sectors(file->bs, 0);
    return ret;
}

static int coroutine_fn blockdev_create_run(Job *job, Error **errp)
{
    BlockdevCreateJob *s = job_opaque(job);
    BlockdevCreateOptions *o = s->opts;

    switch (o->driver) {
    case BLOCKDEV_DRIVER_FILE: {
        g_autoptr(QDict) opts = file_create_opts(&o->u.file);

        return bdrv_create(bdrv_find_format("file"), o->u.file.filename, opts,
                           errp);
    }
    case BLOCKDEV_DRIVER_QCOW2:
        return create_qcow2(job, &o->u.qcow2, errp);
    default:
        g_assert_not_reached();
    }
}

static void blockdev_create_clean(Job *job)
{
    BlockdevCreateJob *s = job_opaque(job);

    qapi_free_BlockdevCreateOptions(s->opts);
    g_free(s);
}

static const JobDriver blockdev_create_job_driver = {
    .type = JOB_TYPE_CREATE,
    .run = blockdev_create_run,
    .clean = blockdev_create_clean,
};

void qmp_blockdev_create(const char *job_id, BlockdevCreateOptions *options,
                         Error **errp)
{
    BlockdevCreateJob *s;
    Job *job;

    if (options->driver != BLOCKDEV_DRIVER_FILE &&
        options->driver != BLOCKDEV_DRIVER_QCOW2) {
        error_setg(errp, "Driver does not support blockdev-create");
        return;
    }
    if (!bdrv_find_format(BlockdevDriver_str(options->driver))) {
        error_setg(errp, "Unknown driver '%s'",
                   BlockdevDriver_str(options->driver));
        return;
    }
    s = g_new0(BlockdevCreateJob, 1);
    job = job_create(job_id, &blockdev_create_job_driver, s, errp);
    if (!job) {
        g_free(s);
        return;
    }
    /* The marshaller owns @options; the job keeps its own copy. */
    s->opts = QAPI_CLONE(BlockdevCreateOptions, options);
    job_start(job);
}

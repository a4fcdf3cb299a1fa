/*
 * The real schema (the files in qapi/) through its generated code: inputs and
 * error messages checked against what QEMU 7.2 answers for the same
 * requests, registration of linked handlers only, and query-qmp-schema.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-visit.h"

static JsonNode *parse(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    return json_parser_steal_root(parser);
}

/* This program implements query-status only (and links query-qmp-schema). */
StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = g_new0(StatusInfo, 1);

    info->running = true;
    info->status = RUN_STATE_RUNNING;
    return info;
}

static char *dispatch(QmpCommandList *cmds, const char *request)
{
    JsonNode *req = parse(request);
    JsonNode *resp = qmp_dispatch(cmds, req);
    char *text = json_to_string(resp, FALSE);

    json_node_unref(resp);
    json_node_unref(req);
    return text;
}

static void test_registration(void)
{
    QmpCommandList *cmds = qmp_command_list_new();
    g_autofree char *status = NULL;
    g_autofree char *missing = NULL;

    qmp_init_marshal(cmds);
    g_assert_nonnull(qmp_find_command(cmds, "query-status"));
    g_assert_nonnull(qmp_find_command(cmds, "query-qmp-schema"));
    g_assert_null(qmp_find_command(cmds, "blockdev-add"));

    status = dispatch(cmds, "{\"execute\":\"query-status\"}");
    g_assert_cmpstr(status, ==, "{\"return\":{\"running\":true,"
                    "\"singlestep\":false,\"status\":\"running\"}}");
    missing = dispatch(cmds, "{\"execute\":\"blockdev-add\",\"arguments\":"
                       "{\"driver\":\"null-co\"}}");
    g_assert_cmpstr(missing, ==, "{\"error\":{\"class\":\"CommandNotFound\","
                    "\"desc\":\"The command blockdev-add has not been "
                    "found\"}}");
    qmp_command_list_free(cmds);
}

static JsonObject *find_entity(JsonArray *schema, const char *name)
{
    guint i;

    for (i = 0; i < json_array_get_length(schema); i++) {
        JsonObject *o = json_array_get_object_element(schema, i);

        if (!strcmp(json_object_get_string_member(o, "name"), name)) {
            return o;
        }
    }
    return NULL;
}

static void test_query_qmp_schema(void)
{
    g_autoptr(SchemaInfoList) list = NULL;
    JsonNode *node;
    JsonArray *schema;
    JsonObject *o;
    SchemaInfoList *l;
    bool seen_backup = false;

    /* Goes through visit_type_SchemaInfoList: every entry must conform. */
    list = qmp_query_qmp_schema(&error_abort);
    for (l = list; l; l = l->next) {
        if (!strcmp(l->value->name, "blockdev-backup")) {
            g_assert_cmpint(l->value->meta_type, ==,
                            SCHEMA_META_TYPE_COMMAND);
            g_assert_cmpstr(l->value->u.command.arg_type, ==,
                            "BlockdevBackup");
            seen_backup = true;
        }
    }
    g_assert_true(seen_backup);

    node = qapi_SchemaInfoList_to_json(list);
    schema = json_node_get_array(node);
    o = find_entity(schema, "drive-backup");
    g_assert_cmpstr(json_array_get_string_element(
                        json_object_get_array_member(o, "features"), 0), ==,
                    "deprecated");
    o = find_entity(schema, "BlockdevOptions");
    g_assert_cmpstr(json_object_get_string_member(o, "tag"), ==, "driver");
    o = find_entity(schema, "JOB_STATUS_CHANGE");
    g_assert_cmpstr(json_object_get_string_member(o, "arg-type"), ==,
                    "q_obj_JOB_STATUS_CHANGE-arg");
    json_node_unref(node);
}

#define CHECK_ERROR(T, json, msg) do {                                  \
        JsonNode *in_ = parse(json);                                    \
        T *obj_ = NULL;                                                 \
        Error *err_ = NULL;                                             \
                                                                        \
        g_assert_false(visit_type_##T(in_, &obj_, &err_));              \
        g_assert_cmpstr(error_get_pretty(err_), ==, (msg));             \
        error_free(err_);                                               \
        json_node_unref(in_);                                           \
    } while (0)

/* Each expected message is what qemu-system-x86_64 7.2 replies. */
static void test_qemu_messages(void)
{
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"foo\"}",
                "Parameter 'driver' does not accept value 'foo'");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\"}",
                "Parameter 'file' is missing");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"node-name\":\"a\","
                "\"file\":{\"driver\":\"file\"}}",
                "Parameter 'file.filename' is missing");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"node-name\":\"a\","
                "\"file\":{\"driver\":\"file\",\"filename\":1}}",
                "Invalid parameter type for 'file.filename', expected: "
                "string");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"node-name\":\"a\","
                "\"file\":\"x\",\"bogus\":1}",
                "Parameter 'bogus' is unexpected");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"file\":5}",
                "Invalid parameter type for 'file', expected: BlockdevRef");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"raw\",\"file\":null}",
                "Invalid parameter type for 'file', expected: BlockdevRef");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":1}",
                "Invalid parameter type for 'driver', expected: string");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"file\":\"x\","
                "\"cache-size\":1.5}",
                "Invalid parameter type for 'cache-size', expected: integer");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"qcow2\",\"file\":\"x\","
                "\"discard\":\"foo\"}",
                "Parameter 'discard' does not accept value 'foo'");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"blkdebug\",\"image\":\"x\","
                "\"inject-error\":[{\"event\":\"read_aio\",\"errno\":\"x\"}]}",
                "Invalid parameter type for 'inject-error[0].errno', "
                "expected: integer");
    CHECK_ERROR(BlockdevOptions, "{\"driver\":\"blkdebug\",\"image\":\"x\","
                "\"set-state\":[1]}",
                "Invalid parameter type for 'set-state[0]', expected: "
                "object");
    CHECK_ERROR(q_obj_transaction_arg, "{\"actions\":[{}]}",
                "Parameter 'actions[0].type' is missing");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\":[{\"type\":\"abort\",\"data\":{\"x\":1}}]}",
                "Parameter 'actions[0].data.x' is unexpected");
    CHECK_ERROR(q_obj_transaction_arg, "{\"actions\":{}}",
                "Invalid parameter type for 'actions', expected: array");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\":[{\"type\":\"abort\"}]}",
                "Parameter 'actions[0].data' is missing");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\":[{\"type\":\"nope\",\"data\":{}}]}",
                "Parameter 'type' does not accept value 'nope'");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\":[],\"properties\":\"x\"}",
                "Invalid parameter type for 'properties', expected: object");
    CHECK_ERROR(q_obj_nbd_server_start_arg,
                "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"a\","
                "\"port\":\"1\"}},\"max-connections\":-1}",
                "Parameter 'max-connections' expects uint32_t");
    CHECK_ERROR(q_obj_nbd_server_start_arg,
                "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"a\","
                "\"port\":\"1\"}},\"max-connections\":5.0}",
                "Parameter 'max-connections' expects uint64");
    CHECK_ERROR(BlockDirtyBitmapMerge,
                "{\"node\":\"x\",\"target\":\"y\",\"bitmaps\":[1]}",
                "Invalid parameter type for 'null', expected: "
                "BlockDirtyBitmapOrStr");
    CHECK_ERROR(BlockDirtyBitmapMerge,
                "{\"node\":\"x\",\"target\":\"y\",\"bitmaps\":[\"a\","
                "{\"node\":\"x\"}]}",
                "Parameter 'bitmaps[1].name' is missing");
    CHECK_ERROR(q_obj_blockdev_create_arg,
                "{\"job-id\":\"j\",\"options\":{\"driver\":\"file\","
                "\"filename\":\"x\",\"size\":1.5}}",
                "Parameter 'options.size' expects uint64");
}

static void test_blockdev_options(void)
{
    JsonNode *in = parse("{\"driver\":\"qcow2\",\"node-name\":\"disk0\","
                         "\"file\":{\"driver\":\"file\",\"filename\":\"a.q\","
                         "\"aio\":\"native\"},\"backing\":null,"
                         "\"overlap-check\":\"none\"}");
    g_autoptr(BlockdevOptions) opts = NULL;
    BlockdevOptions *file;

    g_assert_true(visit_type_BlockdevOptions(in, &opts, &error_abort));
    g_assert_cmpint(opts->driver, ==, BLOCKDEV_DRIVER_QCOW2);
    g_assert_cmpstr(opts->node_name, ==, "disk0");
    g_assert_cmpint(opts->u.qcow2.file->type, ==, QTYPE_QDICT);
    file = &opts->u.qcow2.file->u.definition;
    g_assert_cmpint(file->driver, ==, BLOCKDEV_DRIVER_FILE);
    g_assert_cmpstr(file->u.file.filename, ==, "a.q");
    g_assert_true(file->u.file.has_aio);
    g_assert_cmpint(file->u.file.aio, ==, BLOCKDEV_AIO_OPTIONS_NATIVE);
    g_assert_cmpint(opts->u.qcow2.backing->type, ==, QTYPE_QNULL);
    g_assert_cmpint(opts->u.qcow2.overlap_check->u.mode, ==,
                    QCOW2_OVERLAP_CHECK_MODE_NONE);
    json_node_unref(in);
}

static GPtrArray *events;

void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    g_autofree char *text = json_to_string(data, FALSE);

    g_ptr_array_add(events, g_strdup_printf("%s %s", QAPIEvent_str(event),
                                            text));
}

static void test_events(void)
{
    events = g_ptr_array_new_with_free_func(g_free);
    qapi_event_send_job_status_change("job0", JOB_STATUS_CONCLUDED);
    qapi_event_send_block_job_completed(JOB_TYPE_BACKUP, "job0", 100, 100, 0,
                                        "I/O error");
    g_assert_cmpstr(events->pdata[0], ==, "JOB_STATUS_CHANGE "
                    "{\"id\":\"job0\",\"status\":\"concluded\"}");
    g_assert_cmpstr(events->pdata[1], ==, "BLOCK_JOB_COMPLETED "
                    "{\"type\":\"backup\",\"device\":\"job0\",\"len\":100,"
                    "\"offset\":100,\"speed\":0,\"error\":\"I/O error\"}");
    g_ptr_array_free(events, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/real/registration", test_registration);
    g_test_add_func("/qapi/real/query-qmp-schema", test_query_qmp_schema);
    g_test_add_func("/qapi/real/qemu-messages", test_qemu_messages);
    g_test_add_func("/qapi/real/blockdev-options", test_blockdev_options);
    g_test_add_func("/qapi/real/events", test_events);
    return g_test_run();
}

/*
 * Generated QAPI code for tests/qapi-schema/qapi-schema-test.json:
 * visitor round trips, every input error message, freeing, dispatch
 * and events.  Built with TEST_IF_ON defined.
 */
#include "qemu/osdep.h"
#include "qapi/test-qapi-commands.h"
#include "qapi/test-qapi-events.h"
#include "qapi/test-qapi-introspect.h"
#include "qapi/test-qapi-visit.h"

static JsonNode *parse(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    return json_parser_steal_root(parser);
}

static char *to_text(JsonNode *node)
{
    return json_to_string(node, FALSE);
}

/* Visits @json as T via @visit and checks the error message. */
#define CHECK_ERROR(T, json, msg) do {                                  \
        JsonNode *in_ = parse(json);                                    \
        T *obj_ = NULL;                                                 \
        Error *err_ = NULL;                                             \
                                                                        \
        g_assert_false(visit_type_##T(in_, &obj_, &err_));              \
        g_assert_null(obj_);                                            \
        g_assert_nonnull(err_);                                         \
        g_assert_cmpstr(error_get_pretty(err_), ==, (msg));             \
        error_free(err_);                                               \
        json_node_unref(in_);                                           \
    } while (0)

static void test_struct_roundtrip(void)
{
    const char *json =
        "{\"base-str\":\"b\",\"req-int\":-5,\"opt-str\":\"s\",\"flag\":true,"
        "\"num\":1.5,\"choice\":\"two-words\",\"list\":[\"x\",\"y\"],"
        "\"sub\":{\"base-str\":\"inner\"},\"anything\":{\"k\":[1,null]},"
        "\"default\":7,\"on-member\":9}";
    JsonNode *in = parse(json);
    TestPlain *p = NULL;
    JsonNode *out;
    g_autofree char *text = NULL;

    g_assert_true(visit_type_TestPlain(in, &p, &error_abort));
    g_assert_cmpstr(p->base_str, ==, "b");
    g_assert_cmpint(p->req_int, ==, -5);
    g_assert_false(p->has_opt_int);
    g_assert_cmpstr(p->opt_str, ==, "s");
    g_assert_true(p->flag);
    g_assert_true(p->has_num);
    g_assert_cmpfloat(p->num, ==, 1.5);
    g_assert_true(p->has_choice);
    g_assert_cmpint(p->choice, ==, TEST_ENUM_TWO_WORDS);
    g_assert_cmpstr(p->list->value, ==, "x");
    g_assert_cmpstr(p->list->next->value, ==, "y");
    g_assert_null(p->list->next->next);
    g_assert_cmpstr(p->sub->base_str, ==, "inner");
    g_assert_true(JSON_NODE_HOLDS_OBJECT(p->anything));
    g_assert_true(p->has_q_default);
    g_assert_cmpint(p->q_default, ==, 7);
    g_assert_true(p->has_on_member);
    g_assert_cmpint(p->on_member, ==, 9);

    /* Output keeps member order, so the text must match exactly. */
    out = qapi_TestPlain_to_json(p);
    text = to_text(out);
    g_assert_cmpstr(text, ==, json);
    json_node_unref(out);
    json_node_unref(in);
    qapi_free_TestPlain(p);
}

static void test_optional_absent(void)
{
    JsonNode *in = parse("{\"base-str\":\"\",\"req-int\":0,\"flag\":false}");
    g_autoptr(TestPlain) p = NULL;
    JsonNode *out;
    g_autofree char *text = NULL;

    g_assert_true(visit_type_TestPlain(in, &p, &error_abort));
    g_assert_false(p->has_opt_int || p->has_num || p->has_choice);
    g_assert_null(p->opt_str);
    g_assert_null(p->list);
    g_assert_null(p->anything);
    out = qapi_TestPlain_to_json(p);
    text = to_text(out);
    g_assert_cmpstr(text, ==, "{\"base-str\":\"\",\"req-int\":0,"
                    "\"flag\":false}");
    json_node_unref(out);
    json_node_unref(in);
}

static void test_union(void)
{
    const char *json = "{\"kind\":\"ints\",\"name\":\"n\",\"i8\":-128,"
        "\"u8\":255,\"u32\":4294967295,\"u64\":-1,\"sz\":4096}";
    JsonNode *in = parse(json);
    TestUnion *u = NULL;
    JsonNode *out;
    g_autofree char *text = NULL;
    TestUnion *copy;

    g_assert_true(visit_type_TestUnion(in, &u, &error_abort));
    g_assert_cmpint(u->kind, ==, TEST_KIND_INTS);
    g_assert_cmpstr(u->name, ==, "n");
    g_assert_cmpint(u->u.ints.i8, ==, -128);
    g_assert_cmpuint(u->u.ints.u8, ==, 255);
    g_assert_cmpuint(u->u.ints.u32, ==, UINT32_MAX);
    /* Negative input for uint64 wraps, as in QEMU. */
    g_assert_cmpuint(u->u.ints.u64, ==, UINT64_MAX);
    g_assert_cmpuint(u->u.ints.sz, ==, 4096);
    g_assert_false(u->u.ints.has_i16);

    out = qapi_TestUnion_to_json(u);
    text = to_text(out);
    g_assert_cmpstr(text, ==, json);
    json_node_unref(out);

    copy = QAPI_CLONE(TestUnion, u);
    g_assert_true(copy != u);
    g_assert_cmpuint(copy->u.ints.u64, ==, UINT64_MAX);
    g_assert_cmpstr(copy->name, ==, "n");
    qapi_free_TestUnion(copy);
    qapi_free_TestUnion(u);
    json_node_unref(in);

    /* A branch without members. */
    in = parse("{\"kind\":\"empty\"}");
    g_assert_true(visit_type_TestUnion(in, &u, &error_abort));
    g_assert_cmpint(u->kind, ==, TEST_KIND_EMPTY);
    qapi_free_TestUnion(u);
    json_node_unref(in);
}

static void test_alternate(void)
{
    JsonNode *in = parse("{\"ref\":{\"kind\":\"plain\",\"base-str\":\"a\","
                         "\"req-int\":1,\"flag\":true},\"opt-ref\":null,"
                         "\"scalars\":[3,false,\"one\",[1,2]],"
                         "\"unions\":[{\"kind\":\"empty\"}]}");
    g_autoptr(TestHolder) h = NULL;
    g_autoptr(TestHolder) h2 = NULL;
    TestScalarAltList *s;
    JsonNode *out;
    g_autofree char *text = NULL;

    g_assert_true(visit_type_TestHolder(in, &h, &error_abort));
    g_assert_cmpint(h->ref->type, ==, QTYPE_QDICT);
    g_assert_cmpint(h->ref->u.definition.kind, ==, TEST_KIND_PLAIN);
    g_assert_cmpint(h->ref->u.definition.u.plain.req_int, ==, 1);
    g_assert_cmpint(h->opt_ref->type, ==, QTYPE_QNULL);
    s = h->scalars;
    g_assert_cmpint(s->value->type, ==, QTYPE_QNUM);
    g_assert_cmpint(s->value->u.i, ==, 3);
    s = s->next;
    g_assert_cmpint(s->value->type, ==, QTYPE_QBOOL);
    g_assert_false(s->value->u.b);
    s = s->next;
    g_assert_cmpint(s->value->type, ==, QTYPE_QSTRING);
    g_assert_cmpint(s->value->u.e, ==, TEST_ENUM_ONE);
    s = s->next;
    g_assert_cmpint(s->value->type, ==, QTYPE_QLIST);
    g_assert_cmpint(s->value->u.l->next->value, ==, 2);

    out = qapi_TestHolder_to_json(h);
    text = to_text(out);
    g_assert_cmpstr(text, ==, "{\"ref\":{\"kind\":\"plain\",\"base-str\":"
                    "\"a\",\"req-int\":1,\"flag\":true},\"opt-ref\":null,"
                    "\"scalars\":[3,false,\"one\",[1,2]],"
                    "\"unions\":[{\"kind\":\"empty\"}]}");
    json_node_unref(out);
    json_node_unref(in);

    in = parse("{\"ref\":\"node0\"}");
    g_assert_true(visit_type_TestHolder(in, &h2, &error_abort));
    g_assert_cmpint(h2->ref->type, ==, QTYPE_QSTRING);
    g_assert_cmpstr(h2->ref->u.reference, ==, "node0");
    g_assert_null(h2->opt_ref);
    json_node_unref(in);
}

static void test_errors(void)
{
    CHECK_ERROR(TestPlain, "{\"req-int\":1,\"flag\":true}",
                "Parameter 'base-str' is missing");
    CHECK_ERROR(TestPlain, "{\"base-str\":1}",
                "Invalid parameter type for 'base-str', expected: string");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1.5}",
                "Invalid parameter type for 'req-int', expected: integer");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":1}",
                "Invalid parameter type for 'flag', expected: boolean");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"num\":\"x\"}",
                "Invalid parameter type for 'num', expected: number");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"choice\":\"off-only\"}",
                "Parameter 'choice' does not accept value 'off-only'");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"choice\":3}",
                "Invalid parameter type for 'choice', expected: string");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"list\":{}}",
                "Invalid parameter type for 'list', expected: array");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"list\":[\"a\",2]}",
                "Invalid parameter type for 'list[1]', expected: string");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"sub\":[]}",
                "Invalid parameter type for 'sub', expected: object");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"sub\":{}}",
                "Parameter 'sub.base-str' is missing");
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"bogus\":1}",
                "Parameter 'bogus' is unexpected");
    /* A compiled-out member is unknown. */
    CHECK_ERROR(TestPlain, "{\"base-str\":\"\",\"req-int\":1,\"flag\":true,"
                "\"off-member\":1}",
                "Parameter 'off-member' is unexpected");
    CHECK_ERROR(TestPlain, "[]",
                "Invalid parameter type for 'null', expected: object");

    CHECK_ERROR(TestUnion, "{}", "Parameter 'kind' is missing");
    CHECK_ERROR(TestUnion, "{\"kind\":\"nope\"}",
                "Parameter 'kind' does not accept value 'nope'");
    CHECK_ERROR(TestUnion, "{\"kind\":\"empty\",\"i8\":1}",
                "Parameter 'i8' is unexpected");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"i8\":128}",
                "Parameter 'i8' expects int8_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"i16\":-32769}",
                "Parameter 'i16' expects int16_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"i32\":2147483648}",
                "Parameter 'i32' expects int32_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"u8\":256}",
                "Parameter 'u8' expects uint8_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"u16\":-1}",
                "Parameter 'u16' expects uint16_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"u32\":4294967296}",
                "Parameter 'u32' expects uint32_t");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"u64\":1.0}",
                "Parameter 'u64' expects uint64");
    CHECK_ERROR(TestUnion, "{\"kind\":\"ints\",\"sz\":\"1\"}",
                "Parameter 'sz' expects uint64");

    CHECK_ERROR(TestHolder, "{\"ref\":5}",
                "Invalid parameter type for 'ref', expected: TestRef");
    CHECK_ERROR(TestHolder, "{\"ref\":{\"kind\":\"plain\"}}",
                "Parameter 'ref.base-str' is missing");
    CHECK_ERROR(TestHolder, "{\"ref\":\"a\",\"scalars\":[1,{}]}",
                "Invalid parameter type for 'null', expected: TestScalarAlt");
    CHECK_ERROR(TestHolder, "{\"ref\":\"a\",\"scalars\":[[1,\"x\"]]}",
                "Invalid parameter type for 'scalars[0][1]', expected: "
                "integer");
    CHECK_ERROR(TestHolder, "{\"ref\":\"a\",\"unions\":[{\"kind\":\"ints\","
                "\"x\":1}]}",
                "Parameter 'unions[0].x' is unexpected");
    CHECK_ERROR(TestHolder, "{\"ref\":\"a\",\"unions\":[{}]}",
                "Parameter 'unions[0].kind' is missing");
}

static void test_enum_tables(void)
{
    g_assert_cmpstr(TestEnum_str(TEST_ENUM_TWO_WORDS), ==, "two-words");
    g_assert_cmpstr(TestEnum_str(TEST_ENUM_ON_ONLY), ==, "on-only");
    g_assert_cmpint(TEST_ENUM__MAX, ==, 3);
    g_assert_cmpint(TP_B, ==, 1);
    g_assert_cmpstr(TestPrefixed_str(TP_A), ==, "a");
    g_assert_cmpint(qapi_enum_parse(&TestEnum_lookup, "on-only", -1,
                                    &error_abort), ==, TEST_ENUM_ON_ONLY);
    g_assert_cmpint(qapi_enum_parse(&TestEnum_lookup, NULL, 42,
                                    &error_abort), ==, 42);
}

/* ---- commands ---------------------------------------------------------- */

static int no_args_calls;

void qmp_test_no_args(Error **errp)
{
    no_args_calls++;
}

TestPlain *qmp_test_args(const char *name, bool has_count, int64_t count,
                         bool has_mode, TestEnum mode, TestHolder *holder,
                         Error **errp)
{
    TestPlain *p;

    if (!strcmp(name, "fail")) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                  name);
        return NULL;
    }
    p = g_new0(TestPlain, 1);
    p->base_str = g_strdup(name);
    p->req_int = has_count ? count : -1;
    p->flag = holder != NULL;
    p->has_choice = has_mode;
    p->choice = mode;
    return p;
}

strList *qmp_test_boxed(TestUnion *arg, Error **errp)
{
    strList *list = NULL;

    QAPI_LIST_PREPEND(list, g_strdup(TestKind_str(arg->kind)));
    if (arg->name) {
        QAPI_LIST_PREPEND(list, g_strdup(arg->name));
    }
    return list;
}

char *qmp_test_returns_str(const char *echo, Error **errp)
{
    return g_strdup(echo);
}

JsonNode *qmp_test_returns_any(Error **errp)
{
    return json_node_init_int(json_node_alloc(), 42);
}

void qmp_test_oob(Error **errp)
{
}

static char *dispatch(QmpCommandList *cmds, const char *request)
{
    JsonNode *req = parse(request);
    JsonNode *resp = qmp_dispatch(cmds, req);
    char *text = resp ? to_text(resp) : g_strdup("(none)");

    if (resp) {
        json_node_unref(resp);
    }
    json_node_unref(req);
    return text;
}

#define CHECK_DISPATCH(cmds, req, expected) do {                        \
        g_autofree char *text_ = dispatch((cmds), (req));               \
        g_assert_cmpstr(text_, ==, (expected));                         \
    } while (0)

static void test_dispatch(void)
{
    QmpCommandList *cmds = qmp_command_list_new();
    const QmpCommand *cmd;

    qmp_init_marshal(cmds);
    /* Linked handlers are registered; the unimplemented one is not. */
    g_assert_nonnull(qmp_find_command(cmds, "test-args"));
    g_assert_null(qmp_find_command(cmds, "test-unimplemented"));
    g_assert_null(qmp_find_command(cmds, "test-conditional"));
    cmd = qmp_find_command(cmds, "test-oob");
    g_assert_cmpuint(cmd->options, ==, QCO_ALLOW_OOB | QCO_NO_SUCCESS_RESP);

    CHECK_DISPATCH(cmds, "{\"execute\":\"test-no-args\",\"id\":1}",
                   "{\"return\":{},\"id\":1}");
    g_assert_cmpint(no_args_calls, ==, 1);
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-args\",\"arguments\":"
                   "{\"name\":\"n\",\"count\":3,\"mode\":\"one\"}}",
                   "{\"return\":{\"base-str\":\"n\",\"req-int\":3,"
                   "\"flag\":false,\"choice\":\"one\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-args\",\"arguments\":"
                   "{\"name\":\"fail\"},\"id\":\"x\"}",
                   "{\"error\":{\"class\":\"DeviceNotFound\","
                   "\"desc\":\"Device 'fail' not found\"},\"id\":\"x\"}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-args\",\"arguments\":{}}",
                   "{\"error\":{\"class\":\"GenericError\","
                   "\"desc\":\"Parameter 'name' is missing\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-args\",\"arguments\":"
                   "{\"name\":\"n\",\"holder\":{\"ref\":{}}}}",
                   "{\"error\":{\"class\":\"GenericError\","
                   "\"desc\":\"Parameter 'holder.ref.kind' is missing\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-boxed\",\"arguments\":"
                   "{\"kind\":\"empty\",\"name\":\"a\"}}",
                   "{\"return\":[\"a\",\"empty\"]}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-returns-str\",\"arguments\":"
                   "{\"echo\":\"hi\"}}", "{\"return\":\"hi\"}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-returns-any\"}",
                   "{\"return\":42}");
    CHECK_DISPATCH(cmds, "{\"exec-oob\":\"test-oob\"}", "(none)");
    CHECK_DISPATCH(cmds, "{\"exec-oob\":\"test-no-args\"}",
                   "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                   "\"The command test-no-args does not support OOB\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-unimplemented\"}",
                   "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":"
                   "\"The command test-unimplemented has not been found\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-no-args\",\"arguments\":"
                   "{\"x\":1}}",
                   "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                   "\"Parameter 'x' is unexpected\"}}");
    CHECK_DISPATCH(cmds, "[]", "{\"error\":{\"class\":\"GenericError\","
                   "\"desc\":\"QMP input must be a JSON object\"}}");
    CHECK_DISPATCH(cmds, "{}", "{\"error\":{\"class\":\"GenericError\","
                   "\"desc\":\"QMP input lacks member 'execute'\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":1}",
                   "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                   "\"QMP input member 'execute' must be a string\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-no-args\",\"arguments\":[]}",
                   "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                   "\"QMP input member 'arguments' must be an object\"}}");
    CHECK_DISPATCH(cmds, "{\"execute\":\"test-no-args\",\"foo\":1,\"id\":2}",
                   "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                   "\"QMP input member 'foo' is unexpected\"},\"id\":2}");
    qmp_command_list_free(cmds);
}

/* ---- events ------------------------------------------------------------ */

static GPtrArray *events;

void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    g_autofree char *text = data ? to_text(data) : g_strdup("-");

    g_ptr_array_add(events, g_strdup_printf("%s %s", QAPIEvent_str(event),
                                            text));
}

static void test_events(void)
{
    TestBase base = { .base_str = (char *)"boxed" };

    events = g_ptr_array_new_with_free_func(g_free);
    qapi_event_send_test_event("id0", TEST_ENUM_ONE, false, 0);
    qapi_event_send_test_event("id1", TEST_ENUM_TWO_WORDS, true, 5);
    qapi_event_send_test_event_boxed(&base);
    qapi_event_send_test_event_empty();
    g_assert_cmpuint(events->len, ==, 4);
    g_assert_cmpstr(events->pdata[0], ==,
                    "TEST_EVENT {\"id\":\"id0\",\"kind\":\"one\"}");
    g_assert_cmpstr(events->pdata[1], ==, "TEST_EVENT {\"id\":\"id1\","
                    "\"kind\":\"two-words\",\"extra\":5}");
    g_assert_cmpstr(events->pdata[2], ==,
                    "TEST_EVENT_BOXED {\"base-str\":\"boxed\"}");
    g_assert_cmpstr(events->pdata[3], ==, "TEST_EVENT_EMPTY -");
    g_ptr_array_free(events, TRUE);
}

/* ---- introspection ----------------------------------------------------- */

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

static void test_introspect(void)
{
    JsonNode *node = qapi_introspect_schema();
    JsonArray *schema = json_node_get_array(node);
    JsonObject *o;
    JsonArray *a;
    g_autofree char *values = NULL;

    o = find_entity(schema, "test-args");
    g_assert_cmpstr(json_object_get_string_member(o, "meta-type"), ==,
                    "command");
    g_assert_cmpstr(json_object_get_string_member(o, "arg-type"), ==,
                    "q_obj_test-args-arg");
    g_assert_cmpstr(json_object_get_string_member(o, "ret-type"), ==,
                    "TestPlain");
    o = find_entity(schema, "test-no-args");
    g_assert_cmpstr(json_object_get_string_member(o, "arg-type"), ==,
                    "q_empty");
    g_assert_nonnull(find_entity(schema, "q_empty"));
    g_assert_null(find_entity(schema, "test-conditional"));
    o = find_entity(schema, "test-unimplemented");
    a = json_object_get_array_member(o, "features");
    g_assert_cmpstr(json_array_get_string_element(a, 0), ==, "deprecated");
    g_assert_true(json_object_get_boolean_member(
                      find_entity(schema, "test-oob"), "allow-oob"));

    /* Conditional enum values and members follow the build. */
    o = find_entity(schema, "TestEnum");
    values = json_to_string(json_object_get_member(o, "values"), FALSE);
    g_assert_cmpstr(values, ==, "[\"one\",\"two-words\",\"on-only\"]");
    o = find_entity(schema, "TestUnion");
    g_assert_cmpstr(json_object_get_string_member(o, "tag"), ==, "kind");
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(o, "variants")), ==, 3);
    g_assert_nonnull(find_entity(schema, "[str]"));
    /* Sized integers are all reported as int. */
    g_assert_null(find_entity(schema, "int8"));
    g_assert_nonnull(find_entity(schema, "int"));
    /* Types used only internally are not listed. */
    g_assert_null(find_entity(schema, "TestPrefixed"));
    json_node_unref(node);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/visit/struct-roundtrip", test_struct_roundtrip);
    g_test_add_func("/qapi/visit/optional-absent", test_optional_absent);
    g_test_add_func("/qapi/visit/union", test_union);
    g_test_add_func("/qapi/visit/alternate", test_alternate);
    g_test_add_func("/qapi/visit/errors", test_errors);
    g_test_add_func("/qapi/types/enum-tables", test_enum_tables);
    g_test_add_func("/qapi/commands/dispatch", test_dispatch);
    g_test_add_func("/qapi/events/emit", test_events);
    g_test_add_func("/qapi/introspect/schema", test_introspect);
    return g_test_run();
}

/*
 * Tests of qblock-img's output helpers against texts printed by the real
 * qemu-img 7.2 for the same data.
 */
#include "qemu/osdep.h"
#include "tools/img-common.h"

typedef void (*PrintFn)(FILE *f, JsonNode *node);

static JsonNode *parse(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    GError *err = NULL;

    g_assert_true(json_parser_load_from_data(parser, json, -1, &err));
    g_assert_no_error(err);
    return json_node_copy(json_parser_get_root(parser));
}

static char *capture_json(JsonNode *node)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    img_json_print(f, node);
    fclose(f);
    return buf;
}

static char *capture_human(JsonNode *node, int indent)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    img_dump_human(f, node, indent);
    fclose(f);
    return buf;
}

/* Members given in schema order come out in qemu-img's order. */
static void test_info_member_order(void)
{
    JsonNode *node = parse(
        "{\"filename\": \"o.qcow2\", \"format\": \"qcow2\","
        " \"dirty-flag\": false, \"actual-size\": 397312,"
        " \"virtual-size\": 67108864, \"cluster-size\": 65536,"
        " \"backing-filename\": \"a.qcow2\","
        " \"full-backing-filename\": \"a.qcow2\","
        " \"backing-filename-format\": \"qcow2\","
        " \"format-specific\": {\"type\": \"qcow2\", \"data\": {"
        "   \"compat\": \"1.1\", \"extended-l2\": false,"
        "   \"lazy-refcounts\": false, \"corrupt\": false,"
        "   \"refcount-bits\": 16, \"compression-type\": \"zlib\"}}}");
    g_autofree char *out = capture_json(node);

    g_assert_cmpstr(out, ==,
        "{\n"
        "    \"backing-filename-format\": \"qcow2\",\n"
        "    \"virtual-size\": 67108864,\n"
        "    \"filename\": \"o.qcow2\",\n"
        "    \"cluster-size\": 65536,\n"
        "    \"format\": \"qcow2\",\n"
        "    \"actual-size\": 397312,\n"
        "    \"format-specific\": {\n"
        "        \"type\": \"qcow2\",\n"
        "        \"data\": {\n"
        "            \"compat\": \"1.1\",\n"
        "            \"compression-type\": \"zlib\",\n"
        "            \"lazy-refcounts\": false,\n"
        "            \"refcount-bits\": 16,\n"
        "            \"corrupt\": false,\n"
        "            \"extended-l2\": false\n"
        "        }\n"
        "    },\n"
        "    \"full-backing-filename\": \"a.qcow2\",\n"
        "    \"backing-filename\": \"a.qcow2\",\n"
        "    \"dirty-flag\": false\n"
        "}");
    json_node_unref(node);
}

static void test_check_member_order(void)
{
    JsonNode *node = parse(
        "{\"filename\": \"c.qcow2\", \"format\": \"qcow2\","
        " \"check-errors\": 0, \"image-end-offset\": 458752,"
        " \"corruptions\": 1, \"total-clusters\": 1024,"
        " \"allocated-clusters\": 3, \"fragmented-clusters\": 1}");
    g_autofree char *out = capture_json(node);

    g_assert_cmpstr(out, ==,
        "{\n"
        "    \"image-end-offset\": 458752,\n"
        "    \"total-clusters\": 1024,\n"
        "    \"corruptions\": 1,\n"
        "    \"check-errors\": 0,\n"
        "    \"allocated-clusters\": 3,\n"
        "    \"filename\": \"c.qcow2\",\n"
        "    \"format\": \"qcow2\",\n"
        "    \"fragmented-clusters\": 1\n"
        "}");
    json_node_unref(node);
}

/* Arrays, including an empty one, and unknown members keep their order. */
static void test_arrays_and_unknown(void)
{
    JsonNode *node = parse(
        "{\"zz-unknown\": 1, \"aa-unknown\": \"x\","
        " \"bitmaps\": [{\"name\": \"b2\", \"granularity\": 65536,"
        "               \"flags\": []}]}");
    g_autofree char *out = capture_json(node);

    g_assert_cmpstr(out, ==,
        "{\n"
        "    \"bitmaps\": [\n"
        "        {\n"
        "            \"flags\": [\n"
        "            ],\n"
        "            \"name\": \"b2\",\n"
        "            \"granularity\": 65536\n"
        "        }\n"
        "    ],\n"
        "    \"zz-unknown\": 1,\n"
        "    \"aa-unknown\": \"x\"\n"
        "}");
    json_node_unref(node);
}

static void test_string_escapes(void)
{
    JsonNode *node = parse("[\"a\\\"b\\\\c/d\\n\\t\\u0001\\u00e9\"]");
    g_autofree char *out = capture_json(node);

    g_assert_cmpstr(out, ==,
                    "[\n    \"a\\\"b\\\\c/d\\n\\t\\u0001\\u00E9\"\n]");
    json_node_unref(node);
}

/* qemu-img's "Format specific information" for an image with bitmaps. */
static void test_human_dump(void)
{
    JsonNode *node = parse(
        "{\"compat\": \"1.1\", \"lazy-refcounts\": false,"
        " \"bitmaps\": [{\"name\": \"b0\", \"granularity\": 65536,"
        "               \"flags\": [\"auto\"]},"
        "              {\"name\": \"b2\", \"granularity\": 65536,"
        "               \"flags\": []}],"
        " \"refcount-bits\": 16, \"corrupt\": false}");
    g_autofree char *out = capture_human(node, 4);

    g_assert_cmpstr(out, ==,
        "    compat: 1.1\n"
        "    lazy refcounts: false\n"
        "    bitmaps:\n"
        "        [0]:\n"
        "            flags:\n"
        "                [0]: auto\n"
        "            name: b0\n"
        "            granularity: 65536\n"
        "        [1]:\n"
        "            flags:\n"
        "            name: b2\n"
        "            granularity: 65536\n"
        "    refcount bits: 16\n"
        "    corrupt: false\n");
    json_node_unref(node);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/img-output/info-member-order", test_info_member_order);
    g_test_add_func("/img-output/check-member-order",
                    test_check_member_order);
    g_test_add_func("/img-output/arrays-and-unknown",
                    test_arrays_and_unknown);
    g_test_add_func("/img-output/string-escapes", test_string_escapes);
    g_test_add_func("/img-output/human-dump", test_human_dump);
    return g_test_run();
}

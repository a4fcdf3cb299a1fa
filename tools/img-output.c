/*
 * qblock-img output helpers: JSON and human-readable dumps laid out the
 * way qemu-img lays them out, and the progress indicator.
 */
#include "qemu/osdep.h"
#include "img-common.h"

/*
 * qemu-img does not print object members in the order they were added:
 * its output follows a fixed order per member name, the same in every
 * object.  This table lists the member names qemu-img prints, in the
 * order observed in its output (info, check, measure, qcow2 specific
 * information, bitmaps, snapshots).  Names missing from the table are
 * printed after the known ones, in insertion order.
 */
static const char *const member_order[] = {
    "compat", "icount", "flags", "vm-clock-nsec", "image-end-offset",
    "name", "compressed-clusters", "backing-image", "compression-type",
    "compressed", "lazy-refcounts", "date-sec", "bitmaps", "refcount-bits",
    "total-clusters", "corruptions", "data-file", "corruptions-fixed",
    "check-errors", "backing-filename-format", "date-nsec", "granularity",
    "required", "leaks", "snapshots", "leaks-fixed", "allocated-clusters",
    "virtual-size", "filename", "cluster-size", "fully-allocated", "format",
    "encrypt", "actual-size", "format-specific", "data-file-raw",
    "full-backing-filename", "vm-clock-sec", "encrypted", "type",
    "backing-filename", "corrupt", "fragmented-clusters", "id",
    "vm-state-size", "dirty-flag", "extended-l2", "data",
};

static int member_rank(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(member_order); i++) {
        if (!strcmp(member_order[i], name)) {
            return i;
        }
    }
    return ARRAY_SIZE(member_order);
}

static gint compare_members(gconstpointer a, gconstpointer b)
{
    return member_rank(a) - member_rank(b);
}

/* Member names of @obj in output order; g_list_free() the result. */
static GList *ordered_members(JsonObject *obj)
{
    /* g_list_sort is stable: unknown names keep their insertion order. */
    return g_list_sort(json_object_get_members(obj), compare_members);
}

static void print_indent(FILE *f, int indent)
{
    fprintf(f, "%*s", indent, "");
}

/* JSON string escaping as qemu-img does it: non-ASCII becomes \uXXXX. */
static void print_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    while (*s) {
        gunichar c = g_utf8_get_char_validated(s, -1);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            c = 0xfffd;
            s++;
        } else {
            s = g_utf8_next_char(s);
        }
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                gunichar2 units[2];
                int n = 1;
                if (c >= 0x10000) {
                    units[0] = 0xd800 + ((c - 0x10000) >> 10);
                    units[1] = 0xdc00 + ((c - 0x10000) & 0x3ff);
                    n = 2;
                } else {
                    units[0] = c;
                }
                for (int i = 0; i < n; i++) {
                    fprintf(f, "\\u%04X", units[i]);
                }
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

static void print_json_value(FILE *f, JsonNode *node)
{
    switch (json_node_get_value_type(node)) {
    case G_TYPE_INT64:
        fprintf(f, "%" PRId64, json_node_get_int(node));
        break;
    case G_TYPE_BOOLEAN:
        fputs(json_node_get_boolean(node) ? "true" : "false", f);
        break;
    case G_TYPE_DOUBLE:
        fprintf(f, "%.17g", json_node_get_double(node));
        break;
    default:
        print_json_string(f, json_node_get_string(node));
        break;
    }
}

static void print_json(FILE *f, JsonNode *node, int indent)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *obj = json_node_get_object(node);
        GList *names = ordered_members(obj);
        fputc('{', f);
        for (GList *l = names; l; l = l->next) {
            fputs(l == names ? "\n" : ",\n", f);
            print_indent(f, indent + 4);
            print_json_string(f, l->data);
            fputs(": ", f);
            print_json(f, json_object_get_member(obj, l->data), indent + 4);
        }
        fputc('\n', f);
        print_indent(f, indent);
        fputc('}', f);
        g_list_free(names);
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *arr = json_node_get_array(node);
        guint len = json_array_get_length(arr);
        fputc('[', f);
        for (guint i = 0; i < len; i++) {
            fputs(i == 0 ? "\n" : ",\n", f);
            print_indent(f, indent + 4);
            print_json(f, json_array_get_element(arr, i), indent + 4);
        }
        fputc('\n', f);
        print_indent(f, indent);
        fputc(']', f);
        break;
    }
    case JSON_NODE_NULL:
        fputs("null", f);
        break;
    case JSON_NODE_VALUE:
        print_json_value(f, node);
        break;
    }
}

void img_json_print(FILE *f, JsonNode *node)
{
    print_json(f, node, 0);
}

static void dump_human_scalar(FILE *f, JsonNode *node)
{
    if (JSON_NODE_TYPE(node) == JSON_NODE_NULL) {
        fputs("null", f);
        return;
    }
    switch (json_node_get_value_type(node)) {
    case G_TYPE_INT64:
        fprintf(f, "%" PRId64, json_node_get_int(node));
        break;
    case G_TYPE_BOOLEAN:
        fputs(json_node_get_boolean(node) ? "true" : "false", f);
        break;
    case G_TYPE_DOUBLE:
        fprintf(f, "%g", json_node_get_double(node));
        break;
    default:
        fputs(json_node_get_string(node), f);
        break;
    }
}

static bool node_is_container(JsonNode *node)
{
    return JSON_NODE_HOLDS_OBJECT(node) || JSON_NODE_HOLDS_ARRAY(node);
}

/* One "label: value" line, or "label:" followed by the nested dump. */
static void dump_human_entry(FILE *f, const char *label, JsonNode *value,
                             int indent)
{
    print_indent(f, indent);
    if (node_is_container(value)) {
        fprintf(f, "%s:\n", label);
        img_dump_human(f, value, indent + 4);
    } else {
        fprintf(f, "%s: ", label);
        dump_human_scalar(f, value);
        fputc('\n', f);
    }
}

void img_dump_human(FILE *f, JsonNode *node, int indent)
{
    if (JSON_NODE_HOLDS_ARRAY(node)) {
        JsonArray *arr = json_node_get_array(node);
        for (guint i = 0; i < json_array_get_length(arr); i++) {
            g_autofree char *label = g_strdup_printf("[%u]", i);
            dump_human_entry(f, label, json_array_get_element(arr, i),
                             indent);
        }
    } else if (JSON_NODE_HOLDS_OBJECT(node)) {
        JsonObject *obj = json_node_get_object(node);
        GList *names = ordered_members(obj);
        for (GList *l = names; l; l = l->next) {
            /* qemu-img shows "lazy-refcounts" as "lazy refcounts". */
            g_autofree char *label = g_strdelimit(g_strdup(l->data), "-",
                                                  ' ');
            dump_human_entry(f, label, json_object_get_member(obj, l->data),
                             indent);
        }
        g_list_free(names);
    }
}

static struct {
    bool enabled;
    double last_printed;    /* percentage shown last */
} progress;

static void progress_print(double percent)
{
    printf("    (%0.2f/100%%)\r", percent);
    fflush(stdout);
    progress.last_printed = percent;
}

void img_progress_init(bool enabled)
{
    progress.enabled = enabled;
    if (enabled) {
        progress_print(0);
    }
}

void img_progress_update(uint64_t done, uint64_t total)
{
    double percent;

    if (!progress.enabled) {
        return;
    }
    percent = total ? (double)done * 100 / total : 100;
    /* Like qemu-img: redraw after more than one percent, and at 100%. */
    if (percent > progress.last_printed + 1.0 || percent >= 100) {
        progress_print(MIN(percent, 100));
    }
}

void img_progress_final(void)
{
    if (progress.enabled) {
        progress_print(100);
    }
}

void img_progress_end(void)
{
    if (!progress.enabled) {
        return;
    }
    printf("\n");
    fflush(stdout);
    progress.enabled = false;
}

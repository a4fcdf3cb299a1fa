/*
 * JSON for the QMP wire: streaming splitter, parser and writer.
 */
#include "qemu/osdep.h"
#include "monitor/qjson.h"
#include <math.h>

/* --- splitter --- */

struct QJsonStreamer {
    QJsonMessageFunc *emit;
    void *opaque;
    size_t max_size;
    int max_depth;
    GString *buf;       /* bytes of the message being collected */
    int64_t depth;      /* open braces and brackets */
    char quote;         /* the opening quote while inside a string, else 0 */
    bool escape;        /* the previous string byte was a backslash */
    bool bare;          /* inside a top-level number or keyword */
    /*
     * The message broke a bound: its error has been emitted and its
     * remaining bytes are tracked (strings, depth) but not kept.
     */
    bool discard;
};

QJsonStreamer *qjson_streamer_new(QJsonMessageFunc *emit, void *opaque)
{
    QJsonStreamer *s = g_new0(QJsonStreamer, 1);

    s->emit = emit;
    s->opaque = opaque;
    s->max_size = QJSON_MAX_MESSAGE_SIZE;
    s->max_depth = QJSON_MAX_DEPTH;
    s->buf = g_string_new(NULL);
    return s;
}

void qjson_streamer_set_limits(QJsonStreamer *s, size_t max_size,
                               int max_depth)
{
    s->max_size = max_size;
    s->max_depth = max_depth;
}

void qjson_streamer_free(QJsonStreamer *s)
{
    if (s) {
        g_string_free(s->buf, TRUE);
        g_free(s);
    }
}

static void streamer_error(QJsonStreamer *s, const char *fmt, ...)
    QEMU_PRINTF(2, 3);

static void streamer_error(QJsonStreamer *s, const char *fmt, ...)
{
    Error *err = NULL;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&err, "%s", msg);
    s->emit(s->opaque, NULL, err);
}

/* The message in s->buf is complete: parse and emit it, then reset. */
static void streamer_finish(QJsonStreamer *s)
{
    Error *err = NULL;
    JsonNode *msg = NULL;

    if (!s->discard) {
        msg = qjson_parse(s->buf->str, s->buf->len, &err);
        s->emit(s->opaque, msg, err);
    }
    g_string_truncate(s->buf, 0);
    s->discard = false;
    s->bare = false;
    s->depth = 0;
}

static void streamer_append(QJsonStreamer *s, char c)
{
    if (s->discard) {
        return;
    }
    if (s->buf->len >= s->max_size) {
        streamer_error(s, "JSON parse error, message size limit exceeded");
        g_string_truncate(s->buf, 0);
        s->discard = true;
        return;
    }
    g_string_append_c(s->buf, c);
}

static bool is_bare_char(unsigned char c)
{
    return g_ascii_isalnum(c) || c == '-' || c == '+' || c == '.';
}

static void feed_byte(QJsonStreamer *s, unsigned char c)
{
    if (s->quote) {
        streamer_append(s, c);
        if (s->escape) {
            s->escape = false;
        } else if (c == '\\') {
            s->escape = true;
        } else if (c == s->quote) {
            s->quote = 0;
            if (s->depth == 0) {
                streamer_finish(s);
            }
        }
        return;
    }
    if (s->bare) {
        if (is_bare_char(c)) {
            streamer_append(s, c);
            return;
        }
        streamer_finish(s);
    }

    switch (c) {
    case ' ': case '\t': case '\r': case '\n':
        if (s->depth > 0) {
            streamer_append(s, c);
        }
        return;
    case '"': case '\'':
        s->quote = c;
        streamer_append(s, c);
        return;
    case '{': case '[':
        s->depth++;
        streamer_append(s, c);
        if (s->depth > s->max_depth && !s->discard) {
            streamer_error(s, "JSON nesting depth limit exceeded");
            g_string_truncate(s->buf, 0);
            s->discard = true;
        }
        return;
    case '}': case ']':
        if (s->depth == 0) {
            streamer_error(s, "JSON parse error, expecting value");
            return;
        }
        streamer_append(s, c);
        if (--s->depth == 0) {
            streamer_finish(s);
        }
        return;
    }

    if (s->depth > 0) {
        streamer_append(s, c);
    } else if (is_bare_char(c)) {
        s->bare = true;
        streamer_append(s, c);
    } else if (c >= 0x20 && c < 0x7f) {
        streamer_error(s, "JSON parse error, stray '%c'", c);
    } else {
        /* Not ASCII or a control character: QEMU shows U+FFFD. */
        streamer_error(s, "JSON parse error, stray '\xef\xbf\xbd'");
    }
}

void qjson_streamer_feed(QJsonStreamer *s, const char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        feed_byte(s, buf[i]);
    }
}

/* --- parser --- */

typedef struct Parser {
    const char *p;
    const char *end;
    int depth;
    Error **errp;
    bool failed;
} Parser;

static JsonNode *parse_value(Parser *ps);

static void parse_error(Parser *ps, const char *fmt, ...) QEMU_PRINTF(2, 3);

static void parse_error(Parser *ps, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (ps->failed) {
        return;
    }
    ps->failed = true;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(ps->errp, "JSON parse error, %s", msg);
}

static void skip_ws(Parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' ||
            *ps->p == '\n')) {
        ps->p++;
    }
}

static int hex4(const char *p)
{
    int v = 0, i;

    for (i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(p[i]);

        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* A \uXXXX escape (surrogate pairs joined); @ps->p is after the 'u'. */
static bool parse_unicode_escape(Parser *ps, GString *out)
{
    gunichar ch;
    int hi, lo;

    if (ps->end - ps->p < 4 || (hi = hex4(ps->p)) < 0) {
        parse_error(ps, "invalid escape sequence in string");
        return false;
    }
    ps->p += 4;
    ch = hi;
    if (hi >= 0xd800 && hi < 0xdc00) {
        if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u' &&
            (lo = hex4(ps->p + 2)) >= 0xdc00 && lo < 0xe000) {
            ps->p += 6;
            ch = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        } else {
            parse_error(ps, "\\u%04x is not a valid Unicode character", hi);
            return false;
        }
    } else if (hi >= 0xdc00 && hi < 0xe000) {
        parse_error(ps, "\\u%04x is not a valid Unicode character", hi);
        return false;
    } else if (hi == 0) {
        /* json-glib strings are NUL-terminated. */
        parse_error(ps, "\\u0000 is not supported");
        return false;
    }
    g_string_append_unichar(out, ch);
    return true;
}

static char *parse_string(Parser *ps)
{
    char quote = *ps->p++;
    g_autoptr(GString) out = g_string_new(NULL);

    while (ps->p < ps->end && *ps->p != quote) {
        unsigned char c = *ps->p;

        if (c < 0x20) {
            parse_error(ps, "control character in string");
            return NULL;
        }
        if (c == '\\') {
            if (++ps->p >= ps->end) {
                break;
            }
            c = *ps->p++;
            switch (c) {
            case '"': case '\'': case '\\': case '/':
                g_string_append_c(out, c);
                break;
            case 'b': g_string_append_c(out, '\b'); break;
            case 'f': g_string_append_c(out, '\f'); break;
            case 'n': g_string_append_c(out, '\n'); break;
            case 'r': g_string_append_c(out, '\r'); break;
            case 't': g_string_append_c(out, '\t'); break;
            case 'u':
                if (!parse_unicode_escape(ps, out)) {
                    return NULL;
                }
                break;
            default:
                parse_error(ps, "invalid escape sequence in string");
                return NULL;
            }
            continue;
        }
        if (c < 0x80) {
            g_string_append_c(out, c);
            ps->p++;
        } else {
            gunichar ch = g_utf8_get_char_validated(ps->p, ps->end - ps->p);
            const char *next;

            if (ch == (gunichar)-1 || ch == (gunichar)-2) {
                parse_error(ps, "invalid UTF-8 sequence in string");
                return NULL;
            }
            next = g_utf8_next_char(ps->p);
            g_string_append_len(out, ps->p, next - ps->p);
            ps->p = next;
        }
    }
    if (ps->p >= ps->end) {
        parse_error(ps, "missing end of string");
        return NULL;
    }
    ps->p++;
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static JsonNode *parse_number(Parser *ps, const char *start, size_t len)
{
    g_autofree char *text = g_strndup(start, len);
    const char *p = text;
    bool is_int = true;
    char *endp;

    /* JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    if (*p == '-') {
        p++;
    }
    if (!g_ascii_isdigit(*p) || (p[0] == '0' && g_ascii_isdigit(p[1]))) {
        goto bad;
    }
    while (g_ascii_isdigit(*p)) {
        p++;
    }
    if (*p == '.') {
        is_int = false;
        if (!g_ascii_isdigit(*++p)) {
            goto bad;
        }
        while (g_ascii_isdigit(*p)) {
            p++;
        }
    }
    if (*p == 'e' || *p == 'E') {
        is_int = false;
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (!g_ascii_isdigit(*p)) {
            goto bad;
        }
        while (g_ascii_isdigit(*p)) {
            p++;
        }
    }
    if (*p) {
        goto bad;
    }
    if (is_int) {
        gint64 v;

        errno = 0;
        v = g_ascii_strtoll(text, &endp, 10);
        if (errno == 0) {
            return json_node_init_int(json_node_alloc(), v);
        }
    }
    return json_node_init_double(json_node_alloc(),
                                 g_ascii_strtod(text, &endp));

bad:
    parse_error(ps, "stray '%s'", text);
    return NULL;
}

static JsonNode *parse_bare(Parser *ps)
{
    const char *start = ps->p;
    size_t len;

    while (ps->p < ps->end && is_bare_char(*ps->p)) {
        ps->p++;
    }
    len = ps->p - start;
    if (len == 0) {
        /* A JSON token out of place is a missing value, as in QEMU. */
        if (ps->p < ps->end && *ps->p && strchr(":,]}", *ps->p)) {
            parse_error(ps, "expecting value");
        } else if (ps->p < ps->end && (unsigned char)*ps->p >= 0x20 &&
                   (unsigned char)*ps->p < 0x7f) {
            parse_error(ps, "stray '%c'", *ps->p);
        } else if (ps->p < ps->end) {
            parse_error(ps, "stray '\xef\xbf\xbd'");
        } else {
            parse_error(ps, "expecting value");
        }
        return NULL;
    }
    if (len == 4 && !memcmp(start, "true", 4)) {
        return json_node_init_boolean(json_node_alloc(), TRUE);
    }
    if (len == 5 && !memcmp(start, "false", 5)) {
        return json_node_init_boolean(json_node_alloc(), FALSE);
    }
    if (len == 4 && !memcmp(start, "null", 4)) {
        return json_node_init_null(json_node_alloc());
    }
    if (*start == '-' || g_ascii_isdigit(*start)) {
        return parse_number(ps, start, len);
    }
    parse_error(ps, "invalid keyword '%.*s'", (int)MIN(len, 64), start);
    return NULL;
}

static JsonNode *parse_object(Parser *ps)
{
    JsonObject *obj = json_object_new();
    JsonNode *node;

    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        goto done;
    }
    for (;;) {
        g_autofree char *key = NULL;
        JsonNode *val;

        skip_ws(ps);
        if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\'')) {
            if (ps->p < ps->end && *ps->p == '}') {
                parse_error(ps, "expecting value");
            } else {
                parse_error(ps, "key is not a string in object");
            }
            goto fail;
        }
        key = parse_string(ps);
        if (!key) {
            goto fail;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            parse_error(ps, "missing : in object pair");
            goto fail;
        }
        ps->p++;
        val = parse_value(ps);
        if (!val) {
            goto fail;
        }
        json_object_set_member(obj, key, val);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        parse_error(ps, "expected separator in dict");
        goto fail;
    }
done:
    node = json_node_init_object(json_node_alloc(), obj);
    json_object_unref(obj);
    return node;
fail:
    json_object_unref(obj);
    return NULL;
}

static JsonNode *parse_array(Parser *ps)
{
    JsonArray *arr = json_array_new();
    JsonNode *node;

    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        goto done;
    }
    for (;;) {
        JsonNode *val = parse_value(ps);

        if (!val) {
            goto fail;
        }
        json_array_add_element(arr, val);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            break;
        }
        parse_error(ps, "expected separator in list");
        goto fail;
    }
done:
    node = json_node_init_array(json_node_alloc(), arr);
    json_array_unref(arr);
    return node;
fail:
    json_array_unref(arr);
    return NULL;
}

static JsonNode *parse_value(Parser *ps)
{
    JsonNode *node;
    char *str;

    skip_ws(ps);
    if (ps->p >= ps->end) {
        parse_error(ps, "expecting value");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        /* The splitter bounds depth already; this guards direct callers. */
        if (++ps->depth > QJSON_MAX_DEPTH) {
            parse_error(ps, "nesting depth limit exceeded");
            return NULL;
        }
        node = *ps->p == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return node;
    case '"':
    case '\'':
        str = parse_string(ps);
        if (!str) {
            return NULL;
        }
        node = json_node_init_string(json_node_alloc(), str);
        g_free(str);
        return node;
    }
    return parse_bare(ps);
}

JsonNode *qjson_parse(const char *text, size_t len, Error **errp)
{
    Parser ps = { .p = text, .end = text + len, .errp = errp };
    JsonNode *node = parse_value(&ps);

    if (!node) {
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p < ps.end) {
        parse_error(&ps, "expecting end of input");
        json_node_unref(node);
        return NULL;
    }
    return node;
}

/* --- writer --- */

static void append_string(GString *out, const char *s)
{
    const char *p = s;

    g_string_append_c(out, '"');
    while (*p) {
        unsigned char c = *p;
        gunichar ch;

        switch (c) {
        case '"': g_string_append(out, "\\\""); p++; continue;
        case '\\': g_string_append(out, "\\\\"); p++; continue;
        case '\b': g_string_append(out, "\\b"); p++; continue;
        case '\f': g_string_append(out, "\\f"); p++; continue;
        case '\n': g_string_append(out, "\\n"); p++; continue;
        case '\r': g_string_append(out, "\\r"); p++; continue;
        case '\t': g_string_append(out, "\\t"); p++; continue;
        }
        if (c >= 0x20 && c < 0x7f) {
            g_string_append_c(out, c);
            p++;
            continue;
        }
        ch = g_utf8_get_char_validated(p, -1);
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            /* Invalid UTF-8 (e.g. a file name) is shown as U+FFFD. */
            ch = 0xfffd;
            p++;
        } else {
            p = g_utf8_next_char(p);
        }
        if (ch >= 0x10000) {
            ch -= 0x10000;
            g_string_append_printf(out, "\\u%04X\\u%04X",
                                   0xd800 + (ch >> 10), 0xdc00 + (ch & 0x3ff));
        } else {
            g_string_append_printf(out, "\\u%04X", ch);
        }
    }
    g_string_append_c(out, '"');
}

static void append_indent(GString *out, int level)
{
    g_string_append_c(out, '\n');
    for (int i = 0; i < level; i++) {
        g_string_append(out, "    ");
    }
}

static void append_node(GString *out, JsonNode *node, bool pretty,
                        int level);

static void append_object(GString *out, JsonObject *obj, bool pretty,
                          int level)
{
    g_autoptr(GList) members = json_object_get_members(obj);
    GList *l;

    g_string_append_c(out, '{');
    for (l = members; l; l = l->next) {
        if (l != members) {
            g_string_append_c(out, ',');
            if (!pretty) {
                g_string_append_c(out, ' ');
            }
        }
        if (pretty) {
            append_indent(out, level + 1);
        }
        append_string(out, l->data);
        g_string_append(out, ": ");
        append_node(out, json_object_get_member(obj, l->data), pretty,
                    level + 1);
    }
    if (pretty) {
        append_indent(out, level);
    }
    g_string_append_c(out, '}');
}

static void append_array(GString *out, JsonArray *arr, bool pretty,
                         int level)
{
    guint i, n = json_array_get_length(arr);

    g_string_append_c(out, '[');
    for (i = 0; i < n; i++) {
        if (i) {
            g_string_append_c(out, ',');
            if (!pretty) {
                g_string_append_c(out, ' ');
            }
        }
        if (pretty) {
            append_indent(out, level + 1);
        }
        append_node(out, json_array_get_element(arr, i), pretty, level + 1);
    }
    if (pretty) {
        append_indent(out, level);
    }
    g_string_append_c(out, ']');
}

static void append_value(GString *out, JsonNode *node)
{
    char num[G_ASCII_DTOSTR_BUF_SIZE];
    double d;

    switch (json_node_get_value_type(node)) {
    case G_TYPE_INT64:
        g_string_append_printf(out, "%" PRId64, json_node_get_int(node));
        return;
    case G_TYPE_DOUBLE:
        d = json_node_get_double(node);
        if (!isfinite(d)) {
            /* JSON has no spelling for these. */
            g_string_append(out, "null");
            return;
        }
        g_string_append(out, g_ascii_formatd(num, sizeof(num), "%.17g", d));
        return;
    case G_TYPE_BOOLEAN:
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        return;
    case G_TYPE_STRING:
        append_string(out, json_node_get_string(node));
        return;
    }
    g_string_append(out, "null");
}

static void append_node(GString *out, JsonNode *node, bool pretty, int level)
{
    if (!node) {
        g_string_append(out, "null");
        return;
    }
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        append_object(out, json_node_get_object(node), pretty, level);
        return;
    case JSON_NODE_ARRAY:
        append_array(out, json_node_get_array(node), pretty, level);
        return;
    case JSON_NODE_VALUE:
        append_value(out, node);
        return;
    case JSON_NODE_NULL:
        break;
    }
    g_string_append(out, "null");
}

void qjson_append(GString *out, JsonNode *node, bool pretty)
{
    append_node(out, node, pretty, 0);
}

char *qjson_to_string(JsonNode *node, bool pretty)
{
    GString *out = g_string_new(NULL);

    qjson_append(out, node, pretty);
    return g_string_free(out, FALSE);
}

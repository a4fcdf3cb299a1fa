/*
 * blkdebug: a filter that injects I/O errors and suspends requests on
 * block layer events, for testing error paths and request ordering.
 *
 * Rules come from a config file (QEMU's INI-like syntax with
 * [inject-error] and [set-state] sections) and/or the "inject-error" and
 * "set-state" options.  Formats announce what they are about to do with
 * BLKDBG_EVENT() on their file child; the event arrives here through
 * bdrv_debug_event() and:
 *
 *  - arms every inject-error rule for that event whose state matches.  If
 *    any matched, they replace the previously armed set.  Armed rules stay
 *    armed until the next event that arms others; each request checks
 *    them (I/O type and, if given, the sector) and fails with the rule's
 *    errno.  A "once" rule is deleted when it fires;
 *  - moves the state machine (it starts in state 1) as set-state rules
 *    say.  Every rule of an event sees the state from before the event;
 *  - suspends the coroutine that raised it if a breakpoint is set on the
 *    event, until "resume TAG".  Breakpoints are one-shot.
 *
 * As an extension, inject-error rules given as options may omit "event":
 * they are always armed and fire on every matching request.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "qemu/aio.h"
#include "block/block_int.h"
#include "block/drivers.h"

/* BlkdebugIOType and BlkdebugEvent come from the QAPI schema. */

/* Without "iotype" a rule matches everything except block-status. */
#define BLKDEBUG_IOTYPE_MASK_DEFAULT \
    ((1u << BLKDEBUG_IO_TYPE_BLOCK_STATUS) - 1)

/* Rules without an event (options only) are always armed. */
#define BLKDEBUG_NO_EVENT BLKDBG__MAX

typedef enum {
    BLKDEBUG_ACTION_INJECT_ERROR,
    BLKDEBUG_ACTION_SET_STATE,
    BLKDEBUG_ACTION_SUSPEND,
} BlkdebugAction;

typedef struct BlkdebugRule {
    BlkdebugAction action;
    BlkdebugEvent event;
    int state;                  /* 0: any state */
    /* inject-error */
    int error;                  /* positive errno */
    unsigned iotype_mask;
    int64_t offset;             /* byte offset of "sector", -1: any */
    bool once;
    bool immediately;
    bool armed;
    /* set-state */
    int new_state;
    /* suspend */
    char *tag;
    QTAILQ_ENTRY(BlkdebugRule) next;
} BlkdebugRule;

/* A request halted on a breakpoint; lives on the halted coroutine's stack. */
typedef struct BlkdebugSuspendedReq {
    Coroutine *co;
    char *tag;
    bool resumed;
    QLIST_ENTRY(BlkdebugSuspendedReq) next;
} BlkdebugSuspendedReq;

typedef struct BDRVBlkdebugState {
    int state;
    QTAILQ_HEAD(, BlkdebugRule) rules;    /* in definition order */
    QLIST_HEAD(, BlkdebugSuspendedReq) suspended;

    int64_t align;
    int64_t max_transfer;
    int64_t opt_write_zero;
    int64_t max_write_zero;
    int64_t opt_discard;
    int64_t max_discard;
} BDRVBlkdebugState;

static const char *const inject_error_keys[] = {
    "event", "state", "iotype", "errno", "sector", "once", "immediately",
    NULL,
};

static const char *const set_state_keys[] = {
    "event", "state", "new_state", NULL,
};

static void blkdebug_remove_rule(BDRVBlkdebugState *s, BlkdebugRule *rule)
{
    QTAILQ_REMOVE(&s->rules, rule, next);
    g_free(rule->tag);
    g_free(rule);
}

static bool blkdebug_lookup_event(const char *name, BlkdebugEvent *event)
{
    for (int i = 0; i < BLKDBG__MAX; i++) {
        if (!strcmp(BlkdebugEvent_str(i), name)) {
            *event = i;
            return true;
        }
    }
    return false;
}

/* Rejects members of @rule that the section does not define. */
static bool blkdebug_check_keys(QDict *rule, const char *const *allowed,
                                Error **errp)
{
    GList *keys = qdict_keys(rule);
    bool ok = true;

    for (GList *l = keys; l && ok; l = l->next) {
        if (!g_strv_contains(allowed, l->data)) {
            error_setg(errp, "Invalid parameter '%s'", (char *)l->data);
            ok = false;
        }
    }
    g_list_free(keys);
    return ok;
}

static bool blkdebug_read_event(QDict *d, bool event_required,
                                BlkdebugEvent *event, Error **errp)
{
    const char *name = qdict_get_try_str(d, "event");

    if (!qdict_haskey(d, "event") && !event_required) {
        *event = BLKDEBUG_NO_EVENT;
        return true;
    }
    if (!name) {
        error_setg(errp, qdict_haskey(d, "event") ?
                   "Parameter 'event' expects a string" :
                   "Missing event name for rule");
        return false;
    }
    if (!blkdebug_lookup_event(name, event)) {
        error_setg(errp, "invalid parameter value: %s", name);
        return false;
    }
    return true;
}

/*
 * Adds the rule described by @d (an [inject-error]/[set-state] section or
 * one element of the options' lists).  Config-file rules need an event.
 */
static bool blkdebug_add_rule(BDRVBlkdebugState *s, QDict *d,
                              BlkdebugAction action, bool event_required,
                              Error **errp)
{
    BlkdebugRule *rule = g_new0(BlkdebugRule, 1);
    int64_t state, value, sector;
    int iotype;

    rule->action = action;
    if (!blkdebug_check_keys(d, action == BLKDEBUG_ACTION_INJECT_ERROR ?
                             inject_error_keys : set_state_keys, errp) ||
        !blkdebug_read_event(d, event_required ||
                             action != BLKDEBUG_ACTION_INJECT_ERROR,
                             &rule->event, errp) ||
        !qdict_get_int_opt(d, "state", 0, &state, errp)) {
        goto fail;
    }
    rule->state = state;

    if (action == BLKDEBUG_ACTION_SET_STATE) {
        if (!qdict_haskey(d, "new_state")) {
            error_setg(errp, "Parameter 'new_state' is missing");
            goto fail;
        }
        if (!qdict_get_int_opt(d, "new_state", 0, &value, errp)) {
            goto fail;
        }
        rule->new_state = value;
    } else {
        if (!qdict_get_int_opt(d, "errno", EIO, &value, errp) ||
            !qdict_get_int_opt(d, "sector", -1, &sector, errp) ||
            !qdict_get_bool_opt(d, "once", false, &rule->once, errp) ||
            !qdict_get_bool_opt(d, "immediately", false, &rule->immediately,
                                errp) ||
            !qdict_get_enum_opt(d, "iotype", BlkdebugIOType_lookup.array, -1, &iotype,
                                errp)) {
            goto fail;
        }
        if (value <= 0) {
            error_setg(errp, "errno must be a positive error number");
            goto fail;
        }
        if (sector < -1 || sector > INT64_MAX / (int64_t)BDRV_SECTOR_SIZE) {
            error_setg(errp, "sector must be a valid sector number");
            goto fail;
        }
        rule->error = value;
        rule->offset = sector < 0 ? -1 : sector * (int64_t)BDRV_SECTOR_SIZE;
        rule->iotype_mask = iotype < 0 ? BLKDEBUG_IOTYPE_MASK_DEFAULT :
                            1u << iotype;
    }

    /* Earlier rules are checked first. */
    QTAILQ_INSERT_TAIL(&s->rules, rule, next);
    return true;

fail:
    g_free(rule);
    return false;
}

/* ---- config file ---- */

static char *blkdebug_unquote(char *value)
{
    size_t len = strlen(value);

    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value[len - 1] = '\0';
        return value + 1;
    }
    return value;
}

/* The whole file as a string (g_free), or NULL with @errp set. */
static char *blkdebug_read_file(const char *filename, Error **errp)
{
    GString *buf;
    char chunk[4096];
    size_t n;
    FILE *f = fopen(filename, "r");

    if (!f) {
        error_setg_errno(errp, errno, "Could not read blkdebug config file");
        return NULL;
    }
    buf = g_string_new(NULL);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        g_string_append_len(buf, chunk, n);
    }
    if (ferror(f)) {
        error_setg(errp, "Could not read blkdebug config file: "
                   "Input/output error");
        fclose(f);
        g_string_free(buf, true);
        return NULL;
    }
    fclose(f);
    return g_string_free(buf, false);
}

/*
 * Reads @filename into a list of (action, QDict of string values) pairs:
 * each "[section]" starts a rule, "key = "value"" lines fill it, '#'
 * starts a comment line.
 */
static bool blkdebug_parse_config(BDRVBlkdebugState *s, const char *filename,
                                  Error **errp)
{
    g_autofree char *contents = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *sections = g_ptr_array_new_with_free_func(
        (GDestroyNotify)qobject_unref);
    GArray *actions = g_array_new(false, false, sizeof(BlkdebugAction));
    QDict *cur = NULL;
    bool ok = false;

    contents = blkdebug_read_file(filename, errp);
    if (!contents) {
        goto out;
    }

    lines = g_strsplit(contents, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        char *eq;

        if (!line[0] || line[0] == '#') {
            continue;
        }
        if (line[0] == '[') {
            size_t len = strlen(line);
            BlkdebugAction action;
            char *name;

            if (line[len - 1] != ']') {
                error_setg(errp, "%s:%d: parse error", filename, i + 1);
                goto out;
            }
            line[len - 1] = '\0';
            name = g_strstrip(line + 1);
            if (!strcmp(name, "inject-error")) {
                action = BLKDEBUG_ACTION_INJECT_ERROR;
            } else if (!strcmp(name, "set-state")) {
                action = BLKDEBUG_ACTION_SET_STATE;
            } else {
                error_setg(errp, "There is no option group '%s'", name);
                goto out;
            }
            cur = qdict_new();
            g_ptr_array_add(sections, cur);
            g_array_append_val(actions, action);
            continue;
        }
        eq = strchr(line, '=');
        if (!eq || eq == line) {
            error_setg(errp, "%s:%d: parse error", filename, i + 1);
            goto out;
        }
        if (!cur) {
            error_setg(errp, "%s:%d: no group defined", filename, i + 1);
            goto out;
        }
        *eq = '\0';
        qdict_put_str(cur, g_strstrip(line),
                      blkdebug_unquote(g_strstrip(eq + 1)));
    }

    for (guint i = 0; i < sections->len; i++) {
        if (!blkdebug_add_rule(s, g_ptr_array_index(sections, i),
                               g_array_index(actions, BlkdebugAction, i),
                               true, errp)) {
            goto out;
        }
    }
    ok = true;

out:
    g_ptr_array_unref(sections);
    g_array_unref(actions);
    return ok;
}

/* ---- rules from options ---- */

/*
 * "inject-error"/"set-state" come as a JSON array of objects or, from
 * dotted keys ("inject-error.0.event=..."), as an object keyed "0", "1"...
 */
static bool blkdebug_add_option_rules(BDRVBlkdebugState *s, QDict *options,
                                      const char *key, BlkdebugAction action,
                                      Error **errp)
{
    JsonNode *node = qdict_get(options, key);

    if (!node) {
        return true;
    }
    if (JSON_NODE_HOLDS_ARRAY(node)) {
        JsonArray *arr = json_node_get_array(node);

        for (guint i = 0; i < json_array_get_length(arr); i++) {
            JsonNode *elem = json_array_get_element(arr, i);

            if (!JSON_NODE_HOLDS_OBJECT(elem)) {
                error_setg(errp, "Parameter '%s[%u]' expects an object",
                           key, i);
                return false;
            }
            if (!blkdebug_add_rule(s, json_node_get_object(elem), action,
                                   false, errp)) {
                return false;
            }
        }
        return true;
    }
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        QDict *list = json_node_get_object(node);
        unsigned n = qdict_size(list);

        for (unsigned i = 0; i < n; i++) {
            g_autofree char *idx = g_strdup_printf("%u", i);
            QDict *elem = qdict_get_qdict(list, idx);

            if (!elem) {
                error_setg(errp, "Parameter '%s' expects a list of objects",
                           key);
                return false;
            }
            if (!blkdebug_add_rule(s, elem, action, false, errp)) {
                return false;
            }
        }
        return true;
    }
    error_setg(errp, "Parameter '%s' expects a list of objects", key);
    return false;
}

/* ---- limits ---- */

static bool blkdebug_read_limit(QDict *options, const char *key,
                                int64_t *value, int64_t multiple_of,
                                Error **errp)
{
    uint64_t v;

    if (!qdict_get_size_opt(options, key, 0, &v, errp)) {
        return false;
    }
    if (v > INT32_MAX || (v && !QEMU_IS_ALIGNED(v, multiple_of))) {
        error_setg(errp, "Cannot meet constraints with %s %" PRIu64,
                   key, v);
        return false;
    }
    *value = v;
    return true;
}

static bool blkdebug_read_limits(BDRVBlkdebugState *s, QDict *options,
                                 Error **errp)
{
    uint64_t align;
    int64_t a;

    if (!qdict_get_size_opt(options, "align", 0, &align, errp)) {
        return false;
    }
    if (align && (!is_power_of_2(align) || align > INT32_MAX)) {
        error_setg(errp, "Cannot meet constraints with align %" PRIu64,
                   align);
        return false;
    }
    s->align = align;
    a = MAX(s->align, 1);
    return blkdebug_read_limit(options, "max-transfer", &s->max_transfer,
                               a, errp) &&
           blkdebug_read_limit(options, "opt-write-zero", &s->opt_write_zero,
                               a, errp) &&
           blkdebug_read_limit(options, "max-write-zero", &s->max_write_zero,
                               MAX(s->opt_write_zero, a), errp) &&
           blkdebug_read_limit(options, "opt-discard", &s->opt_discard,
                               a, errp) &&
           blkdebug_read_limit(options, "max-discard", &s->max_discard,
                               MAX(s->opt_discard, a), errp);
}

static void blkdebug_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;

    if (s->align) {
        bs->bl.request_alignment = s->align;
    }
    if (s->max_transfer) {
        bs->bl.max_transfer = s->max_transfer;
    }
    if (s->opt_write_zero) {
        bs->bl.pwrite_zeroes_alignment = s->opt_write_zero;
    }
    if (s->max_write_zero) {
        bs->bl.max_pwrite_zeroes = s->max_write_zero;
    }
    if (s->opt_discard) {
        bs->bl.pdiscard_alignment = s->opt_discard;
    }
    if (s->max_discard) {
        bs->bl.max_pdiscard = s->max_discard;
    }
}

/* ---- open/close ---- */

static void blkdebug_parse_filename(const char *filename, QDict *options,
                                    Error **errp)
{
    const char *rest, *colon;
    g_autofree char *config = NULL;

    if (!strstart(filename, "blkdebug:", &rest)) {
        error_setg(errp, "File name string must start with 'blkdebug:'");
        return;
    }
    colon = strchr(rest, ':');
    if (!colon) {
        error_setg(errp, "blkdebug requires both config file and image path");
        return;
    }
    config = g_strndup(rest, colon - rest);
    if (config[0]) {
        qdict_put_str(options, "config", config);
    }
    qdict_put_str(options, "x-image", colon + 1);
}

static void blkdebug_free_rules(BDRVBlkdebugState *s)
{
    while (!QTAILQ_EMPTY(&s->rules)) {
        blkdebug_remove_rule(s, QTAILQ_FIRST(&s->rules));
    }
}

static int blkdebug_open(BlockDriverState *bs, QDict *options, int flags,
                         Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    g_autofree char *image = NULL;
    const char *config;
    BlockDriverState *child_bs;

    config = qdict_get_try_str(options, "config");
    image = g_strdup(qdict_get_try_str(options, "x-image"));

    s->state = 1;
    QTAILQ_INIT(&s->rules);
    QLIST_INIT(&s->suspended);

    if (!blkdebug_read_limits(s, options, errp) ||
        (config && !blkdebug_parse_config(s, config, errp)) ||
        !blkdebug_add_option_rules(s, options, "inject-error",
                                   BLKDEBUG_ACTION_INJECT_ERROR, errp) ||
        !blkdebug_add_option_rules(s, options, "set-state",
                                   BLKDEBUG_ACTION_SET_STATE, errp)) {
        blkdebug_free_rules(s);
        return -EINVAL;
    }

    /*
     * The image is this filter's file: BLKDBG_EVENT callers and the
     * generic code reach it through bs->file.
     */
    bs->file = bdrv_open_child(image, options, "image", bs,
                               BDRV_CHILD_DATA | BDRV_CHILD_FILTERED |
                               BDRV_CHILD_PRIMARY, false, errp);
    if (!bs->file) {
        blkdebug_free_rules(s);
        return -EINVAL;
    }

    child_bs = bs->file->bs;
    bs->supported_write_flags = BDRV_REQ_WRITE_UNCHANGED |
        (child_bs->supported_write_flags &
         (BDRV_REQ_FUA | BDRV_REQ_DONTCACHE));
    bs->supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED |
        (child_bs->supported_zero_flags &
         (BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK));
    return 0;
}

static void blkdebug_close(BlockDriverState *bs)
{
    BDRVBlkdebugState *s = bs->opaque;

    /* Draining before close cannot finish with a request still halted. */
    assert(QLIST_EMPTY(&s->suspended));
    blkdebug_free_rules(s);
}

/* ---- requests ---- */

static void blkdebug_wake_bh(void *opaque)
{
    aio_co_wake(opaque);
}

/*
 * Fails the request if an armed (or event-less) inject-error rule matches
 * its type and range.  Rules with a sector never match flushes.
 */
static int coroutine_fn blkdebug_rule_check(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            BlkdebugIOType iotype)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugRule *rule;
    bool immediately;
    int error;

    QTAILQ_FOREACH(rule, &s->rules, next) {
        if (rule->action != BLKDEBUG_ACTION_INJECT_ERROR ||
            !(rule->armed || rule->event == BLKDEBUG_NO_EVENT) ||
            !(rule->iotype_mask & (1u << iotype))) {
            continue;
        }
        if (rule->event == BLKDEBUG_NO_EVENT && rule->state &&
            rule->state != s->state) {
            continue;
        }
        if (rule->offset == -1 ||
            (bytes && rule->offset >= offset &&
             rule->offset < offset + bytes)) {
            break;
        }
    }
    if (!rule) {
        return 0;
    }

    error = rule->error;
    immediately = rule->immediately;
    if (rule->once) {
        blkdebug_remove_rule(s, rule);
    }
    if (!immediately) {
        /* Fail from the event loop like a request the device rejected. */
        aio_bh_schedule_oneshot(qemu_get_aio_context(), blkdebug_wake_bh,
                                qemu_coroutine_self());
        qemu_coroutine_yield();
    }
    return -error;
}

static int coroutine_fn blkdebug_co_preadv(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret;

    /* Checking that the generic layer honours the limits is the point. */
    assert(!s->align || (QEMU_IS_ALIGNED(offset, s->align) &&
                         QEMU_IS_ALIGNED(bytes, s->align)));
    assert(!s->max_transfer || bytes <= s->max_transfer);

    ret = blkdebug_rule_check(bs, offset, bytes, BLKDEBUG_IO_TYPE_READ);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn blkdebug_co_pwritev(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov,
                                            BdrvRequestFlags flags)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret;

    assert(!s->align || (QEMU_IS_ALIGNED(offset, s->align) &&
                         QEMU_IS_ALIGNED(bytes, s->align)));
    assert(!s->max_transfer || bytes <= s->max_transfer);

    ret = blkdebug_rule_check(bs, offset, bytes, BLKDEBUG_IO_TYPE_WRITE);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn blkdebug_co_pwrite_zeroes(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  BdrvRequestFlags flags)
{
    int ret = blkdebug_rule_check(bs, offset, bytes,
                                  BLKDEBUG_IO_TYPE_WRITE_ZEROES);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn blkdebug_co_pdiscard(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes)
{
    int ret = blkdebug_rule_check(bs, offset, bytes,
                                  BLKDEBUG_IO_TYPE_DISCARD);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

static int coroutine_fn blkdebug_co_flush(BlockDriverState *bs)
{
    return blkdebug_rule_check(bs, 0, 0, BLKDEBUG_IO_TYPE_FLUSH);
}

static int coroutine_fn blkdebug_co_block_status(BlockDriverState *bs,
                                                 bool want_zero,
                                                 int64_t offset,
                                                 int64_t bytes, int64_t *pnum,
                                                 int64_t *map,
                                                 BlockDriverState **file)
{
    int ret = blkdebug_rule_check(bs, offset, bytes,
                                  BLKDEBUG_IO_TYPE_BLOCK_STATUS);

    if (ret < 0) {
        return ret;
    }
    *pnum = bytes;
    *map = offset;
    *file = bs->file->bs;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

static int64_t blkdebug_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static int64_t blkdebug_get_allocated_file_size(BlockDriverState *bs)
{
    return bdrv_get_allocated_file_size(bs->file->bs);
}

static int coroutine_fn blkdebug_co_truncate(BlockDriverState *bs,
                                             int64_t offset, bool exact,
                                             PreallocMode prealloc,
                                             BdrvRequestFlags flags,
                                             Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

/* ---- events and breakpoints ---- */

static bool blkdebug_state_matches(BlkdebugRule *rule, int state)
{
    return !rule->state || rule->state == state;
}

/* Halts the current coroutine until blkdebug_debug_resume(@tag). */
static void coroutine_fn blkdebug_suspend(BDRVBlkdebugState *s, char *tag)
{
    BlkdebugSuspendedReq r = {
        .co = qemu_coroutine_self(),
        .tag = tag,
    };

    QLIST_INSERT_HEAD(&s->suspended, &r, next);
    /* Tests' golden output relies on these lines, as QEMU's do. */
    printf("blkdebug: Suspended request '%s'\n", tag);
    while (!r.resumed) {
        qemu_coroutine_yield();
    }
    printf("blkdebug: Resuming request '%s'\n", tag);
    g_free(r.tag);
}

static void blkdebug_debug_event(BlockDriverState *bs, BlkdebugEvent event)
{
    BDRVBlkdebugState *s = bs->opaque;
    int state = s->state;
    int new_state = state;
    bool armed_new = false;
    GPtrArray *tags = g_ptr_array_new();
    BlkdebugRule *rule, *next;

    QTAILQ_FOREACH(rule, &s->rules, next) {
        if (rule->event == event && rule->action ==
            BLKDEBUG_ACTION_INJECT_ERROR &&
            blkdebug_state_matches(rule, state)) {
            armed_new = true;
        }
    }

    QTAILQ_FOREACH_SAFE(rule, &s->rules, next, next) {
        bool match = rule->event == event &&
                     blkdebug_state_matches(rule, state);

        switch (rule->action) {
        case BLKDEBUG_ACTION_INJECT_ERROR:
            if (armed_new) {
                rule->armed = match;
            }
            break;
        case BLKDEBUG_ACTION_SET_STATE:
            if (match) {
                new_state = rule->new_state;
            }
            break;
        case BLKDEBUG_ACTION_SUSPEND:
            /* Breakpoints fire once; the request owns the tag from now on. */
            if (match) {
                g_ptr_array_add(tags, rule->tag);
                rule->tag = NULL;
                blkdebug_remove_rule(s, rule);
            }
            break;
        }
    }
    s->state = new_state;

    for (guint i = 0; i < tags->len; i++) {
        if (qemu_in_coroutine()) {
            blkdebug_suspend(s, g_ptr_array_index(tags, i));
        } else {
            /* Nothing to halt outside a request: the breakpoint is spent. */
            g_free(g_ptr_array_index(tags, i));
        }
    }
    g_ptr_array_free(tags, true);
}

static int blkdebug_debug_breakpoint(BlockDriverState *bs, const char *event,
                                     const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugRule *rule;
    BlkdebugEvent ev;

    if (!blkdebug_lookup_event(event, &ev)) {
        return -ENOENT;
    }
    rule = g_new0(BlkdebugRule, 1);
    rule->action = BLKDEBUG_ACTION_SUSPEND;
    rule->event = ev;
    rule->tag = g_strdup(tag);
    QTAILQ_INSERT_TAIL(&s->rules, rule, next);
    return 0;
}

static BlkdebugSuspendedReq *blkdebug_find_suspended(BDRVBlkdebugState *s,
                                                     const char *tag)
{
    BlkdebugSuspendedReq *r;

    QLIST_FOREACH(r, &s->suspended, next) {
        if (!strcmp(r->tag, tag)) {
            return r;
        }
    }
    return NULL;
}

static void blkdebug_resume_req(BlkdebugSuspendedReq *r)
{
    QLIST_REMOVE(r, next);
    r->resumed = true;
    /* r is on the halted coroutine's stack: gone once it runs. */
    aio_co_wake(r->co);
}

static int blkdebug_debug_resume(BlockDriverState *bs, const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugSuspendedReq *r = blkdebug_find_suspended(s, tag);

    if (!r) {
        return -ENOENT;
    }
    blkdebug_resume_req(r);
    return 0;
}

/* Deletes breakpoints named @tag and releases requests halted on them. */
static int blkdebug_debug_remove_breakpoint(BlockDriverState *bs,
                                            const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugSuspendedReq *r;
    BlkdebugRule *rule, *next;
    bool found = false;

    QTAILQ_FOREACH_SAFE(rule, &s->rules, next, next) {
        if (rule->action == BLKDEBUG_ACTION_SUSPEND &&
            !strcmp(rule->tag, tag)) {
            blkdebug_remove_rule(s, rule);
            found = true;
        }
    }
    while ((r = blkdebug_find_suspended(s, tag))) {
        blkdebug_resume_req(r);
        found = true;
    }
    return found ? 0 : -ENOENT;
}

static bool blkdebug_debug_is_suspended(BlockDriverState *bs,
                                        const char *tag)
{
    return blkdebug_find_suspended(bs->opaque, tag) != NULL;
}

static const char *const blkdebug_runtime_opts[] = {
    "config",
    "image",
    "x-image",
    "align",
    "max-transfer",
    "opt-write-zero",
    "max-write-zero",
    "opt-discard",
    "max-discard",
    "inject-error",
    "set-state",
    "take-child-perms",
    "unshare-child-perms",
    NULL,
};

static BlockDriver bdrv_blkdebug = {
    .format_name = "blkdebug",
    .protocol_name = "blkdebug",
    .instance_size = sizeof(BDRVBlkdebugState),
    .is_filter = true,
    .runtime_opts = blkdebug_runtime_opts,
    .bdrv_parse_filename = blkdebug_parse_filename,
    .bdrv_open = blkdebug_open,
    .bdrv_close = blkdebug_close,
    .bdrv_refresh_limits = blkdebug_refresh_limits,
    .bdrv_co_preadv = blkdebug_co_preadv,
    .bdrv_co_pwritev = blkdebug_co_pwritev,
    .bdrv_co_pwrite_zeroes = blkdebug_co_pwrite_zeroes,
    .bdrv_co_pdiscard = blkdebug_co_pdiscard,
    .bdrv_co_flush_to_disk = blkdebug_co_flush,
    .bdrv_co_block_status = blkdebug_co_block_status,
    .bdrv_co_truncate = blkdebug_co_truncate,
    .bdrv_getlength = blkdebug_getlength,
    .bdrv_get_allocated_file_size = blkdebug_get_allocated_file_size,
    .bdrv_debug_event = blkdebug_debug_event,
    .bdrv_debug_breakpoint = blkdebug_debug_breakpoint,
    .bdrv_debug_remove_breakpoint = blkdebug_debug_remove_breakpoint,
    .bdrv_debug_resume = blkdebug_debug_resume,
    .bdrv_debug_is_suspended = blkdebug_debug_is_suspended,
};

void bdrv_blkdebug_init(void)
{
    bdrv_register(&bdrv_blkdebug);
}

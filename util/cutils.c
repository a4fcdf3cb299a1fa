/*
 * String helpers: size and integer parsing, size printing, paths.
 * (buffer_is_zero() lives in bufferiszero.c.)
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

/*
 * Finishes a strtoll()/strtoull() style parse: -EINVAL when no digits
 * were consumed or, without @end, when text follows the number.
 */
static int check_strtox_end(const char *nptr, const char *ep,
                            const char **end, int err)
{
    if (ep == nptr) {
        if (end) {
            *end = nptr;
        }
        return -EINVAL;
    }
    if (end) {
        *end = ep;
    } else if (*ep) {
        return -EINVAL;
    }
    return -err;
}

static bool strtox_base_ok(int base)
{
    return base == 0 || (base >= 2 && base <= 36);
}

int qemu_strtoi64(const char *nptr, const char **end, int base,
                  int64_t *result)
{
    char *ep;
    long long v;

    if (!nptr || !strtox_base_ok(base)) {
        if (end) {
            *end = nptr;
        }
        return -EINVAL;
    }
    errno = 0;
    v = strtoll(nptr, &ep, base);
    *result = v;
    return check_strtox_end(nptr, ep, end, errno == ERANGE ? ERANGE : 0);
}

/*
 * Unlike strtoull(), a negative number is not wrapped around: "-1" is
 * out of range (-ERANGE) and "-0" is zero.
 */
int qemu_strtou64(const char *nptr, const char **end, int base,
                  uint64_t *result)
{
    const char *p = nptr;
    char *ep;
    unsigned long long v;
    int err;

    if (!nptr || !strtox_base_ok(base)) {
        if (end) {
            *end = nptr;
        }
        return -EINVAL;
    }
    while (g_ascii_isspace(*p)) {
        p++;
    }
    errno = 0;
    v = strtoull(nptr, &ep, base);
    err = errno == ERANGE ? ERANGE : 0;
    if (*p == '-' && ep != nptr && (v != 0 || err)) {
        err = ERANGE;
        v = 0;
    }
    *result = v;
    return check_strtox_end(nptr, ep, end, err);
}

int qemu_strtoi(const char *nptr, const char **end, int base, int *result)
{
    int64_t v;
    int ret = qemu_strtoi64(nptr, end, base, &v);

    if (ret == -EINVAL) {
        *result = 0;
        return ret;
    }
    if (v > INT_MAX) {
        *result = INT_MAX;
        return ret ? ret : -ERANGE;
    }
    if (v < INT_MIN) {
        *result = INT_MIN;
        return ret ? ret : -ERANGE;
    }
    *result = v;
    return ret;
}

/* Binary exponent (in units of 10 bits) of a size suffix, or -1. */
static int strtosz_suffix_shift(char c)
{
    switch (g_ascii_toupper(c)) {
    case 'B':
        return 0;
    case 'K':
        return 1;
    case 'M':
        return 2;
    case 'G':
        return 3;
    case 'T':
        return 4;
    case 'P':
        return 5;
    case 'E':
        return 6;
    default:
        return -1;
    }
}

/*
 * Bytes in the fraction 0.DIGITS (n digits) of a unit of 2^shift bytes,
 * rounded down as qemu-img does ("0.1k" is 102 bytes).  Works on the
 * decimal digits directly: doubling the fraction shift times yields one
 * bit of the result per step, so no precision is lost.
 */
static uint64_t strtosz_fraction(const char *digits, int n, int shift)
{
    g_autofree uint8_t *d = g_malloc(n);
    uint64_t bytes = 0;

    for (int i = 0; i < n; i++) {
        d[i] = digits[i] - '0';
    }
    for (int bit = 0; bit < shift; bit++) {
        int carry = 0;

        for (int i = n - 1; i >= 0; i--) {
            int v = d[i] * 2 + carry;
            d[i] = v % 10;
            carry = v / 10;
        }
        bytes = (bytes << 1) | carry;
    }
    return bytes;
}

/*
 * Parses "<number>[.<digits>][suffix]".  The number is decimal or "0x"
 * hex (hex takes no fraction); a missing suffix means 2^(10 * @unit).
 */
static int do_strtosz(const char *nptr, const char **end, int unit,
                      uint64_t *result)
{
    const char *p = nptr;
    char *ep;
    const char *frac = NULL;
    int frac_len = 0;
    int shift;
    uint64_t val, frac_bytes = 0;
    int base = 10;
    int ret;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (*p == '+') {
        p++;                    /* qemu-img accepts an explicit plus */
    }
    if (!g_ascii_isdigit(*p)) {
        goto invalid;           /* also rejects '-', ".5", "inf" */
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        if (!g_ascii_isxdigit(p[2])) {
            goto invalid;
        }
    }
    errno = 0;
    val = strtoull(p, &ep, base);
    ret = errno == ERANGE ? -ERANGE : 0;
    p = ep;
    if (base == 10 && *p == '.') {
        p++;
        frac = p;
        while (g_ascii_isdigit(*p)) {
            p++;
        }
        frac_len = p - frac;
        while (frac_len > 0 && frac[frac_len - 1] == '0') {
            frac_len--;
        }
    }
    shift = strtosz_suffix_shift(*p);
    if (shift >= 0) {
        p++;
    } else {
        shift = unit;
    }
    if (end) {
        *end = p;
    } else if (*p) {
        goto invalid;
    }
    if (ret) {
        return ret;
    }
    shift *= 10;
    if (frac_len) {
        /* A fraction needs a unit larger than a byte: "1.5k", not "1.5". */
        if (!shift) {
            goto invalid;
        }
        frac_bytes = strtosz_fraction(frac, frac_len, shift);
    }
    if (shift && val > (UINT64_MAX >> shift)) {
        return -ERANGE;
    }
    val <<= shift;
    if (val > UINT64_MAX - frac_bytes) {
        return -ERANGE;
    }
    *result = val + frac_bytes;
    return 0;

invalid:
    if (end) {
        *end = nptr;
    }
    return -EINVAL;
}

int qemu_strtosz(const char *nptr, const char **end, uint64_t *result)
{
    return do_strtosz(nptr, end, 0, result);
}

int qemu_strtosz_MiB(const char *nptr, const char **end, uint64_t *result)
{
    return do_strtosz(nptr, end, 2, result);
}

/*
 * The largest binary unit that leaves a value below 1000 (so 1000 bytes
 * is "0.977 KiB"), printed with three significant digits like qemu-img.
 */
char *size_to_str(uint64_t val)
{
    static const char *const units[] = {
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
    };
    double v = val;
    unsigned i = 0;

    while (i < ARRAY_SIZE(units) - 1 && v >= 1000.0) {
        v /= 1024.0;
        i++;
    }
    return g_strdup_printf("%0.3g %s", v, units[i]);
}

void pstrcpy(char *buf, int buf_size, const char *str)
{
    size_t n;

    if (buf_size <= 0) {
        return;
    }
    n = strnlen(str, buf_size - 1);
    memcpy(buf, str, n);
    buf[n] = '\0';
}

bool strstart(const char *str, const char *val, const char **ptr)
{
    size_t len = strlen(val);

    if (strncmp(str, val, len) != 0) {
        return false;
    }
    if (ptr) {
        *ptr = str + len;
    }
    return true;
}

bool path_has_protocol(const char *path)
{
    size_t n = strcspn(path, ":/");

    return n > 0 && path[n] == ':';
}

char *path_combine(const char *base_path, const char *filename)
{
    const char *dir_end = base_path;
    const char *slash;

    if (filename[0] == '/' || path_has_protocol(filename)) {
        return g_strdup(filename);
    }
    /* Keep "proto:" of the base, then everything up to its last '/'. */
    if (path_has_protocol(base_path)) {
        dir_end = strchr(base_path, ':') + 1;
    }
    slash = strrchr(base_path, '/');
    if (slash && slash + 1 > dir_end) {
        dir_end = slash + 1;
    }
    return g_strdup_printf("%.*s%s", (int)(dir_end - base_path), base_path,
                           filename);
}

bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

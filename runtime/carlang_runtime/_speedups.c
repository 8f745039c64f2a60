/* carlang_runtime._speedups: the verifier's hot loops over JSON text, and the parser's
 * driver loop, in C.
 *
 * Optional: built when a C compiler is found at install time (hatch_build.py); without it the
 * pure-Python paths run, and decide everything exactly as here. Each function here has a
 * Python twin that defines it, and the tests hold the two to the same results
 * (tests/runtime/test_speedups.py).
 *
 * decode_proposals(text, many, schema) reads a proposal's JSON text straight into the
 * verifier's columns (one list per action field), without a dict or a struct per action. It
 * accepts a strict subset of what the Python paths accept: anything it does not fully
 * understand (a key outside the schema, a number beyond 18 digits, a lone surrogate escape,
 * nesting past a bound, a repeated key, text that is not JSON) makes it return None, and the
 * caller takes the msgspec or json path, which decides and reports as always. It never says
 * yes where those paths say no.
 *
 * effect_writers, edges_levels and merged_state are dag._effect_writers,
 * dag._plain_edges_levels and verify.state._merged_state; lalr_run is the parser's driver
 * loop, lalr._Run.run_python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* Deeper than this (arrays and objects, the document itself counted) and the text is left to
 * the Python paths, whose limit (jsontext.NESTING_LIMIT, 128) is above it. */
#define MAX_DEPTH 100
/* Integers of more digits than this are left to the Python paths (beyond int64 some
 * fields refuse them, and CAR reads the largest as f64). */
#define MAX_INT_DIGITS 18
/* At most this many action fields (a bit each in a 64-bit mask). */
#define MAX_FIELDS 64

/* What a field holds (fastload._FIELD_KINDS names them). */
enum {
    K_STR = 0,       /* a string */
    K_OPT_STR = 1,   /* a string or null */
    K_MAP = 2,       /* an object of any JSON values */
    K_STR_LIST = 3,  /* an array of strings */
    K_ENUM = 4,      /* a string among the enum's values: the member */
    K_BOOL = 5,      /* true or false */
    K_U32 = 6,       /* an integer in 0 .. 2^32-1 */
    K_OPT_U63 = 7,   /* null or an integer in 0 .. 2^63-1 */
};

/* Short ASCII strings met before in this document (keys like "i", values like a tool's
 * name), shared rather than made again: one object instead of thousands, its hash computed
 * once. A direct-mapped table: a slot holds the last string that hashed to it. */
#define CACHE_SLOTS 512
#define CACHE_MAX_LENGTH 16

typedef struct {
    const char *p;
    const char *end;
    int depth;
    PyObject **cache; /* CACHE_SLOTS strong references (or NULL), or NULL: no cache */
} Scanner;

/* A new reference to the ASCII string `bytes`, from the cache when it is there. */
static PyObject *
ascii_string(Scanner *s, const char *bytes, Py_ssize_t length)
{
    PyObject **slot = NULL;
    if (s->cache != NULL && length <= CACHE_MAX_LENGTH) {
        unsigned int hash = 2166136261u; /* FNV-1a */
        for (Py_ssize_t i = 0; i < length; i++) hash = (hash ^ (unsigned char)bytes[i]) * 16777619u;
        slot = &s->cache[hash % CACHE_SLOTS];
        PyObject *cached = *slot;
        if (cached != NULL && PyUnicode_GET_LENGTH(cached) == length &&
            memcmp(PyUnicode_DATA(cached), bytes, length) == 0)
            return Py_NewRef(cached);
    }
    PyObject *text = PyUnicode_New(length, 127);
    if (text == NULL) return NULL;
    memcpy(PyUnicode_DATA(text), bytes, length);
    if (slot != NULL) Py_XSETREF(*slot, Py_NewRef(text));
    return text;
}

/* An enum's values as bytes, with their members (borrowed). */
#define MAX_ENUM_VALUES 16
typedef struct {
    Py_ssize_t count;
    const char *bytes[MAX_ENUM_VALUES];
    Py_ssize_t lengths[MAX_ENUM_VALUES];
    PyObject *members[MAX_ENUM_VALUES];
} EnumValues;

typedef struct {
    Py_ssize_t count;
    const char *names[MAX_FIELDS];
    Py_ssize_t lengths[MAX_FIELDS];
    int kinds[MAX_FIELDS];
    PyObject *enums[MAX_FIELDS]; /* borrowed: value -> member, for K_ENUM */
    EnumValues *values[MAX_FIELDS]; /* the same, by the values' bytes (NULL: not an enum) */
    PyObject *keys[MAX_FIELDS];  /* borrowed: the field names as str */
    unsigned long long required;
    Py_ssize_t header_count;
    const char *header[MAX_FIELDS];
    Py_ssize_t header_lengths[MAX_FIELDS];
    PyObject *header_keys[MAX_FIELDS];
    PyObject *missing;           /* borrowed: the marker of an absent key */
} Schema;

/* A NULL result without an exception set means "not for this path": the caller declines. */
#define DECLINE NULL

static inline void
skip_ws(Scanner *s)
{
    while (s->p < s->end) {
        char c = *s->p;
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return;
        s->p++;
    }
}

/* An exception raised while reading that means the text is not for this path (a string that
 * is not UTF-8, say): cleared, so the caller declines. */
static PyObject *
declined(void)
{
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
        PyErr_Clear();
    return DECLINE;
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int
read_hex4(const char *p, const char *end)
{
    if (end - p < 4) return -1;
    int value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(p[i]);
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

static char *
put_utf8(char *out, unsigned int code)
{
    if (code < 0x80) {
        *out++ = (char)code;
    } else if (code < 0x800) {
        *out++ = (char)(0xC0 | (code >> 6));
        *out++ = (char)(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        *out++ = (char)(0xE0 | (code >> 12));
        *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *out++ = (char)(0x80 | (code & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (code >> 18));
        *out++ = (char)(0x80 | ((code >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *out++ = (char)(0x80 | (code & 0x3F));
    }
    return out;
}

/* The string with escapes, from just after its opening quote: decoded into UTF-8, then str. */
static PyObject *
read_escaped_string(Scanner *s)
{
    const char *p = s->p;
    /* The string's extent first (an escape never decodes to more bytes than it takes), so
     * that the buffer is the string's size, not the rest of the document's. */
    const char *close = p;
    while (close < s->end && *close != '"') close += *close == '\\' ? 2 : 1;
    if (close >= s->end) return DECLINE;
    char stack[256];
    Py_ssize_t room = close - p;
    char *buffer = room <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc(room + 1);
    if (buffer == NULL) return PyErr_NoMemory();
    char *out = buffer;
    PyObject *result = DECLINE;
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            result = PyUnicode_DecodeUTF8(buffer, out - buffer, NULL);
            if (result == NULL) declined();
            s->p = p + 1;
            goto done;
        }
        if (c < 0x20) goto done; /* a control character must be escaped */
        if (c != '\\') {
            *out++ = (char)c;
            p++;
            continue;
        }
        if (s->end - p < 2) goto done;
        char escape = p[1];
        p += 2;
        switch (escape) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '/': *out++ = '/'; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            int code = read_hex4(p, s->end);
            if (code < 0) goto done;
            p += 4;
            if (code >= 0xDC00 && code <= 0xDFFF) goto done; /* a lone low surrogate */
            if (code >= 0xD800 && code <= 0xDBFF) {            /* needs its low half */
                if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u') goto done;
                int low = read_hex4(p + 2, s->end);
                if (low < 0xDC00 || low > 0xDFFF) goto done;
                p += 6;
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            out = put_utf8(out, (unsigned int)code);
            break;
        }
        default:
            goto done;
        }
    }
done:
    if (buffer != stack) PyMem_Free(buffer);
    return result;
}

/* The string at the cursor (its opening quote). */
static PyObject *
read_string(Scanner *s)
{
    const char *start = ++s->p;
    const char *p = start;
    unsigned char high = 0; /* the bits of every byte or'ed: ASCII when below 0x80 */
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = p + 1;
            if (high < 0x80) return ascii_string(s, start, p - start); /* nothing to decode */
            PyObject *text = PyUnicode_DecodeUTF8(start, p - start, NULL);
            return text != NULL ? text : declined();
        }
        high |= c;
        if (c == '\\') {
            s->p = start;
            return read_escaped_string(s);
        }
        if (c < 0x20) return DECLINE;
        p++;
    }
    return DECLINE;
}

/* The string at the cursor as bytes, when it has no escape (0 when it has one). */
static int
read_plain_string(Scanner *s, const char **key, Py_ssize_t *length)
{
    if (s->p >= s->end || *s->p != '"') return 0;
    const char *start = s->p + 1;
    const char *close = memchr(start, '"', s->end - start);
    /* An escape, or a control character (which JSON refuses unescaped): not plain. */
    if (close == NULL || memchr(start, '\\', close - start) != NULL) return 0;
    for (const char *p = start; p < close; p++)
        if ((unsigned char)*p < 0x20) return 0;
    *key = start;
    *length = close - start;
    s->p = close + 1;
    return 1;
}

/* The key at the cursor as bytes, when it has no escape (an escaped key is declined: the
 * schema's names never need one); the cursor moves past the colon after it. */
static int
read_plain_key(Scanner *s, const char **key, Py_ssize_t *length)
{
    if (!read_plain_string(s, key, length)) return 0;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':') return 0;
    s->p++;
    skip_ws(s);
    return 1;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The number at the cursor: an int of at most MAX_INT_DIGITS digits, or a finite float. */
static PyObject *
read_number(Scanner *s)
{
    const char *start = s->p, *p = s->p;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end || !is_digit(*p)) return DECLINE;
    const char *digits = p;
    if (*p == '0') p++;
    else
        while (p < s->end && is_digit(*p)) p++;
    Py_ssize_t integer_digits = p - digits;
    int is_float = 0;
    if (p < s->end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= s->end || !is_digit(*p)) return DECLINE;
        while (p < s->end && is_digit(*p)) p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || !is_digit(*p)) return DECLINE;
        while (p < s->end && is_digit(*p)) p++;
    }
    s->p = p;
    if (!is_float) {
        if (integer_digits > MAX_INT_DIGITS) return DECLINE;
        long long value = 0;
        for (const char *d = digits; d < p; d++) value = value * 10 + (*d - '0');
        return PyLong_FromLongLong(*start == '-' ? -value : value);
    }
    char buffer[64];
    Py_ssize_t length = p - start;
    if (length >= (Py_ssize_t)sizeof(buffer)) return DECLINE;
    memcpy(buffer, start, length);
    buffer[length] = '\0';
    char *stop = NULL;
    double value = PyOS_string_to_double(buffer, &stop, NULL);
    if (value == -1.0 && PyErr_Occurred()) return declined();
    if (stop != buffer + length || isinf(value)) return DECLINE; /* out of range: refused */
    return PyFloat_FromDouble(value);
}

static int
read_literal(Scanner *s, const char *word, Py_ssize_t length)
{
    if (s->end - s->p < length || memcmp(s->p, word, length) != 0) return 0;
    s->p += length;
    return 1;
}

/* After a member of an array or object (`closer`: `]` or `}`): 1 when a comma follows (the
 * cursor then at the next member), 0 when `closer` ends it (the cursor past it), -1 when
 * anything else does (declined). */
static int
next_member(Scanner *s, char closer)
{
    skip_ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
        s->p++;
        skip_ws(s);
        return 1;
    }
    if (*s->p != closer) return -1;
    s->p++;
    return 0;
}

static PyObject *read_value(Scanner *s);

static PyObject *
read_array(Scanner *s)
{
    if (++s->depth > MAX_DEPTH) return DECLINE;
    s->p++;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return list;
    }
    for (;;) {
        PyObject *item = read_value(s);
        if (item == NULL) goto fail;
        int failed = PyList_Append(list, item);
        Py_DECREF(item);
        if (failed < 0) goto fail;
        int next = next_member(s, ']');
        if (next < 0) goto decline;
        if (next == 0) {
            s->depth--;
            return list;
        }
    }
decline:
    Py_DECREF(list);
    return DECLINE;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *
read_object(Scanner *s)
{
    if (++s->depth > MAX_DEPTH) return DECLINE;
    s->p++;
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return dict;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"') goto decline;
        PyObject *key = read_string(s);
        if (key == NULL) goto fail;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            Py_DECREF(key);
            goto decline;
        }
        s->p++;
        skip_ws(s);
        PyObject *value = read_value(s);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        Py_ssize_t before = PyDict_GET_SIZE(dict);
        int failed = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (failed < 0) goto fail;
        if (PyDict_GET_SIZE(dict) == before) goto decline; /* a repeated key */
        int next = next_member(s, '}');
        if (next < 0) goto decline;
        if (next == 0) {
            s->depth--;
            return dict;
        }
    }
decline:
    Py_DECREF(dict);
    return DECLINE;
fail:
    Py_DECREF(dict);
    return NULL;
}

/* Any JSON value at the cursor. NULL: declined, or an exception (MemoryError) is set. */
static PyObject *
read_value(Scanner *s)
{
    if (s->p >= s->end) return DECLINE;
    switch (*s->p) {
    case '"': return read_string(s);
    case '{': return read_object(s);
    case '[': return read_array(s);
    case 't': if (read_literal(s, "true", 4)) Py_RETURN_TRUE; return DECLINE;
    case 'f': if (read_literal(s, "false", 5)) Py_RETURN_FALSE; return DECLINE;
    case 'n': if (read_literal(s, "null", 4)) Py_RETURN_NONE; return DECLINE;
    default: return read_number(s);
    }
}

/* A value of field kind `kind`, checked; NULL: declined (or an exception). */
static PyObject *
read_field(Scanner *s, int kind, const EnumValues *values)
{
    if (s->p >= s->end) return DECLINE;
    char first = *s->p;
    switch (kind) {
    case K_STR:
        return first == '"' ? read_string(s) : DECLINE;
    case K_OPT_STR:
        if (first == 'n') return read_literal(s, "null", 4) ? Py_NewRef(Py_None) : DECLINE;
        return first == '"' ? read_string(s) : DECLINE;
    case K_MAP:
        return first == '{' ? read_object(s) : DECLINE;
    case K_STR_LIST: {
        if (first != '[') return DECLINE;
        PyObject *list = read_array(s);
        if (list == NULL) return NULL;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
            if (!PyUnicode_CheckExact(PyList_GET_ITEM(list, i))) {
                Py_DECREF(list);
                return DECLINE;
            }
        }
        /* Strings only: no cycle can pass through it, so the collector need not visit it
         * (as CPython leaves a dict of atoms untracked). */
        PyObject_GC_UnTrack(list);
        return list;
    }
    case K_ENUM: { /* matched by bytes: an escaped value is declined */
        const char *key;
        Py_ssize_t length;
        if (first != '"' || !read_plain_string(s, &key, &length)) return DECLINE;
        for (Py_ssize_t i = 0; i < values->count; i++)
            if (values->lengths[i] == length && memcmp(values->bytes[i], key, length) == 0)
                return Py_NewRef(values->members[i]);
        return DECLINE;
    }
    case K_BOOL:
        if (read_literal(s, "true", 4)) Py_RETURN_TRUE;
        if (read_literal(s, "false", 5)) Py_RETURN_FALSE;
        return DECLINE;
    case K_U32:
    case K_OPT_U63: {
        if (kind == K_OPT_U63 && first == 'n')
            return read_literal(s, "null", 4) ? Py_NewRef(Py_None) : DECLINE;
        if (first == '-' || !is_digit(first)) return DECLINE;
        PyObject *number = read_number(s);
        if (number == NULL) return NULL;
        if (!PyLong_CheckExact(number)) {
            Py_DECREF(number);
            return DECLINE;
        }
        /* 18 digits at most: always below 2^63; only the u32 bound is left to check. */
        if (kind == K_U32 && PyLong_AsLongLong(number) > 4294967295LL) {
            Py_DECREF(number);
            return DECLINE;
        }
        return number;
    }
    }
    return DECLINE;
}

static Py_ssize_t
find_name(const char *const *names, const Py_ssize_t *lengths, Py_ssize_t count,
          Py_ssize_t hint, const char *key, Py_ssize_t length)
{
    /* Keys usually come in the schema's order: look from the one after the last found. */
    for (Py_ssize_t i = hint; i < count; i++)
        if (lengths[i] == length && memcmp(names[i], key, length) == 0) return i;
    for (Py_ssize_t i = 0; i < hint && i < count; i++)
        if (lengths[i] == length && memcmp(names[i], key, length) == 0) return i;
    return -1;
}

/* Append `missing` to `column` until it holds `length` values. */
static int
pad(PyObject *column, Py_ssize_t length, PyObject *missing)
{
    while (PyList_GET_SIZE(column) < length)
        if (PyList_Append(column, missing) < 0) return -1;
    return 0;
}

/* One action object, its values appended to `columns` (created as fields first appear). */
static int
read_action(Scanner *s, const Schema *schema, PyObject **columns, unsigned long long *present,
            Py_ssize_t index)
{
    if (s->p >= s->end || *s->p != '{') return 0;
    if (++s->depth > MAX_DEPTH) return 0;
    s->p++;
    skip_ws(s);
    unsigned long long seen = 0;
    Py_ssize_t hint = 0;
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            const char *key;
            Py_ssize_t length;
            if (!read_plain_key(s, &key, &length)) return 0;
            Py_ssize_t field =
                find_name(schema->names, schema->lengths, schema->count, hint, key, length);
            if (field < 0 || (seen >> field) & 1) return 0; /* unknown, or repeated */
            seen |= 1ULL << field;
            hint = field + 1;
            PyObject *value = read_field(s, schema->kinds[field], schema->values[field]);
            if (value == NULL) return PyErr_Occurred() ? -1 : 0;
            if (columns[field] == NULL) {
                columns[field] = PyList_New(0);
                if (columns[field] == NULL || pad(columns[field], index, schema->missing) < 0) {
                    Py_DECREF(value);
                    return -1;
                }
            }
            int failed = PyList_Append(columns[field], value);
            Py_DECREF(value);
            if (failed < 0) return -1;
            int next = next_member(s, '}');
            if (next < 0) return 0;
            if (next == 0) break;
        }
    }
    s->depth--;
    if ((seen & schema->required) != schema->required) return 0;
    *present |= seen;
    unsigned long long absent = *present & ~seen; /* columns this action has no value for */
    for (Py_ssize_t field = 0; absent != 0; field++, absent >>= 1)
        if (absent & 1)
            if (PyList_Append(columns[field], schema->missing) < 0) return -1;
    return 1;
}

/* The actions array: (count, columns dict) into *count and *out. 1 read, 0 declined, -1 error. */
static int
read_actions(Scanner *s, const Schema *schema, Py_ssize_t *count, PyObject **out)
{
    if (s->p >= s->end || *s->p != '[') return 0;
    if (++s->depth > MAX_DEPTH) return 0;
    s->p++;
    PyObject *columns[MAX_FIELDS] = {NULL};
    unsigned long long present = 0; /* the fields with a column */
    Py_ssize_t n = 0;
    int status = 0;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            status = read_action(s, schema, columns, &present, n);
            if (status <= 0) goto done;
            n++;
            status = next_member(s, ']');
            if (status < 0) {
                status = 0;
                goto done;
            }
            if (status == 0) break;
        }
    }
    s->depth--;
    PyObject *dict = PyDict_New();
    status = -1;
    if (dict == NULL) goto done;
    for (Py_ssize_t field = 0; field < schema->count; field++) {
        if (columns[field] != NULL &&
            PyDict_SetItem(dict, schema->keys[field], columns[field]) < 0) {
            Py_DECREF(dict);
            goto done;
        }
    }
    *count = n;
    *out = dict;
    status = 1;
done:
    for (Py_ssize_t field = 0; field < schema->count; field++) Py_XDECREF(columns[field]);
    return status;
}

/* One proposal object: a tuple (header dict, action count, columns dict), or NULL. */
static PyObject *
read_proposal(Scanner *s, const Schema *schema)
{
    if (s->p >= s->end || *s->p != '{') return DECLINE;
    if (++s->depth > MAX_DEPTH) return DECLINE;
    s->p++;
    skip_ws(s);
    PyObject *header = PyDict_New(), *columns = NULL, *result = NULL;
    if (header == NULL) return NULL;
    Py_ssize_t count = 0;
    unsigned long long seen = 0;
    int has_actions = 0;
    if (s->p < s->end && *s->p == '}') goto done; /* no actions: declined */
    for (;;) {
        const char *key;
        Py_ssize_t length;
        if (!read_plain_key(s, &key, &length)) goto done;
        if (length == 7 && memcmp(key, "actions", 7) == 0) {
            if (has_actions) goto done;
            has_actions = 1;
            int status = read_actions(s, schema, &count, &columns);
            if (status <= 0) goto done;
        } else {
            Py_ssize_t field = find_name(schema->header, schema->header_lengths,
                                         schema->header_count, 0, key, length);
            if (field < 0 || (seen >> field) & 1) goto done;
            seen |= 1ULL << field;
            PyObject *value = read_value(s);
            if (value == NULL) goto done;
            int failed = PyDict_SetItem(header, schema->header_keys[field], value);
            Py_DECREF(value);
            if (failed < 0) goto done;
        }
        int next = next_member(s, '}');
        if (next < 0) goto done;
        if (next == 0) break;
    }
    s->depth--;
    if (has_actions) result = Py_BuildValue("(OnO)", header, count, columns);
done:
    Py_DECREF(header);
    Py_XDECREF(columns);
    return result;
}

static int
schema_names(PyObject *names, const char **out, Py_ssize_t *lengths, PyObject **keys,
             Py_ssize_t *count)
{
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) > MAX_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "schema: a tuple of at most 64 names");
        return -1;
    }
    *count = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < *count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        out[i] = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &lengths[i]) : NULL;
        if (out[i] == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "schema: names are str");
            return -1;
        }
        keys[i] = name;
    }
    return 0;
}

/* schema: (field names, kinds, enum maps (dict or None each), required names, header names,
 * missing marker). */
static int
read_schema(PyObject *spec, Schema *schema, EnumValues *enum_values)
{
    PyObject *names, *kinds, *enums, *required, *header;
    if (!PyArg_ParseTuple(spec, "O!O!O!O!O!O;schema", &PyTuple_Type, &names, &PyTuple_Type,
                          &kinds, &PyTuple_Type, &enums, &PyTuple_Type, &required,
                          &PyTuple_Type, &header, &schema->missing))
        return -1;
    if (schema_names(names, schema->names, schema->lengths, schema->keys, &schema->count) < 0 ||
        schema_names(header, schema->header, schema->header_lengths, schema->header_keys,
                     &schema->header_count) < 0)
        return -1;
    if (PyTuple_GET_SIZE(kinds) != schema->count || PyTuple_GET_SIZE(enums) != schema->count) {
        PyErr_SetString(PyExc_TypeError, "schema: a kind and an enum map per field");
        return -1;
    }
    schema->required = 0;
    for (Py_ssize_t i = 0; i < schema->count; i++) {
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        if (kind < K_STR || kind > K_OPT_U63) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "schema: unknown kind");
            return -1;
        }
        schema->kinds[i] = (int)kind;
        schema->enums[i] = PyTuple_GET_ITEM(enums, i);
        schema->values[i] = NULL;
        if (kind == K_ENUM) {
            if (!PyDict_Check(schema->enums[i]) ||
                PyDict_GET_SIZE(schema->enums[i]) > MAX_ENUM_VALUES) {
                PyErr_SetString(PyExc_TypeError, "schema: an enum needs its value map (<= 16)");
                return -1;
            }
            EnumValues *values = &enum_values[i];
            values->count = 0;
            Py_ssize_t pos = 0;
            PyObject *value, *member;
            while (PyDict_Next(schema->enums[i], &pos, &value, &member)) {
                Py_ssize_t at = values->count++;
                values->bytes[at] = PyUnicode_Check(value)
                                        ? PyUnicode_AsUTF8AndSize(value, &values->lengths[at])
                                        : NULL;
                if (values->bytes[at] == NULL) {
                    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "schema: enum values are str");
                    return -1;
                }
                values->members[at] = member;
            }
            schema->values[i] = values;
        }
        int is_required = PySequence_Contains(required, PyTuple_GET_ITEM(names, i));
        if (is_required < 0) return -1;
        if (is_required) schema->required |= 1ULL << i;
    }
    return 0;
}

static PyObject *decode_document(Scanner *s, const Schema *schema, int many);

static PyObject *
decode_proposals(PyObject *self, PyObject *args)
{
    PyObject *text, *spec;
    int many;
    if (!PyArg_ParseTuple(args, "OpO!:decode_proposals", &text, &many, &PyTuple_Type, &spec))
        return NULL;
    Schema schema;
    EnumValues enum_values[MAX_FIELDS];
    if (read_schema(spec, &schema, enum_values) < 0) return NULL;
    const char *data;
    Py_ssize_t size;
    if (PyUnicode_Check(text)) {
        data = PyUnicode_AsUTF8AndSize(text, &size);
        if (data == NULL) {
            declined(); /* a lone surrogate in the str: the Python paths report it */
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
    } else if (PyBytes_Check(text)) {
        data = PyBytes_AS_STRING(text);
        size = PyBytes_GET_SIZE(text);
    } else {
        PyErr_SetString(PyExc_TypeError, "decode_proposals: str or bytes");
        return NULL;
    }
    PyObject **cache = PyMem_Calloc(CACHE_SLOTS, sizeof(PyObject *));
    if (cache == NULL) return PyErr_NoMemory();
    Scanner s = {data, data + size, 0, cache};
    PyObject *result = decode_document(&s, &schema, many);
    for (int i = 0; i < CACHE_SLOTS; i++) Py_XDECREF(cache[i]);
    PyMem_Free(cache);
    return result;
}

/* The document: see decode_proposals. */
static PyObject *
decode_document(Scanner *s, const Schema *schema, int many)
{
    PyObject *result;
    skip_ws(s);
    if (!many) {
        result = read_proposal(s, schema);
    } else {
        result = DECLINE;
        if (s->p < s->end && *s->p == '[') {
            s->p++;
            s->depth++;
            PyObject *list = PyList_New(0);
            if (list == NULL) return NULL;
            skip_ws(s);
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                result = list;
            } else {
                for (;;) {
                    PyObject *one = read_proposal(s, schema);
                    if (one == NULL) break;
                    int failed = PyList_Append(list, one);
                    Py_DECREF(one);
                    if (failed < 0) break;
                    int next = next_member(s, ']');
                    if (next == 0) result = list;
                    if (next != 1) break;
                }
            }
            if (result == NULL) Py_DECREF(list);
        }
    }
    if (result == NULL) {
        declined();
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    skip_ws(s);
    if (s->p != s->end) { /* more after the document: not JSON */
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

/* An empty dict with room for `count` keys without growing (up to CPython's cap on a
 * presized dict): a map built key by key otherwise rebuilds its table about log2(count)
 * times, and at 100,000 keys each rebuild is cache misses. CPython's own (underscored)
 * presizing, in every version this supports; a plain dict where it is not declared. */
static PyObject *
new_dict_for(Py_ssize_t count)
{
#if PY_VERSION_HEX < 0x030E0000
    return _PyDict_NewPresized(count);
#else
    (void)count;
    return PyDict_New();
#endif
}

/* effect_writers(effects: list[dict]) -> dict: the last position writing each key. */
static PyObject *
effect_writers(PyObject *self, PyObject *effects)
{
    if (!PyList_CheckExact(effects)) {
        PyErr_SetString(PyExc_TypeError, "effect_writers: a list of dicts");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(effects);
    PyObject *writer = new_dict_for(n);
    if (writer == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *written = PyList_GET_ITEM(effects, i);
        if (!PyDict_Check(written)) {
            PyErr_SetString(PyExc_TypeError, "effect_writers: a list of dicts");
            goto fail;
        }
        if (PyDict_GET_SIZE(written) == 0) continue;
        PyObject *position = PyLong_FromSsize_t(i);
        if (position == NULL) goto fail;
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(written, &pos, &key, &value)) {
            if (PyDict_SetItem(writer, key, position) < 0) {
                Py_DECREF(position);
                goto fail;
            }
        }
        Py_DECREF(position);
    }
    return writer;
fail:
    Py_DECREF(writer);
    return NULL;
}

/* merged_state(state, effects, levels, keys) -> dict: a copy of `state` with the effects of
 * the actions of `levels` applied in order, level by level, sized for `keys` more keys than
 * the state has: see verify.state._merged_state. */
static PyObject *
merged_state(PyObject *self, PyObject *args)
{
    PyObject *state, *effects, *levels;
    Py_ssize_t keys;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyDict_Type, &state, &PyList_Type, &effects,
                          &PyList_Type, &levels, &keys))
        return NULL;
    if (!PyList_CheckExact(effects) || !PyList_CheckExact(levels) || keys < 0) {
        PyErr_SetString(PyExc_TypeError, "merged_state: lists, and a count of keys");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(effects);
    PyObject *merged = new_dict_for(PyDict_GET_SIZE(state) + keys);
    if (merged == NULL) return NULL;
    /* key by key here and below, not PyDict_Update: into an empty dict, that copies the
     * other's table, size and all, and the presizing would be lost */
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(state, &pos, &key, &value)) {
        if (PyDict_SetItem(merged, key, value) < 0) goto fail;
    }
    for (Py_ssize_t l = 0; l < PyList_GET_SIZE(levels); l++) {
        PyObject *level = PyList_GET_ITEM(levels, l);
        if (!PyList_CheckExact(level)) {
            PyErr_SetString(PyExc_TypeError, "merged_state: levels are lists of positions");
            goto fail;
        }
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(level); k++) {
            Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(level, k));
            if (i == -1 && PyErr_Occurred()) goto fail;
            if (i < 0 || i >= n) {
                PyErr_SetString(PyExc_IndexError, "merged_state: a position past the effects");
                goto fail;
            }
            PyObject *written = PyList_GET_ITEM(effects, i);
            if (!PyDict_Check(written)) {
                PyErr_SetString(PyExc_TypeError, "merged_state: effects are dicts");
                goto fail;
            }
            Py_ssize_t at = 0;
            while (PyDict_Next(written, &at, &key, &value)) {
                if (PyDict_SetItem(merged, key, value) < 0) goto fail;
            }
        }
    }
    return merged;
fail:
    Py_DECREF(merged);
    return NULL;
}

/* edges_levels(dependencies, writer, no_deps) -> (parents, levels, all_written): see
 * dag._plain_edges_levels, which this is. */
static PyObject *
edges_levels(PyObject *self, PyObject *args)
{
    PyObject *dependencies, *writer, *no_deps;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyList_Type, &dependencies, &PyDict_Type, &writer,
                          &PyList_Type, &no_deps))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(dependencies);
    Py_ssize_t *level_of = PyMem_Malloc(sizeof(Py_ssize_t) * (n ? n : 1));
    if (level_of == NULL) return PyErr_NoMemory();
    PyObject *deps = PyList_New(n), *levels = NULL, *first = NULL, *result = NULL;
    int all_written = 1;
    if (deps == NULL) goto done;
    levels = PyList_New(0);
    if (levels == NULL) goto done;
    first = PyList_New(0);
    if (first == NULL || PyList_Append(levels, first) < 0) goto done;
    Py_ssize_t depth = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *keys = PyList_GET_ITEM(dependencies, i);
        if (!PyList_Check(keys)) {
            PyErr_SetString(PyExc_TypeError, "edges_levels: lists of keys");
            goto done;
        }
        Py_ssize_t count = PyList_GET_SIZE(keys), level = 0;
        PyObject *parents = NULL; /* new reference: an int or a list */
        for (Py_ssize_t k = 0; k < count; k++) {
            PyObject *found = PyDict_GetItemWithError(writer, PyList_GET_ITEM(keys, k));
            if (found == NULL) {
                if (PyErr_Occurred()) goto fail_parents;
                all_written = 0;
                continue;
            }
            if (!PyLong_CheckExact(found)) {
                PyErr_SetString(PyExc_TypeError, "edges_levels: positions are ints");
                goto fail_parents;
            }
            Py_ssize_t w = PyLong_AsSsize_t(found);
            if (w == -1 && PyErr_Occurred()) goto fail_parents;
            if (w >= i || w < 0) {
                all_written = 0;
                continue;
            }
            if (parents == NULL) {
                if (count == 1) {
                    parents = Py_NewRef(found);
                } else {
                    parents = PyList_New(1);
                    if (parents == NULL) goto done;
                    PyList_SET_ITEM(parents, 0, Py_NewRef(found));
                }
            } else {
                int seen = PySequence_Contains(parents, found);
                if (seen < 0) goto fail_parents;
                if (seen) continue;
                if (PyList_Append(parents, found) < 0) goto fail_parents;
            }
            if (level_of[w] >= level) level = level_of[w] + 1;
        }
        level_of[i] = level;
        PyObject *position = PyLong_FromSsize_t(i);
        if (position == NULL) goto fail_parents;
        int failed;
        if (level) {
            PyList_SET_ITEM(deps, i, parents); /* steals it */
            if (level < depth) {
                failed = PyList_Append(PyList_GET_ITEM(levels, level), position);
            } else {
                PyObject *fresh = PyList_New(1);
                failed = -1;
                if (fresh != NULL) {
                    PyList_SET_ITEM(fresh, 0, Py_NewRef(position));
                    failed = PyList_Append(levels, fresh);
                    Py_DECREF(fresh);
                    depth++;
                }
            }
        } else {
            Py_XDECREF(parents);
            PyList_SET_ITEM(deps, i, Py_NewRef(no_deps));
            failed = PyList_Append(first, position);
        }
        Py_DECREF(position);
        if (failed < 0) goto done;
        continue;
    fail_parents:
        Py_XDECREF(parents);
        goto done;
    }
    result = Py_BuildValue("(OOO)", deps, levels, all_written ? Py_True : Py_False);
done:
    PyMem_Free(level_of);
    Py_XDECREF(first);
    Py_XDECREF(deps);
    Py_XDECREF(levels);
    return result;
}

/* ---- The LALR driver: lalr._Run.run_python, in C ----------------------------------------
 *
 * lalr_run(run, constants) is lalr._Run.run_python line for line: lex the next token with
 * the engine's lead regex (or the state's own, or `next_token` for comments, the end and
 * misplaced tokens), then reduce and shift it on the run's three stacks, calling the
 * builder's methods and shapers as the steps say. Syntax errors go through the run's own
 * Python methods (`problem`, `recover`), after which the stacks are read again from the run.
 * It returns the run's Outcome, or NotImplemented (before doing anything) when the run is
 * not shaped as expected, for the Python driver to take. `constants` is
 * (Node, _Inline, END, _NONE). A token (from the lexers, the token hook, `next_token` or
 * `recover`) is a 4-tuple, as `lalr.Token` says; anything else is a TypeError here. */

enum {
    R_KEEP = 0,
    R_KEEP_NODE = 1,
    R_CALL = 2,
    R_CALL_NONE = 3,
    R_CALL_ONE = 4,
    R_CALL_SOME = 5,
    R_NODE = 6,
    R_APPEND = 7,
    R_SHAPE = 8,
    R_PICK = 9,
    R_CALL_PICK = 10,
    R_CALL_ONE_SPLICE = 11,
};

/* Interned attribute names, made once (`driver_names`). */
static PyObject *s_engine, *s_text, *s_builder, *s_states, *s_steps, *s_state_stack,
    *s_value_stack, *s_span_stack, *s_brackets, *s_last, *s_pos, *s_outcome, *s_accepts,
    *s_global_lead, *s_match, *s_terminals, *s_keywords, *s_state_leads, *s_state_lead,
    *s_ident, *s_keyword_types, *s_token_hook, *s_recovery, *s_top_states, *s_tables,
    *s_end_state, *s_end, *s_lastindex, *s_span, *s_value, *s_next_token, *s_problem,
    *s_recover, *s_problems, *s_max_errors, *s_checkpoint, *s_declaration_words, *s_one;

static int
driver_names(void)
{
#define NAME(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return -1;
    NAME(s_engine, "engine") NAME(s_text, "text") NAME(s_builder, "builder")
    NAME(s_states, "states") NAME(s_steps, "steps") NAME(s_state_stack, "state_stack")
    NAME(s_value_stack, "value_stack") NAME(s_span_stack, "span_stack")
    NAME(s_brackets, "brackets") NAME(s_last, "last") NAME(s_pos, "pos")
    NAME(s_outcome, "outcome") NAME(s_accepts, "accepts") NAME(s_global_lead, "global_lead")
    NAME(s_match, "match") NAME(s_terminals, "terminals") NAME(s_keywords, "keywords")
    NAME(s_state_leads, "_state_leads") NAME(s_state_lead, "state_lead")
    NAME(s_ident, "ident") NAME(s_keyword_types, "keyword_types")
    NAME(s_token_hook, "token_hook") NAME(s_recovery, "recovery")
    NAME(s_top_states, "top_states") NAME(s_tables, "tables") NAME(s_end_state, "end_state")
    NAME(s_end, "end") NAME(s_lastindex, "lastindex") NAME(s_span, "span")
    NAME(s_value, "value") NAME(s_next_token, "next_token") NAME(s_problem, "problem")
    NAME(s_recover, "recover") NAME(s_problems, "problems") NAME(s_max_errors, "max_errors")
    NAME(s_checkpoint, "checkpoint") NAME(s_declaration_words, "keywords")
#undef NAME
    if ((s_one = PyLong_FromLong(1)) == NULL) return -1;
    return 0;
}

typedef struct {
    PyObject *run, *engine, *text, *builder, *states, *steps, *accepts;
    PyObject *lead_match, *lead_names, *scanned_keywords, *state_leads;
    PyObject *ident, *keyword_types, *hook, *recovery, *top_states, *declaration_words;
    PyObject *outcome, *node_type, *inline_type, *end_kind, *none_kind;
    /* the run's, read again after a recovery */
    PyObject *state_stack, *value_stack, *span_stack, *brackets;
    long end_state;
} Driver;

static void
driver_clear(Driver *d)
{
    Py_CLEAR(d->engine); Py_CLEAR(d->text); Py_CLEAR(d->builder); Py_CLEAR(d->states);
    Py_CLEAR(d->steps); Py_CLEAR(d->accepts); Py_CLEAR(d->lead_match);
    Py_CLEAR(d->lead_names); Py_CLEAR(d->scanned_keywords); Py_CLEAR(d->state_leads);
    Py_CLEAR(d->ident); Py_CLEAR(d->keyword_types); Py_CLEAR(d->hook);
    Py_CLEAR(d->recovery); Py_CLEAR(d->top_states); Py_CLEAR(d->declaration_words);
    Py_CLEAR(d->outcome); Py_CLEAR(d->state_stack); Py_CLEAR(d->value_stack);
    Py_CLEAR(d->span_stack); Py_CLEAR(d->brackets);
}

/* The run's stacks and brackets (again, after a recovery made new ones): 0, or -1 with an
 * exception, or 1 when one is not a list (the Python driver's to run). */
static int
driver_stacks(Driver *d)
{
    Py_CLEAR(d->state_stack); Py_CLEAR(d->value_stack); Py_CLEAR(d->span_stack);
    Py_CLEAR(d->brackets);
    if ((d->state_stack = PyObject_GetAttr(d->run, s_state_stack)) == NULL) return -1;
    if ((d->value_stack = PyObject_GetAttr(d->run, s_value_stack)) == NULL) return -1;
    if ((d->span_stack = PyObject_GetAttr(d->run, s_span_stack)) == NULL) return -1;
    if ((d->brackets = PyObject_GetAttr(d->run, s_brackets)) == NULL) return -1;
    if (!PyList_CheckExact(d->state_stack) || !PyList_CheckExact(d->value_stack) ||
        !PyList_CheckExact(d->span_stack) || !PyList_CheckExact(d->brackets) ||
        PyList_GET_SIZE(d->state_stack) == 0)
        return 1;
    return 0;
}

/* Everything the loop reads, from the run and its engine: 0, -1 with an exception, or 1
 * when something is not of the shape the loop relies on. */
static int
driver_setup(Driver *d, PyObject *run, PyObject *constants)
{
    PyObject *lead = NULL, *tables = NULL, *end_state = NULL;
    int shaped;
    memset(d, 0, sizeof(*d));
    d->run = run;
    if (!PyTuple_Check(constants) || PyTuple_GET_SIZE(constants) != 4) {
        PyErr_SetString(PyExc_TypeError, "lalr_run: constants must be (Node, _Inline, END, _NONE)");
        return -1;
    }
    d->node_type = PyTuple_GET_ITEM(constants, 0);
    d->inline_type = PyTuple_GET_ITEM(constants, 1);
    d->end_kind = PyTuple_GET_ITEM(constants, 2);
    d->none_kind = PyTuple_GET_ITEM(constants, 3);
#define GET(var, obj, name) \
    if ((var = PyObject_GetAttr(obj, name)) == NULL) goto failed;
    GET(d->engine, run, s_engine) GET(d->text, run, s_text) GET(d->builder, run, s_builder)
    GET(d->states, run, s_states) GET(d->steps, run, s_steps) GET(d->outcome, run, s_outcome)
    GET(d->accepts, d->engine, s_accepts) GET(lead, d->engine, s_global_lead)
    GET(d->lead_match, lead, s_match) GET(d->lead_names, lead, s_terminals)
    GET(d->scanned_keywords, lead, s_keywords) GET(d->state_leads, d->engine, s_state_leads)
    GET(d->ident, d->engine, s_ident) GET(d->keyword_types, d->engine, s_keyword_types)
    GET(d->hook, d->engine, s_token_hook) GET(d->recovery, d->engine, s_recovery)
    GET(d->top_states, d->engine, s_top_states) GET(tables, d->engine, s_tables)
    GET(end_state, tables, s_end_state)
    if (d->recovery == Py_None) {
        d->declaration_words = PyFrozenSet_New(NULL);
        if (d->declaration_words == NULL) goto failed;
    } else {
        GET(d->declaration_words, d->recovery, s_declaration_words)
    }
#undef GET
    d->end_state = PyLong_AsLong(end_state);
    if (d->end_state == -1 && PyErr_Occurred()) goto failed;
    Py_CLEAR(lead); Py_CLEAR(tables); Py_CLEAR(end_state);
    shaped = driver_stacks(d);
    if (shaped != 0) return shaped;
    if (!PyUnicode_Check(d->text) || !PyList_CheckExact(d->states) ||
        !PyList_CheckExact(d->steps) || !PyList_CheckExact(d->accepts) ||
        !PyDict_CheckExact(d->scanned_keywords) || !PyDict_CheckExact(d->state_leads) ||
        !PyDict_CheckExact(d->keyword_types) || !PyAnySet_Check(d->top_states) ||
        !PyAnySet_Check(d->declaration_words) || !PyUnicode_Check(d->ident))
        return 1;
    return 0;
failed:
    Py_XDECREF(lead); Py_XDECREF(tables); Py_XDECREF(end_state);
    return -1;
}

/* `list[index]` of a list of dicts (the parse table) or of sets (`accepts`) by a state
 * number, borrowed; NULL with IndexError when out of range. */
static PyObject *
row_of(PyObject *list, long state)
{
    if (state < 0 || state >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "lalr_run: a state beyond the table");
        return NULL;
    }
    return PyList_GET_ITEM(list, state);
}

/* The table's entry for `symbol` in state `state`: a new reference, or NULL (with an error
 * set only when something failed; without one when the state has no entry). */
static PyObject *
table_entry(Driver *d, long state, PyObject *symbol)
{
    PyObject *row = row_of(d->states, state), *found;
    if (row == NULL) return NULL;
    if (!PyDict_CheckExact(row)) {
        PyErr_SetString(PyExc_TypeError, "lalr_run: a table row that is not a dict");
        return NULL;
    }
    found = PyDict_GetItemWithError(row, symbol);
    Py_XINCREF(found);
    return found;
}

/* Whether `symbol` is in the accept set of `state` (1, 0, or -1 with an error). */
static int
accepted(Driver *d, long state, PyObject *symbol)
{
    PyObject *set = row_of(d->accepts, state);
    if (set == NULL) return -1;
    return PySet_Contains(set, symbol);
}

/* One match of a lead lexer (`match_fn`, its terminal names `names`) at `pos_obj`: 1 with
 * new references in kind, value, start and end; 0 when it matches nothing; -1 on error. */
static int
lead_token(Driver *d, PyObject *match_fn, PyObject *names, PyObject *pos_obj, PyObject **kind,
           PyObject **value, PyObject **start, PyObject **end)
{
    PyObject *args[2] = {d->text, pos_obj};
    PyObject *m = PyObject_Vectorcall(match_fn, args, 2, NULL), *last = NULL;
    PyObject *on[2];
    Py_ssize_t from, to;
    if (m == NULL) return -1;
    if (m == Py_None) {
        Py_DECREF(m);
        return 0;
    }
    *kind = *value = *start = *end = NULL;
    on[0] = m;
    on[1] = s_one;
    if ((last = PyObject_GetAttr(m, s_lastindex)) == NULL) goto failed;
    if ((*kind = PyObject_GetItem(names, last)) == NULL) goto failed;
    if ((*start = PyObject_VectorcallMethod(s_end, on, 2, NULL)) == NULL) goto failed;
    if ((*end = PyObject_VectorcallMethod(s_end, on, 1, NULL)) == NULL) goto failed;
    from = PyLong_AsSsize_t(*start);
    to = PyLong_AsSsize_t(*end);
    if ((from == -1 || to == -1) && PyErr_Occurred()) goto failed;
    if ((*value = PyUnicode_Substring(d->text, from, to)) == NULL) goto failed;
    Py_DECREF(m); Py_DECREF(last);
    return 1;
failed:
    Py_DECREF(m); Py_XDECREF(last);
    Py_CLEAR(*kind); Py_CLEAR(*value); Py_CLEAR(*start); Py_CLEAR(*end);
    return -1;
}

/* `a == b` for two strings (1, 0, -1). */
static inline int
same_text(PyObject *a, PyObject *b)
{
    if (a == b) return 1;
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

/* Item `index` (from the end when negative) of list `list`, borrowed. */
static inline PyObject *
from_end(PyObject *list, Py_ssize_t index)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (index < 0) index += n;
    if (index < 0 || index >= n) {
        PyErr_SetString(PyExc_IndexError, "lalr_run: a stack shorter than a rule");
        return NULL;
    }
    return PyList_GET_ITEM(list, index);
}

/* Item `offset` (a Python int, from the end when negative) of list `list`, borrowed. */
static inline PyObject *
at_offset(PyObject *list, PyObject *offset)
{
    Py_ssize_t index = PyLong_AsSsize_t(offset);
    if (index == -1 && PyErr_Occurred()) return NULL;
    return from_end(list, index);
}

/* A tuple's item counted from its end, borrowed (the spans on the span stack). */
static inline PyObject *
tuple_from_end(PyObject *tuple, Py_ssize_t back)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < back) {
        PyErr_SetString(PyExc_TypeError, "lalr_run: a span that is not a tuple");
        return NULL;
    }
    return PyTuple_GET_ITEM(tuple, PyTuple_GET_SIZE(tuple) - back);
}

/* `method(*items)` for a tuple or list `items` followed by the tuple `more`. */
static PyObject *
call_with(PyObject *method, PyObject *items, PyObject *more)
{
    PyObject *small[16], **args = small, *result;
    PyObject *fast = PySequence_Fast(items, "lalr_run: arguments that are not a sequence");
    Py_ssize_t n, m, i;
    if (fast == NULL) return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    m = more != NULL ? PyTuple_GET_SIZE(more) : 0;
    if (n + m > 16 && (args = PyMem_Malloc((n + m) * sizeof(PyObject *))) == NULL) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++) args[i] = PySequence_Fast_GET_ITEM(fast, i);
    for (i = 0; i < m; i++) args[n + i] = PyTuple_GET_ITEM(more, i);
    result = PyObject_Vectorcall(method, args, n + m, NULL);
    if (args != small) PyMem_Free(args);
    Py_DECREF(fast);
    return result;
}

/* The next state after reducing to `origin` on top of `below` (a state on the stack):
 * a new reference to the state's number, and the number itself in *state. */
static PyObject *
goto_state(Driver *d, PyObject *below, PyObject *origin, long *state)
{
    long from = PyLong_AsLong(below);
    PyObject *next;
    if (from == -1 && PyErr_Occurred()) return NULL;
    next = table_entry(d, from, origin);
    if (next == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "lalr_run: no goto for a reduction");
        return NULL;
    }
    *state = PyLong_AsLong(next);
    if (*state == -1 && PyErr_Occurred()) {
        Py_DECREF(next);
        return NULL;
    }
    return next;
}

/* Reduce with `step` (its children on top of the stacks): the reduction (a new reference)
 * and its span (a new reference in *span); the stacks are left for the caller to pop. */
static PyObject *
reduction(Driver *d, PyObject *step, Py_ssize_t size, PyObject *shifted, PyObject **span)
{
    long how = PyLong_AsLong(PyTuple_GET_ITEM(step, 0));
    PyObject *shaper = PyTuple_GET_ITEM(step, 3), *method = PyTuple_GET_ITEM(step, 4);
    PyObject *extra = PyTuple_GET_ITEM(step, 5), *name = PyTuple_GET_ITEM(step, 6);
    PyObject *values = d->value_stack, *reduced = NULL, *children = NULL, *start, *end;
    Py_ssize_t n = PyList_GET_SIZE(values);
    *span = NULL;
    if (!size) {
        if ((start = tuple_from_end(shifted, 2)) == NULL) return NULL;
        if ((*span = PyTuple_Pack(2, start, start)) == NULL) return NULL;
        if ((children = PyList_New(0)) == NULL) goto failed;
        reduced = PyObject_CallFunctionObjArgs(shaper, children, *span, NULL);
        Py_DECREF(children);
        if (reduced == NULL) goto failed;
        return reduced;
    }
    if (size > n) {
        PyErr_SetString(PyExc_IndexError, "lalr_run: a stack shorter than a rule");
        return NULL;
    }
    if ((start = from_end(d->span_stack, -size)) == NULL) return NULL;
    if ((start = tuple_from_end(start, 2)) == NULL) return NULL;
    if ((end = from_end(d->span_stack, -1)) == NULL) return NULL;
    if ((end = tuple_from_end(end, 1)) == NULL) return NULL;
    if ((*span = PyTuple_Pack(2, start, end)) == NULL) return NULL;
    if (how == R_CALL || how == R_CALL_SOME || how == R_CALL_ONE || how == R_CALL_PICK ||
        how == R_CALL_ONE_SPLICE || how == R_CALL_NONE) {
        if (PyObject_SetAttr(d->builder, s_span, *span) < 0) goto failed;
    }
    switch (how) {
    case R_CALL: {
        PyObject *args[16];
        Py_ssize_t i;
        if (size <= 16) {
            for (i = 0; i < size; i++) {
                args[i] = PyList_GET_ITEM(values, n - size + i);
                Py_INCREF(args[i]);
            }
            reduced = PyObject_Vectorcall(method, args, size, NULL);
            for (i = 0; i < size; i++) Py_DECREF(args[i]);
        } else {
            if ((children = PyList_GetSlice(values, n - size, n)) == NULL) goto failed;
            reduced = call_with(method, children, NULL);
        }
        break;
    }
    case R_CALL_SOME: {
        PyObject *picked = PyObject_CallOneArg(PyTuple_GET_ITEM(extra, 0), values);
        if (picked == NULL) goto failed;
        reduced = call_with(method, picked, PyTuple_GET_ITEM(extra, 1));
        Py_DECREF(picked);
        break;
    }
    case R_APPEND: {
        PyObject *head = at_offset(values, PyTuple_GET_ITEM(extra, 0)), *item;
        if (head == NULL || (item = at_offset(values, PyTuple_GET_ITEM(extra, 1))) == NULL)
            goto failed;
        if (Py_TYPE(head) == (PyTypeObject *)d->inline_type) {
            reduced = Py_NewRef(head);
        } else {
            PyObject *one = PyTuple_Pack(1, head);
            if (one == NULL) goto failed;
            reduced = PyObject_CallOneArg(d->inline_type, one);
            Py_DECREF(one);
            if (reduced == NULL) goto failed;
        }
        if (Py_TYPE(item) == (PyTypeObject *)d->inline_type) {
            PyObject *grown = PySequence_InPlaceConcat(reduced, item);
            if (grown == NULL) goto failed;
            Py_SETREF(reduced, grown);
        } else if (PyList_Append(reduced, item) < 0) {
            goto failed;
        }
        break;
    }
    case R_CALL_ONE: {
        PyObject *child = at_offset(values, PyTuple_GET_ITEM(extra, 0));
        PyObject *one;
        if (child == NULL) goto failed;
        if ((one = PyTuple_Pack(1, child)) == NULL) goto failed;
        reduced = call_with(method, one, PyTuple_GET_ITEM(extra, 1));
        Py_DECREF(one);
        break;
    }
    case R_CALL_PICK: {
        PyObject *getter = PyTuple_GET_ITEM(extra, 0), *args;
        Py_ssize_t splice = PyLong_AsSsize_t(PyTuple_GET_ITEM(extra, 1));
        int padded = splice == -1 && PyErr_Occurred() ? -1 : PyObject_IsTrue(PyTuple_GET_ITEM(extra, 2));
        if (padded < 0) goto failed;
        if (padded) {
            if (PyList_Append(values, Py_None) < 0) goto failed;
            args = PyObject_CallOneArg(getter, values);
            if (PyList_SetSlice(values, n, n + 1, NULL) < 0) {
                Py_XDECREF(args);
                goto failed;
            }
        } else {
            args = PyObject_CallOneArg(getter, values);
        }
        if (args == NULL) goto failed;
        if (!PyTuple_Check(args)) {
            Py_DECREF(args);
            PyErr_SetString(PyExc_TypeError, "lalr_run: a getter that gives no tuple");
            goto failed;
        }
        if (splice >= 0 && splice < PyTuple_GET_SIZE(args) &&
            Py_TYPE(PyTuple_GET_ITEM(args, splice)) == (PyTypeObject *)d->inline_type) {
            PyObject *spliced = PyList_New(0);
            Py_ssize_t i, total = PyTuple_GET_SIZE(args);
            int bad = spliced == NULL;
            for (i = 0; !bad && i < total; i++) {
                PyObject *a = PyTuple_GET_ITEM(args, i);
                if (i == splice) {
                    Py_ssize_t at = PyList_GET_SIZE(spliced);
                    bad = PyList_SetSlice(spliced, at, at, a) < 0;
                } else {
                    bad = PyList_Append(spliced, a) < 0;
                }
            }
            Py_DECREF(args);
            if (bad) {
                Py_XDECREF(spliced);
                goto failed;
            }
            args = spliced;
        }
        reduced = call_with(method, args, NULL);
        Py_DECREF(args);
        break;
    }
    case R_PICK: {
        PyObject *child = at_offset(values, PyTuple_GET_ITEM(extra, 0));
        int expand;
        if (child == NULL) goto failed;
        if ((expand = PyObject_IsTrue(PyTuple_GET_ITEM(extra, 1))) < 0) goto failed;
        if (expand && Py_TYPE(child) == (PyTypeObject *)d->inline_type &&
            PyList_GET_SIZE(child) == 1)
            child = PyList_GET_ITEM(child, 0);
        reduced = Py_NewRef(child);
        break;
    }
    case R_CALL_ONE_SPLICE: {
        PyObject *child = at_offset(values, extra);
        if (child == NULL) goto failed;
        if (Py_TYPE(child) == (PyTypeObject *)d->inline_type)
            reduced = call_with(method, child, NULL);
        else
            reduced = PyObject_CallOneArg(method, child);
        break;
    }
    case R_CALL_NONE:
        reduced = call_with(method, extra, NULL);
        break;
    case R_NODE:
        if ((children = PyList_GetSlice(values, n - size, n)) == NULL) goto failed;
        reduced = PyObject_CallFunctionObjArgs(d->node_type, name, children, *span, NULL);
        break;
    default:
        if ((children = PyList_GetSlice(values, n - size, n)) == NULL) goto failed;
        reduced = PyObject_CallFunctionObjArgs(shaper, children, *span, NULL);
        break;
    }
    Py_XDECREF(children);
    if (reduced == NULL) Py_CLEAR(*span);
    return reduced;
failed:
    Py_XDECREF(children);
    Py_XDECREF(reduced);
    Py_CLEAR(*span);
    return NULL;
}

/* The token the engine's token hook makes of `*token` (the three references replaced). */
static int
hooked(Driver *d, PyObject **token, PyObject **kind, PyObject **value)
{
    PyObject *made = PyObject_CallOneArg(d->hook, *token);
    if (made == NULL) return -1;
    if (!PyTuple_Check(made) || PyTuple_GET_SIZE(made) != 4) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "lalr_run: a token hook that gives no token");
        return -1;
    }
    Py_SETREF(*token, made);
    Py_SETREF(*kind, Py_NewRef(PyTuple_GET_ITEM(made, 0)));
    Py_SETREF(*value, Py_NewRef(PyTuple_GET_ITEM(made, 1)));
    return 0;
}

/* The outcome, its value set to `value` (when not NULL): a new reference, or NULL. */
static PyObject *
finished(Driver *d, PyObject *value)
{
    if (value != NULL && PyObject_SetAttr(d->outcome, s_value, value) < 0) return NULL;
    return Py_NewRef(d->outcome);
}

/* Whether the parse stops after the syntax error just reported (`problem`): no recovery, too
 * many errors, or an error at the end with nowhere to go back to. 1, 0, or -1. */
static int
stops_after_error(Driver *d, PyObject *token)
{
    PyObject *problems, *limit, *checkpoint;
    Py_ssize_t count, most;
    int at_end;
    if (d->recovery == Py_None) return 1;
    if ((problems = PyObject_GetAttr(d->outcome, s_problems)) == NULL) return -1;
    count = PyObject_Length(problems);
    Py_DECREF(problems);
    if ((limit = PyObject_GetAttr(d->recovery, s_max_errors)) == NULL) return -1;
    most = PyLong_AsSsize_t(limit);
    Py_DECREF(limit);
    if ((count == -1 || most == -1) && PyErr_Occurred()) return -1;
    if (count >= most) return 1;
    if (token == Py_None) return 0;
    if (!PyTuple_Check(token) || PyTuple_GET_SIZE(token) < 1) return 0;
    if ((at_end = same_text(PyTuple_GET_ITEM(token, 0), d->end_kind)) <= 0) return at_end;
    if ((checkpoint = PyObject_GetAttr(d->run, s_checkpoint)) == NULL) return -1;
    at_end = checkpoint == Py_None;
    Py_DECREF(checkpoint);
    return at_end;
}

/* A checkpoint of the stacks (copies), as the run keeps it. */
static int
keep_checkpoint(Driver *d)
{
    PyObject *states = PyList_GetSlice(d->state_stack, 0, PyList_GET_SIZE(d->state_stack));
    PyObject *values = PyList_GetSlice(d->value_stack, 0, PyList_GET_SIZE(d->value_stack));
    PyObject *spans = PyList_GetSlice(d->span_stack, 0, PyList_GET_SIZE(d->span_stack));
    PyObject *checkpoint = NULL;
    int ok = -1;
    if (states != NULL && values != NULL && spans != NULL &&
        (checkpoint = PyTuple_Pack(3, states, values, spans)) != NULL)
        ok = PyObject_SetAttr(d->run, s_checkpoint, checkpoint);
    Py_XDECREF(states); Py_XDECREF(values); Py_XDECREF(spans); Py_XDECREF(checkpoint);
    return ok;
}

/* Track the brackets a shifted token opens and closes, as the run does. */
static int
track_bracket(Driver *d, PyObject *value, PyObject *shifted)
{
    Py_UCS4 c;
    PyObject *open;
    if (!PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) != 1) return 0;
    c = PyUnicode_READ_CHAR(value, 0);
    if (c == '{' || c == '(' || c == '[') {
        if ((open = PyTuple_Pack(2, value, PyTuple_GET_ITEM(shifted, 2))) == NULL) return -1;
        c = PyList_Append(d->brackets, open) < 0;
        Py_DECREF(open);
        return c ? -1 : 0;
    }
    if ((c == '}' || c == ')' || c == ']') && PyList_GET_SIZE(d->brackets) > 0)
        return PyList_SetSlice(d->brackets, PyList_GET_SIZE(d->brackets) - 1,
                               PyList_GET_SIZE(d->brackets), NULL);
    return 0;
}

static PyObject *
lalr_run(PyObject *self, PyObject *args)
{
    PyObject *run, *constants, *result = NULL;
    PyObject *state_obj = NULL, *pos_obj = NULL, *last = NULL, *pending = NULL;
    PyObject *token = NULL, *kind = NULL, *value = NULL, *shifted = NULL;
    PyObject *start = NULL, *end = NULL, *own = NULL, *own_match = NULL, *own_names = NULL;
    PyObject *step, *span = NULL, *reduced = NULL, *next = NULL, *empty = NULL;
    Py_ssize_t pos, nsteps, size;
    long state, code, how;
    int shaped, found, yes, at_end;
    Driver d;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO:lalr_run", &run, &constants)) return NULL;
    shaped = driver_setup(&d, run, constants);
    if (shaped != 0) {
        driver_clear(&d);
        if (shaped < 0) return NULL;
        Py_RETURN_NOTIMPLEMENTED;
    }
    nsteps = PyList_GET_SIZE(d.steps);
    if ((empty = PyUnicode_New(0, 0)) == NULL) goto done;
    if ((last = PyObject_GetAttr(run, s_last)) == NULL) goto done;
    if ((pos_obj = PyObject_GetAttr(run, s_pos)) == NULL) goto done;
    if ((pos = PyLong_AsSsize_t(pos_obj)) == -1 && PyErr_Occurred()) goto done;
    state_obj = Py_NewRef(PyList_GET_ITEM(d.state_stack, PyList_GET_SIZE(d.state_stack) - 1));
    if ((state = PyLong_AsLong(state_obj)) == -1 && PyErr_Occurred()) goto done;
    (void)pos;

    for (;;) {
        /* -- the next token (`kind` and `value` its first two items) -- */
        Py_CLEAR(token); Py_CLEAR(kind); Py_CLEAR(value);
        if (pending == NULL) {
            found = lead_token(&d, d.lead_match, d.lead_names, pos_obj, &kind, &value, &start,
                               &end);
            if (found < 0) goto done;
            if (found) {
                /* a keyword, unless the state takes a name and not this keyword */
                if ((yes = same_text(kind, d.ident)) < 0) goto done;
                if (yes) {
                    PyObject *keyword = PyDict_GetItemWithError(d.scanned_keywords, value);
                    if (keyword == NULL && PyErr_Occurred()) goto done;
                    if (keyword != NULL) {
                        int takes = accepted(&d, state, keyword);
                        if (takes == 0) takes = !accepted(&d, state, d.ident);
                        if (takes < 0 || PyErr_Occurred()) goto done;
                        if (takes) Py_SETREF(kind, Py_NewRef(keyword));
                    }
                }
                if ((yes = accepted(&d, state, kind)) < 0) goto done;
                if (yes) {
                    if ((token = PyTuple_Pack(4, kind, value, start, end)) == NULL) goto done;
                    Py_SETREF(pos_obj, Py_NewRef(end));
                    if (d.hook != Py_None && hooked(&d, &token, &kind, &value) < 0) goto done;
                }
                Py_CLEAR(start); Py_CLEAR(end);
                if (token == NULL) {
                    Py_CLEAR(kind);
                    Py_CLEAR(value);
                }
            }
            if (token == NULL) { /* the state's own lexer decides */
                own = PyDict_GetItemWithError(d.state_leads, state_obj);
                if (own != NULL) Py_INCREF(own);
                else if (PyErr_Occurred()) goto done;
                else if ((own = PyObject_CallMethodOneArg(d.engine, s_state_lead, state_obj)) == NULL)
                    goto done;
                if ((own_match = PyObject_GetAttr(own, s_match)) == NULL) goto done;
                if ((own_names = PyObject_GetAttr(own, s_terminals)) == NULL) goto done;
                found = lead_token(&d, own_match, own_names, pos_obj, &kind, &value, &start, &end);
                if (found < 0) goto done;
                if (found) {
                    if ((yes = same_text(kind, d.ident)) < 0) goto done;
                    if (yes) {
                        PyObject *keywords = PyObject_GetAttr(own, s_keywords), *keyword;
                        if (keywords == NULL) goto done;
                        keyword = PyObject_GetItem(keywords, value);
                        Py_DECREF(keywords);
                        if (keyword != NULL) Py_SETREF(kind, keyword);
                        else if (PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
                        else goto done;
                    }
                    if ((token = PyTuple_Pack(4, kind, value, start, end)) == NULL) goto done;
                    Py_SETREF(pos_obj, Py_NewRef(end));
                    Py_CLEAR(start); Py_CLEAR(end);
                    if (d.hook != Py_None && hooked(&d, &token, &kind, &value) < 0) goto done;
                } else { /* a comment, the end, a misplaced token or no token */
                    if (PyObject_SetAttr(run, s_pos, pos_obj) < 0) goto done;
                    if ((token = PyObject_CallMethodNoArgs(run, s_next_token)) == NULL) goto done;
                    Py_SETREF(pos_obj, PyObject_GetAttr(run, s_pos));
                    if (pos_obj == NULL) goto done;
                    if (token == Py_None) {
                        kind = Py_NewRef(d.none_kind);
                        value = Py_NewRef(empty);
                    } else if (PyTuple_Check(token) && PyTuple_GET_SIZE(token) == 4) {
                        kind = Py_NewRef(PyTuple_GET_ITEM(token, 0));
                        value = Py_NewRef(PyTuple_GET_ITEM(token, 1));
                    } else {
                        PyErr_SetString(PyExc_TypeError, "lalr_run: next_token gave no token");
                        goto done;
                    }
                }
                Py_CLEAR(own); Py_CLEAR(own_match); Py_CLEAR(own_names);
            }
        } else {
            token = pending;
            pending = NULL;
            if (!PyTuple_Check(token) || PyTuple_GET_SIZE(token) != 4) {
                PyErr_SetString(PyExc_TypeError, "lalr_run: recover gave no token");
                goto done;
            }
            kind = Py_NewRef(PyTuple_GET_ITEM(token, 0));
            value = Py_NewRef(PyTuple_GET_ITEM(token, 1));
        }
        if ((at_end = same_text(kind, d.end_kind)) < 0) goto done;
        /* -- reduce, then shift it (or report the syntax error) -- */
        Py_XSETREF(shifted, Py_NewRef(token));
        for (;;) {
            PyObject *entry = table_entry(&d, state, kind);
            if (entry == NULL) {
                PyObject *row, *renamed, *said;
                if (PyErr_Occurred()) goto done;
                if ((yes = same_text(kind, d.ident)) < 0) goto done;
                if (!yes) {
                    if ((yes = PyDict_Contains(d.keyword_types, value)) < 0) goto done;
                    if (yes) {
                        row = row_of(d.states, state);
                        if (row == NULL || (yes = PyDict_Contains(row, d.ident)) < 0) goto done;
                    }
                    if (yes && !PyTuple_Check(shifted)) {
                        PyErr_SetString(PyExc_TypeError, "lalr_run: a keyword with no token");
                        goto done;
                    }
                    if (yes) { /* a keyword where a name was meant */
                        Py_SETREF(kind, Py_NewRef(d.ident));
                        at_end = 0;
                        renamed = PyTuple_Pack(4, kind, value, PyTuple_GET_ITEM(shifted, 2),
                                               PyTuple_GET_ITEM(shifted, 3));
                        if (renamed == NULL) goto done;
                        Py_SETREF(shifted, renamed);
                        continue;
                    }
                }
                /* A syntax error: report it, then resume at the next declaration (or stop). */
                if (PyObject_SetAttr(run, s_pos, pos_obj) < 0) goto done;
                if (PyObject_SetAttr(run, s_last, last) < 0) goto done;
                if ((said = PyObject_CallMethodOneArg(run, s_problem, token)) == NULL) goto done;
                Py_DECREF(said);
                if ((yes = stops_after_error(&d, token)) < 0) goto done;
                if (yes) {
                    result = finished(&d, NULL);
                    goto done;
                }
                pending = PyObject_CallMethodObjArgs(run, s_recover, token, d.recovery, NULL);
                if (pending == NULL) goto done;
                if ((yes = driver_stacks(&d)) != 0) {
                    if (yes > 0)
                        PyErr_SetString(PyExc_TypeError, "lalr_run: stacks that are not lists");
                    goto done;
                }
                Py_SETREF(last, PyObject_GetAttr(run, s_last));
                if (last == NULL) goto done;
                Py_SETREF(pos_obj, PyObject_GetAttr(run, s_pos));
                if (pos_obj == NULL) goto done;
                Py_SETREF(state_obj, Py_NewRef(PyList_GET_ITEM(
                                         d.state_stack, PyList_GET_SIZE(d.state_stack) - 1)));
                if ((state = PyLong_AsLong(state_obj)) == -1 && PyErr_Occurred()) goto done;
                break;
            }
            code = PyLong_AsLong(entry);
            if (code == -1 && PyErr_Occurred()) {
                Py_DECREF(entry);
                goto done;
            }
            if (code >= 0) { /* shift */
                if ((yes = PySet_Contains(d.top_states, state_obj)) > 0)
                    yes = PySet_Contains(d.declaration_words, value);
                if (yes > 0) yes = keep_checkpoint(&d) < 0 ? -1 : 0;
                if (yes < 0) {
                    Py_DECREF(entry);
                    goto done;
                }
                Py_SETREF(state_obj, entry);
                state = code;
                if (PyList_Append(d.state_stack, state_obj) < 0 ||
                    PyList_Append(d.value_stack, shifted) < 0 ||
                    PyList_Append(d.span_stack, shifted) < 0)
                    goto done;
                if (track_bracket(&d, value, shifted) < 0) goto done;
                Py_SETREF(last, Py_NewRef(shifted));
                if (at_end) {
                    result = finished(&d, NULL);
                    goto done;
                }
                break;
            }
            Py_DECREF(entry);
            /* reduce */
            if (nsteps + code < 0) {
                PyErr_SetString(PyExc_IndexError, "lalr_run: a rule beyond the steps");
                goto done;
            }
            step = PyList_GET_ITEM(d.steps, nsteps + code);
            if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) != 7) {
                PyErr_SetString(PyExc_TypeError, "lalr_run: a step that is not a 7-tuple");
                goto done;
            }
            how = PyLong_AsLong(PyTuple_GET_ITEM(step, 0));
            size = PyLong_AsSsize_t(PyTuple_GET_ITEM(step, 1));
            if ((how == -1 || size == -1) && PyErr_Occurred()) goto done;
            if (how == R_KEEP ||
                (how == R_KEEP_NODE && PyList_GET_SIZE(d.value_stack) > 0 &&
                 Py_TYPE(PyList_GET_ITEM(d.value_stack, PyList_GET_SIZE(d.value_stack) - 1)) ==
                     (PyTypeObject *)d.node_type)) {
                PyObject *below = from_end(d.state_stack, -2);
                if (below == NULL) goto done;
                next = goto_state(&d, below, PyTuple_GET_ITEM(step, 2), &state);
                if (next == NULL) goto done;
                Py_SETREF(state_obj, Py_NewRef(next));
                if (PyList_SetItem(d.state_stack, PyList_GET_SIZE(d.state_stack) - 1, next) < 0) {
                    next = NULL;
                    goto done;
                }
                next = NULL;
                if (at_end && state == d.end_state) {
                    PyObject *top = from_end(d.value_stack, -1);
                    if (top != NULL) result = finished(&d, top);
                    goto done;
                }
                continue;
            }
            if ((reduced = reduction(&d, step, size, shifted, &span)) == NULL) goto done;
            if (size == 1) { /* the child's entry becomes the reduction's */
                Py_ssize_t top = PyList_GET_SIZE(d.state_stack) - 1;
                PyObject *below = from_end(d.state_stack, -2);
                if (below == NULL) goto done;
                next = goto_state(&d, below, PyTuple_GET_ITEM(step, 2), &state);
                if (next == NULL) goto done;
                Py_SETREF(state_obj, Py_NewRef(next));
                if (PyList_SetItem(d.state_stack, top, next) < 0) {
                    next = NULL;
                    goto done;
                }
                next = NULL;
                if (PyList_SetItem(d.value_stack, PyList_GET_SIZE(d.value_stack) - 1,
                                   Py_NewRef(reduced)) < 0)
                    goto done;
                yes = PyList_SetItem(d.span_stack, PyList_GET_SIZE(d.span_stack) - 1, span);
                span = NULL; /* (taken by the list, or freed, either way) */
                if (yes < 0) goto done;
                if (at_end && state == d.end_state) {
                    result = finished(&d, reduced);
                    goto done;
                }
                Py_CLEAR(reduced);
                continue;
            }
            if (size) {
                Py_ssize_t n = PyList_GET_SIZE(d.state_stack);
                if (PyList_SetSlice(d.state_stack, n - size, n, NULL) < 0) goto done;
                n = PyList_GET_SIZE(d.value_stack);
                if (PyList_SetSlice(d.value_stack, n - size, n, NULL) < 0) goto done;
                n = PyList_GET_SIZE(d.span_stack);
                if (PyList_SetSlice(d.span_stack, n - size, n, NULL) < 0) goto done;
            }
            if (PyList_GET_SIZE(d.state_stack) == 0) {
                PyErr_SetString(PyExc_IndexError, "lalr_run: an empty state stack");
                goto done;
            }
            next = goto_state(&d, PyList_GET_ITEM(d.state_stack,
                                                  PyList_GET_SIZE(d.state_stack) - 1),
                              PyTuple_GET_ITEM(step, 2), &state);
            if (next == NULL) goto done;
            Py_SETREF(state_obj, next);
            next = NULL;
            if (PyList_Append(d.state_stack, state_obj) < 0 ||
                PyList_Append(d.value_stack, reduced) < 0 ||
                PyList_Append(d.span_stack, span) < 0)
                goto done;
            Py_CLEAR(span);
            if (at_end && state == d.end_state) {
                result = finished(&d, reduced);
                goto done;
            }
            Py_CLEAR(reduced);
        }
    }
done:
    Py_XDECREF(state_obj); Py_XDECREF(pos_obj); Py_XDECREF(last); Py_XDECREF(pending);
    Py_XDECREF(token); Py_XDECREF(kind); Py_XDECREF(value); Py_XDECREF(shifted);
    Py_XDECREF(start); Py_XDECREF(end); Py_XDECREF(own); Py_XDECREF(own_match);
    Py_XDECREF(own_names); Py_XDECREF(span); Py_XDECREF(reduced); Py_XDECREF(next);
    Py_XDECREF(empty);
    driver_clear(&d);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_proposals", decode_proposals, METH_VARARGS,
     "decode_proposals(text, many, schema): a proposal's (or, many, a JSON array of "
     "proposals') header, action count and columns, or None to leave the text to the "
     "Python paths."},
    {"effect_writers", effect_writers, METH_O,
     "effect_writers(effects): the last position writing each expected_effects key."},
    {"merged_state", merged_state, METH_VARARGS,
     "merged_state(state, effects, levels, keys): a copy of state with the effects of the "
     "actions of levels applied in order, sized for keys more keys."},
    {"edges_levels", edges_levels, METH_VARARGS,
     "edges_levels(dependencies, writer, no_deps): parents, levels and whether every "
     "dependency is written, for a proposal without state writes or depends_on."},
    {"lalr_run", lalr_run, METH_VARARGS,
     "lalr_run(run, constants): lalr._Run.run_python in C; the run's Outcome, or "
     "NotImplemented for a run it does not take."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups",
    "The verifier's hot loops over JSON text, in C (optional; see the Python twins).", -1,
    methods};

/* What the Python side expects of this file (`speedups.ABI`): raised whenever a function's
 * contract or the schema's form changes, so that a stale build left in a source tree is not
 * used (`speedups.native` then takes the Python twins). */
#define ABI 3

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *created;
    if (driver_names() < 0) return NULL;
    created = PyModule_Create(&module);
    if (created != NULL && PyModule_AddIntConstant(created, "ABI", ABI) < 0) Py_CLEAR(created);
    return created;
}

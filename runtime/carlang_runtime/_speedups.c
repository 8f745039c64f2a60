/* carlang_runtime._speedups: the verifier's hot loops over JSON text, in C.
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
 * dag._plain_edges_levels and verify.state._merged_state.
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups",
    "The verifier's hot loops over JSON text, in C (optional; see the Python twins).", -1,
    methods};

/* What the Python side expects of this file (`speedups.ABI`): raised whenever a function's
 * contract or the schema's form changes, so that a stale build left in a source tree is not
 * used (`speedups.native` then takes the Python twins). */
#define ABI 2

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *created = PyModule_Create(&module);
    if (created != NULL && PyModule_AddIntConstant(created, "ABI", ABI) < 0) Py_CLEAR(created);
    return created;
}

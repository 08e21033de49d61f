#include "formats/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GLOBAL reads two text lines; real module and class names are short. */
#define MAX_GLOBAL_LINE 256

/* The kinds of Python object a state dict pickle builds. */
enum { K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT, K_GLOBAL, K_STORAGE, K_TENSOR };

/* The allowed globals. */
enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE };

typedef struct {
    uint8_t kind;
    uint8_t global;     /* K_GLOBAL: which */
    int32_t n, cap;     /* K_TUPLE, K_LIST, K_DICT: items (a dict holds key, value pairs) */
    union {
        int64_t i;      /* K_BOOL, K_INT */
        double f;       /* K_FLOAT */
        struct {
            const char *p; /* into the pickle bytes, not NUL-terminated */
            uint32_t len;
        } s;            /* K_STR */
        int32_t *items;
        int32_t ref;    /* K_STORAGE: index into storages; K_TENSOR: into tensors */
        DType dtype;    /* K_GLOBAL G_STORAGE */
    } v;
} Obj;

typedef struct {
    const char *key;
    uint32_t key_len;
    DType dtype;
    uint64_t numel;
} Storage;

typedef struct {
    int32_t storage;
    uint64_t offset;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS];
} Tens;

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    size_t at;          /* offset of the opcode being run, for messages */
    const char *label;
    Error *err;
    Obj *objs;
    int32_t n_objs, cap_objs;
    int32_t *stack;
    int32_t sp, cap_stack;
    int32_t marks[PICKLE_MAX_MARKS];
    int n_marks;
    int32_t *memo;      /* object index per key, -1 when unset */
    uint32_t memo_cap;
    uint32_t memo_count; /* keys set: the key MEMOIZE uses next */
    Storage *storages;
    int32_t n_storages, cap_storages;
    Tens *tensors;
    int32_t n_tensors, cap_tensors;
} Unpickler;

/* ---- errors ---- */

static void fail_msg(Unpickler *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A macro so that the compiler sees every failing path return -1. */
#define fail(u, ...) (fail_msg(u, __VA_ARGS__), -1)

static void fail_msg(Unpickler *u, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    error_set(u->err, "%s: at byte %zu: %s", u->label, u->at, what);
}

/* Up to cap - 1 bytes of s with anything unprintable as '?', for messages. */
static const char *printable(char *buf, size_t cap, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) buf[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n >= cap && cap > 4) memcpy(buf + cap - 4, "...", 3), k = cap - 1;
    buf[k] = 0;
    return buf;
}

static const char *kind_name(int k) {
    static const char *const names[] = {"None", "a bool", "an int", "a float", "a str", "a tuple", "a list",
                                        "a dict", "a global", "a storage", "a tensor"};
    return names[k];
}

/* ---- growing arrays ---- */

static int grow(void **p, int32_t *cap, int32_t need, size_t elem, int32_t limit) {
    if (need <= *cap) return 0;
    if (need > limit) return -1;
    int64_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > limit) c = limit;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q;
    *cap = (int32_t)c;
    return 0;
}

/* ---- objects and the stack ---- */

static int new_obj(Unpickler *u, int kind, int32_t *idx) {
    if (grow((void **)&u->objs, &u->cap_objs, u->n_objs + 1, sizeof *u->objs, PICKLE_MAX_OBJECTS) != 0)
        return u->n_objs >= PICKLE_MAX_OBJECTS ? fail(u, "more than %d objects", PICKLE_MAX_OBJECTS)
                                               : fail(u, "out of memory");
    Obj *o = &u->objs[u->n_objs];
    memset(o, 0, sizeof *o);
    o->kind = (uint8_t)kind;
    *idx = u->n_objs++;
    return 0;
}

static int push(Unpickler *u, int32_t idx) {
    if (grow((void **)&u->stack, &u->cap_stack, u->sp + 1, sizeof *u->stack, PICKLE_MAX_STACK) != 0)
        return u->sp >= PICKLE_MAX_STACK ? fail(u, "stack deeper than %d", PICKLE_MAX_STACK)
                                         : fail(u, "out of memory");
    u->stack[u->sp++] = idx;
    return 0;
}

static int push_new(Unpickler *u, int kind, Obj **o) {
    int32_t idx;
    if (new_obj(u, kind, &idx) != 0 || push(u, idx) != 0) return -1;
    *o = &u->objs[idx];
    return 0;
}

/* Items above the innermost mark are the current frame; nothing below it
 * may be popped until the mark is. */
static int32_t frame_base(const Unpickler *u) { return u->n_marks ? u->marks[u->n_marks - 1] : 0; }

static int pop(Unpickler *u, int32_t *idx) {
    if (u->sp <= frame_base(u)) return fail(u, "pops from an empty stack");
    *idx = u->stack[--u->sp];
    return 0;
}

static int top(Unpickler *u, int32_t *idx) {
    if (u->sp <= frame_base(u)) return fail(u, "reads from an empty stack");
    *idx = u->stack[u->sp - 1];
    return 0;
}

static int pop_mark(Unpickler *u, int32_t *start) {
    if (u->n_marks == 0) return fail(u, "needs a MARK but there is none");
    *start = u->marks[--u->n_marks];
    return 0;
}

static int append_item(Unpickler *u, Obj *o, int32_t item) {
    if (o->n == o->cap) {
        int32_t cap = o->cap;
        int32_t *items = o->v.items;
        if (grow((void **)&items, &cap, o->n + 1, sizeof *items, INT32_MAX / 2) != 0) return fail(u, "out of memory");
        o->v.items = items;
        o->cap = cap;
    }
    o->v.items[o->n++] = item;
    return 0;
}

/* A new container of kind holding stack[start, sp), which are popped. */
static int collect(Unpickler *u, int kind, int32_t start) {
    int32_t n = u->sp - start, idx;
    if (new_obj(u, kind, &idx) != 0) return -1;
    Obj *o = &u->objs[idx];
    if (n > 0) {
        o->v.items = malloc((size_t)n * sizeof *o->v.items);
        if (!o->v.items) return fail(u, "out of memory");
        memcpy(o->v.items, u->stack + start, (size_t)n * sizeof *o->v.items);
        o->n = o->cap = n;
    }
    u->sp = start;
    return push(u, idx);
}

/* ---- reading operands ---- */

static int take(Unpickler *u, size_t n, const uint8_t **p) {
    if (n > u->size - u->pos) return fail(u, "truncated: the opcode needs %zu more bytes than the pickle has", n);
    *p = u->p + u->pos;
    u->pos += n;
    return 0;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int read_uint(Unpickler *u, int n, uint64_t *v) {
    const uint8_t *p;
    if (take(u, (size_t)n, &p) != 0) return -1;
    *v = le(p, n);
    return 0;
}

/* ---- opcodes: values ---- */

static int push_int(Unpickler *u, int kind, int64_t v) {
    Obj *o;
    if (push_new(u, kind, &o) != 0) return -1;
    o->v.i = v;
    return 0;
}

static int op_binint(Unpickler *u, int n) {
    uint64_t v;
    if (read_uint(u, n, &v) != 0) return -1;
    return push_int(u, K_INT, n == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v);
}

/* LONG1: a little-endian two's complement integer of n bytes. */
static int op_long1(Unpickler *u) {
    uint64_t n, v = 0;
    const uint8_t *p;
    if (read_uint(u, 1, &n) != 0 || take(u, n, &p) != 0) return -1;
    if (n > 8) return fail(u, "an integer of %llu bytes is too large", (unsigned long long)n);
    if (n > 0) {
        v = le(p, (int)n);
        if (n < 8 && (p[n - 1] & 0x80)) v |= ~0ull << (8 * n);
    }
    return push_int(u, K_INT, (int64_t)v);
}

static int op_binfloat(Unpickler *u) {
    const uint8_t *p;
    if (take(u, 8, &p) != 0) return -1;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) bits = (bits << 8) | p[i]; /* big-endian, unlike everything else */
    Obj *o;
    if (push_new(u, K_FLOAT, &o) != 0) return -1;
    memcpy(&o->v.f, &bits, sizeof bits);
    return 0;
}

/* The string opcodes: a length of len_bytes bytes, then the text. */
static int op_string(Unpickler *u, int len_bytes, int is_signed) {
    uint64_t n;
    const uint8_t *p;
    if (read_uint(u, len_bytes, &n) != 0) return -1;
    if (is_signed && (n & 0x80000000u)) return fail(u, "a string has a negative length");
    if (n > PICKLE_MAX_STRING) return fail(u, "a string of %llu bytes (at most %d)", (unsigned long long)n,
                                           PICKLE_MAX_STRING);
    if (take(u, (size_t)n, &p) != 0) return -1;
    Obj *o;
    if (push_new(u, K_STR, &o) != 0) return -1;
    o->v.s.p = (const char *)p;
    o->v.s.len = (uint32_t)n;
    return 0;
}

/* ---- opcodes: containers ---- */

static int op_tuple_n(Unpickler *u, int32_t n) {
    if (u->sp - frame_base(u) < n) return fail(u, "TUPLE%d needs %d stack items", n, n);
    return collect(u, K_TUPLE, u->sp - n);
}

static int op_from_mark(Unpickler *u, int kind) {
    int32_t start;
    if (pop_mark(u, &start) != 0) return -1;
    if (kind == K_DICT && (u->sp - start) % 2) return fail(u, "DICT with an odd number of items");
    return collect(u, kind, start);
}

/* APPEND(S) and SETITEM(S): items from start move into the container just
 * below them, which must be a list (append) or a dict (setitem). */
static int add_items(Unpickler *u, int32_t start, int kind) {
    if (start <= frame_base(u)) return fail(u, "%s with no container below", kind == K_DICT ? "SETITEM" : "APPEND");
    Obj *c = &u->objs[u->stack[start - 1]];
    if (c->kind != kind)
        return fail(u, "%s on %s", kind == K_DICT ? "SETITEM" : "APPEND", kind_name(c->kind));
    if (kind == K_DICT && (u->sp - start) % 2) return fail(u, "SETITEMS with an odd number of items");
    for (int32_t i = start; i < u->sp; i++)
        if (append_item(u, &u->objs[u->stack[start - 1]], u->stack[i]) != 0) return -1;
    u->sp = start;
    return 0;
}

static int op_add_one(Unpickler *u, int kind) {
    int32_t need = kind == K_DICT ? 2 : 1;
    if (u->sp - frame_base(u) < need + 1) return fail(u, "%s needs %d stack items", kind == K_DICT ? "SETITEM" : "APPEND", need + 1);
    return add_items(u, u->sp - need, kind);
}

static int op_add_many(Unpickler *u, int kind) {
    int32_t start;
    if (pop_mark(u, &start) != 0) return -1;
    return add_items(u, start, kind);
}

static int op_mark(Unpickler *u) {
    if (u->n_marks == PICKLE_MAX_MARKS) return fail(u, "marks nested deeper than %d", PICKLE_MAX_MARKS);
    u->marks[u->n_marks++] = u->sp;
    return 0;
}

static int op_pop(Unpickler *u) {
    int32_t idx;
    /* As Python does: POP right after MARK drops the mark. */
    if (u->n_marks && u->marks[u->n_marks - 1] == u->sp) return pop_mark(u, &idx);
    return pop(u, &idx);
}

/* ---- opcodes: memo ---- */

static int memo_put(Unpickler *u, uint64_t key) {
    int32_t idx;
    if (top(u, &idx) != 0) return -1;
    if (key >= PICKLE_MAX_MEMO) return fail(u, "memo key %llu (at most %d)", (unsigned long long)key, PICKLE_MAX_MEMO - 1);
    if (key >= u->memo_cap) {
        uint32_t cap = u->memo_cap ? u->memo_cap : 64;
        while (cap <= key) cap *= 2;
        int32_t *m = realloc(u->memo, (size_t)cap * sizeof *m);
        if (!m) return fail(u, "out of memory");
        for (uint32_t i = u->memo_cap; i < cap; i++) m[i] = -1;
        u->memo = m;
        u->memo_cap = cap;
    }
    if (u->memo[key] < 0) u->memo_count++;
    u->memo[key] = idx;
    return 0;
}

static int op_put(Unpickler *u, int n) {
    uint64_t key;
    if (read_uint(u, n, &key) != 0) return -1;
    return memo_put(u, key);
}

static int op_get(Unpickler *u, int n) {
    uint64_t key;
    if (read_uint(u, n, &key) != 0) return -1;
    if (key >= u->memo_cap || u->memo[key] < 0)
        return fail(u, "memo key %llu was never stored", (unsigned long long)key);
    return push(u, u->memo[key]);
}

/* ---- opcodes: globals ---- */

static const struct {
    const char *name;
    DType dtype;
} storages[] = {
    {"FloatStorage", DT_F32}, {"HalfStorage", DT_F16}, {"BFloat16Storage", DT_BF16},
    {"DoubleStorage", DT_F64}, {"LongStorage", DT_I64}, {"IntStorage", DT_I32},
    {"ShortStorage", DT_I16}, {"CharStorage", DT_I8},   {"ByteStorage", DT_U8},
    {"BoolStorage", DT_BOOL},
};

const char *pickle_storage_name(DType dt) {
    for (size_t i = 0; i < sizeof storages / sizeof storages[0]; i++)
        if (storages[i].dtype == dt) return storages[i].name;
    return NULL;
}

static int is(const char *s, size_t n, const char *lit) { return strlen(lit) == n && memcmp(s, lit, n) == 0; }

/* Pushes the global module.name when the allow-list has it. */
static int push_global(Unpickler *u, const char *mod, size_t mod_len, const char *name, size_t name_len) {
    int g = -1;
    DType dt = DT_F32;
    if (is(mod, mod_len, "collections") && is(name, name_len, "OrderedDict")) g = G_ORDERED_DICT;
    else if (is(mod, mod_len, "torch._utils") && is(name, name_len, "_rebuild_tensor_v2")) g = G_REBUILD_TENSOR;
    else if (is(mod, mod_len, "torch._utils") && is(name, name_len, "_rebuild_parameter")) g = G_REBUILD_PARAMETER;
    else if (is(mod, mod_len, "torch"))
        for (size_t i = 0; i < sizeof storages / sizeof storages[0]; i++)
            if (is(name, name_len, storages[i].name)) g = G_STORAGE, dt = storages[i].dtype;
    if (g < 0) {
        char m[100], n[100];
        return error_set(u->err, "%s asks for global '%s.%s', which is not allowed in a state dict (vmed never runs "
                         "code from a pickle)", u->label, printable(m, sizeof m, mod, mod_len),
                         printable(n, sizeof n, name, name_len));
    }
    Obj *o;
    if (push_new(u, K_GLOBAL, &o) != 0) return -1;
    o->global = (uint8_t)g;
    o->v.dtype = dt;
    return 0;
}

static int read_line(Unpickler *u, const char **s, size_t *n) {
    size_t left = u->size - u->pos;
    const uint8_t *start = u->p + u->pos;
    const uint8_t *nl = memchr(start, '\n', left < MAX_GLOBAL_LINE ? left : MAX_GLOBAL_LINE);
    if (!nl) return fail(u, "GLOBAL without a newline-terminated name of at most %d bytes", MAX_GLOBAL_LINE);
    *s = (const char *)start;
    *n = (size_t)(nl - start);
    u->pos += *n + 1;
    return 0;
}

static int op_global(Unpickler *u) {
    const char *mod, *name;
    size_t mod_len, name_len;
    if (read_line(u, &mod, &mod_len) != 0 || read_line(u, &name, &name_len) != 0) return -1;
    return push_global(u, mod, mod_len, name, name_len);
}

static int op_stack_global(Unpickler *u) {
    int32_t n, m;
    if (pop(u, &n) != 0 || pop(u, &m) != 0) return -1;
    const Obj *name = &u->objs[n], *mod = &u->objs[m];
    if (name->kind != K_STR || mod->kind != K_STR)
        return fail(u, "STACK_GLOBAL on %s and %s, expected two str", kind_name(mod->kind), kind_name(name->kind));
    return push_global(u, mod->v.s.p, mod->v.s.len, name->v.s.p, name->v.s.len);
}

/* ---- opcodes: persistent ids (storages) ---- */

/* ('storage', <storage type>, key, location, numel): a storage whose
 * bytes are the zip entry data/<key>. */
static int op_binpersid(Unpickler *u) {
    int32_t pid;
    if (pop(u, &pid) != 0) return -1;
    const Obj *t = &u->objs[pid];
    if (t->kind != K_TUPLE || t->n != 5)
        return fail(u, "a persistent id is %s, expected ('storage', type, key, location, numel)", kind_name(t->kind));
    const Obj *tag = &u->objs[t->v.items[0]], *type = &u->objs[t->v.items[1]], *key = &u->objs[t->v.items[2]];
    const Obj *loc = &u->objs[t->v.items[3]], *numel = &u->objs[t->v.items[4]];
    if (tag->kind != K_STR || !is(tag->v.s.p, tag->v.s.len, "storage"))
        return fail(u, "a persistent id is not a ('storage', ...) tuple");
    if (type->kind != K_GLOBAL || type->global != G_STORAGE)
        return fail(u, "a persistent id names %s as its storage type, expected a torch.*Storage class",
                    kind_name(type->kind));
    if (key->kind != K_STR || key->v.s.len == 0 || key->v.s.len > PICKLE_MAX_KEY || memchr(key->v.s.p, 0, key->v.s.len))
        return fail(u, "a persistent id's storage key is not a str of 1..%d bytes", PICKLE_MAX_KEY);
    if (loc->kind != K_STR) return fail(u, "a persistent id's location is %s, expected a str", kind_name(loc->kind));
    if (numel->kind != K_INT || numel->v.i < 0)
        return fail(u, "a persistent id's element count is not a non-negative int");
    if (grow((void **)&u->storages, &u->cap_storages, u->n_storages + 1, sizeof *u->storages, PICKLE_MAX_OBJECTS))
        return fail(u, "out of memory");
    Storage *s = &u->storages[u->n_storages];
    s->key = key->v.s.p;
    s->key_len = key->v.s.len;
    s->dtype = type->v.dtype;
    s->numel = (uint64_t)numel->v.i;
    Obj *o;
    if (push_new(u, K_STORAGE, &o) != 0) return -1;
    o->v.ref = u->n_storages++;
    return 0;
}

/* ---- opcodes: calls ---- */

/* A tuple of at most TENSOR_MAX_DIMS non-negative ints into out. */
static int int_tuple(Unpickler *u, const Obj *t, const char *what, int64_t *out, int *n) {
    if (t->kind != K_TUPLE) return fail(u, "_rebuild_tensor_v2 %s is %s, expected a tuple", what, kind_name(t->kind));
    if (t->n > TENSOR_MAX_DIMS)
        return fail(u, "a tensor has %d dimensions, at most %d are supported", t->n, TENSOR_MAX_DIMS);
    for (int i = 0; i < t->n; i++) {
        const Obj *d = &u->objs[t->v.items[i]];
        if (d->kind != K_INT || d->v.i < 0)
            return fail(u, "_rebuild_tensor_v2 %s[%d] is not a non-negative int", what, i);
        out[i] = d->v.i;
    }
    *n = t->n;
    return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]). */
static int call_rebuild_tensor(Unpickler *u, const Obj *args) {
    if (args->n != 6 && args->n != 7)
        return fail(u, "_rebuild_tensor_v2 called with %d arguments, expected 6 or 7", args->n);
    const Obj *a[7];
    for (int i = 0; i < args->n; i++) a[i] = &u->objs[args->v.items[i]];
    if (a[0]->kind != K_STORAGE)
        return fail(u, "_rebuild_tensor_v2 storage is %s, expected a persistent storage", kind_name(a[0]->kind));
    if (a[1]->kind != K_INT || a[1]->v.i < 0)
        return fail(u, "_rebuild_tensor_v2 storage_offset is not a non-negative int");
    if (a[4]->kind != K_BOOL) return fail(u, "_rebuild_tensor_v2 requires_grad is %s", kind_name(a[4]->kind));
    if (a[5]->kind != K_DICT) return fail(u, "_rebuild_tensor_v2 backward_hooks is %s", kind_name(a[5]->kind));
    if (args->n == 7 && a[6]->kind != K_DICT && a[6]->kind != K_NONE)
        return fail(u, "_rebuild_tensor_v2 metadata is %s", kind_name(a[6]->kind));
    Tens t = {.storage = a[0]->v.ref, .offset = (uint64_t)a[1]->v.i};
    int nstride;
    if (int_tuple(u, a[2], "size", t.shape, &t.ndim) != 0 || int_tuple(u, a[3], "stride", t.stride, &nstride) != 0)
        return -1;
    if (nstride != t.ndim)
        return fail(u, "_rebuild_tensor_v2 has %d sizes but %d strides", t.ndim, nstride);
    if (grow((void **)&u->tensors, &u->cap_tensors, u->n_tensors + 1, sizeof *u->tensors, PICKLE_MAX_OBJECTS))
        return fail(u, "out of memory");
    u->tensors[u->n_tensors] = t;
    Obj *o;
    if (push_new(u, K_TENSOR, &o) != 0) return -1;
    o->v.ref = u->n_tensors++;
    return 0;
}

static int op_reduce(Unpickler *u) {
    int32_t ai, fi;
    if (pop(u, &ai) != 0 || pop(u, &fi) != 0) return -1;
    const Obj *f = &u->objs[fi], *args = &u->objs[ai];
    if (f->kind != K_GLOBAL || f->global == G_STORAGE)
        return fail(u, "REDUCE calls %s, which is not an allowed callable (vmed never runs code from a pickle)",
                    f->kind == K_GLOBAL ? "a torch storage class" : kind_name(f->kind));
    if (args->kind != K_TUPLE) return fail(u, "REDUCE with %s as arguments, expected a tuple", kind_name(args->kind));
    if (f->global == G_REBUILD_TENSOR) return call_rebuild_tensor(u, args);
    if (f->global == G_REBUILD_PARAMETER) {
        /* _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself. */
        if (args->n != 3 || u->objs[args->v.items[0]].kind != K_TENSOR)
            return fail(u, "_rebuild_parameter called without (tensor, requires_grad, backward_hooks)");
        return push(u, args->v.items[0]);
    }
    if (args->n != 0) return fail(u, "OrderedDict called with %d arguments, expected none", args->n);
    Obj *o;
    return push_new(u, K_DICT, &o);
}

/* BUILD sets an object's state; torch uses it only for the state dict's
 * _metadata attribute (layer versions), which vmed does not need. */
static int op_build(Unpickler *u) {
    int32_t si, oi;
    if (pop(u, &si) != 0 || top(u, &oi) != 0) return -1;
    int sk = u->objs[si].kind, ok = u->objs[oi].kind;
    if (ok != K_DICT || (sk != K_DICT && sk != K_NONE))
        return fail(u, "BUILD sets %s as the state of %s; a state dict only sets a dict's attributes",
                    kind_name(sk), kind_name(ok));
    return 0;
}

static int op_frame(Unpickler *u) {
    uint64_t n;
    if (read_uint(u, 8, &n) != 0) return -1;
    if (n > u->size - u->pos) return fail(u, "a FRAME of %llu bytes runs past the end", (unsigned long long)n);
    return 0;
}

static int op_proto(Unpickler *u) {
    uint64_t v;
    if (read_uint(u, 1, &v) != 0) return -1;
    if (v < 2 || v > 5) return fail(u, "pickle protocol %llu; torch writes 2, and 2..5 are read", (unsigned long long)v);
    return 0;
}

/* ---- the machine ---- */

static int step(Unpickler *u, uint8_t op) {
    int32_t idx;
    Obj *o;
    switch (op) {
    case 0x80: return op_proto(u);
    case 0x95: return op_frame(u);
    case 'N': return push_new(u, K_NONE, &o);
    case 0x88: return push_int(u, K_BOOL, 1);
    case 0x89: return push_int(u, K_BOOL, 0);
    case 'J': return op_binint(u, 4);
    case 'K': return op_binint(u, 1);
    case 'M': return op_binint(u, 2);
    case 0x8a: return op_long1(u);
    case 'G': return op_binfloat(u);
    case 'X': return op_string(u, 4, 0);
    case 0x8d: return op_string(u, 8, 0);
    case 0x8c: return op_string(u, 1, 0);
    case 'U': return op_string(u, 1, 0);
    case 'T': return op_string(u, 4, 1);
    case '}': return push_new(u, K_DICT, &o);
    case ']': return push_new(u, K_LIST, &o);
    case ')': return push_new(u, K_TUPLE, &o);
    case '(': return op_mark(u);
    case 't': return op_from_mark(u, K_TUPLE);
    case 'l': return op_from_mark(u, K_LIST);
    case 'd': return op_from_mark(u, K_DICT);
    case 0x85: return op_tuple_n(u, 1);
    case 0x86: return op_tuple_n(u, 2);
    case 0x87: return op_tuple_n(u, 3);
    case 'a': return op_add_one(u, K_LIST);
    case 'e': return op_add_many(u, K_LIST);
    case 's': return op_add_one(u, K_DICT);
    case 'u': return op_add_many(u, K_DICT);
    case '0': return op_pop(u);
    case '1': return pop_mark(u, &idx) == 0 ? (u->sp = idx, 0) : -1;
    case '2': return top(u, &idx) == 0 ? push(u, idx) : -1;
    case 'q': return op_put(u, 1);
    case 'r': return op_put(u, 4);
    case 0x94: return memo_put(u, u->memo_count);
    case 'h': return op_get(u, 1);
    case 'j': return op_get(u, 4);
    case 'c': return op_global(u);
    case 0x93: return op_stack_global(u);
    case 'R': return op_reduce(u);
    case 'b': return op_build(u);
    case 'Q': return op_binpersid(u);
    default:
        return fail(u, "opcode 0x%02x ('%c') is not one a state dict uses", op, op >= 0x20 && op < 0x7f ? op : '?');
    }
}

static int run(Unpickler *u, int32_t *result) {
    for (;;) {
        if (u->pos >= u->size) return fail(u, "the pickle ends without a STOP opcode");
        u->at = u->pos;
        uint8_t op = u->p[u->pos++];
        if (op == '.') return pop(u, result);
        if (step(u, op) != 0) return -1;
    }
}

/* ---- the state dict ---- */

static int shape_text(char *buf, size_t cap, int ndim, const int64_t *v) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)v[i]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
    return 0;
}

/* Row-major strides, ignoring dimensions of size 1, where any stride is
 * valid. Called only for non-empty tensors whose element count fits. */
static int is_contiguous(const PickleTensor *t) {
    int64_t want = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != want) return 0;
        want *= t->shape[i];
    }
    return 1;
}

/* Elements of the tensor, or -1 past 2^62. */
static int64_t numel_of(const PickleTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) return 0;
        if (n > ((int64_t)1 << 62) / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return n;
}

static int check_tensor(const PickleTensor *t, const char *label, Error *err) {
    char sh[200], st[200];
    shape_text(sh, sizeof sh, t->ndim, t->shape);
    int64_t n = numel_of(t);
    if (n < 0) return error_set(err, "%s: tensor '%s' of shape %s is too large", label, t->name, sh);
    if (n == 0) return 0; /* nothing is read: any strides and offset will do */
    if (!is_contiguous(t)) {
        shape_text(st, sizeof st, t->ndim, t->stride);
        return error_set(err, "%s: tensor '%s' of shape %s has strides %s: it is not contiguous (vmed uses tensors "
                         "in place; save it after .contiguous())", label, t->name, sh, st);
    }
    if (t->storage_offset > t->storage_numel || (uint64_t)n > t->storage_numel - t->storage_offset)
        return error_set(err, "%s: tensor '%s' of shape %s at offset %llu needs %llu elements of storage '%s', "
                         "which holds %llu", label, t->name, sh, (unsigned long long)t->storage_offset,
                         (unsigned long long)t->storage_offset + (unsigned long long)n, t->storage,
                         (unsigned long long)t->storage_numel);
    return 0;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int export_tensor(const Unpickler *u, const Obj *key, const Obj *val, PickleTensor *out, Error *err) {
    const Tens *t = &u->tensors[val->v.ref];
    const Storage *s = &u->storages[t->storage];
    memset(out, 0, sizeof *out);
    out->name = dup_bytes(key->v.s.p, key->v.s.len);
    out->storage = dup_bytes(s->key, s->key_len);
    if (!out->name || !out->storage) return error_set(err, "%s: out of memory", u->label);
    out->dtype = s->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    memcpy(out->stride, t->stride, sizeof out->stride);
    out->storage_offset = t->offset;
    out->storage_numel = s->numel;
    return check_tensor(out, u->label, err);
}

static int export_state_dict(const Unpickler *u, int32_t root, PickleStateDict *sd, Error *err) {
    const Obj *d = &u->objs[root];
    if (d->kind != K_DICT)
        return error_set(err, "%s: the pickle holds %s, not a state dict (a dict of name -> tensor)", u->label,
                         kind_name(d->kind));
    int n = d->n / 2;
    sd->tensors = calloc(n ? (size_t)n : 1, sizeof *sd->tensors);
    if (!sd->tensors) return error_set(err, "%s: out of memory", u->label);
    for (int i = 0; i < n; i++) {
        const Obj *k = &u->objs[d->v.items[2 * i]], *v = &u->objs[d->v.items[2 * i + 1]];
        char name[100];
        if (k->kind != K_STR) return error_set(err, "%s: a state dict key is %s, expected a str", u->label, kind_name(k->kind));
        if (memchr(k->v.s.p, 0, k->v.s.len))
            return error_set(err, "%s: state dict key '%s' holds a NUL byte", u->label,
                             printable(name, sizeof name, k->v.s.p, k->v.s.len));
        if (v->kind != K_TENSOR)
            return error_set(err, "%s: state dict key '%s' holds %s, not a tensor", u->label,
                             printable(name, sizeof name, k->v.s.p, k->v.s.len), kind_name(v->kind));
        int rc = export_tensor(u, k, v, &sd->tensors[i], err);
        sd->n_tensors++;
        if (rc != 0) return -1;
    }
    return 0;
}

static void unpickler_free(Unpickler *u) {
    for (int32_t i = 0; i < u->n_objs; i++) {
        int k = u->objs[i].kind;
        if (k == K_TUPLE || k == K_LIST || k == K_DICT) free(u->objs[i].v.items);
    }
    free(u->objs);
    free(u->stack);
    free(u->memo);
    free(u->storages);
    free(u->tensors);
}

int pickle_read_state_dict(PickleStateDict *sd, const uint8_t *data, size_t size, const char *label, Error *err) {
    memset(sd, 0, sizeof *sd);
    Unpickler u = {.p = data, .size = size, .label = label, .err = err};
    int32_t root;
    int rc = run(&u, &root);
    if (rc == 0) rc = export_state_dict(&u, root, sd, err);
    unpickler_free(&u);
    if (rc != 0) pickle_state_dict_free(sd);
    return rc;
}

void pickle_state_dict_free(PickleStateDict *sd) {
    for (int i = 0; i < sd->n_tensors; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage);
    }
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}

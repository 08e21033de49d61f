#include "models/llama_lora.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "tensor/matmul.h"

/* ------------------------------------------------------------ modules */

static const char *const SLOT_NAMES[LORA_N_SLOTS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

const char *lora_slot_name(LoraSlot slot) { return SLOT_NAMES[slot]; }

/* The short name peft users write in target_modules ("q_proj"). */
static const char *slot_short(int slot) { return strchr(SLOT_NAMES[slot], '.') + 1; }

static void slot_dims(const LlamaConfig *c, int slot, long *out, long *in) {
    long q_dim = (long)c->n_heads * c->head_dim, kv_dim = (long)c->n_kv_heads * c->head_dim;
    long outs[LORA_N_SLOTS] = {q_dim, kv_dim, kv_dim, c->dim, c->hidden_dim, c->hidden_dim, c->dim};
    long ins[LORA_N_SLOTS] = {c->dim, c->dim, c->dim, q_dim, c->dim, c->dim, c->hidden_dim};
    *out = outs[slot];
    *in = ins[slot];
}

static Tensor *slot_weight(LlamaLayer *L, int slot) {
    Tensor *ws[LORA_N_SLOTS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return ws[slot];
}

/* "model.layers.<i>.<slot name>" -> layer and slot; -1 when key names no
 * linear of a LLaMA layer. Layer numbers are plain decimals, as PyTorch
 * names ModuleList entries. */
static int parse_module_key(const char *key, int *layer, int *slot) {
    static const char prefix[] = "model.layers.";
    if (strncmp(key, prefix, sizeof prefix - 1) != 0) return -1;
    const char *p = key + sizeof prefix - 1;
    long v = 0;
    int digits = 0;
    for (; isdigit((unsigned char)*p) && digits < 9; p++, digits++) v = v * 10 + (*p - '0');
    if (digits == 0 || *p != '.' || (digits > 1 && key[sizeof prefix - 1] == '0')) return -1;
    for (int s = 0; s < LORA_N_SLOTS; s++) {
        if (strcmp(p + 1, SLOT_NAMES[s]) == 0) {
            *layer = (int)v;
            *slot = s;
            return 0;
        }
    }
    return -1;
}

static void module_key(char *buf, size_t cap, int layer, int slot) {
    snprintf(buf, cap, "model.layers.%d.%s", layer, SLOT_NAMES[slot]);
}

/* ------------------------------------------------------------ loading */

/* peft's own default for LLaMA when target_modules is absent. */
static int default_targets(PeftConfig *c, Error *err) {
    static const char *const names[] = {"q_proj", "v_proj"};
    c->targets = calloc(2, sizeof *c->targets);
    if (!c->targets) return error_set(err, "out of memory");
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(names[i]) + 1;
        if (!(c->targets[i] = malloc(n))) return error_set(err, "out of memory");
        memcpy(c->targets[i], names[i], n);
        c->n_targets = i + 1;
    }
    return 0;
}

/* Every target must name some linear of the model, as peft insists. */
static int check_targets_exist(const PeftConfig *c, int n_layers, Error *err) {
    for (int i = 0; i < c->n_targets; i++) {
        const char *t = c->targets[i];
        int found = 0;
        char key[128];
        for (int l = 0; l < n_layers && !found; l++)
            for (int s = 0; s < LORA_N_SLOTS && !found; s++) {
                module_key(key, sizeof key, l, s);
                found = peft_name_matches(key, t);
            }
        if (found) continue;
        if (peft_name_matches("lm_head", t) || peft_name_matches("model.embed_tokens", t))
            return error_set(err, "%s: target module '%s' is not supported (LoRA on the q/k/v/o_proj and "
                                  "gate/up/down_proj linears only)",
                             c->path, t);
        return error_set(err, "%s: target module '%s' is not a module of this LLaMA model (%d layers)", c->path, t,
                         n_layers);
    }
    return 0;
}

/* The last path component, without trailing slashes or a .gguf ending:
 * "decapoda-research/llama-7b-hf/" -> "llama-7b-hf". */
static void short_name(const char *p, char *out, size_t cap) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && p[start - 1] != '/') start--;
    size_t len = n - start;
    if (len > 5 && strncmp(p + start + len - 5, ".gguf", 5) == 0) len -= 5;
    if (len >= cap) len = cap - 1;
    memcpy(out, p + start, len);
    out[len] = 0;
}

static int same_short_name(const char *a, const char *b) {
    char x[256], y[256];
    short_name(a, x, sizeof x);
    short_name(b, y, sizeof y);
    return x[0] && strcasecmp(x, y) == 0;
}

/* base_model_name_or_path is mostly a hub id ("decapoda-research/llama-7b-hf")
 * while the base here is a local folder: the names are taken to agree when
 * their last components do, against the folder or the _name_or_path its
 * config.json records. A disagreement is only a warning: the shapes decide. */
static void check_base_name(LlamaLora *l, const Llama *base) {
    const char *want = l->config.base_model;
    if (!want || same_short_name(want, base->dir)) return;
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", base->dir);
    cJSON *root = NULL;
    Error ignored;
    if (json_load_file(&root, path, 1 << 20, &ignored) == 0) {
        const char *recorded = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "_name_or_path"));
        int same = recorded && same_short_name(want, recorded);
        cJSON_Delete(root);
        if (same) return;
    }
    snprintf(l->warning, sizeof l->warning,
             "%s: base_model_name_or_path is '%s' but the base model is '%s'; the shapes fit, so the adapter is "
             "applied anyway",
             l->config.path, want, base->dir);
}

/* The tensor as f32 in new memory (adapter files may hold F16/BF16, and
 * their data need not be aligned). */
static float *to_f32(const StTensor *t) {
    size_t n = t->nbytes / dtype_size(t->dtype);
    float *out = malloc((n ? n : 1) * sizeof(float));
    void *raw = malloc(t->nbytes ? t->nbytes : 1);
    if (out && raw) {
        memcpy(raw, t->data, t->nbytes);
        convert_to_f32(KERNEL_SCALAR, out, raw, t->dtype, (long)n);
    } else {
        free(out);
        out = NULL;
    }
    free(raw);
    return out;
}

typedef struct {
    LlamaLora *l;
    const LlamaConfig *c;
    const SafeTensors *st;
    int base_differs; /* for the hint after a shape error */
    const char *base_dir;
    int adjacent_pairs; /* the base's q/k rows are in llama.cpp's order */
} LoadCtx;

/* llama.cpp's converter reorders the rows of each q/k head from HF's
 * halves (i, i + hd/2) to adjacent pairs (2i, 2i+1); the outputs of B
 * must come out in the base's order. */
static int permute_to_adjacent_pairs(float *b, long rows, long r, int head_dim) {
    float *tmp = malloc(sizeof(float) * (size_t)rows * (size_t)r);
    if (!tmp) return -1;
    for (long g = 0; g < rows; g++) {
        long h = g / head_dim, within = g % head_dim;
        long src = h * head_dim + (within % 2) * (head_dim / 2) + within / 2;
        memcpy(tmp + g * r, b + src * r, sizeof(float) * (size_t)r);
    }
    memcpy(b, tmp, sizeof(float) * (size_t)rows * (size_t)r);
    free(tmp);
    return 0;
}

static int shape_error(const LoadCtx *x, const char *file, const char *name, const StTensor *t, char which,
                       int layer, int slot, int r, long rows, long cols, Error *err) {
    Tensor have = st_tensor_view(t);
    char a[128];
    long out, in;
    slot_dims(x->c, slot, &out, &in);
    int is_a = which == 'A';
    error_set(err, "%s: tensor '%s' is %s but %s of layer %d %s %ld %s (r %d): lora_%c must be %ldx%ld", file,
              name, tensor_shape_str(&have, a, sizeof a), slot_short(slot), layer, is_a ? "takes" : "gives",
              is_a ? in : out, is_a ? "inputs" : "outputs", r, which, rows, cols);
    if (x->base_differs) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, "; the adapter was made for '%s', not '%s'",
                 x->l->config.base_model, x->base_dir);
    }
    return -1;
}

/* Checks one adapter tensor and stores it as its module's A or B. */
static int take_tensor(LoadCtx *x, const StTensor *t, Error *err) {
    const char *file = st_file_path(x->st, t), *name = t->name;
    char key[512], which;
    int layer, slot;
    if (peft_split_tensor_name(name, key, sizeof key, &which))
        return error_set(err, "%s: tensor '%s' is not a LoRA weight (expected base_model.model.<module>.lora_A.weight "
                              "or .lora_B.weight)",
                         file, name);
    if (parse_module_key(key, &layer, &slot))
        return error_set(err, "%s: tensor '%s' adapts '%s', which is not a linear of a LLaMA model "
                              "(model.layers.N.self_attn.{q,k,v,o}_proj or model.layers.N.mlp.{gate,up,down}_proj)",
                         file, name, key);
    if (layer >= x->c->n_layers)
        return error_set(err, "%s: tensor '%s' is for layer %d but the base model has %d layers", file, name, layer,
                         x->c->n_layers);
    if (!peft_config_targets(&x->l->config, key))
        return error_set(err, "%s: tensor '%s' adapts '%s', which target_modules in %s does not select", file, name,
                         key, x->l->config.path);
    if (!peft_layer_selected(&x->l->config, layer))
        return error_set(err, "%s: tensor '%s' is for layer %d, which layers_to_transform in %s leaves out", file,
                         name, layer, x->l->config.path);
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
        return error_set(err, "%s: tensor '%s' has dtype %s; LoRA weights must be F32, F16 or BF16", file, name,
                         dtype_name(t->dtype));
    int r;
    double alpha, scaling;
    peft_module_params(&x->l->config, key, &r, &alpha, &scaling);
    long out, in;
    slot_dims(x->c, slot, &out, &in);
    long rows = which == 'A' ? r : out, cols = which == 'A' ? in : r;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return shape_error(x, file, name, t, which, layer, slot, r, rows, cols, err);
    LoraModule *m = &x->l->modules[layer * LORA_N_SLOTS + slot];
    Tensor *dst = which == 'A' ? &m->a : &m->b;
    if (dst->data)
        return error_set(err, "%s: two tensors hold lora_%c of '%s' (one is '%s')", file, which, key, name);
    float *data = to_f32(t);
    if (!data) return error_set(err, "out of memory");
    if (which == 'B' && (slot == LORA_Q || slot == LORA_K) && x->adjacent_pairs &&
        permute_to_adjacent_pairs(data, rows, cols, x->c->head_dim)) {
        free(data);
        return error_set(err, "out of memory");
    }
    int64_t dims[2] = {rows, cols};
    *dst = tensor_view(DT_F32, data, 2, dims);
    m->r = r;
    m->scale = (float)scaling;
    return 0;
}

/* Every selected module of every listed target must have both matrices. */
static int check_complete(LoadCtx *x, const char *weights_path, Error *err) {
    const PeftConfig *c = &x->l->config;
    char key[128];
    for (int i = 0; i < c->n_targets; i++) {
        int any = 0;
        for (int l = 0; l < x->c->n_layers; l++)
            for (int s = 0; s < LORA_N_SLOTS; s++) {
                module_key(key, sizeof key, l, s);
                const LoraModule *m = &x->l->modules[l * LORA_N_SLOTS + s];
                if (peft_name_matches(key, c->targets[i]) && (m->a.data || m->b.data)) any = 1;
            }
        if (!any)
            return error_set(err, "%s: target module '%s' is listed in target_modules but %s has no tensors for it",
                             c->path, c->targets[i], weights_path);
    }
    for (int l = 0; l < x->c->n_layers; l++)
        for (int s = 0; s < LORA_N_SLOTS; s++) {
            module_key(key, sizeof key, l, s);
            LoraModule *m = &x->l->modules[l * LORA_N_SLOTS + s];
            if (!peft_config_targets(c, key) || !peft_layer_selected(c, l)) continue;
            if (!m->a.data || !m->b.data)
                return error_set(err, "%s: tensor 'base_model.model.%s.lora_%c.weight' is missing", weights_path, key,
                                 m->a.data ? 'B' : 'A');
            long out, in;
            slot_dims(x->c, s, &out, &in);
            x->l->n_adapted++;
            if (m->r > x->l->max_r) x->l->max_r = m->r;
            if (out > x->l->max_out) x->l->max_out = (int)out;
        }
    return 0;
}

int llama_lora_load(LlamaLora **out, const Llama *base, const char *dir, Error *err) {
    *out = NULL;
    LlamaLora *l = calloc(1, sizeof *l);
    if (!l) return error_set(err, "out of memory");
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    const LlamaConfig *c = &base->config;
    SafeTensors st;
    memset(&st, 0, sizeof st);
    char weights_path[1100];
    snprintf(weights_path, sizeof weights_path, "%s/adapter_model.safetensors", dir);
    if (peft_config_load(&l->config, dir, err)) goto fail;
    if (l->config.n_targets == 0 && default_targets(&l->config, err)) goto fail;
    if (check_targets_exist(&l->config, c->n_layers, err)) goto fail;
    l->n_layers = c->n_layers;
    l->modules = calloc((size_t)c->n_layers * LORA_N_SLOTS, sizeof *l->modules);
    if (!l->modules) {
        error_set(err, "out of memory");
        goto fail;
    }
    check_base_name(l, base);
    if (peft_open_weights(&st, dir, err)) goto fail;
    LoadCtx x = {l, c, &st, l->warning[0] != 0, base->dir, base->rope_adjacent_pairs};
    for (int i = 0; i < st.n_tensors; i++)
        if (take_tensor(&x, &st.tensors[i], err)) goto fail;
    if (check_complete(&x, weights_path, err)) goto fail;
    st_close(&st);
    *out = l;
    return 0;
fail:
    st_close(&st);
    llama_lora_free(l);
    return -1;
}

void llama_lora_free(LlamaLora *l) {
    if (!l) return;
    for (int i = 0; l->modules && i < l->n_layers * LORA_N_SLOTS; i++) {
        free(l->modules[i].a.data);
        free(l->modules[i].b.data);
    }
    free(l->modules);
    peft_config_free(&l->config);
    free(l);
}

int llama_attach_lora(Llama *m, const LlamaLora *l, Error *err) {
    if (l) {
        if (l->n_layers != m->config.n_layers)
            return error_set(err, "%s: the adapter was loaded for %d layers but the model has %d", l->dir, l->n_layers,
                             m->config.n_layers);
        for (int i = 0; i < l->n_layers * LORA_N_SLOTS; i++) {
            const LoraModule *mod = &l->modules[i];
            long out, in;
            slot_dims(&m->config, i % LORA_N_SLOTS, &out, &in);
            if (mod->a.data && (mod->a.shape[1] != in || mod->b.shape[0] != out))
                return error_set(err, "%s: the adapter was loaded against a model of other shapes", l->dir);
        }
    }
    m->lora = l;
    return 0;
}

/* ------------------------------------------------------------ run time */

void llama_lora_apply(const LlamaLora *l, LlamaState *s, int layer, LoraSlot slot, float *y, const float *x, int n) {
    const LoraModule *mod = &l->modules[layer * LORA_N_SLOTS + slot];
    if (!mod->a.data) return;
    size_t nr = (size_t)n * (size_t)mod->r, ny = (size_t)n * (size_t)mod->b.shape[0];
    /* Two thin products through the same kernels as W: A x is r outputs
     * per token, B t reads an [out, r] matrix; both are small next to W. */
    matmul(s->pool, s->kernel, s->lora_t, x, n, &mod->a, s->scratch);
    for (size_t i = 0; i < nr; i++) s->lora_t[i] *= mod->scale;
    matmul(s->pool, s->kernel, s->lora_u, s->lora_t, n, &mod->b, s->scratch);
    for (size_t i = 0; i < ny; i++) y[i] += s->lora_u[i];
}

/* ------------------------------------------------------------ merging */

static void store_f32(void *dst, const float *src, DType dt, long n) {
    if (dt == DT_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    for (long i = 0; i < n; i++) h[i] = dt == DT_F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
}

void lora_merge_row(void *dst, const void *src, DType dt, const LoraModule *mod, long j, float *tmp) {
    long in = mod->a.shape[1], r = mod->r;
    const float *a = mod->a.data, *b = (const float *)mod->b.data + j * r;
    float *w = tmp, *delta = tmp + in;
    convert_to_f32(KERNEL_SCALAR, w, src, dt, in);
    /* (B A)[j] first, then scaled and added: the order of peft's
     * W + (B @ A) * scaling, so the rounding is the same. */
    for (long k = 0; k < in; k++) delta[k] = 0;
    for (long q = 0; q < r; q++)
        for (long k = 0; k < in; k++) delta[k] += b[q] * a[q * in + k];
    for (long k = 0; k < in; k++) w[k] += delta[k] * mod->scale;
    store_f32(dst, w, dt, in);
}

typedef struct {
    Tensor *dst;
    Tensor orig;
} MergedItem;

struct LlamaLoraMerged {
    MergedItem *items;
    int n;
};

static int merge_module(Tensor *w, const LoraModule *mod, Error *err) {
    if (w->dtype != DT_F32 && w->dtype != DT_F16 && w->dtype != DT_BF16)
        return error_set(err, "cannot merge into %s weights; apply the adapter at run time instead",
                         dtype_name(w->dtype));
    long rows = (long)w->shape[0], in = (long)w->shape[1];
    size_t row_bytes = (size_t)in * dtype_size(w->dtype);
    uint8_t *buf = malloc(row_bytes * (size_t)rows);
    float *tmp = malloc(sizeof(float) * 2 * (size_t)in);
    if (!buf || !tmp) {
        free(buf);
        free(tmp);
        return error_set(err, "out of memory merging the adapter");
    }
    for (long j = 0; j < rows; j++)
        lora_merge_row(buf + (size_t)j * row_bytes, (const uint8_t *)w->data + (size_t)j * row_bytes, w->dtype, mod,
                       j, tmp);
    free(tmp);
    *w = tensor_view(w->dtype, buf, 2, w->shape);
    return 0;
}

int llama_lora_merge(Llama *m, const LlamaLora *l, LlamaLoraMerged **out, Error *err) {
    *out = NULL;
    if (m->lora) return error_set(err, "%s: an adapter is attached at run time; detach it before merging", m->dir);
    if (llama_attach_lora(m, l, err)) return -1; /* the shape checks */
    m->lora = NULL;
    LlamaLoraMerged *mg = calloc(1, sizeof *mg);
    if (mg) mg->items = calloc((size_t)(l->n_adapted ? l->n_adapted : 1), sizeof *mg->items);
    if (!mg || !mg->items) {
        free(mg);
        return error_set(err, "out of memory");
    }
    for (int i = 0; i < l->n_layers * LORA_N_SLOTS; i++) {
        const LoraModule *mod = &l->modules[i];
        if (!mod->a.data) continue;
        Tensor *w = slot_weight(&m->weights.layers[i / LORA_N_SLOTS], i % LORA_N_SLOTS);
        MergedItem *it = &mg->items[mg->n];
        it->dst = w;
        it->orig = *w;
        if (merge_module(w, mod, err)) {
            llama_lora_unmerge(m, mg);
            return -1;
        }
        mg->n++;
    }
    *out = mg;
    return 0;
}

void llama_lora_unmerge(Llama *m, LlamaLoraMerged *mg) {
    (void)m;
    if (!mg) return;
    for (int i = 0; i < mg->n; i++) {
        free(mg->items[i].dst->data);
        *mg->items[i].dst = mg->items[i].orig;
    }
    free(mg->items);
    free(mg);
}

/* ------------------------------------------------- writing a merged folder */

/* The module a base tensor "model.layers.<i>.<slot>.weight" carries, when
 * the adapter changes it. */
static const LoraModule *module_for_weight(const LlamaLora *l, const char *name) {
    char key[512];
    size_t n = strlen(name);
    if (n < 8 || n - 7 >= sizeof key || strcmp(name + n - 7, ".weight") != 0) return NULL;
    memcpy(key, name, n - 7);
    key[n - 7] = 0;
    int layer, slot;
    if (parse_module_key(key, &layer, &slot) || layer >= l->n_layers) return NULL;
    const LoraModule *mod = &l->modules[layer * LORA_N_SLOTS + slot];
    return mod->a.data ? mod : NULL;
}

/* HF's order: widest dtype first, then by name, which keeps every tensor
 * aligned for its dtype. */
static int cmp_tensor_order(const void *pa, const void *pb) {
    const StTensor *a = *(const StTensor *const *)pa, *b = *(const StTensor *const *)pb;
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    if (sa != sb) return sa > sb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int write_merged_tensor(StWriter *w, const StTensor *t, const LoraModule *mod, Error *err) {
    if (!mod) return st_writer_write(w, t->data, t->nbytes, err);
    long rows = (long)t->shape[0], in = (long)t->shape[1];
    if (t->ndim != 2 || rows != mod->b.shape[0] || in != mod->a.shape[1])
        return error_set(err, "tensor '%s' does not have the shape the adapter was checked against", t->name);
    size_t row_bytes = (size_t)in * dtype_size(t->dtype);
    uint8_t *row = malloc(row_bytes), *src = malloc(row_bytes);
    float *tmp = malloc(sizeof(float) * 2 * (size_t)in);
    int rc = row && src && tmp ? 0 : error_set(err, "out of memory");
    for (long j = 0; j < rows && rc == 0; j++) {
        /* a copy: mapped data need not be aligned for the row converter */
        memcpy(src, (const uint8_t *)t->data + (size_t)j * row_bytes, row_bytes);
        lora_merge_row(row, src, t->dtype, mod, j, tmp);
        rc = st_writer_write(w, row, row_bytes, err);
    }
    free(row);
    free(src);
    free(tmp);
    return rc;
}

static int write_model_file(const Llama *base, const LlamaLora *l, const char *path, Error *err) {
    const SafeTensors *st = &base->files;
    const StTensor **order = malloc(sizeof *order * (size_t)(st->n_tensors ? st->n_tensors : 1));
    if (!order) return error_set(err, "out of memory");
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n_tensors, sizeof *order, cmp_tensor_order);
    StWriter *w;
    if (st_writer_open(&w, path, err)) {
        free(order);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < st->n_tensors && rc == 0; i++)
        rc = st_writer_add(w, order[i]->name, order[i]->dtype, order[i]->ndim, order[i]->shape, err);
    for (int i = 0; i < st->n_tensors && rc == 0; i++)
        rc = write_merged_tensor(w, order[i], module_for_weight(l, order[i]->name), err);
    free(order);
    if (rc) {
        st_writer_abort(w);
        return error_prefix(err, "%s", path);
    }
    return st_writer_close(w, err);
}

/* The files of an HF folder besides the weights that a loader reads. */
static int copy_side_files(const char *from, const char *to, Error *err) {
    static const char *const names[] = {"config.json",      "generation_config.json",  "tokenizer.model",
                                        "tokenizer.json",   "tokenizer_config.json",   "special_tokens_map.json",
                                        "added_tokens.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char src[1100], dst[1100];
        if (path_join(src, sizeof src, from, names[i], err) || path_join(dst, sizeof dst, to, names[i], err)) return -1;
        if (!file_exists(src)) {
            if (i == 0) return error_set(err, "%s: missing (the base must be an HF folder)", src);
            continue;
        }
        char *data;
        size_t n;
        if (file_read_all(src, (size_t)1 << 30, &data, &n, err)) return -1;
        int rc = file_write_all(dst, data, n, err);
        free(data);
        if (rc) return -1;
    }
    return 0;
}

static int same_folder(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

int llama_lora_write_merged(const Llama *base, const LlamaLora *l, const char *out_dir, Error *err) {
    char path[1100];
    if (base->gguf)
        return error_set(err, "%s: the base is a GGUF file; merging writes an HF folder from an HF folder base",
                         base->dir);
    if (!dir_exists(out_dir) && mkdir(out_dir, 0777) != 0)
        return error_set(err, "%s: cannot create the output folder", out_dir);
    if (same_folder(out_dir, base->dir) || same_folder(out_dir, l->dir))
        return error_set(err, "%s: the output folder must not be the base or the adapter folder", out_dir);
    if (path_join(path, sizeof path, out_dir, "model.safetensors.index.json", err)) return -1;
    if (file_exists(path))
        return error_set(err, "%s: the output folder holds a sharded model already; choose an empty folder", path);
    if (path_join(path, sizeof path, out_dir, "model.safetensors", err)) return -1;
    if (write_model_file(base, l, path, err)) return -1;
    return copy_side_files(base->dir, out_dir, err);
}

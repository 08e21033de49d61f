/* The text path: tokenize, generate (a raw prompt). `ask` is in cmd_ask.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "formats/safetensors.h"
#include "pipeline/llm.h"
#include "text/spm.h"

/* One JSON array of ids on a line. */
static void print_ids(const int *ids, int n) {
    printf("[");
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]\n");
}

/* ------------------------------------------------------------- tokenize */

static const char TOKENIZE_HELP[] =
    "usage: vmed tokenize --model DIR [--no-bos] TEXT\n"
    "\n"
    "Prints the token ids of TEXT as one JSON array, as HF LlamaTokenizer does\n"
    "(BOS first unless --no-bos). DIR holds tokenizer.model or tokenizer.json.\n";

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize", *dir = NULL, *text = NULL;
    int add_bos = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(TOKENIZE_HELP, stdout);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(dir = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            add_bos = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (text) {
            return cli_usage_error(cmd, "one TEXT only (quote it)");
        } else {
            text = argv[i];
        }
    }
    if (!dir) return cli_usage_error(cmd, "--model DIR is required");
    if (!text) return cli_usage_error(cmd, "TEXT is required");
    Error err;
    Tokenizer *tok;
    if (tokenizer_load(&tok, dir, &err)) return cli_fail(cmd, err.msg);
    int *ids, n;
    if (tokenizer_encode(tok, text, add_bos, &ids, &n, &err)) {
        tokenizer_free(tok);
        return cli_fail(cmd, err.msg);
    }
    print_ids(ids, n);
    free(ids);
    tokenizer_free(tok);
    return 0;
}

/* ------------------------------------------------- shared generation run */

typedef struct {
    const Tokenizer *tok;
    int prev;
    int eos;
    int stream;
} StreamState;

static int stream_token(void *user, int id) {
    StreamState *st = user;
    if (st->stream && id != st->eos) {
        char buf[64];
        fputs(tokenizer_piece_text(st->tok, st->prev, id, buf, sizeof buf), stdout);
        fflush(stdout);
    }
    st->prev = id;
    return 0;
}

/* Writes prompt and generated logits and ids for --dump-logits. */
static int dump_logits(const char *path, const int *prompt, int np, const float *pl, const int *gen, int ng,
                       const float *gl, int vocab, Error *err) {
    int64_t *pid = malloc(sizeof(int64_t) * (size_t)(np + ng + 1));
    if (!pid) return error_set(err, "out of memory");
    int64_t *gid = pid + np;
    for (int i = 0; i < np; i++) pid[i] = prompt[i];
    for (int i = 0; i < ng; i++) gid[i] = gen[i];
    StTensor t[4];
    memset(t, 0, sizeof t);
    t[0] = (StTensor){.name = "prompt.ids", .dtype = DT_I64, .ndim = 1, .shape = {np}, .data = pid, .nbytes = 8 * (size_t)np};
    t[1] = (StTensor){.name = "prompt.logits", .dtype = DT_F32, .ndim = 2, .shape = {np, vocab}, .data = pl,
                      .nbytes = 4 * (size_t)np * (size_t)vocab};
    t[2] = (StTensor){.name = "gen.ids", .dtype = DT_I64, .ndim = 1, .shape = {ng}, .data = gid, .nbytes = 8 * (size_t)ng};
    t[3] = (StTensor){.name = "gen.logits", .dtype = DT_F32, .ndim = 2, .shape = {ng, vocab}, .data = gl,
                      .nbytes = 4 * (size_t)ng * (size_t)vocab};
    int rc = st_save(path, t, 4, err);
    free(pid);
    return rc;
}

/* Beam search has nothing to stream until it ends: print the best
 * hypothesis then, decoded as HF decode(new_ids, skip_special_tokens). */
static int print_beam_text(const Tokenizer *tok, const int *ids, int n, Error *err) {
    char *text;
    if (tokenizer_decode(tok, ids, n, 1, &text, err)) return -1;
    printf("%s\n", text);
    free(text);
    return 0;
}

/* Encodes text, generates (streaming unless beam search), and prints the
 * ids line and writes the logits dump when asked. */
static int run_generation(const char *cmd, Llm *l, const char *text, GenFlags *f, int want_ids, const char *dump) {
    Error err;
    int *prompt = NULL, n_prompt = 0, *gen = NULL, n_gen = 0, rc = 1, n_states = 0;
    int beams = f->num_beams > 1 ? f->num_beams : 1;
    float *pl = NULL, *gl = NULL;
    LlamaState *states = NULL;
    ThreadPool *pool = NULL;
    if (tokenizer_encode(l->tok, text, 1, &prompt, &n_prompt, &err)) return cli_fail(cmd, err.msg);
    const LlamaConfig *c = &l->model.config;
    long want = f->n_ctx ? f->n_ctx : (long)n_prompt + f->gen.max_new_tokens;
    if (n_prompt >= c->max_pos || (f->n_ctx && n_prompt >= f->n_ctx)) {
        fprintf(stderr, "vmed %s: the prompt is %d tokens, longer than the context of %d tokens\n", cmd, n_prompt,
                f->n_ctx ? f->n_ctx : c->max_pos);
        goto out;
    }
    if (want > c->max_pos) want = c->max_pos;
    states = calloc((size_t)beams, sizeof *states);
    gen = malloc(sizeof(int) * (size_t)(f->gen.max_new_tokens + 1));
    if (!states || !gen) {
        cli_fail(cmd, "out of memory");
        goto out;
    }
    if (f->n_threads > 1 && pool_create(&pool, f->n_threads, &err)) {
        cli_fail(cmd, err.msg);
        goto out;
    }
    for (; n_states < beams; n_states++) {
        if (llama_state_new(&states[n_states], &l->model, (int)want, 256, pool, &err)) {
            cli_fail(cmd, err.msg);
            goto out;
        }
    }
    if (dump) {
        pl = malloc(sizeof(float) * (size_t)n_prompt * (size_t)c->vocab_size);
        gl = malloc(sizeof(float) * (size_t)(f->gen.max_new_tokens + 1) * (size_t)c->vocab_size);
        if (!pl || !gl) {
            cli_fail(cmd, "out of memory for --dump-logits");
            goto out;
        }
    }
    LlamaDecoder ld;
    Decoder d = llama_decoder(&ld, &l->model, states, beams);
    if (beams > 1) {
        BeamOptions b = beam_defaults();
        b.num_beams = beams;
        b.max_new_tokens = f->gen.max_new_tokens;
        b.eos_id = c->eos_id;
        if (beam_search(&d, prompt, n_prompt, &b, gen, &n_gen, NULL, &err) ||
            print_beam_text(l->tok, gen, n_gen, &err)) {
            cli_fail(cmd, err.msg);
            goto out;
        }
    } else {
        /* prev -1: the first new token loses its leading space, as in HF decode(new_ids) */
        StreamState st = {l->tok, -1, c->eos_id, 1};
        GenerateOptions o = f->gen;
        o.eos_id = c->eos_id;
        o.on_token = stream_token;
        o.user = &st;
        o.prompt_logits = pl;
        o.step_logits = gl;
        int bad = generate(&d, prompt, n_prompt, &o, gen, &n_gen, &err);
        printf("\n");
        if (bad) {
            cli_fail(cmd, err.msg);
            goto out;
        }
    }
    if (want_ids) print_ids(gen, n_gen);
    if (dump && dump_logits(dump, prompt, n_prompt, pl, gen, n_gen, gl, c->vocab_size, &err)) {
        cli_fail(cmd, err.msg);
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < n_states; i++) llama_state_free(&states[i]);
    free(states);
    pool_free(pool);
    free(prompt);
    free(gen);
    free(pl);
    free(gl);
    return rc;
}

/* ------------------------------------------------------------- generate */

static const char GENERATE_HELP[] =
    "usage: vmed generate --model DIR [options] PROMPT\n"
    "\n"
    "Continues PROMPT (BOS is put in front) with the LLaMA-family model in DIR\n"
    "(config.json, model.safetensors or its index, tokenizer.model or .json) and\n"
    "streams the text.\n"
    "\n"
    "  --lora DIR                apply the PEFT LoRA adapter in DIR (adapter_config.json,\n"
    "                            adapter_model.safetensors) at run time\n"
    "  --ids                     print the generated ids as one JSON array on the last line\n"
    "  --dump-logits FILE        write the logits to FILE (safetensors, F32):\n"
    "                              prompt.ids    I64 [P]     the prompt's ids\n"
    "                              prompt.logits F32 [P, V]  logits at every prompt position\n"
    "                              gen.ids       I64 [G]     the generated ids\n"
    "                              gen.logits    F32 [G, V]  row i: the logits id i was chosen\n"
    "                                                        from (so row 0 = last prompt row)\n";

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate", *dir = NULL, *prompt = NULL, *dump = NULL, *lora_dir = NULL;
    int ids = 0;
    GenFlags f;
    gen_flags_init(&f);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            printf("%s\n%s", GENERATE_HELP, GEN_FLAGS_HELP);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(dir = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--dump-logits") == 0) {
            if (!(dump = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--lora") == 0) {
            if (!(lora_dir = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--ids") == 0) {
            ids = 1;
        } else if ((r = gen_flags_parse(&f, cmd, argc, argv, &i)) != 0) {
            if (r < 0) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (prompt) {
            return cli_usage_error(cmd, "one PROMPT only (quote it)");
        } else {
            prompt = argv[i];
        }
    }
    if (!dir) return cli_usage_error(cmd, "--model DIR is required");
    if (!prompt) return cli_usage_error(cmd, "PROMPT is required");
    if (dump && f.num_beams > 1) return cli_usage_error(cmd, "--dump-logits works with greedy or sampled decoding, not --beams");
    Error err;
    Llm l;
    if (llm_load(&l, dir, lora_dir, &err)) return cli_fail(cmd, err.msg);
    if (l.lora && l.lora->warning[0]) fprintf(stderr, "vmed %s: warning: %s\n", cmd, l.lora->warning);
    int rc = run_generation(cmd, &l, prompt, &f, ids, dump);
    llm_free(&l);
    return rc;
}

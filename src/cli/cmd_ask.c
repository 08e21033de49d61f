/* ask and chat: the whole pipeline from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "pipeline/ask.h"

static const char DISCLAIMER[] =
    "[vmed is a research tool. Its answers are not medical advice; do not use them for diagnosis or treatment.]\n";

/* A question or chat line larger than this is refused before tokenizing:
 * no LLaMA context holds it. */
enum { QUESTION_MAX_BYTES = 256 * 1024 };

static const char ASK_OPTIONS_HELP[] =
    "  --image FILE              a PNG or JPEG: the router sends it to an expert whose\n"
    "                            text becomes the prompt's input\n"
    "  --llm DIR|FILE.gguf       the language model: an HF folder or a llama.cpp GGUF\n"
    "                            file; default: the models directory's llm (`vmed models`)\n"
    "  --lora DIR|none           a PEFT LoRA adapter applied to the LLM at run time\n"
    "                            (default: the models directory's lora with its llm)\n"
    "  --med-git DIR             the Med-GIT captioner for radiology images\n"
    "  --deplot DIR              the DePlot chart-to-table model\n"
    "                            (experts default to the models directory's folders)\n"
    "  --med-git-quantize q8_0   requantize Med-GIT's matrices to Q8_0 at load (as\n"
    "                            vmed caption --quantize)\n"
    "  --router FILE             the image router (default: the shipped one)\n"
    "  --expert NAME|none        skip the router: med-git, deplot, or none\n"
    "  --show-steps              print the route, the expert's text, the prompt and\n"
    "                            each stage's time\n";

typedef struct {
    AssistantConfig cfg;
    GenFlags gen;
    const char *image;
    int show_steps;
} AskFlags;

static void ask_flags_init(AskFlags *f) {
    memset(f, 0, sizeof *f);
    assistant_config_init(&f->cfg);
    gen_flags_init(&f->gen);
}

/* --<expert name> DIR for every registered expert. */
static int expert_dir_flag(AskFlags *f, const char *cmd, int argc, char **argv, int *i) {
    if (strncmp(argv[*i], "--", 2) != 0) return 0;
    for (int k = 0; k < expert_count(); k++) {
        if (strcmp(argv[*i] + 2, expert_at(k)->name) == 0) {
            const char *v = cli_value(cmd, argc, argv, i);
            if (!v) return -1;
            f->cfg.expert_dirs[k] = v;
            return 1;
        }
    }
    return 0;
}

/* 1: argv[*i] was one of ask's and chat's flags, 0: not, -1: bad value. */
static int ask_flags_parse(AskFlags *f, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char **dst = strcmp(a, "--image") == 0    ? &f->image
                       : strcmp(a, "--llm") == 0    ? &f->cfg.llm
                       : strcmp(a, "--lora") == 0   ? &f->cfg.lora
                       : strcmp(a, "--router") == 0 ? &f->cfg.router
                       : strcmp(a, "--expert") == 0 ? &f->cfg.expert
                                                    : NULL;
    if (dst) {
        if (!(*dst = cli_value(cmd, argc, argv, i))) return -1;
        if (dst == &f->cfg.expert && strcmp(*dst, "none") != 0 && !expert_find(*dst)) {
            cli_usage_error(cmd, "--expert must be none or an expert's name (med-git, deplot), not '%s'", *dst);
            return -1;
        }
        return 1;
    }
    if (strcmp(a, "--show-steps") == 0) {
        f->show_steps = 1;
        return 1;
    }
    if (strcmp(a, "--med-git-quantize") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        if (!v) return -1;
        if (strcmp(v, "q8_0") != 0) {
            cli_usage_error(cmd, "--med-git-quantize takes q8_0, not '%s'", v);
            return -1;
        }
        f->cfg.expert_options.q8_0 = 1;
        return 1;
    }
    int r = expert_dir_flag(f, cmd, argc, argv, i);
    if (r) return r;
    return gen_flags_parse(&f->gen, cmd, argc, argv, i);
}

static int open_assistant(const char *cmd, AskFlags *f, Assistant *a) {
    f->cfg.n_threads = f->gen.n_threads;
    Error err;
    if (assistant_open(a, &f->cfg, &err)) return cli_fail(cmd, err.msg);
    if (a->llm.lora && a->llm.lora->warning[0]) fprintf(stderr, "vmed %s: warning: %s\n", cmd, a->llm.lora->warning);
    return 0;
}

static void print_text(void *user, const char *text) {
    (void)user;
    fputs(text, stdout);
    fflush(stdout);
}

static void show_reading(const ImageReading *r) {
    if (r->route[0]) printf("--- router: %s (confidence %.2f) for %s\n", r->route, r->confidence, r->image);
    else printf("--- router: skipped (--expert) for %s\n", r->image);
    if (r->expert) {
        printf("--- expert: %s (%s)\n", r->expert->name, r->expert_path);
        printf("--- expert text ---\n%s\n", r->text);
    } else {
        printf("--- expert: none (%s)\n", r->note);
    }
}

/* Says whatever the user must know even without --show-steps. */
static void note_reading(const char *cmd, const ImageReading *r) {
    if (r->expert_missing)
        fprintf(stderr, "vmed %s: note: %s; the image goes to the LLM unread\n", cmd, r->note);
}

static void show_prompt(const AskResult *res) {
    const Prompt *p = &res->prompt;
    printf("--- prompt (%d tokens) ---\n%s", p->n_ids, p->text);
    if (p->caption_kept < p->caption_len)
        printf("--- note: the expert text was cut from %zu to %zu bytes so that the prompt fits the %d tokens "
               "the context leaves besides the answer\n",
               p->caption_len, p->caption_kept, res->budget);
    printf("--- answer ---\n");
    fflush(stdout);
}

static void show_timings(double t_llm, const ImageReading *r, const AskResult *res) {
    const LlmAnswer *a = &res->answer;
    double gen = a->t_total_s - a->t_first_s;
    printf("--- timings: load llm %.2f s", t_llm);
    if (r) {
        printf(" | route %.3f s", r->t_route_s);
        if (r->expert) printf(" | expert %s load %.2f s, read %.2f s", r->expert->name, r->t_load_s, r->t_expert_s);
    }
    printf(" | prompt %.3f s | prefill %d tokens %.2f s | answer %d tokens %.2f s", res->t_prompt_s,
           a->n_prompt, a->t_first_s, a->n_new, a->t_total_s);
    if (a->n_new > 1 && gen > 0) printf(" (%.1f tokens/s)", (a->n_new - 1) / gen);
    printf("\n");
}

/* One question, with or without an image reading. */
static int answer(const char *cmd, Assistant *a, const AskFlags *f, const char *question, const ImageReading *r,
                  double t_llm) {
    Error err;
    if (strlen(question) > QUESTION_MAX_BYTES)
        return cli_fail(cmd, "the question is longer than 256 KiB; no model context holds it");
    AskOptions o = {f->gen.gen, f->gen.num_beams, f->gen.n_ctx, print_text, NULL};
    AskResult res;
    if (assistant_prompt(a, question, r, &o, &res, &err)) return cli_fail(cmd, err.msg);
    if (f->show_steps) show_prompt(&res);
    if (assistant_generate(a, &o, &res, &err)) {
        ask_result_free(&res);
        return cli_fail(cmd, err.msg);
    }
    printf("\n");
    if (f->show_steps) show_timings(t_llm, r, &res);
    fflush(stdout); /* the answer first, then the notice, also when both go to one pipe */
    fputs(DISCLAIMER, stderr);
    ask_result_free(&res);
    return 0;
}

/* ------------------------------------------------------------------ ask */

/* All of in as one string. 1: read, 0: longer than QUESTION_MAX_BYTES,
 * -1: out of memory. */
static int read_question(FILE *in, char **out) {
    *out = malloc(QUESTION_MAX_BYTES + 2);
    if (!*out) return -1;
    size_t n = fread(*out, 1, QUESTION_MAX_BYTES + 1, in);
    (*out)[n] = 0;
    return n <= QUESTION_MAX_BYTES;
}

static const char ASK_HELP[] =
    "usage: vmed ask [options] QUESTION     (QUESTION - : read it from standard input)\n"
    "\n"
    "Answers QUESTION about an optional image, as Visual Med-Alpaca does: the\n"
    "router sends the image to a visual expert (Med-GIT for radiology, DePlot for\n"
    "charts), the expert's text and the question fill the Alpaca template, and\n"
    "Med-Alpaca (any LLaMA-family model) streams the answer. When the expert text\n"
    "does not fit the context, it is cut from its end (--show-steps says so).\n"
    "Answers are for research only and are not medical advice.\n"
    "\n";

int cmd_ask(int argc, char **argv) {
    const char *cmd = "ask", *question = NULL;
    AskFlags f;
    ask_flags_init(&f);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            printf("%s%s\n%s", ASK_HELP, ASK_OPTIONS_HELP, GEN_FLAGS_HELP);
            return 0;
        } else if ((r = ask_flags_parse(&f, cmd, argc, argv, &i)) != 0) {
            if (r < 0) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (question) {
            return cli_usage_error(cmd, "one QUESTION only (quote it)");
        } else {
            question = argv[i];
        }
    }
    if (!question) return cli_usage_error(cmd, "QUESTION is required");
    char *from_stdin = NULL;
    if (strcmp(question, "-") == 0) {
        int got = read_question(stdin, &from_stdin);
        if (got < 0) return cli_fail(cmd, "out of memory");
        if (got == 0) {
            free(from_stdin);
            return cli_fail(cmd, "the question on standard input is longer than 256 KiB; no model context holds it");
        }
        question = from_stdin;
    }
    if (strspn(question, " \t\r\n") == strlen(question)) {
        free(from_stdin);
        return cli_usage_error(cmd, "the question is empty");
    }
    Assistant a;
    int rc = open_assistant(cmd, &f, &a);
    if (rc) {
        free(from_stdin);
        return rc;
    }
    ImageReading r, *rp = NULL;
    if (f.image) {
        Error err;
        if (assistant_read_image(&a, f.image, &r, &err)) {
            assistant_close(&a);
            free(from_stdin);
            return cli_fail(cmd, err.msg);
        }
        rp = &r;
        note_reading(cmd, &r);
        if (f.show_steps) show_reading(&r);
    }
    rc = answer(cmd, &a, &f, question, rp, a.t_load_llm_s);
    if (rp) image_reading_free(rp);
    assistant_close(&a);
    free(from_stdin);
    return rc;
}

/* ----------------------------------------------------------------- chat */

static const char CHAT_HELP[] =
    "usage: vmed chat [options]\n"
    "\n"
    "An interactive session: each line is a question, answered as `vmed ask`\n"
    "answers it, with the models loaded once. Lines starting with / are commands:\n"
    "  /image FILE   route and read an image; later questions are about it\n"
    "  /noimage      forget the image\n"
    "  /steps        turn --show-steps on or off\n"
    "  /help         this list\n"
    "  /quit         end (so does end of input)\n"
    "Each question is answered on its own (the Alpaca template has no turns).\n"
    "Answers are for research only and are not medical advice.\n"
    "\n";

static const char CHAT_COMMANDS[] =
    "/image FILE | /noimage | /steps | /help | /quit; anything else is a question\n";

/* Reads one line without its newline into a growing buffer. 1: a line,
 * 0: end of input, -1: the line was longer than max (skipped). */
static int read_line(FILE *in, char **buf, size_t *cap, size_t max) {
    size_t n = 0;
    int c, too_long = 0;
    while ((c = fgetc(in)) != EOF && c != '\n') {
        if (n + 1 >= max) {
            too_long = 1;
            continue;
        }
        if (n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            char *nb = realloc(*buf, nc);
            if (!nb) return -1;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0 && !too_long) return 0;
    if (!*buf) {
        *buf = malloc(1);
        if (!*buf) return -1;
        *cap = 1;
    }
    (*buf)[n] = 0;
    if (n && (*buf)[n - 1] == '\r') (*buf)[n - 1] = 0;
    return too_long ? -1 : 1;
}

static const char *skip_blanks(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat";
    AskFlags f;
    ask_flags_init(&f);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            printf("%s%s\n%s", CHAT_HELP, ASK_OPTIONS_HELP, GEN_FLAGS_HELP);
            return 0;
        } else if ((r = ask_flags_parse(&f, cmd, argc, argv, &i)) != 0) {
            if (r < 0) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else {
            return cli_usage_error(cmd, "questions come from the input, not the command line ('%s')", argv[i]);
        }
    }
    Assistant a;
    int rc = open_assistant(cmd, &f, &a);
    if (rc) return rc;
    int tty = isatty(STDIN_FILENO);
    ImageReading r;
    int have_image = 0;
    double t_llm = a.t_load_llm_s;
    if (tty) printf("vmed chat: %s", CHAT_COMMANDS);
    char *line = NULL;
    size_t cap = 0;
    const char *pending = f.image; /* --image: read it as if /image came first */
    for (;;) {
        const char *img = pending;
        pending = NULL;
        if (!img) {
            if (tty) {
                printf("%s> ", have_image ? "[image] " : "");
                fflush(stdout);
            }
            int got = read_line(stdin, &line, &cap, QUESTION_MAX_BYTES);
            if (got == 0) break;
            if (got < 0) {
                fprintf(stderr, "vmed chat: that line is longer than 256 KiB; no model context holds it\n");
                continue;
            }
            const char *s = skip_blanks(line);
            if (!*s) continue;
            if (strcmp(s, "/quit") == 0 || strcmp(s, "/exit") == 0) break;
            if (strcmp(s, "/help") == 0) {
                fputs(CHAT_COMMANDS, stdout);
                continue;
            }
            if (strcmp(s, "/steps") == 0) {
                f.show_steps = !f.show_steps;
                printf("show steps: %s\n", f.show_steps ? "on" : "off");
                continue;
            }
            if (strcmp(s, "/noimage") == 0) {
                if (have_image) image_reading_free(&r);
                have_image = 0;
                continue;
            }
            if (strncmp(s, "/image", 6) == 0 && (s[6] == ' ' || s[6] == '\t' || !s[6])) {
                img = skip_blanks(s + 6);
                if (!*img) {
                    fprintf(stderr, "vmed chat: /image needs a file\n");
                    continue;
                }
            } else if (s[0] == '/') {
                fprintf(stderr, "vmed chat: unknown command '%s' (%s", s, CHAT_COMMANDS);
                fprintf(stderr, ")\n");
                continue;
            } else {
                answer(cmd, &a, &f, s, have_image ? &r : NULL, t_llm);
                t_llm = 0; /* loaded once: later timings show no load */
                continue;
            }
        }
        ImageReading next;
        Error err;
        if (assistant_read_image(&a, img, &next, &err)) {
            fprintf(stderr, "vmed chat: %s\n", err.msg);
            continue;
        }
        if (have_image) image_reading_free(&r);
        r = next;
        have_image = 1;
        note_reading(cmd, &r);
        if (f.show_steps) show_reading(&r);
        else if (r.expert) printf("[%s read the image as %s]\n", r.expert->name, r.route[0] ? r.route : "asked");
        else printf("[no expert read the image: %s]\n", r.note);
    }
    free(line);
    if (have_image) image_reading_free(&r);
    assistant_close(&a);
    return 0;
}

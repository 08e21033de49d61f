/* The LLaMA tokenizer: SentencePiece BPE, read from a tokenizer.model
 * (SentencePiece ModelProto protobuf) or from a HF tokenizer.json (model
 * type BPE with merges and byte fallback), encoding and decoding exactly as
 * HF's slow LlamaTokenizer does with legacy=True (transformers 4.36,
 * sentencepiece 0.1.97):
 *
 *  - the text is first split on the special-token strings (<s>, </s>,
 *    <unk>); each other chunk is normalised and BPE-encoded on its own, so
 *    each gets its own dummy-prefix "▁";
 *  - normalisation honours the model's normalizer_spec: add_dummy_prefix,
 *    remove_extra_whitespaces, escape_whitespaces (" " -> "▁") and a
 *    precompiled character map when there is one; a byte that is not part
 *    of valid UTF-8 becomes U+FFFD, as in sentencepiece;
 *  - BPE repeatedly merges the adjacent pair whose concatenation is a piece
 *    with the highest score (leftmost on ties); a tokenizer.json ranks pairs
 *    by their place in the merges list instead;
 *  - what is left unknown becomes byte pieces <0xXX> (byte fallback), or
 *    <unk> when the model has none.
 *
 * Decoding follows tok.decode(ids, skip_special_tokens=...) with
 * spaces_between_special_tokens=False and no clean-up: the first token's
 * "▁" is dropped, a space is put before a special token that follows
 * normal text (legacy), byte pieces are joined into bytes and invalid UTF-8
 * becomes U+FFFD. So decode(encode(s)) == s except that leading spaces lose
 * one space, special tokens inside s gain the legacy spaces, a literal "▁"
 * comes back as " " and invalid UTF-8 as U+FFFD, all as in HF. A model
 * loaded from tokenizer.json decodes by the same (slow tokenizer) rules;
 * its "decoder" section is not read.
 *
 * Unigram models (T5's spiece.model) are recognised and loaded; encoding
 * them uses Viterbi over the piece scores, as sentencepiece does.
 *
 * Pieces longer than 2048 bytes (more than sentencepiece's trainer can
 * make) are refused, which bounds the encoder's work per character. */
#ifndef VMED_TEXT_SPM_H
#define VMED_TEXT_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct Tokenizer Tokenizer;

/* SentencePiece piece types, numbered as in sentencepiece_model.proto. */
enum {
    PIECE_NORMAL = 1,
    PIECE_UNKNOWN = 2,
    PIECE_CONTROL = 3,
    PIECE_USER_DEFINED = 4,
    PIECE_UNUSED = 5,
    PIECE_BYTE = 6
};

/* TrainerSpec.model_type. */
enum { SPM_UNIGRAM = 1, SPM_BPE = 2, SPM_WORD = 3, SPM_CHAR = 4 };

/* model_dir/tokenizer.model when it exists, else model_dir/tokenizer.json;
 * or, when model_dir is a GGUF file, the tokenizer stored in it. */
int tokenizer_load(Tokenizer **out, const char *model_dir, Error *err);
/* A SentencePiece ModelProto file. */
int tokenizer_load_spm(Tokenizer **out, const char *path, Error *err);
/* The same from memory (the bytes are copied); label names it in messages. */
int tokenizer_load_spm_buffer(Tokenizer **out, const uint8_t *data, size_t n, const char *label, Error *err);
/* A HF tokenizer.json of a LLaMA: model.type BPE, vocab, merges,
 * byte_fallback; normalizer Prepend("▁") + Replace(" ", "▁") or a Metaspace
 * pre-tokenizer; added_tokens are split out of the text like <s>. */
int tokenizer_load_hf_json(Tokenizer **out, const char *path, Error *err);
/* The same from n bytes of JSON text; label names it in messages. */
int tokenizer_load_hf_json_buffer(Tokenizer **out, const char *text, size_t n, const char *label, Error *err);
/* A llama-style GGUF file (models/llama_gguf.c reads the same file), or
 * its parsed form: tokenizer.ggml.model "llama" with the tokens, scores and
 * token_type lists and the bos/eos/padding ids (text/spm_gguf.c). */
int tokenizer_load_gguf_path(Tokenizer **out, const char *path, Error *err);
struct Gguf;
int tokenizer_load_gguf(Tokenizer **out, const struct Gguf *g, Error *err);
/* A vocabulary given as lists rather than a ModelProto (GGUF stores it so).
 * sentencepiece's checks apply: one UNKNOWN piece, 256 BYTE pieces or none
 * (byte fallback is on when there are some), no duplicates. */
typedef struct {
    int n;
    const char *const *pieces; /* n strings of lens[i] bytes (not NUL-terminated) */
    const size_t *lens;
    const float *scores;       /* NULL: all 0 */
    const int *types;          /* PIECE_*; NULL: all PIECE_NORMAL */
    int model_type;            /* SPM_BPE or SPM_UNIGRAM */
    int bos_id, eos_id, pad_id; /* -1: none */
    int add_dummy_prefix, remove_extra_ws;
    const uint8_t *charsmap;   /* normalizer_spec.precompiled_charsmap, or NULL */
    size_t charsmap_len;
} SpmVocab;
int tokenizer_from_vocab(Tokenizer **out, const SpmVocab *v, const char *label, Error *err);
void tokenizer_free(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
/* Ids of the BOS / EOS / pad / unk pieces, -1 when the model has none. */
int tokenizer_bos(const Tokenizer *t);
int tokenizer_eos(const Tokenizer *t);
int tokenizer_pad(const Tokenizer *t);
int tokenizer_unk(const Tokenizer *t);
int tokenizer_model_type(const Tokenizer *t); /* SPM_BPE, SPM_UNIGRAM, ... */

/* Encodes as HF LlamaTokenizer (slow, legacy=True): tok(text).input_ids when
 * add_bos, else tok(text, add_special_tokens=False).input_ids. *ids is
 * malloc'd (free it); for empty text without BOS it may be NULL with
 * *n_ids 0. */
int tokenizer_encode(const Tokenizer *t, const char *text, int add_bos, int **ids, int *n_ids, Error *err);
/* The same for len bytes that may hold NULs or invalid UTF-8. */
int tokenizer_encode_bytes(const Tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n_ids,
                           Error *err);

/* Text of one id as it appears in a stream: "▁" becomes " ", a byte piece
 * is its one raw byte (a UTF-8 character may span several calls), special
 * and control pieces are "". The leading space is dropped when prev_id is
 * negative (start of the text) or BOS, as HF decode drops it (HF drops a
 * second one when the text starts with spaces; this does not). Writes into
 * buf (cut at a character boundary when it does not fit) and returns buf,
 * so the text is valid until buf is reused. */
const char *tokenizer_piece_text(const Tokenizer *t, int prev_id, int id, char *buf, size_t cap);

/* Decodes exactly as HF tok.decode(ids, skip_special_tokens=skip_special)
 * (legacy=True, spaces_between_special_tokens=False,
 * clean_up_tokenization_spaces=False). *out is malloc'd and NUL-terminated.
 * An id outside the vocabulary is an error. */
int tokenizer_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, Error *err);

/* The raw piece, e.g. "▁Hello" or "<0x0A>"; "" for an id out of range. */
const char *tokenizer_piece(const Tokenizer *t, int id);
float tokenizer_piece_score(const Tokenizer *t, int id);
int tokenizer_piece_type(const Tokenizer *t, int id); /* PIECE_*, 0 out of range */
/* Id of the piece spelled by len bytes at s, -1 when there is none. */
int tokenizer_piece_id(const Tokenizer *t, const char *s, size_t len);

/* Writes a ModelProto (pieces, trainer_spec, normalizer_spec) that
 * tokenizer_load_spm and python sentencepiece read back; atomic write. */
int tokenizer_save_spm(const Tokenizer *t, const char *path, Error *err);
/* The same into a malloc'd buffer. */
int tokenizer_serialize_spm(const Tokenizer *t, uint8_t **out, size_t *n, Error *err);

/* A deterministic BPE vocabulary of vocab_size pieces (>= 512): <unk>=0,
 * <s>=1, </s>=2, the 256 byte pieces <0x00>..<0xFF> (ids 3..258), "▁", the
 * printable ASCII characters, then "▁word" pieces for a built-in list of
 * common English and medical words with every prefix BPE needs to reach
 * them, padded with unused pieces. Any UTF-8 text encodes (byte fallback)
 * and decodes back. */
int tokenizer_build_synthetic(Tokenizer **out, int vocab_size, Error *err);
/* The same for T5 / Pix2Struct: a Unigram model with T5's layout (<pad> 0,
 * </s> 1, <unk> 2, no <s>), for the synthetic DePlot of the demo. */
int tokenizer_build_synthetic_t5(Tokenizer **out, int vocab_size, Error *err);

#endif

/* The tokenizer of Pix2Struct / DePlot: HF's slow T5Tokenizer (transformers
 * 4.36, legacy=True, sentencepiece 0.1.97) over a spiece.model, with the
 * SentencePiece Unigram encoding of text/spm.h underneath.
 *
 *  - ids: the model's pieces, then extra_ids (100) sentinel tokens counted
 *    backwards from the top: <extra_id_0> is the last id, <extra_id_99> the
 *    first after the pieces (2099 and 2000 for a 2000-piece model);
 *  - encoding splits the special-token strings (</s>, <unk>, <pad>,
 *    <extra_id_N>) out of the text first; an extra id also eats the
 *    whitespace on both sides of it (str.strip's whitespace), as T5 adds
 *    them with lstrip and rstrip; every other chunk is encoded by
 *    SentencePiece on its own (each with its own dummy-prefix "▁"); </s> is
 *    appended unless the ids already end with it;
 *  - decoding follows tok.decode(ids, skip_special_tokens=...): each run of
 *    pieces between extra ids is turned into text on its own (leading "▁"
 *    of the run removed, a space put before </s>, <unk> or <pad> that
 *    follows text, byte pieces joined into bytes with invalid UTF-8 as
 *    U+FFFD, the result .strip()ped), the runs and the extra ids are joined
 *    with single spaces, and with clean_up_tokenization_spaces (the default)
 *    " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" " 've" " 're" lose their
 *    space. So a lone "\n" decodes to "". skip_special_tokens drops </s>,
 *    <unk>, <pad> and the extra ids.
 *
 * HF fast tokenizers (tokenizer.json, what DePlot users usually get) print
 * byte pieces as the literal text "<0x0A>" instead; DePlot's own
 * post-processing then turns "<0x0A>" into "\n", so both end up alike. */
#ifndef VMED_TEXT_T5_H
#define VMED_TEXT_T5_H

#include "base/error.h"
#include "text/spm.h"

typedef struct T5Tokenizer T5Tokenizer;

/* dir/spiece.model, with extra_ids, legacy and
 * clean_up_tokenization_spaces from dir/tokenizer_config.json when it
 * exists. dir/added_tokens.json, when present, must list only extra ids at
 * the ids T5 gives them (anything else is refused by name). */
int t5_load(T5Tokenizer **out, const char *dir, Error *err);
void t5_free(T5Tokenizer *t);

/* len(tokenizer): the pieces plus the extra ids. */
int t5_vocab_size(const T5Tokenizer *t);
int t5_eos(const T5Tokenizer *t);
int t5_pad(const T5Tokenizer *t);
/* Id of <extra_id_n>, -1 when n is not one. */
int t5_extra_id(const T5Tokenizer *t, int n);
/* The token of an id ("▁Year", "<0x0A>", "<extra_id_0>"); "" out of range. */
const char *t5_token(const T5Tokenizer *t, int id);
/* Id of a token string, -1 when there is none. */
int t5_token_id(const T5Tokenizer *t, const char *token);
/* The SentencePiece model underneath. */
const Tokenizer *t5_spm(const T5Tokenizer *t);

/* tok(text).input_ids when add_eos, else tok(text,
 * add_special_tokens=False).input_ids. *ids is malloc'd (free it); it may
 * be NULL when *n_ids is 0. */
int t5_encode(const T5Tokenizer *t, const char *text, int add_eos, int **ids, int *n_ids, Error *err);

/* tok.decode(ids, skip_special_tokens=skip_special); *out is malloc'd and
 * NUL-terminated. An id outside 0..t5_vocab_size()-1 is an error. */
int t5_decode(const T5Tokenizer *t, const int *ids, int n, int skip_special, char **out, Error *err);

#endif

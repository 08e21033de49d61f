#!/usr/bin/env python3
"""Writes tests/data/wordpiece_refs.json: what HF's slow BertTokenizer gives
for tricky strings, for tests/test_wordpiece.c.

Reference environment (as shared/fixtures): transformers 4.36.2, Python 3.11
(unicodedata 14.0.0), no torch needed:
    python3 -m venv /tmp/venv-wp
    /tmp/venv-wp/bin/pip install transformers==4.36.2
    /tmp/venv-wp/bin/python tests/data/make_wordpiece_refs.py \
        ../shared/fixtures/tokenizers/bert-base-uncased/vocab.txt > tests/data/wordpiece_refs.json

Each config below is passed to BertTokenizer(vocab_file, **config); the C test
writes the same keys to a tokenizer_config.json beside a copy of vocab.txt.
Texts are stored as UTF-8 hex too, since some hold NUL.
"""
import json
import sys
import unicodedata

import transformers
from transformers import BertTokenizer

TEXTS = [
    "Hello, World!",
    "ÀÉÎÕÜ àéîõü çÇ ñÑ ß ẞ Øø Ææ Þþ",
    "Łódź Świętokrzyskie Ďábelské Őrség",
    "Ǆemal ǅ ǉ Ǳ ȘȚ șț Ơư ǅungla",
    "ΑΘΗΝΑ Ὀδυσσεύς ΟΔΟΣ σοφίας ΐΰ ᾼ",
    "МОСКВА Ёлка йод Ї Ў Ѷ",
    "Tiếng Việt có dấu",
    "हिन्दी क़ ज़",
    "العربية مُحَمَّد",
    "עִבְרִית",
    "東京大学 北京 中文字符",
    "日本語のテキスト カタカナ ひらがな",
    "한국어 텍스트",
    "﨑 豈 丽 𪘀",
    "emoji 🚑🩺💊 👩\u200d⚕\ufe0f 🇺🇸",
    "!!!???...,,,;;;",
    "a--b__c~~d^^e``f$$g",
    "«quoted» „German“ ‘single’ — – … ¿¡",
    "[SEP] inside [SEP]text[CLS]and[MASK]",
    "[cls] lower [Sep] mixed [UNK] [PAD][PAD]",
    "[CL\ufffdS] [SE\x00P] x[MA\u200bSK]y",  # special strings only after clean-up
    "a" * 150,
    "pneumonia" * 11 + "x",  # 100 characters
    "pneumonia" * 11 + "xy",  # 101 characters
    "tab\tnew\nline\rcr\x0bvt\x0cff",
    "nul\x00in\x00side",
    "bell\x07 esc\x1b[31m del\x7f c1\x85 x",
    "zero\u200bwidth\u200cjoin\u200dx soft\u00adhyphen",
    "nbsp\u00a0here thin\u2009space ideo\u3000space line\u2028sep para\u2029sep",
    "don't won't it's I'm we've they're",
    "3.5cm 10mg/kg 1,000 37°C 5×5 ±2 ½",
    "a . b ? c ! d , e ' f n't",
    "İstanbul DİYARBAKIR ıi",
    "Kelvin \u212a Ångström \u212b Ohm \u2126",
    "e\u0301 a\u0308 n\u0303 \u1112\u1161\u11ab",
    "ﬁnancial ﬂow ﬀ",
    "①②③ ¹²³ ⅓",
    "x²+y²=z²; ∑∫∂√∞ ≤≥≠",
    "\ufeffBOM start \ufffd replacement",
    "\U000e0041 tag chars \U0010fffd private \ue000 pua",
    "unassigned \u0378 \U0001fae8 new emoji",
    "",
    "   ",
    "##ing ## #",
    "T2-weighted MRI: 3.2 × 2.1 cm hypoechoic lesion (arrow).",
    "Axial CECT shows a well-defined, heterogeneously enhancing mass; no calcification.",
]

# Texts that show the options at work, for the other configs.
OPTION_TEXTS = [
    "Café naïve RÉSUMÉ Zürich",
    "ΟΔΟΣ Ὀδυσσεύς",
    "東京大学 北京",
    "한국어",
    "e\u0301 \u212b \ufa11",
    "hello! [foo] bar [FOO] Hello!",
    "[CLS] Mixed Case [SEP] text",
    "[CL\ufffdS] [SE\x00P] x[MA\u200bSK]y",
    "zzqx's don't Zzqx",
]

CONFIGS = [
    ("uncased", {"do_lower_case": True}, TEXTS),
    ("cased", {"do_lower_case": False}, OPTION_TEXTS),
    ("uncased_keep_accents", {"do_lower_case": True, "strip_accents": False}, OPTION_TEXTS),
    ("cased_strip_accents", {"do_lower_case": False, "strip_accents": True}, OPTION_TEXTS),
    ("never_split_no_cjk",
     {"do_lower_case": True, "never_split": ["[foo]", "hello!", "zzqx", "don"], "tokenize_chinese_chars": False}, OPTION_TEXTS),
]


def case(tok, text):
    ids = tok(text).input_ids
    return {
        "text": text,
        "hex": text.encode("utf-8").hex(),
        "ids_with_special": ids,
        "ids_no_special": tok(text, add_special_tokens=False).input_ids,
        "tokens": tok.tokenize(text),
        "decode": tok.decode(ids),
        "decode_skip_special": tok.decode(ids, skip_special_tokens=True),
    }


def main():
    vocab = sys.argv[1]
    out = {
        "generator": "tests/data/make_wordpiece_refs.py",
        "transformers": transformers.__version__,
        "unicodedata": unicodedata.unidata_version,
        "vocab": "fixtures/tokenizers/bert-base-uncased/vocab.txt",
        "calls": "BertTokenizer(vocab_file, **config): tok(text).input_ids, tok(text, add_special_tokens=False)"
                 ".input_ids, tok.tokenize(text), tok.decode(ids), tok.decode(ids, skip_special_tokens=True)",
        "configs": [],
    }
    for name, config, texts in CONFIGS:
        tok = BertTokenizer(vocab_file=vocab, **config)
        out["configs"].append({"name": name, "config": config, "cases": [case(tok, t) for t in texts]})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

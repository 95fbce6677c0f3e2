#!/usr/bin/env python3
"""Train the small byte-level BPE tokenizers committed under tests/fixtures/tokenizer/.

Run once with the project venv (/tmp/venv/bin/python scripts/make_tokenizer_fixtures.py); the
outputs are committed so unit tests need no Python. Both are trained by Hugging Face
`tokenizers` on ../shared/data/prose, so they exercise the same JSON layouts real models ship:

  llama3_style.json  Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false), ignore_merges,
                     TemplateProcessing adding <|begin_of_text|>, Llama-3 special tokens plus one
                     non-special added token.
  gpt2_style.json    ByteLevel(use_regex=true) pre-tokenizer, no BOS, <|endoftext|>, added
                     tokens with lstrip / single_word to exercise those flags, and merges in
                     the older "a b" string layout.

The SmolLM2 tokenizer is not a fixture: tests/oracle/test_tokenizer_oracle.py rebuilds it from
the GGUF at test time (models/ is not committed).
"""
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("SKV_DATA", os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>", "<|im_start|>", "<|im_end|>"]


def corpus():
    for name in ("tinyshakespeare.txt", "gutenberg_bodies.txt"):
        with open(os.path.join(DATA, "prose", name), encoding="utf-8") as f:
            for line in f:
                yield line


def train(tok, vocab_size, specials):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)


def make_llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, 3000, LLAMA3_SPECIALS)
    tok.add_tokens([AddedToken("<|user_defined|>", special=False, normalized=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def make_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    train(tok, 2000, ["<|endoftext|>"])
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("xyzzy", single_word=True, special=False, normalized=False)])
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, tok in (("llama3_style.json", make_llama3()), ("gpt2_style.json", make_gpt2())):
        path = os.path.join(OUT, name)
        # Compact but deterministic JSON keeps the fixtures small (well under 1 MB together).
        data = json.loads(tok.to_str())
        if name == "gpt2_style.json":
            # Older tokenizer.json files (GPT-2's own) store merges as "a b" strings; keep one
            # fixture in that layout so both parsers are exercised. Lossless: byte-level tokens
            # never contain a space (it is mapped to U+0120).
            data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        Tokenizer.from_file(path)  # must round-trip through the library that wrote it
        print(f"wrote {path} ({os.path.getsize(path)} bytes, vocab {tok.get_vocab_size()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

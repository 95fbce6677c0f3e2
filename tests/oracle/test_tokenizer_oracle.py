#!/usr/bin/env python3
"""Oracle test: swiftkv's tokenizer against Hugging Face `tokenizers` (and llama.cpp when the
llama_cpp package is installed).

Tokenizers under test:
  llama3_style / gpt2_style  committed fixtures (tests/fixtures/tokenizer/*.json), loaded by both
  smollm2_gguf               swiftkv reads models/SmolLM2-135M-Instruct.Q4_1.gguf; the oracle is a
                             tokenizer.json rebuilt from the same GGUF with `tokenizers`
                             (BPE(vocab, merges) + Digits(individual) + ByteLevel + control tokens).
Checks per string: identical ids (with and without BOS / special-token parsing), identical
decode, and decode(encode(s)) == s. The swiftkv binary runs in --input-jsonl batch mode, a few
invocations per tokenizer. Env: SKV_BIN, SKV_SOURCE_DIR, SKV_DATA, SKV_MODELS.
"""
import csv
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("SKV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("SKV_BIN", os.path.join(SRC, "build", "swiftkv"))
DATA = os.environ.get("SKV_DATA", os.path.join(SRC, "..", "shared", "data"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(SRC, "models"))
GGUF = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
FIXTURES = os.path.join(SRC, "tests", "fixtures", "tokenizer")

EDGE = [
    "", " ", "   ", "\t\t\n\n  x", "trailing spaces   ", "  leading", "\n", "\r\n", "a\r\nb\rc", "\n\n\n\n",
    "x \n y", "tab\tsep\tvalues\t", "Hello world", "Hello, world!", "I'm you'LL we'VE they're it'S he'd",
    "IT'S DON'T WE'LL", "don’t won’t", "'s's'S", "'ſ 'K", "1234567890", "3.14159", "1,000,000", "$12.50",
    "0x1F 007 2024-01-01", "١٢٣ ٤٥٦ ۷۸۹", "½ ² Ⅻ ①", "a1b22c333d4444",
    "日本語のテキストです。", "中文文本，包含标点。", "한국어 텍스트", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет, мир!", "Γειά σου Κόσμε", "Ελληνικά ΚΕΦΑΛΑΙΑ",
    "😀", "👍🏽", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "🇫🇷🇩🇪", "e\u0301 a\u0300 n\u0303", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "𝕳𝖊𝖑𝖑𝖔 𝔀𝓸𝓻𝓵𝓭", "ﬁ ﬂ ﬀ", "İstanbul ǅ", "\u00a0nbsp\u00a0", "a\u2009thin\u3000ideo", "zero\u200bwidth",
    "\ufeffBOM", "\ufffd replacement", "\x00nul\x01\x7f", "a\u0085b a \u0085b", "\u2028line\u2029para",
    "hi<|im_start|>user\nyo<|im_end|>", "<|im_start|><|im_start|>", "<|im_start", "<|endoftext|>",
    "text<|endoftext|>more", "<|begin_of_text|>Hello<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nhi",
    "<|user_defined|> and<|user_defined|>x", "[MASK]", "a  [MASK] b", "word[MASK]", "xyzzy", "axyzzy xyzzy_",
    " xyzzy.", "<repo_name>swiftkv<file_sep>", "<|im_end|>\n", "a" * 3000, "ab" * 1500, " " * 500 + "x",
    "\n" * 200, "!!!???...,,,;;;", "foo@bar.com https://example.org/a?b=c&d=e#f", "def f(x):\n    return x**2\n",
    "{\"json\": [1, 2, 3]}", "<html><body>hi</body></html>", "C++ && || -> :: <<= >>=", "A.B.C. U.S.A.",
]


def fail_setup(msg):
    print(f"tokenizer oracle: setup error: {msg}")
    sys.exit(2)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def corpus(rng):
    """A few thousand natural strings from the shared data sets, sampled deterministically."""
    out = []
    for name in ("tinyshakespeare.txt", "gutenberg_bodies.txt"):
        paras = [p for p in read(os.path.join(DATA, "prose", name)).split("\n\n") if p.strip()]
        out += rng.sample(paras, min(600, len(paras)))
    lines = [l for l in read(os.path.join(DATA, "wikitext2", "wiki.test.raw")).split("\n") if l.strip()]
    out += rng.sample(lines, min(800, len(lines)))
    arc = []
    for path in sorted(glob.glob(os.path.join(DATA, "arc", "*.jsonl"))):
        for line in open(path, encoding="utf-8"):
            q = json.loads(line)["question"]
            arc.append(q["stem"] + "\n" + "\n".join(f"{c['label']}. {c['text']}" for c in q["choices"]))
    out += rng.sample(arc, min(400, len(arc)))
    gsm = [json.loads(l) for l in open(os.path.join(DATA, "gsm8k", "test.jsonl"), encoding="utf-8")]
    out += [g["question"] + "\n" + g["answer"] for g in rng.sample(gsm, min(300, len(gsm)))]
    mmlu = []
    for path in sorted(glob.glob(os.path.join(DATA, "mmlu", "test", "*.csv"))):
        with open(path, encoding="utf-8", newline="") as f:
            mmlu += [" ".join(row[:5]) for row in csv.reader(f)]
    out += rng.sample(mmlu, min(400, len(mmlu)))
    return out


def smollm2_from_gguf(path):
    """HF tokenizer rebuilt from GGUF metadata, with SmolLM2's own pre-tokenizer and decoder."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    r = GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in strings("tokenizer.ggml.merges")]
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    add_bos = "tokenizer.ggml.add_bos_token" in r.fields and bool(r.fields["tokenizer.ggml.add_bos_token"].parts[-1][0])
    if add_bos:
        fail_setup("this SmolLM2 GGUF sets add_bos_token; the oracle assumes it does not")
    return tok


def run_bin(args, lines):
    """Runs swiftkv with --input-jsonl on `lines`; returns the parsed output lines and seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
        name = f.name
    try:
        t0 = time.time()
        p = subprocess.run([BIN] + args + ["--input-jsonl", name], capture_output=True, timeout=600)
        dt = time.time() - t0
    finally:
        os.unlink(name)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    # Not splitlines(): decoded text may hold U+2028 / U+0085, which JSON leaves unescaped.
    out = [json.loads(l) for l in p.stdout.decode("utf-8").split("\n") if l]
    if len(out) != len(lines):
        raise RuntimeError(f"{' '.join(args)}: {len(out)} output lines for {len(lines)} inputs")
    return out, dt


class Tally:
    def __init__(self):
        self.passed = self.failed = 0
        self.rows = []
        self.shown = {}

    def check(self, label, ok, detail):
        if ok:
            self.passed += 1
            return
        self.failed += 1
        if self.shown.get(label, 0) < 5:
            self.shown[label] = self.shown.get(label, 0) + 1
            print(f"FAIL [{label}] {detail()}")


def first_diff(a, b):
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return f"first difference at index {i}: ours {a[i:i + 8]} vs oracle {b[i:i + 8]} (lengths {len(a)} / {len(b)})"


def check_tokenizer(tally, name, skv_path, hf, texts, edge_count, big):
    """Compares ids in three modes, decode, and round trip; appends a summary row."""
    rows = {}
    # HF's encode_special_tokens=True is swiftkv's --no-parse-special. The big document goes
    # through the mode whose ids feed the decode and round-trip checks.
    modes = [("add+parse", [], True, False, texts),
             ("noadd+parse", ["--no-add-special"], False, False, texts + [big]),
             ("noadd+noparse", ["--no-add-special", "--no-parse-special"], False, True, texts[:edge_count + 300])]
    ids_noadd = None
    for mode, flags, add_special, encode_special, inputs in modes:
        hf.encode_special_tokens = encode_special
        expected = [e.ids for e in hf.encode_batch(inputs, add_special_tokens=add_special)]
        got, secs = run_bin(["tokenize", "--tokenizer", skv_path] + flags, inputs)
        got = [g["ids"] for g in got]
        ok = sum(g == e for g, e in zip(got, expected))
        for s, g, e in zip(inputs, got, expected):
            tally.check(f"{name} ids {mode}", g == e, lambda: f"{s[:80]!r}: {first_diff(g, e)}")
        rows[mode] = (ok, len(inputs), secs)
        if mode == "noadd+parse":
            ids_noadd = got
    hf.encode_special_tokens = False

    # Decode: same text as HF's decoder, with and without special tokens; round trip to the input.
    texts = texts + [big]
    for skip in (False, True):
        label = "decode" + (" skip-special" if skip else "")
        got, _ = run_bin(["detokenize", "--tokenizer", skv_path] + (["--skip-special"] if skip else []), ids_noadd)
        expected = hf.decode_batch(ids_noadd, skip_special_tokens=skip)
        ok = 0
        for s, g, e in zip(texts, got, expected):
            tally.check(f"{name} {label}", g["text"] == e, lambda: f"{s[:60]!r}: ours {g['text'][:60]!r} vs {e[:60]!r}")
            ok += g["text"] == e
        rows[label] = (ok, len(texts), 0)
        if not skip:
            rt_ok = rt_n = 0
            for s, g, e in zip(texts, got, expected):
                if e != s:
                    continue  # HF itself does not round-trip (e.g. lstrip tokens eat spaces)
                rt_n += 1
                rt_ok += g["text"] == s
                tally.check(f"{name} roundtrip", g["text"] == s, lambda: f"{s[:60]!r} -> {g['text'][:60]!r}")
            rows["roundtrip"] = (rt_ok, rt_n, 0)
    tally.rows.append((name, rows))


def pre_variants():
    """gpt2_style.json with other pre-tokenizer / normalizer / post-processor settings, to cover
    the Split behaviours, invert, String patterns, Digits and the simple normalizers."""
    gpt2_re = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    bl_re = dict(bl, use_regex=True)
    seq = lambda *p: {"type": "Sequence", "pretokenizers": list(p)}
    split = lambda pat, beh, inv=False: {"type": "Split", "pattern": pat, "behavior": beh, "invert": inv}
    out = {}
    for beh in ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
        out[f"split-{beh}"] = {"pre_tokenizer": seq(split({"Regex": r"[\s,.!?]+"}, beh), bl_re)}
        out[f"split-{beh}-invert"] = {"pre_tokenizer": seq(split({"Regex": r"\p{L}+"}, beh, True), bl)}
    out["split-string"] = {"pre_tokenizer": seq(split({"String": " "}, "MergedWithNext"), bl)}
    out["split-gpt2-regex"] = {"pre_tokenizer": seq(split({"Regex": gpt2_re}, "Isolated"), bl)}
    out["digits-contiguous"] = {"pre_tokenizer": seq({"type": "Digits", "individual_digits": False}, bl_re)}
    out["bytelevel-prefix-space"] = {"pre_tokenizer": dict(bl_re, add_prefix_space=True)}
    out["norm-replace-prepend"] = {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"String": "  "}, "content": " "},
        {"type": "Replace", "pattern": {"Regex": r"\d"}, "content": "#"},
        {"type": "Prepend", "prepend": ">"}]}}
    out["post-template-eos"] = {"post_processor": {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}}}
    return out


def check_variants(tally, texts):
    from tokenizers import Tokenizer

    base = json.load(open(os.path.join(FIXTURES, "gpt2_style.json"), encoding="utf-8"))
    n_ok = n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, override in pre_variants().items():
            path = os.path.join(tmp, f"{name}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(dict(base, **override), f)
            expected = [e.ids for e in Tokenizer.from_file(path).encode_batch(texts)]
            got, _ = run_bin(["tokenize", "--tokenizer", path], texts)
            for s, g, e in zip(texts, got, expected):
                tally.check(f"variant {name}", g["ids"] == e, lambda: f"{s[:80]!r}: {first_diff(g['ids'], e)}")
                n_ok += g["ids"] == e
                n += 1
    tally.rows.append((f"gpt2_style x {len(pre_variants())} variants", {"add+parse": (n_ok, n, 0)}))


def check_llama_cpp(tally, texts):
    try:
        import llama_cpp
    except ImportError:
        print("llama_cpp not installed: skipping the llama.cpp oracle")
        return
    llm = llama_cpp.Llama(model_path=GGUF, vocab_only=True, verbose=False)
    expected = [llm.tokenize(s.encode("utf-8"), add_bos=False, special=True) for s in texts]
    got, _ = run_bin(["tokenize", "--tokenizer", GGUF, "--no-add-special"], texts)
    ok = 0
    for s, g, e in zip(texts, got, expected):
        tally.check("smollm2_gguf vs llama.cpp", g["ids"] == e, lambda: f"{s[:80]!r}: {first_diff(g['ids'], e)}")
        ok += g["ids"] == e
    tally.rows.append(("smollm2_gguf vs llama.cpp", {"noadd+parse": (ok, len(texts), 0)}))


def main():
    if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
        fail_setup(f"swiftkv binary not found at {BIN} (build it, or set SKV_BIN)")
    if not os.path.isdir(DATA):
        fail_setup(f"data directory {DATA} not found (set SKV_DATA)")
    if not os.path.isfile(GGUF):
        fail_setup(f"model file {GGUF} is missing: run scripts/fetch_model.sh")
    from tokenizers import Tokenizer

    rng = random.Random(1234)
    texts = EDGE + corpus(rng)
    # One long document checks speed and cross-chunk behaviour (~1.5 MB through one encode call).
    big = read(os.path.join(DATA, "prose", "tinyshakespeare.txt")) + read(os.path.join(DATA, "wikitext2", "wiki.test.raw"))[:400000]

    tally = Tally()
    t0 = time.time()
    tokenizers = [
        ("llama3_style", os.path.join(FIXTURES, "llama3_style.json"), Tokenizer.from_file(os.path.join(FIXTURES, "llama3_style.json"))),
        ("gpt2_style", os.path.join(FIXTURES, "gpt2_style.json"), Tokenizer.from_file(os.path.join(FIXTURES, "gpt2_style.json"))),
        ("smollm2_gguf", GGUF, smollm2_from_gguf(GGUF)),
    ]
    for name, path, hf in tokenizers:
        t1 = time.time()
        try:
            check_tokenizer(tally, name, path, hf, texts, len(EDGE), big)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            tally.check(f"{name} run", False, lambda: str(e))
        print(f"{name}: {time.time() - t1:.1f}s")
    try:
        check_variants(tally, texts[:len(EDGE) + 300])
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        tally.check("variants run", False, lambda: str(e))
    try:
        check_llama_cpp(tally, texts)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        tally.check("llama.cpp run", False, lambda: str(e))

    print(f"\n{len(texts)} strings ({len(EDGE)} hand-made edge cases) + 1 document of {len(big) / 1e6:.1f} MB")
    for name, rows in tally.rows:
        for mode, (ok, n, secs) in rows.items():
            timing = f"  swiftkv {secs:.2f}s" if secs else ""
            print(f"  {name:28s} {mode:22s} {ok:5d}/{n:<5d} match{timing}")
    print(f"total {time.time() - t0:.1f}s")
    print(f"tokenizer oracle: {tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

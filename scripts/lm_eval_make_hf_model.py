#!/usr/bin/env python3
"""Plain Llama Hugging Face directory (F32) with exactly the weights swiftkv runs from a GGUF.

`swiftkv convert` already writes an HF directory from a GGUF (dequantised F32, q/k rows
un-permuted to the HF layout, tokenizer.json + tokenizer_config.json with the chat template), but
as a SwiftKV checkpoint. This step turns that into an ordinary LlamaForCausalLM checkpoint that
transformers (and so lm-evaluation-harness's `hf` backend) loads: model_type "llama",
architectures ["LlamaForCausalLM"], the swiftkv config fields removed, the *_swiftkv tensors and
model.norm_swiftkv dropped. The remaining tensors are copied bit for bit.

  .venv-lmeval/bin/python scripts/lm_eval_make_hf_model.py \
      --gguf models/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2-f32-hf
  # or from an existing `swiftkv convert` output:
  .venv-lmeval/bin/python scripts/lm_eval_make_hf_model.py --src models/smollm2-skv50 --out ...

--check also loads the result with transformers and compares its next-token log-probs with
`swiftkv score` on a few token sequences (needs torch + transformers: .venv-lmeval).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWIFTKV_CONFIG_KEYS = ("swiftkv", "num_key_value_layers", "key_value_group_size")


def strip_swiftkv(src, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    for k in SWIFTKV_CONFIG_KEYS:
        cfg.pop(k, None)
    cfg["model_type"] = "llama"
    cfg["architectures"] = ["LlamaForCausalLM"]
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tensors = load_file(os.path.join(src, "model.safetensors"))
    kept = {k: np.ascontiguousarray(v) for k, v in tensors.items()
            if "_swiftkv" not in k and "norm_swiftkv" not in k}
    dropped = sorted(set(tensors) - set(kept))
    save_file(kept, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json",
                 "special_tokens_map.json"):
        p = os.path.join(src, name)
        if os.path.exists(p):
            shutil.copyfile(p, os.path.join(out, name))
    print(f"wrote {out}: {len(kept)} tensors kept, {len(dropped)} swiftkv tensors dropped")


def swiftkv_score(binary, model, ids):
    r = subprocess.run([binary, "score", "--model", model, "--token-ids", ",".join(map(str, ids))],
                       check=True, capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if l.strip().startswith("{")][-1]
    return json.loads(line)["token_logprobs"]


def check(out, binary):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    print(f"transformers loaded {type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params")
    texts = [
        "Question: Which statement best explains why photosynthesis is the foundation of most "
        "food webs?\nAnswer: Sunlight is the source of energy for nearly all ecosystems.",
        "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer: Provide the "
        "guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
        "The quick brown fox jumps over the lazy dog. " * 6,
    ]
    seqs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    seqs.append([1] + tok("<|im_start|>user\nWhat is 2+2?<|im_end|>\n", add_special_tokens=False)
                ["input_ids"])
    worst = 0.0
    for ids in seqs:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        ref = np.array([lp[i - 1, ids[i]].item() for i in range(1, len(ids))])
        got = swiftkv_score(binary, out, ids)
        assert got[0] is None and len(got) == len(ids), got[:3]
        got = np.array(got[1:], dtype=np.float64)
        d = np.abs(ref - got)
        worst = max(worst, d.max())
        print(f"  {len(ids):3d} tokens: max |transformers - swiftkv score| = {d.max():.2e}, "
              f"mean {d.mean():.2e}, sum lp {ref.sum():.4f} vs {got.sum():.4f}")
    ok = worst < 1e-4
    print(f"max |diff| over all sequences: {worst:.2e} ({'OK' if ok else 'MISMATCH'})")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--src", help="existing `swiftkv convert` output directory (skips convert)")
    ap.add_argument("--out", default=os.path.join(ROOT, "models/smollm2-f32-hf"))
    ap.add_argument("--swiftkv", default=os.path.join(ROOT, "build/swiftkv"),
                    help="swiftkv binary (for convert and --check)")
    ap.add_argument("--force", action="store_true", help="overwrite --out")
    ap.add_argument("--check", action="store_true",
                    help="compare transformers log-probs with `swiftkv score`")
    a = ap.parse_args()

    if os.path.exists(os.path.join(a.out, "model.safetensors")) and not a.force:
        print(f"{a.out} exists (use --force to rebuild)")
    elif a.src:
        strip_swiftkv(a.src, a.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            conv = os.path.join(tmp, "skv")
            # Any SwiftKV fraction: only the base tensors are kept, and those are the GGUF's.
            subprocess.run([a.swiftkv, "convert", "--model", a.gguf, "--out", conv,
                            "--swiftkv-fraction", "0.5"], check=True)
            strip_swiftkv(conv, a.out)
    if a.check and not check(a.out, a.swiftkv):
        sys.exit(1)


if __name__ == "__main__":
    main()

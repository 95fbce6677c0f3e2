#!/usr/bin/env python3
"""`swiftkv serve` against the official `openai` Python client, on SmolLM2-135M-Instruct Q4_1
and on its 50% SwiftKV conversion.

Completions and chat, streamed and not: streamed text equals non-streamed text, greedy answers
equal `swiftkv generate`, usage is complete, echo log-probs equal `swiftkv score` (1e-4, exact
on the SwiftKV path too), /v1/models lists the model, errors arrive as the client's exception
classes. 32 simultaneous streaming clients get the answers each gets alone (Q4_1: every row is
computed on its own, so they must be identical).

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS (missing model is a failure unless SKV_ALLOW_SKIP=1).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "robustness"))
from cli_checks import start_serve  # noqa: E402

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

failures: list[str] = []
passed = 0


def check(name: str, ok: bool, detail: str = "") -> None:
    global passed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failures.append(name)
        print(f"FAIL {name}: {detail}")


def run(args: list[str]) -> str:
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {p.stderr.strip()[-400:]}")
    return p.stdout


class Served:
    def __init__(self, model: str):
        self.proc, url, self.name = start_serve(model, ["--kv-cache-memory-bytes", "512MiB"])
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def generate_text(model: str, prompt: str, n: int) -> str:
    return json.loads(run(["generate", "--model", model, "--prompt", prompt, "-n", str(n), "--temperature", "0",
                           "--json", "-t", "2"]))["text"]


def score(model: str, prompt: str) -> list:
    return json.loads(run(["score", "--model", model, "--prompt", prompt, "-t", "2"]))["token_logprobs"]


def exercise(label: str, model: str, concurrency: bool) -> None:
    s = Served(model)
    c = s.client
    try:
        models = c.models.list()
        check(f"{label}: models", [m.id for m in models.data] == [s.name])

        prompt = "The capital of France is"
        r = c.completions.create(model=s.name, prompt=prompt, max_tokens=16, temperature=0)
        want = generate_text(model, prompt, 16)
        check(f"{label}: greedy completion equals generate", r.choices[0].text == want,
              f"{r.choices[0].text!r} vs {want!r}")
        u = r.usage
        check(f"{label}: usage", u.completion_tokens == 16 and u.total_tokens == u.prompt_tokens + 16 and
              u.prompt_tokens_details is not None, str(u))
        streamed = "".join(ch.choices[0].text for ch in
                           c.completions.create(model=s.name, prompt=prompt, max_tokens=16, temperature=0, stream=True)
                           if ch.choices)
        check(f"{label}: streamed completion equals non-streamed", streamed == r.choices[0].text,
              f"{streamed!r} vs {r.choices[0].text!r}")

        # Echo: the prompt's own log-probs, the full forward on every position (exact on SwiftKV).
        e = c.completions.create(model=s.name, prompt=prompt, max_tokens=1, temperature=0, echo=True, logprobs=0)
        got = e.choices[0].logprobs.token_logprobs
        ref = score(model, prompt)
        n = len(ref)
        diff = max(abs(a - b) for a, b in zip(got[1:n], ref[1:n]))
        check(f"{label}: echo log-probs equal score", got[0] is None and diff < 1e-4, f"max diff {diff}")

        msgs = [{"role": "user", "content": "Name a colour."}]
        ch = c.chat.completions.create(model=s.name, messages=msgs, max_tokens=12, temperature=0)
        parts = []
        usage = None
        for chunk in c.chat.completions.create(model=s.name, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                               stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        check(f"{label}: streamed chat equals non-streamed", "".join(parts) == ch.choices[0].message.content,
              f"{''.join(parts)!r} vs {ch.choices[0].message.content!r}")
        check(f"{label}: stream usage", usage is not None and usage.completion_tokens == ch.usage.completion_tokens,
              str(usage))
        lp = c.chat.completions.create(model=s.name, messages=msgs, max_tokens=4, temperature=0, logprobs=True,
                                       top_logprobs=3)
        content = lp.choices[0].logprobs.content
        check(f"{label}: chat logprobs", len(content) == 4 and all(len(t.top_logprobs) == 3 for t in content))

        try:
            c.completions.create(model=s.name, prompt="x", temperature=-1)
            check(f"{label}: bad request raises", False, "no error")
        except openai.BadRequestError as err:
            check(f"{label}: bad request raises", "temperature" in str(err), str(err))
        try:
            c.completions.create(model="no-such-model", prompt="x")
            check(f"{label}: unknown model raises", False, "no error")
        except openai.NotFoundError:
            check(f"{label}: unknown model raises", True)

        if concurrency:
            prompts = [f"Write one sentence about the number {i}." for i in range(32)]

            def one(p: str) -> str:
                return "".join(x.choices[0].text for x in c.completions.create(
                    model=s.name, prompt=p, max_tokens=16, temperature=0, stream=True) if x.choices)

            alone = [one(p) for p in prompts]
            with ThreadPoolExecutor(32) as ex:
                together = list(ex.map(one, prompts))
            same = sum(a == b for a, b in zip(alone, together))
            check(f"{label}: 32 concurrent streams equal one at a time", same == 32, f"{same}/32 equal")
    finally:
        rc = s.stop()
    check(f"{label}: SIGTERM exits 0", rc == 0, f"exit {rc}")


def main() -> int:
    if not os.path.exists(SMOL):
        if os.environ.get("SKV_ALLOW_SKIP") == "1":
            print(f"skip: {SMOL} missing")
            return 0
        print(f"FAIL: {SMOL} is missing (scripts/fetch_model.sh)")
        return 1
    exercise("base", SMOL, concurrency=True)
    with tempfile.TemporaryDirectory(prefix="skv_serve_") as tmp:
        skv = os.path.join(tmp, "skv50")
        run(["convert", "--model", SMOL, "--out", skv, "--swiftkv-fraction", "0.5"])
        exercise("swiftkv50", skv, concurrency=False)
    print(f"server (openai client): {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

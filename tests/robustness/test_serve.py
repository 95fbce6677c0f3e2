#!/usr/bin/env python3
"""`swiftkv serve` under bad input and faults, on the tiny fixture model (fast under ASan).

Bad flags fail cleanly before anything listens. A running server answers every bad request with
a 4xx and OpenAI's error shape ({"error": {"message", "type", "param", "code"}}) and keeps
serving: malformed JSON, missing / mistyped fields, unknown token ids, prompts beyond
--max-model-len, unsupported fields, unknown models and routes, bodies over --max-body-bytes,
missing or wrong API keys (401; /health stays open). A streaming client that disconnects has its
request aborted (num_requests_running drops back to 0). SIGTERM exits 0. While the model loads
(its config.json is a FIFO the test holds shut) /health and the API answer 503 with Retry-After,
and the same server answers 200 once the load finishes; SIGTERM during the load exits 0 at once.

Standard library only (http.client): runs in the ASan+UBSan build too.
Env: SKV_BIN, SKV_SOURCE_DIR.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, TRACEBACK_MARKERS, Checks, start_serve  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
checks = Checks(BIN, "serve")
TIMEOUT = float(os.environ.get("SKV_TEST_TIMEOUT", 120))


class Served:
    """A `swiftkv serve` process on a free port; stop() sends SIGTERM and returns the exit status."""

    def __init__(self, extra: list[str] | None = None, proc: subprocess.Popen | None = None, port: int = 0):
        """Starts a server on TINY with `extra` flags, or wraps an already started `proc`."""
        if proc is not None:
            self.proc, self.port = proc, port
            return
        self.proc, url, _ = start_serve(TINY, ["--kv-cache-memory-bytes", "16MiB"] + (extra or []))
        self.port = int(url.rsplit(":", 1)[1])

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, text, r

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -999, "did not exit after SIGTERM"
        return rc, self.proc.stderr.read()


def expect(name: str, got: tuple, status: int, pattern: str) -> None:
    st, text, _ = got
    problems = []
    if st != status:
        problems.append(f"status {st}, want {status}")
    try:
        err = json.loads(text)["error"]
        if not re.search(pattern, err["message"], re.I):
            problems.append(f"message {err['message']!r} does not match {pattern!r}")
        if err.get("code") != status or not err.get("type"):
            problems.append(f"error body {err}")
    except (ValueError, KeyError, TypeError):
        problems.append(f"not an error body: {text[:200]!r}")
    checks.record(name, problems, text[:160])


def bad_flags(tmp_env_dir: str) -> None:
    checks.expect_error("missing_model", [], r"missing required flag --model")
    checks.expect_error("bad_port", ["--model", TINY, "--port", "70000"], r"--port must be in")
    checks.expect_error("bad_waiting", ["--model", TINY, "--max-waiting-requests", "0"], r"--max-waiting-requests")
    checks.expect_error("bad_body_bytes", ["--model", TINY, "--max-body-bytes", "lots"], r"--max-body-bytes")
    checks.expect_error("positional", ["--model", TINY, "extra"], r"unexpected argument")


def main() -> int:
    if not checks.have_binary():
        return checks.summary("serve")
    bad_flags(ROOT)

    s = Served(["--max-model-len", "64", "--max-body-bytes", "4KiB"])
    try:
        st, text, _ = s.request("GET", "/health")
        checks.record("health", [] if st == 200 else [f"status {st}"], text)
        st, text, _ = s.request("GET", "/v1/models")
        ok = st == 200 and json.loads(text)["data"][0]["max_model_len"] == 64
        checks.record("models", [] if ok else [f"status {st}: {text[:200]}"])
        st, text, _ = s.request("POST", "/v1/completions", {"prompt": [1, 5, 9], "max_tokens": 4, "temperature": 0})
        body = json.loads(text) if st == 200 else {}
        ok = st == 200 and body["usage"]["completion_tokens"] == 4 and body["usage"]["prompt_tokens"] == 3
        checks.record("completion", [] if ok else [f"status {st}: {text[:200]}"])

        expect("malformed_json", s.request("POST", "/v1/completions", raw=b"{not json"), 400, r"not valid JSON")
        expect("not_object", s.request("POST", "/v1/completions", [1, 2]), 400, r"JSON object")
        expect("missing_prompt", s.request("POST", "/v1/completions", {"max_tokens": 2}), 400, r"'prompt' is required")
        expect("mistyped", s.request("POST", "/v1/completions", {"prompt": [1], "max_tokens": "3"}), 400,
               r"'max_tokens' must be an integer")
        expect("out_of_range", s.request("POST", "/v1/completions", {"prompt": [1], "temperature": -2}), 400,
               r"temperature")
        expect("unknown_token", s.request("POST", "/v1/completions", {"prompt": [1, 999999]}), 400,
               r"outside the vocabulary")
        expect("too_long", s.request("POST", "/v1/completions", {"prompt": list(range(1, 80))}), 400,
               r"maximum context length is 64")
        expect("unsupported", s.request("POST", "/v1/chat/completions",
                                        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "x"}]}),
               400, r"'tools' is not supported")
        expect("unknown_model", s.request("POST", "/v1/completions", {"prompt": [1], "model": "gpt-9"}), 404,
               r"does not exist")
        expect("unknown_route", s.request("GET", "/v1/nothing"), 404, r"no route")
        expect("body_too_large", s.request("POST", "/v1/completions", raw=b" " * 8192), 413, r"too large")
        expect("detokenize_bad", s.request("POST", "/detokenize", {"tokens": [-1]}), 400, r"not a token id")

        st, text, _ = s.request("GET", "/health")
        checks.record("still_serving", [] if st == 200 else [f"status {st}"])
    finally:
        rc, err = s.stop()
    bad = [m for m in TRACEBACK_MARKERS if m in err]
    checks.record("sigterm_exits_0", [] if rc == 0 and not bad else [f"exit {rc} {bad}"], err.strip()[-300:])

    # An API key guards the API routes; /health stays open.
    s = Served(["--api-key", "sesame"])
    try:
        expect("no_key", s.request("GET", "/v1/models"), 401, r"API key")
        expect("wrong_key", s.request("GET", "/v1/models", headers={"Authorization": "Bearer open"}), 401, r"API key")
        st1, _, _ = s.request("GET", "/v1/models", headers={"Authorization": "Bearer sesame"})
        st2, _, _ = s.request("GET", "/v1/models", headers={"X-Api-Key": "sesame"})
        st3, _, _ = s.request("GET", "/health")
        checks.record("key_accepted", [] if (st1, st2, st3) == (200, 200, 200) else [f"{st1} {st2} {st3}"])

        # A streaming client that goes away: its request is aborted, nothing keeps running.
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
        body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 2000, "stream": True, "ignore_eos": True}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Api-Key: sesame\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        first = b""
        while b"data:" not in first:
            chunk = sock.recv(4096)
            if not chunk:
                break
            first += chunk
        sock.close()
        running = None
        for _ in range(100):
            st, text, _ = s.request("GET", "/metrics", headers={"X-Api-Key": "sesame"})
            m = re.search(r"^swiftkv:num_requests_running\{[^}]*\} (\S+)", text, re.M)
            running = float(m.group(1)) if m else None
            if running == 0:
                break
            time.sleep(0.05)
        aborted = re.search(r'request_success_total\{[^}]*finished_reason="abort"\} (\d+)', text)
        # 2000 tokens take the tiny model long enough that the abort, not the end, stops it.
        checks.record("disconnect_aborts", [] if b"data:" in first and running == 0 and aborted and
                      int(aborted.group(1)) == 1 else [f"running {running}, aborted {aborted and aborted.group(1)}"])

    finally:
        rc, err = s.stop()
    checks.record("sigterm_exits_0_keyed", [] if rc == 0 else [f"exit {rc}"], err.strip()[-300:])
    loading()
    return checks.summary("serve")


def loading() -> None:
    """The model's config.json is a FIFO: the load blocks reading it until the test writes it,
    so the server is observably still loading for as long as the test needs."""
    with tempfile.TemporaryDirectory() as d:
        for f in os.listdir(TINY):
            if f != "config.json":
                os.symlink(os.path.join(TINY, f), os.path.join(d, f))
        fifo = os.path.join(d, "config.json")
        os.mkfifo(fifo)
        p = subprocess.Popen([BIN, "serve", "--model", d, "--port", "0", "-t", "2", "--stats-interval", "0",
                              "--kv-cache-memory-bytes", "16MiB"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        # A writer that cannot block the test forever if the server dies before opening the FIFO.
        writer = None
        try:
            m = re.search(r"listening on http://[^:]+:(\d+)", p.stderr.readline())
            if not m:
                checks.record("loading_503", ["no listening line"])
                return
            s = Served(proc=p, port=int(m.group(1)))
            st, text, r = s.request("GET", "/health")
            st2, text2, r2 = s.request("POST", "/v1/completions", {"prompt": [1, 2], "max_tokens": 1})
            st3, _, _ = s.request("GET", "/v1/models")
            problems = []
            if st != 503 or "loading" not in text:
                problems.append(f"/health {st} {text[:100]}")
            if st2 != 503 or r2.getheader("Retry-After") is None or "loading" not in text2:
                problems.append(f"/v1/completions {st2} Retry-After={r2.getheader('Retry-After')} {text2[:100]}")
            if st3 != 503:
                problems.append(f"/v1/models {st3}")
            checks.record("loading_503", problems, f"{st} {text.strip()[:60]}")
            with open(os.path.join(TINY, "config.json"), "rb") as f:
                config = f.read()
            writer = threading.Thread(target=lambda: open(fifo, "wb").write(config), daemon=True)
            writer.start()
            ready = p.stdout.readline()
            st, _, _ = s.request("GET", "/health")
            st2, text2, _ = s.request("POST", "/v1/completions", {"prompt": [1, 2], "max_tokens": 1})
            checks.record("loaded_200", [] if "ready on" in ready and st == 200 and st2 == 200
                          else [f"ready line {ready!r}, /health {st}, completion {st2} {text2[:100]}"])
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = -999
            checks.record("loaded_sigterm_exits_0", [] if rc == 0 else [f"exit {rc}"])

        # SIGTERM while the load is blocked: nothing to drain, so it exits 0 without waiting.
        p = subprocess.Popen([BIN, "serve", "--model", d, "--port", "0", "--stats-interval", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stderr.readline()
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=TIMEOUT)
            err = p.stderr.read()
        except subprocess.TimeoutExpired:
            p.kill()
            rc, err = -999, "still running after SIGTERM"
        checks.record("loading_sigterm_exits_0", [] if rc == 0 and "while loading" in err else [f"exit {rc}: {err}"])


if __name__ == "__main__":
    sys.exit(main())

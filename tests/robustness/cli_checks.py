"""Shared checks for the robustness tests (test_*.py here): run the swiftkv CLI on bad input and
require a clean failure, i.e. a non-zero, non-signal exit status (1 unless a test says otherwise),
one stderr line that contains "error" and names the problem, no traceback or sanitizer report,
and, given a work directory, no file under it changed.

Standard library only: the tests run as plain scripts, in the ASan+UBSan build too.
"""
from __future__ import annotations

import os
import re
import subprocess

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "AddressSanitizer", "LeakSanitizer",
                     "runtime error:", "terminate called", "Segmentation fault", "core dumped")


def sanitized(bin_path: str = BIN) -> bool:
    """Whether the binary is a sanitizer build (its kernels and allocator are several times slower,
    and freed memory stays in quarantine, so RSS bounds do not apply)."""
    try:
        out = subprocess.run(["ldd", bin_path], capture_output=True, text=True).stdout
        return "libasan" in out or "libubsan" in out
    except OSError:
        return False


def make_env() -> dict[str, str]:
    """The environment to run swiftkv in."""
    env = dict(os.environ)
    # Sanitizer builds: make any report fatal and visible; never let a leak report pass silently.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def start_serve(model: str, extra: list[str], threads: int = 2) -> tuple[subprocess.Popen, str, str]:
    """Starts `swiftkv serve` on a free port with the stats line off; returns the process, its
    base URL and the served model name once the ready line is out (raises if it never comes)."""
    p = subprocess.Popen([BIN, "serve", "--model", model, "--port", "0", "-t", str(threads), "--stats-interval", "0"]
                         + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=make_env())
    line = p.stdout.readline()
    m = re.search(r"ready on (http://[^ ]+) \(model (.*)\)", line)
    if not m:
        p.kill()
        raise RuntimeError(f"no ready line: {line!r} {p.stderr.read()[-800:]}")
    return p, m.group(1), m.group(2)


def snapshot(d: str) -> dict[str, bytes]:
    """Every file under d (relative path -> contents)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def unprintable(text: str) -> str | None:
    """Describes the first control character / invalid UTF-8 byte (shown as U+FFFD) in text."""
    for ch in text:
        if (ord(ch) < 0x20 and ch not in "\n\t") or ch == "\ufffd" or ord(ch) == 0x7F:
            return repr(ch)
    return None


class Checks:
    """Runs `BIN [SUBCOMMAND] ARGS` and records each case as passed or failed.

    exit_code: the status expect_error wants; None accepts any of 1..127.
    one_stderr_line: stderr must be that one error line and nothing else; False allows other
    lines (notes, warnings) as long as exactly one contains "error".
    printable_stderr: stderr must hold no control characters or invalid UTF-8 (raw file bytes
    echoed into a message).
    """

    def __init__(self, bin_path: str = BIN, subcommand: str | None = None, *, default_timeout: float = 120,
                 env: dict[str, str] | None = None, exit_code: int | None = 1, one_stderr_line: bool = True,
                 printable_stderr: bool = False) -> None:
        self.bin = bin_path
        self.prefix = [subcommand] if subcommand else []
        self.timeout = float(os.environ.get("SKV_TEST_TIMEOUT", default_timeout))
        self.env = make_env() if env is None else env
        self.exit_code = exit_code
        self.one_stderr_line = one_stderr_line
        self.printable_stderr = printable_stderr
        self.passed: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def have_binary(self) -> bool:
        """Records a failure unless BIN is executable (every case would fail less clearly)."""
        if os.access(self.bin, os.X_OK):
            return True
        self.record("swiftkv_binary", [f"SKV_BIN={self.bin!r} is not an executable swiftkv binary"])
        return False

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([self.bin] + self.prefix + args, capture_output=True, text=True, errors="replace",
                              timeout=self.timeout, env=self.env)

    def record(self, name: str, problems: list[str], detail: str = "") -> None:
        if problems:
            self.failed.append((name, "; ".join(problems)))
            print(f"FAIL {name}: {'; '.join(problems)}" + (f"\n     {detail}" if detail else ""))
        else:
            self.passed.append(name)
            print(f"ok   {name}" + (f": {detail}" if detail else ""))

    def expect_error(self, name: str, args: list[str], keyword: str, workdir: str | None = None,
                     exit_code: int | None = None) -> None:
        """keyword: regex (case-insensitive) the error line must match; workdir: nothing under it
        may change; exit_code: overrides the one given to Checks for this case."""
        want_rc = self.exit_code if exit_code is None else exit_code
        before = snapshot(workdir) if workdir is not None else None
        try:
            p = self.run(args)
        except subprocess.TimeoutExpired:
            self.record(name, [f"timed out after {self.timeout:.0f}s (hang?)"], " ".join(args))
            return
        problems = []
        rc = p.returncode
        if rc < 0 or rc >= 128:
            problems.append(f"killed by signal / crashed (returncode {rc})")
        elif rc == 0:
            problems.append("exit status 0 for bad input")
        elif want_rc is not None and rc != want_rc:
            problems.append(f"exit status {rc}, want {want_rc}")
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        err_lines = [ln for ln in lines if "error" in ln.lower()]
        if self.one_stderr_line and len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines (want exactly 1, containing 'error')")
        elif len(err_lines) != 1:
            problems.append(f"{len(err_lines)} stderr lines contain 'error' (want exactly 1)")
        elif not re.search(keyword, err_lines[0], re.IGNORECASE):
            problems.append(f"error line does not match /{keyword}/")
        for m in TRACEBACK_MARKERS:
            if m in p.stderr or m in p.stdout:
                problems.append(f"output contains {m!r}")
        if self.printable_stderr and (u := unprintable(p.stderr)) is not None:
            problems.append(f"stderr contains unprintable {u}")
        if before is not None:
            after = snapshot(workdir)
            if after != before:
                changed = sorted(set(after) ^ set(before)) or sorted(k for k in after if after[k] != before.get(k))
                problems.append(f"files changed under the work directory: {changed[:5]}")
        one = len(err_lines) == 1 and (len(lines) == 1 or not self.one_stderr_line)
        shown = err_lines[0] if one else (p.stderr.strip().replace("\n", " | ")[:600] or "<no stderr>")
        self.record(name, problems, f"rc={rc} stderr: {shown}")

    def summary(self, prefix: str) -> int:
        """Prints the failures and the counts; returns the exit status for the script."""
        for name, why in self.failed:
            print(f"  failed: {name}: {why}")
        print(f"{prefix}: {len(self.passed)} passed, {len(self.failed)} failed")
        return 1 if self.failed else 0

#!/usr/bin/env python3
"""Disk faults in every writer (issue 20): a full disk, the file size limit and an unwritable
target during `convert` (SwiftKV GGUF, Hugging Face directory, SwiftKV weights file), `distill`
(checkpoint saves, metrics.jsonl, the teacher cache, the exported model, the --stop-after model),
`eval` (--output, --log-samples) and `run-batch` (its appended output). Each case must end with the exit status of its kind (3 for
ENOSPC / EFBIG, 1 for a permission error), never a signal; exactly one stderr line with "error"
that names the file and the system's reason; the previous file or directory at the target byte
for byte as it was; no temporary file or directory left next to it. Afterwards the same command
without the fault must succeed (and a distill run must resume from its last good checkpoint and
end with the weights of an uninterrupted run).

How the faults are made:
- ENOSPC: tests/robustness/failwrite_shim.c, preloaded (SKV_FAULT_SHIM, set by CTest), fails
  write / pwrite / writev to files whose path matches once a byte budget is used up (at the
  start, in the middle, at the last byte), or fails fsync / fdatasync / posix_fallocate. In the
  ASan build the ASan runtime is preloaded ahead of it. The shim logs every fault it injects, and
  each case checks that its fault was hit.
- The file size limit: RLIMIT_FSIZE in the child (ulimit -f). swiftkv ignores SIGXFSZ, so the
  write fails with EFBIG ("File too large") instead of the signal killing the process.
- A read-only directory: chmod 0555 before the run (distill: between a run and its --resume, and
  under --out while --checkpoint-dir stays writable, so the export after training fails). Root
  ignores directory permissions, so as root these runs are made as user nobody; without that
  possibility they are skipped with the reason printed.

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_FAULT_SHIM (path of the shim; built by CMake with the tests).
Runs in the ASan+UBSan build too.
"""
from __future__ import annotations

import json
import os
import pwd
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_checks import BIN, ROOT, TRACEBACK_MARKERS, Checks, make_env, snapshot  # noqa: E402

BASE = os.path.join(ROOT, "tests", "fixtures", "models", "llama_gqa")
DISTILL_MODEL = os.path.join(ROOT, "tests", "fixtures", "distill", "m2g1_gqa", "model")
MC = os.path.join(ROOT, "tests", "fixtures", "eval", "mc_small.jsonl")
SHIM = os.environ.get("SKV_FAULT_SHIM", "")
# What an interrupted writer leaves: mkstemp temporaries (X.tmp.ABCDEF) and staged or replaced
# directories (.X.tmp.ABCDEF, .X.old.ABCDEF).
LEFTOVER = re.compile(r"\.(tmp|old)\.[A-Za-z0-9]{6}$")
ENOSPC_TEXT = "No space left on device"
EFBIG_TEXT = "File too large"
EACCES_TEXT = "Permission denied"


def state(path: str):
    """A file's bytes, a directory's snapshot, or None when nothing is there."""
    if os.path.isdir(path):
        return snapshot(path)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def leftovers(d: str) -> list[str]:
    return sorted(n for n in os.listdir(d) if LEFTOVER.search(n)) if os.path.isdir(d) else []


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def dir_bytes(d: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def asan_runtime() -> str | None:
    """The ASan runtime BIN links, which must come first in LD_PRELOAD."""
    try:
        out = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(libasan\.so[.\d]*) => (\S+)", out)
    return m.group(2) if m else None


def make_data(path: str, n_docs: int, seed: int, vocab: int = 97) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            motif = [rng.randrange(vocab) for _ in range(rng.randint(2, 5))]
            f.write(json.dumps({"token_ids": (motif * 20)[: rng.randint(3, 40)]}) + "\n")


def metric_steps(ckpt: str) -> list[int] | None:
    """The steps of metrics.jsonl, or None if a line is not whole JSON."""
    try:
        with open(os.path.join(ckpt, "metrics.jsonl")) as f:
            text = f.read()
        if text and not text.endswith("\n"):
            return None
        return [json.loads(line)["step"] for line in text.splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return None


class Runner:
    def __init__(self, checks: Checks, tmp: str) -> None:
        self.checks = checks
        self.tmp = tmp
        self.log = os.path.join(tmp, "faults.log")
        asan = asan_runtime()
        self.preload = f"{asan}:{SHIM}" if asan else SHIM
        self.timeout = checks.timeout
        self.user = None  # (uid, gid) the read-only cases run as; None: this process's own
        self.ro_skip = None  # why the read-only cases cannot run, if they cannot

    def preexec(self, fsize: int | None, as_user: bool):
        def fn():
            if fsize is not None:
                _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, hard))
            if as_user and self.user is not None:
                os.setgroups([])
                os.setgid(self.user[1])
                os.setuid(self.user[0])
        return fn

    def run(self, args: list[str], fault: dict | None = None, fsize: int | None = None,
            as_user: bool = False) -> subprocess.CompletedProcess:
        env = make_env()
        if fault:
            env["LD_PRELOAD"] = self.preload
            env["SKV_FAULT_LOG"] = self.log
            for k, v in fault.items():
                env["SKV_FAULT_" + k] = str(v)
        if os.path.exists(self.log):
            os.remove(self.log)
        return subprocess.run([BIN] + args, capture_output=True, text=True, errors="replace", env=env,
                              timeout=self.timeout, preexec_fn=self.preexec(fsize, as_user))

    def ok(self, name: str, args: list[str], as_user: bool = False, want: str | None = None) -> bool:
        """A run that must succeed (setup, or the same command once the fault is gone)."""
        p = self.run(args, as_user=as_user)
        problems = [] if p.returncode == 0 else [f"exit status {p.returncode}"]
        if want and want not in p.stderr:
            problems.append(f"stderr lacks {want!r}")
        self.checks.record(name, problems, "" if not problems else p.stderr.strip()[-500:])
        return not problems

    def fault(self, name: str, args: list[str], patterns: list[str], rc: int, *, fault: dict | None = None,
              fsize: int | None = None, as_user: bool = False, intact: list[str] = (), clean: list[str] = (),
              extra=None) -> subprocess.CompletedProcess | None:
        """A run that must fail cleanly: status rc, one error line matching every regex in
        patterns, each path in intact unchanged, no leftovers in each directory of clean, the
        injected fault hit; extra(p) may return more problems."""
        before = {p: state(p) for p in intact}
        try:
            p = self.run(args, fault, fsize, as_user)
        except subprocess.TimeoutExpired:
            self.checks.record(name, [f"timed out after {self.timeout:.0f}s (hang?)"])
            return None
        problems = []
        if p.returncode < 0 or p.returncode >= 128:
            problems.append(f"killed by signal (returncode {p.returncode})")
        elif p.returncode != rc:
            problems.append(f"exit status {p.returncode}, want {rc}")
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        errs = [ln for ln in lines if "error" in ln.lower()]
        if len(errs) != 1:
            problems.append(f"{len(errs)} stderr lines contain 'error' (want exactly 1)")
        else:
            if errs[0] != lines[-1]:
                problems.append("the error line is not the last stderr line")
            if not re.match(r"swiftkv [\w-]+: error: ", errs[0]):
                problems.append("the error line is not 'swiftkv COMMAND: error: ...'")
            for pat in patterns:
                if not re.search(pat, errs[0]):
                    problems.append(f"error line does not match /{pat}/")
        for m in TRACEBACK_MARKERS:
            if m in p.stderr:
                problems.append(f"stderr contains {m!r}")
        for path, b in before.items():
            if state(path) != b:
                problems.append(f"{os.path.relpath(path, self.tmp)} changed")
        for d in clean:
            if left := leftovers(d):
                problems.append(f"left behind in {os.path.relpath(d, self.tmp)}: {left}")
        if fault and not os.path.exists(self.log):
            problems.append("the injected fault was never hit")
        if extra is not None:
            problems += extra(p)
        shown = errs[0] if len(errs) == 1 else p.stderr.strip().replace("\n", " | ")[-600:]
        self.checks.record(name, problems, f"rc={p.returncode} {shown}")
        return p

    # Read-only cases: root ignores directory permissions, so they run as nobody.
    def setup_user(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.ro_skip = "running as root and there is no user 'nobody' to drop to"
            return
        self.user = (nobody.pw_uid, nobody.pw_gid)
        try:
            p = self.run(["--help"], as_user=True)
            if p.returncode != 0:
                self.ro_skip = f"user nobody cannot run {BIN} (exit status {p.returncode})"
        except (OSError, subprocess.SubprocessError) as e:
            self.ro_skip = f"cannot run {BIN} as user nobody ({e})"

    def give(self, path: str) -> None:
        """Hands path (recursively) to the user the read-only cases run as."""
        if self.user is None:
            return
        for r, ds, fs in os.walk(path):
            for n in [r] + [os.path.join(r, x) for x in ds + fs]:
                os.chown(n, *self.user)


def main() -> int:
    checks = Checks(BIN, default_timeout=300)
    if not checks.have_binary():
        return checks.summary("disk faults")
    if not SHIM or not os.path.exists(SHIM):
        checks.record("shim", [f"SKV_FAULT_SHIM={SHIM!r} is not the built failwrite shim (CMake sets it)"])
        return checks.summary("disk faults")
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="skv_disk_faults_")
    os.chmod(tmp, 0o755)  # the read-only cases' user must reach its directories
    r = Runner(checks, tmp)
    r.setup_user()
    try:
        convert_cases(r, tmp)
        distill_cases(r, tmp)
        eval_cases(r, tmp)
        run_batch_cases(r, tmp)
    finally:
        for root, ds, _ in os.walk(tmp):
            for d in ds:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"disk faults: {time.time() - t_start:.1f} s")
    return checks.summary("disk faults")


def convert_cases(r: Runner, tmp: str) -> None:
    import make_bad_files as mbf

    base_gguf = mbf.write_gguf(os.path.join(tmp, "base.gguf"))
    one = ["--num-key-value-layers", "1"]

    # --- SwiftKV GGUF (GGUFWriter -> write_file_atomic) over a previous file (--force).
    g = os.path.join(tmp, "g")
    os.makedirs(g)
    ref = os.path.join(tmp, "ref.gguf")
    if not r.ok("setup_convert_gguf", ["convert", "--model", base_gguf, "--out", ref] + one):
        return
    size = os.path.getsize(ref)
    out = os.path.join(g, "out.gguf")
    write_bytes(out, b"previous gguf\n")
    args = ["convert", "--model", base_gguf, "--out", out, "--force"] + one
    enospc = [re.escape(out), ENOSPC_TEXT]
    for label, fault in [("start", {"BYTES": 0}), ("middle", {"BYTES": size // 2}), ("last_byte", {"BYTES": size - 1}),
                         ("fsync", {"FSYNC": 1})]:
        r.fault(f"convert_gguf_enospc_{label}", args, enospc + (["fsync failed"] if label == "fsync" else []), 3,
                fault=dict(fault, MATCH=out), intact=[out], clean=[g])
    r.fault("convert_gguf_fsize", args, [re.escape(out), EFBIG_TEXT], 3, fsize=size // 2, intact=[out], clean=[g])
    if r.ok("convert_gguf_after_faults", args):
        r.checks.record("convert_gguf_after_faults_same_bytes", [] if read_bytes(out) == read_bytes(ref)
                        else ["the output differs from a conversion without faults"])

    # --- Hugging Face directory (staged next to the target, renamed into place) over a previous one.
    h = os.path.join(tmp, "h")
    os.makedirs(h)
    ref_dir = os.path.join(tmp, "ref_hf")
    if not r.ok("setup_convert_hf", ["convert", "--model", BASE, "--out", ref_dir] + one):
        return
    weights = os.path.getsize(os.path.join(ref_dir, "model.safetensors"))
    total = dir_bytes(ref_dir)
    out = os.path.join(h, "out")
    os.makedirs(out)
    write_bytes(os.path.join(out, "config.json"), b'{"previous": true}\n')
    write_bytes(os.path.join(out, "model.safetensors"), b"previous weights")
    args = ["convert", "--model", BASE, "--out", out, "--force"] + one
    staged = os.path.join(h, ".out.tmp.")
    enospc = [r"model directory " + re.escape(out) + ":", ENOSPC_TEXT]
    for label, fault, file in [("start", {"BYTES": 0}, "model.safetensors"),
                               ("middle_weights", {"BYTES": weights // 2}, "model.safetensors"),
                               ("config", {"BYTES": weights + 10}, "config.json"),
                               ("last_byte", {"BYTES": total - 1}, r"\w+"),
                               ("fsync", {"FSYNC": 1}, "model.safetensors")]:
        r.fault(f"convert_hf_enospc_{label}", args, enospc + [re.escape(file) if file != r"\w+" else file], 3,
                fault=dict(fault, MATCH=staged), intact=[out], clean=[h])
    r.fault("convert_hf_fsize", args, [re.escape(out), EFBIG_TEXT], 3, fsize=weights // 2, intact=[out], clean=[h])
    if r.ok("convert_hf_after_faults", args):
        same = snapshot(out) == snapshot(ref_dir)
        r.checks.record("convert_hf_after_faults_replaced", ([] if same else ["differs from a clean conversion"]) +
                        [f"left behind {x}" for x in leftovers(h)])

    # --- SwiftKV weights file (--base, write_safetensors) over a previous one.
    w = os.path.join(tmp, "w")
    os.makedirs(w)
    ref_w = os.path.join(tmp, "ref.safetensors")
    if r.ok("setup_extract_weights", ["convert", "--model", ref_dir, "--base", BASE, "--out", ref_w]):
        size = os.path.getsize(ref_w)
        out = os.path.join(w, "skv.safetensors")
        write_bytes(out, b"previous weights file")
        args = ["convert", "--model", ref_dir, "--base", BASE, "--out", out, "--force"]
        for label, fault in [("start", {"BYTES": 0}), ("middle", {"BYTES": size // 2}), ("fsync", {"FSYNC": 1})]:
            r.fault(f"extract_weights_enospc_{label}", args, [re.escape(out), ENOSPC_TEXT], 3,
                    fault=dict(fault, MATCH=out), intact=[out], clean=[w])
        r.fault("extract_weights_fsize", args, [re.escape(out), EFBIG_TEXT], 3, fsize=size // 2, intact=[out],
                clean=[w])
        if r.ok("extract_weights_after_faults", args):
            r.checks.record("extract_weights_same_bytes", [] if read_bytes(out) == read_bytes(ref_w) else ["differs"])

    # --- Read-only target directories.
    if r.ro_skip:
        print(f"SKIP convert read-only cases: {r.ro_skip}")
        return
    ro = os.path.join(tmp, "ro_convert")
    os.makedirs(os.path.join(ro, "out"))
    out_g = os.path.join(ro, "out.gguf")
    write_bytes(out_g, b"previous gguf\n")
    out_h = os.path.join(ro, "out")
    write_bytes(os.path.join(out_h, "config.json"), b'{"previous": true}\n')
    r.give(ro)
    os.chmod(ro, 0o555)
    gguf_args = ["convert", "--model", base_gguf, "--out", out_g, "--force"] + one
    hf_args = ["convert", "--model", BASE, "--out", out_h, "--force"] + one
    r.fault("convert_gguf_readonly_dir", gguf_args,
            [r"cannot create a temporary file next to " + re.escape(out_g), EACCES_TEXT], 1, as_user=True,
            intact=[out_g], clean=[ro])
    r.fault("convert_hf_readonly_dir", hf_args,
            [r"cannot create a temporary directory next to " + re.escape(out_h), EACCES_TEXT], 1, as_user=True,
            intact=[out_h], clean=[ro])
    os.chmod(ro, 0o755)
    r.ok("convert_gguf_writable_again", gguf_args, as_user=True)
    r.ok("convert_hf_writable_again", hf_args, as_user=True)


def distill_cases(r: Runner, tmp: str) -> None:
    d = os.path.join(tmp, "d")
    os.makedirs(d)
    data = os.path.join(d, "data.jsonl")
    make_data(data, 120, 1)

    def args(out: str, *extra: str) -> list[str]:
        return ["distill", "--model", DISTILL_MODEL, "--data", data, "--out", out, "--max-seq-len", "32",
                "--batch-tokens", "96", "--lr", "5e-3", "--no-decontaminate", "-t", "1", "--head-chunk", "8",
                "--steps", "12", "--save-every", "4"] + list(extra)

    # References: an uninterrupted run, and the checkpoint of step 4.
    ref = os.path.join(d, "ref")
    s4 = os.path.join(d, "s4")
    if not (r.ok("setup_distill_reference", args(ref)) and r.ok("setup_distill_step4", args(s4, "--stop-after", "4"))):
        return
    ref_model = read_bytes(os.path.join(ref, "model.safetensors"))
    state4 = read_bytes(os.path.join(s4 + ".state", "state.bin"))

    def same_model(out: str) -> list[str]:
        p = os.path.join(out, "model.safetensors")
        return [] if os.path.exists(p) and read_bytes(p) == ref_model else [f"{p} differs from the uninterrupted run's"]

    def resume(name: str, out: str, want: str, as_user: bool = False) -> None:
        p = r.run(args(out, "--resume"), as_user=as_user)
        problems = [f"exit status {p.returncode}"] if p.returncode != 0 else []
        if want not in p.stderr:
            problems.append(f"stderr lacks {want!r}")
        problems += same_model(out)
        if metric_steps(out + ".state") != list(range(1, 13)):
            problems.append(f"metrics.jsonl steps {metric_steps(out + '.state')}, want 1..12 once")
        problems += [f"left behind {x}" for x in leftovers(out + ".state") + leftovers(d)]
        r.checks.record(name, problems, "" if not problems else p.stderr.strip()[-400:])

    # A checkpoint save that runs out of space half-way: the step-4 checkpoint stays, --resume uses it.
    x = os.path.join(d, "x")
    xs = os.path.join(x + ".state", "state.bin")

    def step4_intact(p):
        ok = os.path.exists(xs) and read_bytes(xs) == state4
        steps = metric_steps(x + ".state")
        return ([] if ok else ["state.bin is not the step-4 checkpoint"]) + \
            ([] if steps == list(range(1, 9)) else [f"metrics.jsonl steps {steps}, want 1..8 in whole lines"])
    r.fault("distill_checkpoint_enospc_middle", args(x), [re.escape(xs), ENOSPC_TEXT, r"step 8 was not saved",
                                                          r"step 4 is intact.*--resume"], 3,
            fault={"MATCH": xs, "BYTES": len(state4) * 3 // 2}, clean=[x + ".state", d], extra=step4_intact)
    resume("distill_resume_after_failed_checkpoint", x, "resuming after step 4")

    # The first save fails: at its first byte, at fsync, past the file size limit.
    for label, fault, fsize, text in [("enospc_start", {"BYTES": 0}, None, ENOSPC_TEXT),
                                      ("fsync", {"FSYNC": 1}, None, "fsync failed: " + ENOSPC_TEXT),
                                      ("fsize", None, len(state4) // 2, EFBIG_TEXT)]:
        y = os.path.join(d, "y_" + label)
        ys = os.path.join(y + ".state", "state.bin")
        r.fault(f"distill_first_checkpoint_{label}", args(y), [re.escape(ys), text, "there is none to resume from"], 3,
                fault=dict(fault, MATCH=ys) if fault else None, fsize=fsize, clean=[y + ".state", d],
                extra=lambda p, ys=ys: [] if not os.path.exists(ys) else ["a state.bin exists"])

    # metrics.jsonl: a line that does not fit is cut off again (no torn line).
    z = os.path.join(d, "z")
    zm = os.path.join(z + ".state", "metrics.jsonl")
    with open(os.path.join(ref + ".state", "metrics.jsonl"), "rb") as f:
        first_line = len(f.readline())
    r.fault("distill_metrics_enospc", args(z), [re.escape(zm), ENOSPC_TEXT], 3,
            fault={"MATCH": zm, "BYTES": first_line * 3 // 2}, clean=[z + ".state"],
            extra=lambda p: [] if metric_steps(z + ".state") == [1] else
            [f"metrics.jsonl steps {metric_steps(z + '.state')}, want [1] in whole lines"])

    # The export after training: the state is complete, --resume writes the model without training.
    e = os.path.join(d, "e")
    r.fault("distill_export_enospc", args(e), [r"model directory " + re.escape(e) + ":", ENOSPC_TEXT,
                                               r"training is complete.*--resume writes"], 3,
            fault={"MATCH": os.path.join(d, ".e.tmp."), "BYTES": len(ref_model) // 2}, clean=[d],
            extra=lambda p: [] if not os.path.exists(e) else ["the output directory exists"])
    resume("distill_resume_after_failed_export", e, "resuming after step 12")

    # The --stop-after model (CHECKPOINT_DIR/model-step-4): its checkpoint is saved first.
    f_ = os.path.join(d, "f")
    fs_ = os.path.join(f_ + ".state")
    r.fault("distill_stop_model_enospc", args(f_, "--stop-after", "4"),
            [re.escape(os.path.join(fs_, "model-step-4")), ENOSPC_TEXT, r"step 4 is saved; --resume"], 3,
            fault={"MATCH": os.path.join(fs_, ".model-step-4.tmp."), "BYTES": 0}, clean=[fs_],
            extra=lambda p: [] if state(os.path.join(fs_, "state.bin")) == state4 else ["state.bin is not step 4's"])

    # The teacher cache: its reservation, its records, their sync, its meta.json.
    def cache_case(name, fault, fsize, patterns, want_complete):
        c = os.path.join(d, "cache_" + name)
        bin_ = os.path.join(c, "teacher.bin")

        def extra(p):
            meta = os.path.join(c, "meta.json")
            if want_complete is None:
                return [f"{n} left in the cache directory" for n in ("teacher.bin", "meta.json")
                        if os.path.exists(os.path.join(c, n))]
            try:
                done = json.load(open(meta))["complete_sequences"]
            except (OSError, ValueError, KeyError) as ex:
                return [f"meta.json unreadable ({ex})"]
            return [] if done == want_complete else [f"complete_sequences {done}, want {want_complete}"]
        a = args(os.path.join(d, "c_" + name), "--teacher-cache", c)
        if fault:
            fault = dict(fault, MATCH=os.path.join(c, fault.get("MATCH", "teacher.bin")))
        r.fault(f"distill_teacher_cache_{name}", a, [p.replace("BIN", re.escape(bin_)) for p in patterns], 3,
                fault=fault, fsize=fsize, clean=[c, d], extra=extra)
        r.ok(f"distill_teacher_cache_{name}_rerun", a)

    cache_case("fallocate", {"FALLOCATE": 1}, None, [r"cannot reserve \d+ bytes for the teacher cache BIN", ENOSPC_TEXT],
               None)
    cache_case("fallocate_fsize", None, 4096, [r"cannot reserve \d+ bytes for the teacher cache BIN", EFBIG_TEXT], None)
    cache_case("record_enospc", {"BYTES": 1000}, None, [r"cannot write the teacher cache BIN", ENOSPC_TEXT], 0)
    cache_case("fdatasync", {"FSYNC": 1}, None, [r"teacher cache BIN: fdatasync failed", ENOSPC_TEXT], 0)
    cache_case("meta_enospc", {"MATCH": "meta.json", "BYTES": 0}, None, [r"meta\.json", ENOSPC_TEXT], None)

    # Read-only directories: the checkpoint directory between a run and its --resume; the output's
    # parent directory while the checkpoint directory stays writable (training runs, export fails).
    if r.ro_skip:
        print(f"SKIP distill read-only cases: {r.ro_skip}")
        return
    ro = os.path.join(d, "ro")
    os.makedirs(os.path.join(ro, "outs"))
    r.give(ro)
    v = os.path.join(ro, "v")
    if not r.ok("setup_distill_readonly", args(v, "--stop-after", "4"), as_user=True):
        return
    vs = v + ".state"
    os.chmod(vs, 0o555)
    r.fault("distill_resume_readonly_checkpoint_dir", args(v, "--resume"),
            [re.escape(os.path.join(vs, "metrics.jsonl")), EACCES_TEXT], 1, as_user=True,
            intact=[os.path.join(vs, "state.bin"), os.path.join(vs, "metrics.jsonl")], clean=[vs])
    os.chmod(vs, 0o755)
    resume("distill_resume_writable_again", v, "resuming after step 4", as_user=True)

    outs = os.path.join(ro, "outs")
    u = os.path.join(outs, "u")
    ucks = os.path.join(ro, "u.ckpt")
    os.chmod(outs, 0o555)
    r.fault("distill_export_readonly_dir", args(u, "--checkpoint-dir", ucks),
            [r"cannot create a temporary directory next to " + re.escape(u), EACCES_TEXT,
             r"training is complete.*--resume writes"], 1, as_user=True, clean=[outs],
            extra=lambda p: [] if not os.path.exists(u) else ["the output directory exists"])
    os.chmod(outs, 0o755)
    p = r.run(args(u, "--checkpoint-dir", ucks, "--resume"), as_user=True)
    r.checks.record("distill_export_writable_again", ([] if p.returncode == 0 else [f"exit status {p.returncode}"]) +
                    same_model(u), p.stderr.strip()[-300:] if p.returncode else "")


def eval_cases(r: Runner, tmp: str) -> None:
    e = os.path.join(tmp, "eval")
    os.makedirs(e)
    results = os.path.join(e, "results.json")
    samples = os.path.join(e, "samples.jsonl")
    write_bytes(results, b"previous results\n")
    write_bytes(samples, b"previous samples\n")
    args = ["eval", "--model", BASE, "--tasks", f"mc:{MC}", "--output", results, "--log-samples", samples]
    for label, fault in [("start", {"BYTES": 0}), ("middle", {"BYTES": 200}), ("fsync", {"FSYNC": 1})]:
        r.fault(f"eval_samples_enospc_{label}", args, [re.escape(samples), ENOSPC_TEXT], 3,
                fault=dict(fault, MATCH=samples), intact=[samples, results], clean=[e])
        r.fault(f"eval_output_enospc_{label}", args, [re.escape(results), ENOSPC_TEXT], 3,
                fault=dict(fault, MATCH=results), intact=[results], clean=[e])
    r.fault("eval_fsize", args, [r"(results\.json|samples\.jsonl)", EFBIG_TEXT], 3, fsize=64,
            intact=[samples, results], clean=[e])
    if r.ok("eval_after_faults", args):
        try:
            json.load(open(results))
            n = len(open(samples).read().splitlines())
            problems = [] if n == 7 else [f"{n} sample lines, want 7"]
        except ValueError as ex:
            problems = [f"results.json is not JSON ({ex})"]
        r.checks.record("eval_after_faults_files", problems)


def run_batch_cases(r: Runner, tmp: str) -> None:
    b = os.path.join(tmp, "batch")
    os.makedirs(b)
    requests = os.path.join(b, "requests.jsonl")
    ids = ["a", "b", "c", "d"]
    with open(requests, "w") as f:
        for cid in ids:
            f.write(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/completions",
                                "body": {"model": "m", "prompt": "hello " + cid, "max_tokens": 4,
                                         "temperature": 0}}) + "\n")
    out = os.path.join(b, "out.jsonl")

    def records() -> list[str] | None:
        """The custom_ids of out.jsonl, or None if a line is not whole JSON."""
        try:
            text = open(out).read()
            if text and not text.endswith("\n"):
                return None
            return [json.loads(line)["custom_id"] for line in text.splitlines()]
        except (OSError, ValueError, KeyError):
            return None

    args = ["run-batch", "--model", BASE, "-i", requests, "-o", out, "-t", "1"]
    r.fault("run_batch_output_enospc", args, [re.escape(out), ENOSPC_TEXT], 3, fault={"MATCH": out, "BYTES": 300},
            extra=lambda p: [] if records() is not None and len(records()) < 4 else
            [f"out.jsonl records {records()}: want fewer than 4, in whole lines"])
    p = r.run(args + ["--resume"])
    got = records()
    r.checks.record("run_batch_resume_after_enospc", ([] if p.returncode == 0 else [f"exit status {p.returncode}"]) +
                    ([] if got is not None and sorted(got) == ids else [f"records {got}, want {ids} once each"]),
                    p.stderr.strip()[-300:] if p.returncode else "")


if __name__ == "__main__":
    sys.exit(main())

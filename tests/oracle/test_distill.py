#!/usr/bin/env python3
"""`swiftkv distill` end to end on the tiny SwiftKV fixture of tests/fixtures/distill (whose
gradients tests/unit/test_distill_model.cpp checks against PyTorch autograd):

- the loss falls; the output checkpoint loads, its frozen tensors are bit-identical to the
  input's and only the trainable tensors changed;
- a run killed with SIGKILL mid-way and resumed with --resume gives exactly the loss trajectory
  and the weights of an uninterrupted run;
- `mpirun -np 2` gives the weights of one process within floating-point tolerance (skipped with
  a message when mpirun is missing);
- bad input (a plain model, missing data, changed settings on --resume, an existing checkpoint
  without --resume) is refused with a clear message and a non-zero exit;
- the teacher cache (--teacher-cache): a cached run follows the live run's loss trajectory within
  the bf16 rounding of the cached hidden states; a second run reuses the cache and repeats the
  first exactly; a build cut short resumes where meta.json says it stopped and gives the same
  run; a cache made for other settings is refused; the top-k variant trains too; 2 MPI ranks
  building and reading one cache give one process's weights;
- the qwen3_swiftkv and mistral_swiftkv fixtures (q/k norms with trainable q_norm_swiftkv /
  k_norm_swiftkv; a sliding window) distill too: the loss falls, every trainable tensor changes,
  every frozen one stays bit-identical, and the output loads and scores.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file

BIN = os.environ["SKV_BIN"]
SRC = os.environ["SKV_SOURCE_DIR"]
MODEL = os.path.join(SRC, "tests", "fixtures", "distill", "m2g1_gqa", "model")
FAILS = []


def check(cond, what):
    lines = what.strip().splitlines()
    if len(lines) > 1:  # keep the label and the last line of a quoted stderr
        what = lines[0] + " ... " + lines[-1]
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def run(args, **kw):
    return subprocess.run([BIN] + args, capture_output=True, text=True, **kw)


def make_data(path, n_docs, seed, vocab=97):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            # Documents with some structure (repeated motifs) so there is something to learn.
            motif = [rng.randrange(vocab) for _ in range(rng.randint(2, 5))]
            ids = (motif * 20)[: rng.randint(3, 40)]
            f.write(json.dumps({"token_ids": ids}) + "\n")


def metrics(ckpt):
    with open(os.path.join(ckpt, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def distill(tmp, name, data, extra, launcher=(), model=MODEL):
    out = os.path.join(tmp, name)
    cmd = list(launcher) + [BIN, "distill", "--model", model, "--data", data, "--out", out, "--max-seq-len", "32",
                            "--batch-tokens", "96", "--lr", "5e-3", "--no-decontaminate"] + extra
    return out, subprocess.run(cmd, capture_output=True, text=True)


def main():
    tmp = tempfile.mkdtemp(prefix="skv_distill_")
    try:
        data = os.path.join(tmp, "data.jsonl")
        make_data(data, 200, 1)

        # 1. A complete run.
        out, r = distill(tmp, "a", data, ["--steps", "30", "--save-every", "10", "-t", "1"])
        check(r.returncode == 0, f"distill runs (rc {r.returncode}) {r.stderr[-400:]}")
        m = metrics(out + ".state")
        check(len(m) == 30 and [x["step"] for x in m] == list(range(1, 31)), "metrics.jsonl has one line per step")
        first = np.mean([x["loss"] for x in m[:5]])
        last = np.mean([x["loss"] for x in m[-5:]])
        check(last < 0.8 * first, f"loss falls: first 5 steps {first:.4f}, last 5 {last:.4f}")
        check(all(k in m[0] for k in ("loss", "kl", "mse", "lr", "grad_norm", "tokens_per_s")), "metrics fields")
        src = load_file(os.path.join(MODEL, "model.safetensors"))
        dst = load_file(os.path.join(out, "model.safetensors"))
        check(sorted(src) == sorted(dst), "the output holds the same tensors")
        trainable = {k for k in src if "_swiftkv" in k}
        frozen_same = all(np.array_equal(src[k], dst[k]) and src[k].dtype == dst[k].dtype
                          for k in src if k not in trainable)
        check(frozen_same, "every frozen tensor is bit-identical")
        check(all(not np.array_equal(src[k], dst[k]) for k in trainable), f"all {len(trainable)} trainable tensors changed")
        s = run(["score", "--model", out, "--token-ids", "1,2,3,4,5"])
        check(s.returncode == 0, f"the distilled checkpoint loads and scores ({s.stderr[-200:]})")

        # 2. Kill mid-way, resume, compare with the uninterrupted run.
        big = os.path.join(tmp, "big.jsonl")
        make_data(big, 600, 2)
        common = ["--steps", "60", "--save-every", "4", "-t", "1", "--head-chunk", "8"]
        ref, r = distill(tmp, "ref", big, common)
        check(r.returncode == 0, f"reference run ({r.stderr[-300:]})")
        ref_m = metrics(ref + ".state")
        out = os.path.join(tmp, "killed")
        cmd = [BIN, "distill", "--model", MODEL, "--data", big, "--out", out, "--max-seq-len", "32", "--batch-tokens",
               "96", "--lr", "5e-3", "--no-decontaminate"] + common
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed_at = None
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 120:
            try:
                n = len(metrics(out + ".state"))
            except (FileNotFoundError, json.JSONDecodeError):
                n = 0
            if n >= 10:
                p.send_signal(signal.SIGKILL)
                killed_at = n
                break
            time.sleep(0.005)
        p.wait()
        check(killed_at is not None and killed_at < 60, f"run killed mid-way (after {killed_at} logged steps)")
        check(not os.path.exists(os.path.join(out, "model.safetensors")), "a killed run leaves no output model")
        def temporaries():
            return sorted(n for n in os.listdir(out + ".state") if ".tmp." in n)
        # The kill itself may land mid-save and leave a real temporary; those count as removed too.
        real_tmp = len(temporaries())
        # What a kill during a save leaves behind (mkstemp names), and a file that only looks alike.
        for name in ("state.bin.tmp.a1B2c3", "metrics.jsonl.tmp.Zz9yX8", "state.bin.tmp.keepme!"):
            with open(os.path.join(out + ".state", name), "wb") as f:
                f.write(b"partial")
        r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
        check(r.returncode == 0 and "resuming after step" in r.stderr, f"--resume continues ({r.stderr[-300:]})")
        left = temporaries()
        removed = f"removed {2 + real_tmp} unfinished temporary file(s)"
        check(left == ["state.bin.tmp.keepme!"] and removed in r.stderr,
              f"--resume removes the temporaries of an interrupted save, nothing else (left: {left}; "
              f"expected '{removed}' in: {r.stderr[-300:]})")
        res_m = metrics(out + ".state")
        check([x["step"] for x in res_m] == list(range(1, 61)), "resumed metrics cover every step once")
        same = all(a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"] and a["lr"] == b["lr"]
                   for a, b in zip(ref_m, res_m))
        check(same and len(res_m) == len(ref_m), "the resumed loss trajectory equals the uninterrupted one exactly")
        a = load_file(os.path.join(ref, "model.safetensors"))
        b = load_file(os.path.join(out, "model.safetensors"))
        check(all(np.array_equal(a[k], b[k]) for k in a), "resumed weights equal the uninterrupted run's bit for bit")

        # --stop-after: a clean, checkpointed stop that --resume continues.
        out2, r = distill(tmp, "stopped", big, common + ["--stop-after", "7"])
        check(r.returncode == 0 and "continue with --resume" in r.stderr, "--stop-after stops with a checkpoint")
        # ... and exports the weights so far as a full model, for evaluating a run split over sessions.
        partial_dir = os.path.join(out2 + ".state", "model-step-7")
        check(partial_dir in r.stderr, "--stop-after names the exported model")
        partial = load_file(os.path.join(partial_dir, "model.safetensors"))
        check(sorted(partial) == sorted(src) and all(np.array_equal(src[k], partial[k]) for k in src if k not in trainable),
              "the step-7 model holds every tensor, the frozen ones bit-identical")
        check(all(not np.array_equal(src[k], partial[k]) and not np.array_equal(a[k], partial[k]) for k in trainable),
              "its trainable tensors are part-way: changed, and not yet the finished run's")
        s = run(["score", "--model", partial_dir, "--token-ids", "1,2,3,4,5"])
        check(s.returncode == 0, f"the step-7 model loads and scores ({s.stderr[-200:]})")
        out2, r = distill(tmp, "stopped", big, common + ["--resume"])
        b = load_file(os.path.join(out2, "model.safetensors"))
        check(r.returncode == 0 and all(np.array_equal(a[k], b[k]) for k in a),
              "--stop-after 7 then --resume equals the uninterrupted run")

        # 3. Data parallel: 2 MPI ranks vs 1 process on the same global batch.
        mpirun = shutil.which("mpirun")
        if not mpirun:
            print("SKIP mpirun not found (install openmpi-bin): data-parallel check not run")
        else:
            env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader",
                       OMPI_MCA_btl_vader_single_copy_mechanism="none")
            common2 = ["--steps", "12", "--save-every", "0", "-t", "1"]
            one, r1 = distill(tmp, "one", data, common2)
            two = os.path.join(tmp, "two")
            cmd = [mpirun, "-np", "2", BIN, "distill", "--model", MODEL, "--data", data, "--out", two,
                   "--max-seq-len", "32", "--batch-tokens", "96", "--lr", "5e-3", "--no-decontaminate"] + common2
            r2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            check(r1.returncode == 0 and r2.returncode == 0, f"1 and 2 ranks run ({r2.stdout[-300:]} {r2.stderr[-500:]})")
            if r2.returncode == 0:
                check("MPI, 2 ranks" in r2.stderr, "the 2-rank run reports MPI with 2 ranks")
                a = load_file(os.path.join(one, "model.safetensors"))
                b = load_file(os.path.join(two, "model.safetensors"))
                worst = max(float(np.max(np.abs(a[k] - b[k])) / (np.max(np.abs(a[k])) + 1e-12)) for k in trainable)
                check(worst < 1e-4, f"2 ranks give the weights of 1 process (max relative difference {worst:.2e})")
                la = [x["loss"] for x in metrics(one + ".state")]
                lb = [x["loss"] for x in metrics(two + ".state")]
                check(np.allclose(la, lb, rtol=1e-5), "and the same losses")
            # Both ranks build one teacher cache (interleaved sequences), then read it.
            onec, r1 = distill(tmp, "onec", data, common2 + ["--teacher-cache", os.path.join(tmp, "cache-1")])
            twoc = os.path.join(tmp, "twoc")
            r2 = subprocess.run(cmd[:cmd.index("--out") + 1] + [twoc] + cmd[cmd.index("--out") + 2:] +
                                ["--teacher-cache", os.path.join(tmp, "cache-2")],
                                capture_output=True, text=True, env=env, timeout=600)
            check(r1.returncode == 0 and r2.returncode == 0, f"1 and 2 ranks run on a teacher cache ({r2.stderr[-500:]})")
            if r1.returncode == 0 and r2.returncode == 0:
                with open(os.path.join(tmp, "cache-1", "teacher.bin"), "rb") as f1, \
                        open(os.path.join(tmp, "cache-2", "teacher.bin"), "rb") as f2:
                    same_cache = f1.read() == f2.read()
                check(same_cache, "the cache 2 ranks built is byte-identical to one process's")
                a = load_file(os.path.join(onec, "model.safetensors"))
                b = load_file(os.path.join(twoc, "model.safetensors"))
                worst = max(float(np.max(np.abs(a[k] - b[k])) / (np.max(np.abs(a[k])) + 1e-12)) for k in trainable)
                check(worst < 1e-4, f"and the same weights (max relative difference {worst:.2e})")

        # 4. The teacher cache, on the same settings as the reference run of section 2.
        cache = os.path.join(tmp, "cache")
        c1, r = distill(tmp, "cached1", big, common + ["--teacher-cache", cache])
        check(r.returncode == 0 and "sequences to compute" in r.stderr, f"a cached run builds its cache ({r.stderr[-300:]})")
        m1 = metrics(c1 + ".state")
        rel = max(abs(x["loss"] - y["loss"]) / y["loss"] for x, y in zip(m1, ref_m))
        check(len(m1) == 60 and rel < 2e-2, f"the cached run follows the live loss trajectory (max relative "
              f"difference {rel:.2e} over {len(m1)} steps)")
        a = load_file(os.path.join(ref, "model.safetensors"))
        b = load_file(os.path.join(c1, "model.safetensors"))
        worst = max(float(np.max(np.abs(a[k] - b[k])) / (np.max(np.abs(a[k] - src[k])) + 1e-12)) for k in trainable)
        check(worst < 0.1, f"and ends near its weights (max difference {worst:.2e} of the live run's update)")
        with open(os.path.join(cache, "meta.json")) as f:
            meta = json.load(f)
        check(meta["complete_sequences"] == meta["sequences"] and os.path.getsize(os.path.join(cache, "teacher.bin"))
              == meta["bytes"], f"meta.json records a complete cache of the file's size ({meta})")
        c2, r = distill(tmp, "cached2", big, common + ["--teacher-cache", cache])
        check(r.returncode == 0 and "sequences to compute" not in r.stderr and
              [x["loss"] for x in metrics(c2 + ".state")] == [x["loss"] for x in m1],
              "a second run reuses the cache and repeats the first exactly")
        # A build cut short: meta.json says 5 sequences are done; the records after them are garbage.
        meta["complete_sequences"] = 5
        with open(os.path.join(cache, "meta.json"), "w") as f:
            json.dump(meta, f)
        with open(os.path.join(cache, "teacher.bin"), "r+b") as f:  # the second half: far past 5 records
            f.seek(meta["bytes"] // 2)
            f.write(os.urandom(meta["bytes"] - meta["bytes"] // 2))
        c3, r = distill(tmp, "cached3", big, common + ["--teacher-cache", cache])
        want = f"{meta['sequences'] - 5} of {meta['sequences']} sequences to compute"
        check(r.returncode == 0 and want in r.stderr and
              [x["loss"] for x in metrics(c3 + ".state")] == [x["loss"] for x in m1],
              f"an unfinished cache resumes ('{want}') and gives the same run")
        _, r = distill(tmp, "cached4", big, common + ["--teacher-cache", cache, "--temperature", "1.5"])
        check(r.returncode != 0 and "temperature" in r.stderr and cache in r.stderr,
              f"a cache made at another temperature is refused: {r.stderr.strip()}")
        _, r = distill(tmp, "cached5", big, common + ["--teacher-top-k", "8"])
        check(r.returncode != 0 and "--teacher-cache" in r.stderr, f"--teacher-top-k alone is refused: {r.stderr.strip()}")
        tk, r = distill(tmp, "topk", data, ["--steps", "30", "--save-every", "0", "-t", "1", "--teacher-cache",
                                             os.path.join(tmp, "cache-top8"), "--teacher-top-k", "8"])
        ratio = None
        for line in r.stderr.splitlines():
            if "ratio" in line:
                ratio = float(line.rsplit("ratio ", 1)[1].rstrip(")"))
        check(r.returncode == 0 and ratio is not None and 0 < ratio < 1,
              f"the top-8 cache reports its KL below the live one (ratio {ratio}) {r.stderr[-300:]}")
        if r.returncode == 0:
            m = metrics(tk + ".state")
            first, last = np.mean([x["loss"] for x in m[:5]]), np.mean([x["loss"] for x in m[-5:]])
            check(last < 0.8 * first, f"top-8 cached training: loss falls ({first:.4f} -> {last:.4f})")

        # 5. The other architectures' SwiftKV variants.
        for case, vocab in (("m1g2_qwen3", 89), ("m2g1_mistral_window", 83)):
            model = os.path.join(SRC, "tests", "fixtures", "distill", case, "model")
            cdata = os.path.join(tmp, case + ".jsonl")
            make_data(cdata, 200, 3, vocab)
            out, r = distill(tmp, case, cdata, ["--steps", "30", "--save-every", "0", "-t", "1"], model=model)
            check(r.returncode == 0, f"{case}: distill runs (rc {r.returncode}) {r.stderr[-400:]}")
            if r.returncode != 0:
                continue
            m = metrics(out + ".state")
            first, last = np.mean([x["loss"] for x in m[:5]]), np.mean([x["loss"] for x in m[-5:]])
            check(last < 0.8 * first, f"{case}: loss falls: first 5 steps {first:.4f}, last 5 {last:.4f}")
            src = load_file(os.path.join(model, "model.safetensors"))
            dst = load_file(os.path.join(out, "model.safetensors"))
            ctrain = {k for k in src if "_swiftkv" in k}
            check(sorted(src) == sorted(dst) and all(np.array_equal(src[k], dst[k]) for k in src if k not in ctrain),
                  f"{case}: same tensors, every frozen one bit-identical")
            norms = {k for k in ctrain if "norm_swiftkv" in k and k != "model.norm_swiftkv.weight"}
            check(case != "m1g2_qwen3" or len(norms) == 4 + 2, f"{case}: q/k_norm_swiftkv present ({sorted(norms)})")
            check(all(not np.array_equal(src[k], dst[k]) for k in ctrain), f"{case}: all {len(ctrain)} trainable "
                  "tensors changed")
            s = run(["score", "--model", out, "--token-ids", "1,2,3,4,5"])
            check(s.returncode == 0, f"{case}: the distilled checkpoint loads and scores ({s.stderr[-200:]})")

        # 6. Bad input.
        plain = os.path.join(SRC, "tests", "fixtures", "models")
        plain_models = [os.path.join(plain, d) for d in sorted(os.listdir(plain))
                        if os.path.exists(os.path.join(plain, d, "config.json"))] if os.path.isdir(plain) else []
        if plain_models:
            r = run(["distill", "--model", plain_models[0], "--data", data, "--out", os.path.join(tmp, "bad1"),
                     "--no-decontaminate"])
            check(r.returncode != 0 and "not a SwiftKV checkpoint" in r.stderr, f"plain model refused: {r.stderr.strip()}")
        _, r = distill(tmp, "bad2", os.path.join(tmp, "missing.jsonl"), ["--steps", "1"])
        check(r.returncode != 0 and "missing.jsonl" in r.stderr, f"missing data file named: {r.stderr.strip()}")
        _, r = distill(tmp, "ref", big, ["--steps", "60", "--save-every", "4", "-t", "1", "--force"])
        check(r.returncode != 0 and "--resume" in r.stderr, f"existing checkpoint without --resume: {r.stderr.strip()}")
        _, r = distill(tmp, "ref", big, ["--steps", "30", "--save-every", "4", "--resume", "--force"])
        check(r.returncode != 0 and "total_steps" in r.stderr, f"changed settings on resume: {r.stderr.strip()}")
        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"token_ids": [1, 2, 3]}\n{"token_ids": [1, 500]}\n')
        _, r = distill(tmp, "bad3", bad, ["--steps", "1"])
        check(r.returncode != 0 and "bad.jsonl:2" in r.stderr, f"token id out of range named by line: {r.stderr.strip()}")
        r = run(["distill", "--model", MODEL, "--data", data, "--out", os.path.join(tmp, "x"), "--steps", "0"])
        check(r.returncode != 0 and "--steps" in r.stderr, f"--steps 0 refused: {r.stderr.strip()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        sys.exit(1)
    print("all distill checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The chat page `swiftkv serve` answers at `/`, in a real browser: Debian's chromium, headless,
driven by chromium-driver through selenium. It loads the page, which lists the model, sends a
question, and sees the answer stream in, ending with its time to first token and tokens/s. The
test saves a screenshot (SKV_ARTIFACTS, default build/test-artifacts/chat_page.png).

Env: SKV_BIN, SKV_SOURCE_DIR, SKV_MODELS (missing model or browser is a failure unless
SKV_ALLOW_SKIP=1).
"""
from __future__ import annotations

import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "robustness"))
from cli_checks import start_serve  # noqa: E402

ROOT = os.environ.get("SKV_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SKV_BIN", os.path.join(ROOT, "build", "swiftkv"))
MODELS = os.environ.get("SKV_MODELS", os.path.join(ROOT, "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
ARTIFACTS = os.environ.get("SKV_ARTIFACTS", os.path.join(os.path.dirname(BIN), "test-artifacts"))


def skip_or_fail(why: str) -> int:
    if os.environ.get("SKV_ALLOW_SKIP") == "1":
        print(f"skip: {why}")
        return 0
    print(f"FAIL: {why}")
    return 1


def main() -> int:
    if not os.path.exists(SMOL):
        return skip_or_fail(f"{SMOL} is missing (scripts/fetch_model.sh)")
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return skip_or_fail("chromium / chromedriver are not installed (scripts/install_deps.sh)")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url, _ = start_serve(SMOL, ["--kv-cache-memory-bytes", "256MiB"])
    problems = []
    browser = None
    try:
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,800"):
            opts.add_argument(a)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)
        browser.get(url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_element(By.ID, "model").text.strip() != "")
        model = browser.find_element(By.ID, "model").text
        if "SmolLM2" not in model:
            problems.append(f"model label {model!r}")
        browser.find_element(By.ID, "temperature").clear()
        browser.find_element(By.ID, "temperature").send_keys("0")
        browser.find_element(By.ID, "input").send_keys("What is the capital of France?")
        browser.find_element(By.ID, "send").click()
        stats = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .stats")))
        answer = browser.find_element(By.CSS_SELECTOR, ".msg.assistant").text
        if "tokens/s" not in stats.text or "time to first token" not in stats.text:
            problems.append(f"stats line {stats.text!r}")
        if len(answer.replace(stats.text, "").strip()) == 0:
            problems.append("empty answer")
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "chat_page.png")
        browser.save_screenshot(shot)
        print(f"answer: {answer!r}\nscreenshot: {shot}")
    except Exception as e:  # noqa: BLE001 - any browser failure is a test failure with its message
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        if browser:
            browser.quit()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        if rc != 0:
            problems.append(f"server exit {rc}")
    if problems:
        print("FAIL chat_page: " + "; ".join(problems))
        return 1
    print("ok   chat_page: the page streamed an answer with its timings")
    return 0


if __name__ == "__main__":
    sys.exit(main())

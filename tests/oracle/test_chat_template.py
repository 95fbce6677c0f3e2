#!/usr/bin/env python3
"""Oracle: `swiftkv chat-template` must render byte-for-byte what transformers renders.

For every template in tests/fixtures/chat_templates/ and a set of conversations (system+user,
user only, multi-turn, unicode, whitespace, tools...), with add_generation_prompt false and
true, the reference is transformers' own render_jinja_template (jinja2 in an
ImmutableSandboxedEnvironment with transformers' globals and tojson). Where the reference raises
(e.g. the template's raise_exception), swiftkv must exit non-zero and report the message.

Env: SKV_BIN (the swiftkv binary), SKV_SOURCE_DIR (repo root; defaults to this file's repo).
Prints "chat template oracle: N passed, M failed" and exits non-zero if anything failed.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("SKV_SOURCE_DIR", Path(__file__).resolve().parents[2]))
FIXTURES = SOURCE_DIR / "tests" / "fixtures" / "chat_templates"
SKV_BIN = os.environ.get("SKV_BIN", str(SOURCE_DIR / "build" / "swiftkv"))


def make_reference():
    """Returns render(template, messages, add_generation_prompt, **kwargs) -> str."""
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except ImportError:
        render_jinja_template = None
    if render_jinja_template is not None:
        def render(template, messages, agp, **kwargs):
            tools = kwargs.pop("tools", None)
            documents = kwargs.pop("documents", None)
            rendered, _ = render_jinja_template(conversations=[messages], tools=tools, documents=documents,
                                                chat_template=template, add_generation_prompt=agp, **kwargs)
            return rendered[0]
        return render, "transformers.utils.chat_template_utils.render_jinja_template"

    # Older / absent transformers: the same environment, built the way transformers builds it.
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
    from datetime import datetime

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)

    def render(template, messages, agp, **kwargs):
        kwargs.setdefault("tools", None)
        kwargs.setdefault("documents", None)
        return env.from_string(template).render(messages=messages, add_generation_prompt=agp, **kwargs)
    return render, "jinja2 ImmutableSandboxedEnvironment (transformers' setup)"


# ---------------------------------------------------------------- conversations

SYS_USER = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
USER_ONLY = [{"role": "user", "content": "Hello!"}]
MULTI_TURN = [{"role": "user", "content": "Hi, who are you?"},
              {"role": "assistant", "content": "I am an assistant."},
              {"role": "user", "content": "Tell me a joke."}]
SYS_MULTI = [{"role": "system", "content": "Answer tersely."},
             {"role": "user", "content": "2+2?"},
             {"role": "assistant", "content": "4"},
             {"role": "user", "content": "And 3+3?"},
             {"role": "assistant", "content": "6"}]
UNICODE = [{"role": "system", "content": "Réponds en français 🇫🇷."},
           {"role": "user", "content": "日本語で答えて。مرحبا! Ünïcödé — “quotes” ‘single’ 😀👍 \u00a0nbsp"},
           {"role": "assistant", "content": "はい、わかりました。✓"},
           {"role": "user", "content": "Ελληνικά; Кириллица! \\backslash \"dq\" 'sq'"}]
WHITESPACE = [{"role": "system", "content": "\n  Leading and trailing whitespace.  \n\n"},
              {"role": "user", "content": "  line one\n\tline two (tab)\r\n\nline four  "},
              {"role": "assistant", "content": "\n\nanswer with blank lines\n\n"},
              {"role": "user", "content": "{{ not a tag }} {% neither %} {# nor #} <|im_end|> [INST]"}]
EMPTY_CONTENT = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
                 {"role": "user", "content": " "}]

BASIC = {"system+user": SYS_USER, "user-only": USER_ONLY, "multi-turn": MULTI_TURN,
         "system+multi-turn": SYS_MULTI, "unicode": UNICODE, "whitespace": WHITESPACE,
         "empty-content": EMPTY_CONTENT}

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location — “quoted”, ünïcode.",
    "parameters": {"type": "object",
                   "properties": {"location": {"type": "string", "description": "The city, e.g. Paris"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["location"]}}}
CALC_TOOL = {"type": "function", "function": {"name": "add", "description": "Add two numbers",
                                              "parameters": {"type": "object", "properties": {
                                                  "a": {"type": "number"}, "b": {"type": "number"}}}}}
TOOL_CALL_TURN = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "get_current_weather", "arguments": {"location": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "22 degrees, sunny"},
    {"role": "assistant", "content": "It is 22°C and sunny in Paris."},
]
QWEN_TOOL_TURN = [
    {"role": "user", "content": "Add 2 and 3, and the weather in Oslo"},
    {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
        {"type": "function", "function": {"name": "get_current_weather", "arguments": {"location": "Oslo"}}}]},
    {"role": "tool", "content": "5"},
    {"role": "tool", "content": "{\"temp\": -3}"},
    {"role": "assistant", "content": "5, and -3 degrees."},
]

# template file -> (bos_token, eos_token); None: the tokenizer has no such token (left undefined).
TEMPLATES = {
    "smollm2-135m-instruct.jinja": ("<|im_start|>", "<|im_end|>"),
    "llama-3.1-8b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-1b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "chatml-qwen2.jinja": (None, "<|im_end|>"),
    "llama-2-chat.jinja": ("<s>", "</s>"),
    "jinja-features.jinja": ("<s>", "</s>"),
}


def cases():
    """Yields (name, template_file, messages, extra_context, bos, eos)."""
    for tfile, (bos, eos) in TEMPLATES.items():
        for cname, conv in BASIC.items():
            yield f"{tfile}:{cname}", tfile, conv, {}, bos, eos
    # Tools, tool calls and template options.
    for tfile in ("llama-3.1-8b-instruct.jinja", "llama-3.2-1b-instruct.jinja"):
        bos, eos = TEMPLATES[tfile]
        yield f"{tfile}:tools-in-user-message", tfile, SYS_USER, {"tools": [WEATHER_TOOL, CALC_TOOL]}, bos, eos
        yield (f"{tfile}:tools-in-system", tfile, SYS_USER,
               {"tools": [WEATHER_TOOL], "tools_in_user_message": False}, bos, eos)
        yield f"{tfile}:tool-call-turn", tfile, TOOL_CALL_TURN, {"tools": [WEATHER_TOOL]}, bos, eos
        yield f"{tfile}:date-string", tfile, MULTI_TURN, {"date_string": "01 Jan 2030"}, bos, eos
        yield f"{tfile}:custom-tools", tfile, USER_ONLY, {"custom_tools": [CALC_TOOL]}, bos, eos
        yield f"{tfile}:tools-no-user (raises)", tfile, SYS_USER[:1], {"tools": [CALC_TOOL]}, bos, eos
        two_calls = [dict(TOOL_CALL_TURN[2], tool_calls=TOOL_CALL_TURN[2]["tool_calls"] * 2)]
        yield f"{tfile}:two-tool-calls (raises)", tfile, USER_ONLY + two_calls, {}, bos, eos
    bos, eos = TEMPLATES["llama-3.1-8b-instruct.jinja"]
    yield ("llama-3.1-8b-instruct.jinja:builtin-tools", "llama-3.1-8b-instruct.jinja", TOOL_CALL_TURN,
           {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"], "tools": [WEATHER_TOOL]}, bos, eos)
    builtin_call = TOOL_CALL_TURN[:2] + [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "brave_search", "arguments": {"query": "weather paris"}}}]}, {"role": "ipython", "content": {"r": 1}}]
    yield ("llama-3.1-8b-instruct.jinja:builtin-tool-call", "llama-3.1-8b-instruct.jinja", builtin_call,
           {"builtin_tools": ["brave_search"]}, bos, eos)
    bos, eos = TEMPLATES["chatml-qwen2.jinja"]
    yield "chatml-qwen2.jinja:tools", "chatml-qwen2.jinja", SYS_USER, {"tools": [WEATHER_TOOL, CALC_TOOL]}, bos, eos
    yield "chatml-qwen2.jinja:tools-default-system", "chatml-qwen2.jinja", USER_ONLY, {"tools": [CALC_TOOL]}, bos, eos
    yield "chatml-qwen2.jinja:tool-calls", "chatml-qwen2.jinja", QWEN_TOOL_TURN, {"tools": [CALC_TOOL]}, bos, eos
    bos, eos = TEMPLATES["llama-2-chat.jinja"]
    yield ("llama-2-chat.jinja:not-alternating (raises)", "llama-2-chat.jinja",
           [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], {}, bos, eos)
    yield ("llama-2-chat.jinja:starts-with-assistant (raises)", "llama-2-chat.jinja",
           [{"role": "assistant", "content": "a"}], {}, bos, eos)
    yield "llama-2-chat.jinja:no-bos-eos", "llama-2-chat.jinja", MULTI_TURN, {}, "", ""
    tool_conv = [{"role": "system", "content": "  Be brief.  "},
                 {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image"},
                                              {"type": "text", "text": "at this"}]},
                 {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
                     "name": "f", "arguments": {"x": 1, "y": "é", "z": [1.5, None, True]}}}]},
                 {"role": "tool", "content": "42"}, {"role": "assistant", "content": "Done!"}]
    yield "jinja-features.jinja:structured", "jinja-features.jinja", tool_conv, {}, "<s>", None
    yield "jinja-features.jinja:no-messages (raises)", "jinja-features.jinja", [], {}, None, None


def run_swiftkv(template_path, messages, agp, extra, bos, eos, tmp):
    mfile, cfile = Path(tmp) / "messages.json", Path(tmp) / "context.json"
    mfile.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    cmd = [SKV_BIN, "chat-template", "--template", str(template_path), "--messages-json", str(mfile)]
    if extra:
        cfile.write_text(json.dumps(extra, ensure_ascii=False), encoding="utf-8")
        cmd += ["--context-json", str(cfile)]
    if agp:
        cmd.append("--add-generation-prompt")
    if bos:
        cmd += ["--bos-token", bos]
    if eos:
        cmd += ["--eos-token", eos]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def first_diff(a, b):
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first difference at char {k}:\n  expected {a[max(0, k - 40):k + 40]!r}\n  got      {b[max(0, k - 40):k + 40]!r}"


def main():
    try:
        reference, ref_name = make_reference()
    except ImportError as e:
        print(f"chat template oracle: cannot import the reference renderer ({e}); "
              "install jinja2 (and transformers) into the venv")
        print("chat template oracle: 0 passed, 1 failed")
        return 1
    if not Path(SKV_BIN).exists():
        print(f"chat template oracle: SKV_BIN '{SKV_BIN}' does not exist")
        print("chat template oracle: 0 passed, 1 failed")
        return 1
    print(f"reference: {ref_name}")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, tfile, messages, extra, bos, eos in cases():
            path = FIXTURES / tfile
            template = path.read_text(encoding="utf-8")
            for agp in (False, True):
                label = f"{name} agp={agp}"
                kwargs = dict(extra)
                if bos:
                    kwargs["bos_token"] = bos
                if eos:
                    kwargs["eos_token"] = eos

                def ref():
                    try:
                        return "ok", reference(template, json.loads(json.dumps(messages)), agp, **dict(kwargs))
                    except Exception as e:  # jinja2.TemplateError and friends
                        return "error", str(e)

                before = ref()
                rc, out, err = run_swiftkv(path, messages, agp, extra, bos, eos, tmp)
                # strftime_now makes some renders depend on the date: accept a match with a
                # reference rendered just before or just after swiftkv.
                after = ref() if before[0] == "ok" and out != before[1] else before
                if before[0] == "error":
                    ok = rc != 0 and before[1] in err
                    why = f"reference raised {before[1]!r}; swiftkv rc={rc} stderr={err.strip()!r}"
                else:
                    ok = rc == 0 and out in (before[1], after[1])
                    why = f"rc={rc} stderr={err.strip()!r}\n  " + first_diff(before[1], out) if rc == 0 else \
                        f"rc={rc} stderr={err.strip()!r}"
                if ok:
                    passed += 1
                else:
                    failed += 1
                    print(f"FAIL {label}: {why}")

    # CLI behaviour around the renderer.
    def check(label, cond):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {label}")

    p = subprocess.run([SKV_BIN, "chat-template", "--help"], capture_output=True)
    check("--help exits 0 and prints usage", p.returncode == 0 and b"--template" in p.stdout)
    p = subprocess.run([SKV_BIN, "chat-template", "--messages-json", "/dev/null"], capture_output=True)
    check("missing --template is an error", p.returncode != 0 and b"--template" in p.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.jinja"
        msgs = Path(tmp) / "m.json"
        msgs.write_text(json.dumps(USER_ONLY))
        bad.write_text("line one\n{{ messages | no_such_filter }}")
        p = subprocess.run([SKV_BIN, "chat-template", "--template", str(bad), "--messages-json", str(msgs)],
                           capture_output=True)
        check("unknown filter names the filter and line 2",
              p.returncode != 0 and b"no_such_filter" in p.stderr and b"line 2" in p.stderr)
        bad.write_text("{% for m in messages %}\n{{ m.content }}\n")
        p = subprocess.run([SKV_BIN, "chat-template", "--template", str(bad), "--messages-json", str(msgs)],
                           capture_output=True)
        check("unclosed for block is an error", p.returncode != 0 and b"endfor" in p.stderr)
        bad.write_text("ok\n\n{{ 'unterminated' ")
        p = subprocess.run([SKV_BIN, "chat-template", "--template", str(bad), "--messages-json", str(msgs)],
                           capture_output=True)
        check("unterminated tag names line 3", p.returncode != 0 and b"line 3" in p.stderr)

    print(f"chat template oracle: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

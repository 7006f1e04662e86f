#!/usr/bin/env python3
"""Renders Gemma's chat templates with Jinja, as transformers does, for
tests/tokenizer/chat_template_test (our C++ ApplyChatTemplate must match).

Usage: make_chat_template_cases.py OUTPUT_JSON GEMMA_CONFIG GEMMA3_CONFIG
  e.g. make_chat_template_cases.py tests/data/tokenizer/chat_template_cases.json \
           tests/data/tokenizer/gemma/tokenizer_config.json \
           tests/data/tokenizer/gemma3/tokenizer_config.json
Needs: pip install jinja2.
"""
import json
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Contents exercise trimming (Python's str.strip: Unicode whitespace too).
U, A, M, S = "user", "assistant", "model", "system"
CONVERSATIONS = [
    [],
    [(U, "Hello!")],
    [(U, "  What is 2+2?\n")],
    [(U, "Hi"), (A, "Hello! How can I help?"), (U, "Tell me a joke.")],
    [(U, "Hi"), (M, " model role kept \t")],
    [(S, "You are terse."), (U, "Hi")],
    [(S, "  untrimmed system  "), (U, "  q  "), (A, "a"), (U, "q2")],
    [(S, "only a system message")],
    [(S, "sys"), (A, "assistant first")],
    [(A, "assistant first")],
    [(U, "a"), (U, "b")],
    [(U, "a"), (A, "b"), (A, "c")],
    [(U, "a"), (S, "system in the middle"), (U, "c")],
    [(U, "a"), ("tool", "tool output"), (U, "c")],
    [(U, "\u3000\u00a0ideographic and nbsp\u2003\u0085")],
    [(U, "\u200bzero width is not whitespace\u200b")],
    [(U, "")],
    [(U, "<start_of_turn>literal tokens<end_of_turn>")],
    [(U, "日本語で答えてください。"), (A, "はい、わかりました。")],
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def main(out_path, gemma_config, gemma3_config):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for kind, path in (("gemma", gemma_config), ("gemma3", gemma3_config)):
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        template = env.from_string(config["chat_template"])
        for conversation in CONVERSATIONS:
            messages = [{"role": r, "content": c} for r, c in conversation]
            for add_generation_prompt in (False, True):
                case = {"kind": kind, "messages": messages,
                        "add_generation_prompt": add_generation_prompt}
                try:
                    case["prompt"] = template.render(
                        messages=messages, bos_token=config["bos_token"],
                        add_generation_prompt=add_generation_prompt)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"source": "jinja2 %s, transformers' sandbox settings; made by "
                             "tools/tokenizer/make_chat_template_cases.py"
                             % jinja2.__version__, "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])

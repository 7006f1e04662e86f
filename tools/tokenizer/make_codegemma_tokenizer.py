#!/usr/bin/env python3
"""Derives CodeGemma's tokenizer.json from Gemma's.

CodeGemma uses Gemma's vocabulary with four unused tokens renamed for fill-in-
the-middle: <unused60>..<unused63> (ids 67..70) become <|fim_prefix|>,
<|fim_middle|>, <|fim_suffix|> and <|file_separator|>. Their added-token flags
stay as in Gemma.

Usage: make_codegemma_tokenizer.py GEMMA_TOKENIZER_JSON OUTPUT_JSON
(the tests derive the same file at run time: tests/testing/codegemma_tokenizer.h).
"""
import json
import sys

RENAMES = {
    67: ("<unused60>", "<|fim_prefix|>"),
    68: ("<unused61>", "<|fim_middle|>"),
    69: ("<unused62>", "<|fim_suffix|>"),
    70: ("<unused63>", "<|file_separator|>"),
}


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    for token_id, (old, new) in RENAMES.items():
        if vocab.get(old) != token_id:
            sys.exit(f"{src}: expected {old} at id {token_id}")
        del vocab[old]
        vocab[new] = token_id
    renamed = 0
    for added in tok["added_tokens"]:
        if added["id"] in RENAMES:
            old, new = RENAMES[added["id"]]
            if added["content"] != old:
                sys.exit(f"{src}: added token {added['id']} is {added['content']}")
            added["content"] = new
            renamed += 1
    if renamed != len(RENAMES):
        sys.exit(f"{src}: found {renamed} of the {len(RENAMES)} added tokens")
    # The merges never involve these tokens (they are atomic added tokens).
    for merge in tok["model"]["merges"]:
        parts = merge.split(" ") if isinstance(merge, str) else merge
        if any(p == old for old, _ in RENAMES.values() for p in parts):
            sys.exit(f"{src}: a merge uses a renamed token: {merge}")
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

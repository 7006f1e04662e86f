#!/bin/sh
# Trains two small SentencePiece BPE models with byte fallback and records
# spm_encode's ids for a list of texts, for tests/tokenizer/sentencepiece_test.
#
#   tools/tokenizer/make_spm_test_model.sh [OUT_DIR]   (default tests/data/tokenizer)
#
# Writes spm_bpe.model (SentencePiece defaults: dummy prefix, whitespace
# squeezing), spm_bpe_gemma.model (Gemma's settings: no dummy prefix, spaces
# kept, digits split, user-defined <start_of_turn>/<end_of_turn>),
# spm_bpe_unused.model (the latter with its first merges marked UNUSED) and
# spm_reference.json. Needs Debian's `sentencepiece` (spm_train, spm_encode)
# and python3. Both use identity normalization, as Gemma does.
set -eu

out=${1:-tests/data/tokenizer}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Training text: prose, code and Japanese, written for this test.
cat > "$work/train.txt" <<'EOF'
The tokenizer turns text into integer ids, and the model only ever sees those ids.
A good vocabulary keeps common words whole and splits rare words into pieces.
Byte pair encoding starts from characters and merges the most frequent pairs.
SentencePiece treats the input as a raw stream, so spaces become the symbol U+2581.
When a character is missing from the vocabulary, byte fallback spells it in UTF-8 bytes.
The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.
Language models predict the next token given all the tokens that came before.
Inference engines load the weights, run the layers and sample one token at a time.
Caches keep the keys and values of earlier positions so decoding stays fast.
Attention lets every position look at every earlier position in the sequence.
We measure throughput in tokens per second and latency in milliseconds.
Numbers like 42, 3.14159, 2024 and 1000000 appear in many documents.
Hello, world! How are you today? I am fine, thank you, and you?
Tokenization matters: "don't", "can't" and "it's" are common contractions.
    indented lines keep their spaces, and	tabs	separate	columns.
def encode(text, add_bos=False):
    ids = [bos_id] if add_bos else []
    for piece in split(text):
        ids.append(vocab[piece])
    return ids
int main(int argc, char** argv) {
  std::vector<int32_t> ids = tokenizer.Encode("hello", false);
  for (size_t i = 0; i < ids.size(); ++i) printf("%d\n", ids[i]);
  return 0;
}
#include <string>
#include <vector>
class Tokenizer { public: std::string Decode(const std::vector<int>& ids) const; };
if (x == nullptr) { return Status::InvalidArgument("missing value"); }
for (auto& [key, value] : table) { total += value * weight; }
SELECT name, count(*) FROM tokens WHERE length > 3 GROUP BY name ORDER BY 2 DESC;
<start_of_turn>user
What is the capital of France?<end_of_turn>
<start_of_turn>model
The capital of France is Paris.<end_of_turn>
日本語の文章もトークナイザーで分割されます。
東京は日本の首都で、多くの人が住んでいます。
機械学習のモデルは大量のデータから学習します。
今日はとても良い天気ですね。散歩に行きましょう。
このプログラムは文字列をトークンに変換します。
私たちは新しい推論エンジンを開発しています。
The tokenizer turns text into integer ids, and the model only ever sees those ids.
Byte pair encoding starts from characters and merges the most frequent pairs.
the the the of of and and to to in in is is that that for for it it with with
tokens tokens tokenizer tokenizer encode encode decode decode model model
EOF

common="--input=$work/train.txt --model_type=bpe --byte_fallback=true \
  --normalization_rule_name=identity --character_coverage=1.0 \
  --hard_vocab_limit=false --num_threads=1 --minloglevel=2"

spm_train $common --model_prefix="$work/spm_bpe" --vocab_size=700 >/dev/null 2>&1

spm_train $common --model_prefix="$work/spm_bpe_gemma" --vocab_size=700 \
  --add_dummy_prefix=false --remove_extra_whitespaces=false \
  --allow_whitespace_only_pieces=true --split_digits=true \
  --user_defined_symbols='<start_of_turn>,<end_of_turn>' \
  --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 \
  --pad_piece='<pad>' --eos_piece='<eos>' --bos_piece='<bos>' --unk_piece='<unk>' \
  >/dev/null 2>&1

# One text per line (spm_encode reads lines, so no newlines inside).
cat > "$work/texts.txt" <<'EOF'
Hello, world!
The quick brown fox jumps over the lazy dog.
tokenizer tokenization tokens token tok
  leading spaces and trailing spaces   
multiple     spaces	and	tabs
    return ids
def encode(text, add_bos=False): return [vocab[p] for p in split(text)]
std::vector<int32_t> ids = tokenizer.Encode("hello", false);
Numbers: 0 1 12 123 1234 12345 3.14159 -2.5e-10 1,000,000
日本語の文章もトークナイザーで分割されます。
東京と大阪と京都
Emoji: 👍 👍🏽 🇯🇵 👨‍👩‍👧 ❤️
Русский текст, 中文文本, 한국어, العربية, हिन्दी
Ünïcödé àccents: café, naïve, Straße
<start_of_turn>user Hi<end_of_turn><start_of_turn>model
<bos>control names <eos> are <pad> plain <unk> text
<s>the default control names</s>
a
 
zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz
ababababababababab
the the the the the the the the the the
Byte fallback: 𓀀 🧬 ∑ ∫ ≠ ∞
zero​width‍joiner and non breaking
x
EOF

# A third model marks the first merges of spm_bpe_gemma UNUSED: SentencePiece
# still merges through such pieces but splits them back in its output.
python3 - "$work" <<'EOF'
import sys
work = sys.argv[1]

def varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos

def put_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)

def fields(data):
    """(field number, raw bytes of the whole field) of a protobuf message."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        yield tag >> 3, data[start:pos]

with open(f"{work}/spm_bpe_gemma.model", "rb") as f:
    model = f.read()
out, marked = bytearray(), 0
for number, raw in fields(model):
    if number == 1 and marked < 12:  # ModelProto.pieces
        _, body_start = varint(raw, 1)
        body = raw[body_start:]
        piece, kind = b"", 1
        for n, r in fields(body):
            if n == 1:
                piece = r[varint(r, 1)[1]:]
            elif n == 3:
                kind = varint(r, 1)[0]
        if kind == 1 and len(piece.decode("utf-8")) >= 2:
            body = b"".join(r for n, r in fields(body) if n != 3) + b"\x18\x05"
            raw = b"\x0a" + put_varint(len(body)) + body
            marked += 1
    out += raw
with open(f"{work}/spm_bpe_unused.model", "wb") as f:
    f.write(out)
EOF

python3 - "$work" "$out" <<'EOF'
import json, shutil, subprocess, sys
work, out = sys.argv[1], sys.argv[2]
with open(f"{work}/texts.txt", encoding="utf-8") as f:
    texts = f.read().split("\n")[:-1]
result = {"source": "spm_encode --output_format=id (Debian sentencepiece); "
                    "made by tools/tokenizer/make_spm_test_model.sh",
          "models": {}}
for name in ("spm_bpe", "spm_bpe_gemma", "spm_bpe_unused"):
    shutil.copy(f"{work}/{name}.model", f"{out}/{name}.model")
    ids = subprocess.run(["spm_encode", f"--model={work}/{name}.model",
                          "--output_format=id", f"--input={work}/texts.txt"],
                         check=True, capture_output=True, text=True).stdout
    lines = ids.split("\n")[:len(texts)]
    assert len(lines) == len(texts), (len(lines), len(texts))
    result["models"][name] = [
        {"text": t, "ids": [int(x) for x in line.split()]}
        for t, line in zip(texts, lines)]
with open(f"{out}/spm_reference.json", "w", encoding="utf-8") as f:
    json.dump(result, f, ensure_ascii=False, indent=1)
    f.write("\n")
EOF
echo "wrote $out/spm_bpe{,_gemma,_unused}.model and $out/spm_reference.json"

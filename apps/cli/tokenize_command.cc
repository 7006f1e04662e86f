// `gemmarun tokenize` and `gemmarun detokenize`: text <-> token ids with a
// model's tokenizer, without loading its weights.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "common.h"
#include "gemmarun/tokenizer.h"

namespace gemmarun::cli {
namespace {

struct TokenizerFlags {
  std::string model;
  std::string tokenizer;

  void Add(CLI::App* app) {
    app->add_option("-m,--model", model,
                    "model folder (holding tokenizer.json or tokenizer.model) or GGUF file");
    app->add_option("--tokenizer", tokenizer,
                    "a tokenizer.json or tokenizer.model file");
  }
};

struct TokenizeFlags {
  TokenizerFlags source;
  std::string text;
  bool text_given = false;
  bool json = false;
  bool bos = false;
};

struct DetokenizeFlags {
  TokenizerFlags source;
  std::vector<std::string> ids;  // joined: "2 651 6037" need not be quoted
  bool skip_special = false;
};

Result<std::unique_ptr<Tokenizer>> LoadFlagsTokenizer(const TokenizerFlags& flags) {
  // Checked here rather than with CLI11's excludes(), so that the mistake
  // reads as one "error: ..." line like every other failure.
  if (flags.model.empty() == flags.tokenizer.empty()) {
    return InvalidArgument("give exactly one of -m/--model and --tokenizer");
  }
  return LoadTokenizer(flags.model.empty() ? flags.tokenizer : flags.model);
}

// All of stdin, byte for byte (a trailing newline is part of the text).
Result<std::string> ReadStdin() {
  std::string data;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) {
    data.append(buffer, n);
  }
  if (std::ferror(stdin)) return InvalidArgument("cannot read stdin");
  return data;
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\t': *out += "\\t"; break;
      case '\r': *out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          *out += escaped;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Pieces such as "\n" would break the one-token-per-line format, so control
// characters and backslashes are written C-style.
void AppendEscapedPiece(std::string_view s, std::string* out) {
  for (const char c : s) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\t': *out += "\\t"; break;
      case '\r': *out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\x%02X",
                        static_cast<unsigned char>(c));
          *out += escaped;
        } else {
          out->push_back(c);
        }
    }
  }
}

int RunTokenize(const TokenizeFlags& flags) {
  auto tokenizer = LoadFlagsTokenizer(flags.source);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  std::string text = flags.text;
  if (!flags.text_given) {
    auto input = ReadStdin();
    if (!input.ok()) return Fail(input.status());
    text = std::move(input).value();
  }
  auto ids = (*tokenizer)->Encode(text, flags.bos);
  if (!ids.ok()) return Fail(ids.status());

  std::string out;
  if (flags.json) {
    out = "{\"ids\": [";
    for (size_t i = 0; i < ids->size(); ++i) {
      if (i > 0) out += ", ";
      out += std::to_string((*ids)[i]);
    }
    out += "], \"pieces\": [";
    for (size_t i = 0; i < ids->size(); ++i) {
      if (i > 0) out += ", ";
      AppendJsonString((*tokenizer)->Piece((*ids)[i]), &out);
    }
    out += "]}\n";
  } else {
    for (const int32_t id : *ids) {
      out += std::to_string(id);
      out += '\t';
      AppendEscapedPiece((*tokenizer)->Piece(id), &out);
      out += '\n';
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// "2,651,6037", "2 651 6037" or "[2, 651, 6037]" (as tokenize --json prints).
Result<std::vector<int32_t>> ParseIds(std::string_view text) {
  std::vector<int32_t> ids;
  auto separator = [](char c) {
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           c == '[' || c == ']';
  };
  size_t i = 0;
  while (i < text.size()) {
    if (separator(text[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && !separator(text[end])) ++end;
    const std::string_view token = text.substr(i, end - i);
    int64_t value = 0;
    const auto [ptr, error] =
        std::from_chars(token.data(), token.data() + token.size(), value);
    if (error != std::errc() || ptr != token.data() + token.size() ||
        value < INT32_MIN || value > INT32_MAX) {
      return InvalidArgument("not a token id: '" + std::string(token) + "'");
    }
    ids.push_back(static_cast<int32_t>(value));
    i = end;
  }
  return ids;
}

int RunDetokenize(const DetokenizeFlags& flags) {
  auto tokenizer = LoadFlagsTokenizer(flags.source);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  std::string input;
  for (const std::string& part : flags.ids) input += part + " ";
  if (flags.ids.empty()) {
    auto read = ReadStdin();
    if (!read.ok()) return Fail(read.status());
    input = std::move(read).value();
  }
  auto ids = ParseIds(input);
  if (!ids.ok()) return Fail(ids.status());
  auto text = (*tokenizer)->Decode(*ids, flags.skip_special);
  if (!text.ok()) return Fail(text.status());
  // The text, then a newline as echo ends with one, so the shell's prompt is on a
  // line of its own; strip one trailing newline to get the text byte for byte.
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

void AddTokenizeCommands(CLI::App& root, int* exit_code) {
  auto tokenize = std::make_shared<TokenizeFlags>();
  CLI::App* app = root.add_subcommand(
      "tokenize", "Print the token ids and pieces of a text (no weights loaded)");
  tokenize->source.Add(app);
  CLI::Option* text = app->add_option(
      "text", tokenize->text, "the text; without it, all of stdin (newlines kept)");
  app->add_flag("--json", tokenize->json,
                "print {\"ids\": [...], \"pieces\": [...]} instead of one "
                "'id<TAB>piece' line per token");
  app->add_flag("--bos", tokenize->bos, "start with the BOS token");
  app->footer(
      "Pieces are printed as the vocabulary spells them (\"▁\" for a space); in the\n"
      "plain format control characters and backslashes are escaped C-style.\n"
      "\n"
      "Examples:\n"
      "  gemmarun tokenize -m ./gemma-2b \"Hello, world!\"\n"
      "  gemmarun tokenize --tokenizer ./gemma-3-1b/tokenizer.json --json --bos < prompt.txt");
  app->callback([tokenize, exit_code, text] {
    tokenize->text_given = text->count() > 0;
    *exit_code = RunTokenize(*tokenize);
  });

  auto detokenize = std::make_shared<DetokenizeFlags>();
  app = root.add_subcommand("detokenize",
                            "Print the text of token ids (no weights loaded)");
  detokenize->source.Add(app);
  app->add_option("ids", detokenize->ids,
                  "ids separated by commas or spaces; without them, read from stdin");
  app->add_flag("--skip-special", detokenize->skip_special,
                "leave out special tokens (<bos>, <start_of_turn>, ...)");
  app->footer(
      "Special tokens print as their text unless --skip-special is given.\n"
      "\n"
      "Examples:\n"
      "The text is followed by one newline (strip it to get the text byte for byte).\n"
      "  gemmarun detokenize -m ./gemma-2b 2,651,6037\n"
      "  gemmarun detokenize --tokenizer tokenizer.json \"[2, 651, 6037]\"\n"
      "  echo '651 6037 576' | gemmarun detokenize -m ./gemma-2b");
  app->callback(
      [detokenize, exit_code] { *exit_code = RunDetokenize(*detokenize); });
}

}  // namespace gemmarun::cli

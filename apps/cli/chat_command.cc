// `gemmarun chat`: an interactive conversation. On a terminal it reads messages
// with line editing and history (libedit); otherwise one message per input line
// and one answer line per message, so it can be scripted. Ctrl-C stops the
// current answer only.
#include <histedit.h>
#include <unistd.h>

#include <atomic>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "gemmarun/chat.h"

namespace gemmarun::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_generating{false};

void OnInterrupt(int) {
  if (!g_generating.load()) {
    // Outside an answer, Ctrl-C leaves as a shell user expects.
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  g_interrupted = true;
}

struct ChatFlags {
  ModelFlags model;
  GenerationFlags generation;
  std::string system;
  std::string chat_template;
  bool json = false;
};

constexpr const char* kHelp =
    "  /help            this list\n"
    "  /clear, /reset   forget the conversation and start over\n"
    "  /save FILE       write the conversation as JSON\n"
    "  /load FILE       continue a conversation saved with /save\n"
    "  /exit, /quit     leave (so does Ctrl-D)\n"
    "A line ending in \\ continues on the next line; \"\"\" starts and ends a block of lines.\n"
    "Start a message with // to send one that begins with /.\n";

// Where messages come from: libedit on a terminal, plain lines otherwise.
class LineReader {
 public:
  virtual ~LineReader() = default;
  // One line without its newline; nullopt at the end of input (Ctrl-D).
  virtual std::optional<std::string> ReadLine(const char* prompt) = 0;
  virtual void AddHistory(const std::string&) {}
};

class StreamReader final : public LineReader {
 public:
  std::optional<std::string> ReadLine(const char*) override {
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
};

// libedit (BSD license) rather than GNU readline (GPL, which an Apache-2.0
// project cannot link): emacs key bindings, history, and the user's ~/.editrc.
class EditLineReader final : public LineReader {
 public:
  EditLineReader() {
    std::setlocale(LC_CTYPE, "");  // libedit decodes multi-byte (UTF-8) input by the locale
    history_ = history_init();
    HistEvent event;
    history(history_, &event, H_SETSIZE, 1000);
    history(history_, &event, H_SETUNIQUE, 1);
    // The prompt and the echo go to stderr, like every other prompt of ours: stdout keeps only answers.
    editline_ = el_init("gemmarun", stdin, stderr, stderr);
    el_set(editline_, EL_CLIENTDATA, this);
    el_set(editline_, EL_PROMPT, &EditLineReader::Prompt);
    el_set(editline_, EL_EDITOR, "emacs");
    el_set(editline_, EL_HIST, history, history_);
    el_set(editline_, EL_SIGNAL, 1);  // restore the terminal before a signal's handler runs
    el_source(editline_, nullptr);
  }
  ~EditLineReader() override {
    el_end(editline_);
    history_end(history_);
  }
  std::optional<std::string> ReadLine(const char* prompt) override {
    prompt_ = prompt;
    int count = 0;
    const char* line = el_gets(editline_, &count);
    if (line == nullptr || count <= 0) return std::nullopt;
    std::string text(line, count);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }
  void AddHistory(const std::string& line) override {
    if (line.empty()) return;
    HistEvent event;
    history(history_, &event, H_ENTER, line.c_str());
  }

 private:
  static char* Prompt(EditLine* editline) {
    void* self = nullptr;
    el_get(editline, EL_CLIENTDATA, &self);
    return const_cast<char*>(static_cast<EditLineReader*>(self)->prompt_);
  }

  EditLine* editline_ = nullptr;
  History* history_ = nullptr;
  const char* prompt_ = "> ";
};

// One message: a line, lines joined by a trailing backslash, or a """ block.
// nullopt at the end of input.
std::optional<std::string> ReadMessage(LineReader& reader) {
  std::optional<std::string> line = reader.ReadLine("> ");
  if (!line) return std::nullopt;
  reader.AddHistory(*line);
  constexpr std::string_view kQuotes = "\"\"\"";
  if (line->rfind(kQuotes, 0) == 0) {
    std::string block = line->substr(kQuotes.size());
    // """text""" on one line is a block too.
    if (block.size() >= kQuotes.size() && block.compare(block.size() - kQuotes.size(), kQuotes.size(), kQuotes) == 0) {
      return block.substr(0, block.size() - kQuotes.size());
    }
    bool first = true;
    while (std::optional<std::string> next = reader.ReadLine("... ")) {
      reader.AddHistory(*next);
      const bool closes = next->size() >= kQuotes.size() &&
                          next->compare(next->size() - kQuotes.size(), kQuotes.size(), kQuotes) == 0;
      const std::string text = closes ? next->substr(0, next->size() - kQuotes.size()) : *next;
      if (closes && text.empty()) break;  // a closing """ on its own line adds no newline
      if (!(first && block.empty())) block += '\n';
      block += text;
      first = false;
      if (closes) break;
    }
    return block;
  }
  std::string message = *line;
  while (!message.empty() && message.back() == '\\') {
    message.back() = '\n';
    std::optional<std::string> next = reader.ReadLine("... ");
    if (!next) break;
    reader.AddHistory(*next);
    message += *next;
  }
  return message;
}

// The offset of the first byte that is not valid UTF-8, or npos.
size_t InvalidUtf8At(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    const size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return i;
    uint32_t code = length == 1 ? c : c & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = s[i + k];
      if ((next & 0xC0) != 0x80) return i;
      code = code << 6 | (next & 0x3F);
    }
    const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

Status SaveConversation(const Chat& chat, const std::string& path) {
  nlohmann::json messages = nlohmann::json::array();
  for (const ChatMessage& m : chat.messages()) messages.push_back({{"role", m.role}, {"content", m.content}});
  const nlohmann::json out = {{"template", chat.template_name()}, {"messages", messages}};
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!file) return InvalidArgument("/save " + path + ": cannot write");
  return Status::Ok();
}

Status LoadConversation(Chat& chat, const std::string& path) {
  GR_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, "/load"));
  const nlohmann::json in = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!in.is_object() || !in.contains("messages") || !in["messages"].is_array()) {
    return InvalidArgument("/load " + path + ": expected a JSON object with a \"messages\" array (as /save writes)");
  }
  std::vector<ChatMessage> messages;
  for (const nlohmann::json& m : in["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      return InvalidArgument("/load " + path + ": message " + std::to_string(messages.size() + 1) +
                             " needs string \"role\" and \"content\" fields");
    }
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return chat.Restore(messages).WithContext("/load " + path);
}

// A turn that produced no answer still gets its answer line when scripted, so
// that the n-th line of output always answers the n-th message.
void PrintRefused(const std::string& message, bool interactive, bool json) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  if (interactive) return;
  if (json) {
    const nlohmann::json out = {{"error", message}, {"stop_reason", "refused"}, {"text", ""}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  std::fflush(stdout);
}

int Run(ChatFlags& flags) {
  if (Status s = flags.generation.Check(flags.json); !s.ok()) return Fail(s);
  auto engine = flags.model.Load();
  if (!engine.ok()) return Fail(engine.status());
  ChatOptions chat_options;
  chat_options.system_prompt = flags.system;
  chat_options.context_length = flags.model.context;
  chat_options.chat_template = flags.chat_template;
  auto chat = Chat::Create(**engine, chat_options);
  if (!chat.ok()) return Fail(chat.status());
  const bool interactive = StdinIsTerminal();
  std::unique_ptr<LineReader> reader;
  if (interactive) reader = std::make_unique<EditLineReader>();
  else reader = std::make_unique<StreamReader>();
  std::signal(SIGINT, OnInterrupt);
  if (interactive) {
    std::fprintf(stderr, "chatting with %s (%s, template %s). /help lists the commands, Ctrl-C stops an answer.\n",
                 (*engine)->info().source.c_str(), (*engine)->info().family.c_str(), (*chat)->template_name().c_str());
  }
  if (flags.generation.verbose) {
    std::fprintf(stderr, "%s; seed %llu\n", (*engine)->info().backend.c_str(),
                 static_cast<unsigned long long>(flags.generation.seed_used()));
  }
  int line_number = 0;
  while (true) {
    std::optional<std::string> read = ReadMessage(*reader);
    if (!read) {
      if (interactive) std::fprintf(stderr, "\n");  // Ctrl-D: leave the shell's prompt on a line of its own
      break;
    }
    ++line_number;
    std::string message = std::move(*read);
    if (message.rfind("//", 0) == 0) {
      message.erase(0, 1);
    } else if (!message.empty() && message[0] == '/') {
      const size_t space = message.find(' ');
      const std::string command = message.substr(0, space);
      const std::string argument = space == std::string::npos ? "" : message.substr(space + 1);
      if (command == "/exit" || command == "/quit" || command == "/bye") break;
      if (command == "/reset" || command == "/clear") {
        (*chat)->Reset();
        if (interactive) std::fprintf(stderr, "(conversation cleared)\n");
      } else if (command == "/help") {
        std::fprintf(stderr, "%s", kHelp);
      } else if (command == "/save" || command == "/load") {
        Status status = argument.empty() ? InvalidArgument(command + " needs a file name: " + command + " FILE")
                        : command == "/save" ? SaveConversation(**chat, argument)
                                             : LoadConversation(**chat, argument);
        if (!status.ok()) {
          std::fprintf(stderr, "error: %s\n", status.message().c_str());
        } else if (interactive) {
          std::fprintf(stderr, "(%s %s: %zu messages)\n", command == "/save" ? "saved to" : "loaded from",
                       argument.c_str(), (*chat)->messages().size());
        }
      } else {
        PrintRefused("unknown command '" + command + "' (/help lists them; start with // to send a message "
                     "beginning with /)", interactive, flags.json);
      }
      continue;
    }
    if (message.empty()) continue;
    if (const size_t bad = InvalidUtf8At(message); bad != std::string_view::npos) {
      PrintRefused("message " + std::to_string(line_number) + " is not valid UTF-8 (byte " + std::to_string(bad + 1) +
                   "); it was not sent", interactive, flags.json);
      continue;
    }
    GenerateOptions options = flags.generation.Options();
    options.on_token = [&](int32_t, const std::string& text) {
      if (!flags.json) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }
      return !g_interrupted.load();
    };
    g_interrupted = false;
    g_generating = true;
    auto turn = (*chat)->Send(message, options);
    g_generating = false;
    if (!turn.ok()) {
      // Policy: a turn that does not fit, or a message the template or the
      // tokenizer refuses, is refused alone; the chat goes on as it was.
      const StatusCode code = turn.status().code();
      if (code == StatusCode::kOutOfRange || code == StatusCode::kInvalidArgument) {
        PrintRefused(turn.status().message(), interactive, flags.json);
        continue;
      }
      return Fail(turn.status());
    }
    const GenerateResult& g = turn->generation;
    if (flags.json) {
      nlohmann::json out = GenerationJson(g, turn->prefilled_tokens, g.prefill_seconds);
      out["text"] = g.text;
      out["prefilled_tokens"] = turn->prefilled_tokens;
      out["context_tokens"] = (*chat)->session().length();
      out["seed"] = flags.generation.seed_used();
      if (g.stop_reason == StopReason::kStopString) out["stop_string"] = g.stop_string;
      if (options.logprobs >= 0) out["logprobs"] = LogprobsJson(**engine, g);
      std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
      if (g.stop_reason == StopReason::kCallback) std::fprintf(stderr, "(stopped)\n");
      if (g.stop_reason == StopReason::kContextFull) std::fprintf(stderr, "(context full: /reset to start over)\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void AddChatCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<ChatFlags>();
  CLI::App* app = root.add_subcommand("chat", "Talk with an instruction-tuned model, turn by turn");
  flags->model.Add(app);
  flags->generation.Add(app, 512, "most tokens per answer");
  app->add_option("-s,--system", flags->system, "system prompt (Gemma 3 folds it into the first user turn)");
  app->add_option("--chat-template", flags->chat_template,
                  "gemma (Gemma 1/2), gemma3, or none (plain text, for base models); default: the model family's")
      ->check(OneOf({"gemma", "gemma3", "none"}));
  app->add_flag("--json", flags->json, "one JSON object per answer: text, token counts, speeds, stop reason, seed");
  app->footer(
      "The conversation's cache is kept between turns: each turn prefills only its own tokens.\n"
      "On a terminal: line editing and history (libedit), /help for the commands, Ctrl-D leaves.\n"
      "Without a terminal: one message per line, one answer line per message; a refused message\n"
      "(too long for the context, invalid UTF-8, an unknown /command) gets an empty answer line\n"
      "(--json: {\"error\": ..., \"stop_reason\": \"refused\", \"text\": \"\"}) and the chat goes on.\n"
      "Examples:\n"
      "  gemmarun chat -m ./gemma-2-2b-it\n"
      "  gemmarun chat -m ./gemma-3-1b-it -s 'Answer in one sentence.' --temp 0.7\n"
      "  printf 'Hi!\\nWhat is 2+2?\\n' | gemmarun chat -m model.gguf --json");
  app->callback([flags, exit_code] { *exit_code = Run(*flags); });
}

}  // namespace gemmarun::cli

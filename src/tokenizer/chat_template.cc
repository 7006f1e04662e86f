// Gemma's chat templates (the `chat_template` of tokenizer_config.json),
// rendered in C++ with the same output and errors as HF's Jinja rendering.
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace gemmarun {
namespace {

using tokenizer_internal::DecodeUtf8;
using tokenizer_internal::IsPythonWhitespace;

// Jinja's `trim` filter is Python's str.strip(): Unicode whitespace.
std::string_view Trim(std::string_view s) {
  while (!s.empty()) {
    int length;
    if (!IsPythonWhitespace(DecodeUtf8(s, &length))) break;
    s.remove_prefix(length);
  }
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    int length;
    if (!IsPythonWhitespace(DecodeUtf8(s.substr(start), &length))) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

}  // namespace

Result<std::string> ApplyChatTemplate(ChatTemplateKind kind,
                                      std::span<const ChatMessage> messages,
                                      bool add_generation_prompt) {
  // Jinja fails on messages[0] of an empty list.
  if (messages.empty()) return InvalidArgument("chat template: no messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (const size_t bad = tokenizer_internal::FindInvalidUtf8(messages[i].content);
        bad != std::string_view::npos) {
      return InvalidArgument("chat template: message " + std::to_string(i) +
                             " is not valid UTF-8 at byte offset " +
                             std::to_string(bad));
    }
  }
  std::string first_user_prefix;
  if (messages[0].role == "system") {
    if (kind == ChatTemplateKind::kGemma) {
      return InvalidArgument("chat template: System role not supported");
    }
    // Gemma 3 keeps the system text untrimmed in front of the first turn.
    first_user_prefix = messages[0].content + "\n\n";
    messages = messages.subspan(1);
  }
  std::string prompt = "<bos>";
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    // The templates check only this: even turns are the user's, odd turns
    // anyone else's (so an odd "system" or "tool" turn renders as is).
    if ((message.role == "user") != (i % 2 == 0)) {
      return InvalidArgument(
          "chat template: Conversation roles must alternate "
          "user/assistant/user/assistant/...");
    }
    prompt += "<start_of_turn>";
    prompt += message.role == "assistant" ? "model" : message.role;
    prompt += "\n";
    if (i == 0) prompt += first_user_prefix;
    prompt += Trim(message.content);
    prompt += "<end_of_turn>\n";
  }
  if (add_generation_prompt) prompt += "<start_of_turn>model\n";
  return prompt;
}

}  // namespace gemmarun

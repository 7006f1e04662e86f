// A multi-turn conversation with a chat model, using the Gemma chat template.
// The KV cache (or recurrent state) is kept between turns: each turn prefills
// only its own tokens.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/engine.h"
#include "gemmarun/tokenizer.h"

namespace gemmarun {

struct ChatTurn {
  GenerateResult generation;
  int64_t prefilled_tokens = 0;  // tokens of this turn fed to the model (template + message)
};

struct ChatOptions {
  std::string system_prompt;
  int64_t context_length = 0;  // 0: the engine's default
  // "" uses the family's template; "gemma" (Gemma 1/2), "gemma3", or "none":
  // no template at all, each message and answer is appended as plain text
  // (for base models, which continue text rather than answer turns).
  std::string chat_template;
};

class Chat {
 public:
  // Fails with OutOfRange when not even an empty first turn fits the context
  // (a system prompt longer than the context): no message could ever be sent.
  static Result<std::unique_ptr<Chat>> Create(Engine& engine, const ChatOptions& options);
  // system_prompt: Gemma 3 folds it into the first user turn; Gemma 1/2 have no
  // system role (an error, as their template raises).
  static Result<std::unique_ptr<Chat>> Create(Engine& engine, std::string system_prompt = "",
                                              int64_t context_length = 0);

  // Sends one user message and generates the model's answer. When the context
  // cannot hold the new turn, returns OutOfRange and leaves the conversation as
  // it was (policy: stop; the caller may Reset()).
  Result<ChatTurn> Send(std::string_view user_message, const GenerateOptions& options);
  void Reset();
  Session& session() { return *session_; }
  int turns() const { return turns_; }

  // The conversation so far: the system prompt (if any), then user and model
  // messages alternating (the answers' text as generated).
  std::vector<ChatMessage> messages() const;
  // Replaces the conversation with `messages` (an optional system message
  // first, then user/model pairs ending with a model answer) and prefills it,
  // so the next Send continues it. On error the chat is reset.
  Status Restore(std::span<const ChatMessage> messages);
  const std::string& template_name() const { return template_name_; }

 private:
  Chat(Engine& engine, std::unique_ptr<Session> session, std::string system_prompt);
  Result<std::string> TurnText(std::string_view user_message) const;

  Engine& engine_;
  std::unique_ptr<Session> session_;
  std::string system_prompt_;
  int turns_ = 0;
  std::string template_name_;  // "gemma", "gemma3" or "none"
  std::vector<ChatMessage> history_;  // user and model messages, alternating
};

}  // namespace gemmarun

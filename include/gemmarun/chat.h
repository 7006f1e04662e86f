// A multi-turn conversation with a chat model, using the Gemma chat template.
// The KV cache (or recurrent state) is kept between turns: each turn prefills
// only its own tokens.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gemmarun/engine.h"

namespace gemmarun {

struct ChatTurn {
  GenerateResult generation;
  int64_t prefilled_tokens = 0;  // tokens of this turn fed to the model (template + message)
};

class Chat {
 public:
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

 private:
  Chat(Engine& engine, std::unique_ptr<Session> session, std::string system_prompt);
  Result<std::string> TurnText(std::string_view user_message) const;

  Engine& engine_;
  std::unique_ptr<Session> session_;
  std::string system_prompt_;
  int turns_ = 0;
};

}  // namespace gemmarun

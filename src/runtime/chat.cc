#include "gemmarun/chat.h"

#include <vector>

#include "tokenizer/tokenizer.h"

namespace gemmarun {

Result<std::unique_ptr<Chat>> Chat::Create(Engine& engine, std::string system_prompt, int64_t context_length) {
  if (!engine.has_tokenizer()) return NotFound(engine.info().source + ": chat needs a tokenizer");
  GR_RETURN_IF_ERROR(engine.SpecialTokenId("<start_of_turn>").status().WithContext("chat template"));
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine.NewSession(context_length));
  auto chat = std::unique_ptr<Chat>(new Chat(engine, std::move(session), std::move(system_prompt)));
  // Render once so that an unsupported system prompt fails at creation, not at the first message.
  GR_RETURN_IF_ERROR(chat->TurnText("hello").status());
  return chat;
}

Chat::Chat(Engine& engine, std::unique_ptr<Session> session, std::string system_prompt)
    : engine_(engine), session_(std::move(session)), system_prompt_(std::move(system_prompt)) {}

Result<std::string> Chat::TurnText(std::string_view user_message) const {
  const ChatTemplateKind kind = engine_.info().family == "gemma3" ? ChatTemplateKind::kGemma3 : ChatTemplateKind::kGemma;
  std::vector<ChatMessage> messages;
  if (turns_ == 0 && !system_prompt_.empty()) messages.push_back({"system", system_prompt_});
  messages.push_back({"user", std::string(user_message)});
  GR_ASSIGN_OR_RETURN(std::string text, ApplyChatTemplate(kind, messages, /*add_generation_prompt=*/true));
  if (turns_ == 0) return text;
  // Later turns continue the rendered conversation: the model's answer stopped at
  // <end_of_turn> (not fed), so close it, then open the new user turn.
  const std::string bos = "<bos>";
  if (text.rfind(bos, 0) == 0) text.erase(0, bos.size());
  return "<end_of_turn>\n" + text;
}

Result<ChatTurn> Chat::Send(std::string_view user_message, const GenerateOptions& options) {
  GR_ASSIGN_OR_RETURN(std::string text, TurnText(user_message));
  GR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, engine_.Tokenize(text, /*add_bos=*/false));
  const int64_t room = session_->context_length() - session_->length();
  if (static_cast<int64_t>(ids.size()) >= room) {
    return OutOfRange("the conversation is full: this turn needs " + std::to_string(ids.size()) + " tokens, " +
                      std::to_string(room) + " of " + std::to_string(session_->context_length()) +
                      " are left (/reset starts over)");
  }
  ChatTurn turn;
  turn.prefilled_tokens = static_cast<int64_t>(ids.size());
  GR_ASSIGN_OR_RETURN(turn.generation, session_->Generate(ids, options));
  ++turns_;
  return turn;
}

void Chat::Reset() {
  session_->Reset();
  turns_ = 0;
}

}  // namespace gemmarun

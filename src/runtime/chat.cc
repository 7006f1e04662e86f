#include "gemmarun/chat.h"

#include <vector>

#include "tokenizer/tokenizer.h"

namespace gemmarun {
namespace {

constexpr std::string_view kBos = "<bos>";
constexpr std::string_view kEndOfTurn = "<end_of_turn>\n";

}  // namespace

Result<std::unique_ptr<Chat>> Chat::Create(Engine& engine, std::string system_prompt, int64_t context_length) {
  ChatOptions options;
  options.system_prompt = std::move(system_prompt);
  options.context_length = context_length;
  return Create(engine, options);
}

Result<std::unique_ptr<Chat>> Chat::Create(Engine& engine, const ChatOptions& options) {
  if (!engine.has_tokenizer()) return NotFound(engine.info().source + ": chat needs a tokenizer");
  std::string template_name = options.chat_template;
  if (template_name.empty()) template_name = engine.info().family == "gemma3" ? "gemma3" : "gemma";
  if (template_name != "gemma" && template_name != "gemma3" && template_name != "none") {
    return InvalidArgument("chat template '" + options.chat_template + "' is not one of gemma, gemma3, none");
  }
  if (template_name == "none" && !options.system_prompt.empty()) {
    return InvalidArgument("a system prompt needs a chat template (not 'none')");
  }
  if (template_name != "none") {
    GR_RETURN_IF_ERROR(engine.SpecialTokenId("<start_of_turn>").status().WithContext("chat template"));
  }
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine.NewSession(options.context_length));
  auto chat = std::unique_ptr<Chat>(new Chat(engine, std::move(session), options.system_prompt));
  chat->template_name_ = template_name;
  // Render an empty first turn now: an unsupported system prompt fails here, not at the
  // first message, and so does a context that could never hold any turn at all.
  GR_ASSIGN_OR_RETURN(std::string text, chat->TurnText(""));
  GR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, engine.Tokenize(text, /*add_bos=*/false));
  const int64_t context = chat->session_->context_length();
  if (static_cast<int64_t>(ids.size()) >= context) {
    return OutOfRange("no message can ever fit: the " +
                      std::string(options.system_prompt.empty() ? "chat template" : "system prompt and chat template") +
                      " alone take " + std::to_string(ids.size()) + " tokens and the context holds " +
                      std::to_string(context) + " (raise -c/--ctx-size)");
  }
  return chat;
}

Chat::Chat(Engine& engine, std::unique_ptr<Session> session, std::string system_prompt)
    : engine_(engine), session_(std::move(session)), system_prompt_(std::move(system_prompt)) {}

Result<std::string> Chat::TurnText(std::string_view user_message) const {
  // No template: the text as typed, after BOS at the start of the conversation.
  if (template_name_ == "none") return (turns_ == 0 ? std::string(kBos) : std::string()) + std::string(user_message);
  const ChatTemplateKind kind = template_name_ == "gemma3" ? ChatTemplateKind::kGemma3 : ChatTemplateKind::kGemma;
  std::vector<ChatMessage> messages;
  if (turns_ == 0 && !system_prompt_.empty()) messages.push_back({"system", system_prompt_});
  messages.push_back({"user", std::string(user_message)});
  GR_ASSIGN_OR_RETURN(std::string text, ApplyChatTemplate(kind, messages, /*add_generation_prompt=*/true));
  if (turns_ == 0) return text;
  // Later turns continue the rendered conversation: the model's answer stopped at
  // <end_of_turn> (not fed), so close it, then open the new user turn.
  if (text.rfind(kBos, 0) == 0) text.erase(0, kBos.size());
  return std::string(kEndOfTurn) + text;
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
  history_.push_back({"user", std::string(user_message)});
  history_.push_back({"model", turn.generation.text});
  return turn;
}

void Chat::Reset() {
  session_->Reset();
  turns_ = 0;
  history_.clear();
}

std::vector<ChatMessage> Chat::messages() const {
  std::vector<ChatMessage> all;
  if (!system_prompt_.empty()) all.push_back({"system", system_prompt_});
  all.insert(all.end(), history_.begin(), history_.end());
  return all;
}

Status Chat::Restore(std::span<const ChatMessage> messages) {
  Reset();
  std::string system;
  std::vector<ChatMessage> turns;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system" && i == 0) {
      system = m.content;
      continue;
    }
    const bool user_expected = turns.size() % 2 == 0;
    const bool is_model = m.role == "model" || m.role == "assistant";
    if (user_expected ? m.role != "user" : !is_model) {
      return InvalidArgument("message " + std::to_string(i + 1) + " has role '" + m.role + "', expected " +
                             (user_expected ? "user" : "model") +
                             " (a system message may only come first; user and model then alternate)");
    }
    turns.push_back({is_model ? "model" : "user", m.content});
  }
  if (turns.empty() || turns.size() % 2 != 0) {
    return InvalidArgument("the conversation must end with a model answer (user and model messages in pairs)");
  }
  if (template_name_ == "none" && !system.empty()) return InvalidArgument("a system prompt needs a chat template");
  std::string text;
  if (template_name_ == "none") {
    text = std::string(kBos);
    for (const ChatMessage& m : turns) text += m.content;
  } else {
    std::vector<ChatMessage> all;
    if (!system.empty()) all.push_back({"system", system});
    all.insert(all.end(), turns.begin(), turns.end());
    const ChatTemplateKind kind = template_name_ == "gemma3" ? ChatTemplateKind::kGemma3 : ChatTemplateKind::kGemma;
    GR_ASSIGN_OR_RETURN(text, ApplyChatTemplate(kind, all, /*add_generation_prompt=*/false));
    // A live chat has not fed the last answer's <end_of_turn> (it was the stop token).
    if (text.size() >= kEndOfTurn.size() && text.compare(text.size() - kEndOfTurn.size(), kEndOfTurn.size(),
                                                         kEndOfTurn) == 0) {
      text.erase(text.size() - kEndOfTurn.size());
    }
  }
  GR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, engine_.Tokenize(text, /*add_bos=*/false));
  if (static_cast<int64_t>(ids.size()) >= session_->context_length()) {
    return OutOfRange("the conversation takes " + std::to_string(ids.size()) + " tokens and the context holds " +
                      std::to_string(session_->context_length()) + " (raise -c/--ctx-size)");
  }
  Status prefilled = session_->Prefill(ids).status();
  if (!prefilled.ok()) {
    Reset();
    return prefilled;
  }
  system_prompt_ = std::move(system);
  history_ = std::move(turns);
  turns_ = static_cast<int>(history_.size() / 2);
  return Status::Ok();
}

}  // namespace gemmarun

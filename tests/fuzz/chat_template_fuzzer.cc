// Gemma 1/2 and Gemma 3 chat templates over messages decoded from the input:
// records of [role byte][content...]\0.
#include <cstdint>
#include <string>
#include <vector>

#include "gemmarun/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  if (size < 1) return 0;
  static const char* const kRoles[] = {"user", "model", "assistant", "system", "tool", ""};
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<ChatMessage> messages;
  size_t at = 0;
  while (at < input.size() && messages.size() < 64) {
    const size_t end = std::min(input.find('\0', at + 1), input.size());
    messages.push_back({kRoles[static_cast<uint8_t>(input[at]) % 6], input.substr(at + 1, end - at - 1)});
    at = end + 1;
  }
  const bool add_generation_prompt = data[0] & 1;
  for (ChatTemplateKind kind : {ChatTemplateKind::kGemma, ChatTemplateKind::kGemma3}) {
    (void)ApplyChatTemplate(kind, messages, add_generation_prompt);
  }
  return 0;
}

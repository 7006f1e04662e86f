// tokenizer.json (BPE model, normalizer, pre-tokenizer, decoder, added tokens),
// then encoding and decoding a text taken from the input's tail.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_file.h"
#include "gemmarun/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  const std::string path = fuzz::WriteInput(data, size, ".json");
  auto tokenizer = Tokenizer::FromTokenizerJson(path);
  if (!tokenizer.ok()) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + (size > 64 ? size - 64 : 0),
                         size > 64 ? 64 : size);
  auto ids = (*tokenizer)->Encode(text, /*add_bos=*/true);
  if (ids.ok()) (void)(*tokenizer)->Decode(*ids);
  (void)(*tokenizer)->Encode("Hello, world! <start_of_turn>user\n\xe4\xbd\xa0\xe5\xa5\xbd", false);
  return 0;
}

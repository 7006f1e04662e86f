// SentencePiece tokenizer.model (protobuf), then encoding and decoding.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_file.h"
#include "gemmarun/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  const std::string path = fuzz::WriteInput(data, size, ".model");
  auto tokenizer = Tokenizer::FromSentencePieceModel(path);
  if (!tokenizer.ok()) return 0;
  auto ids = (*tokenizer)->Encode("Hello, world!  tabs\tand \xe4\xbd\xa0\xe5\xa5\xbd <unk> 12345", true);
  if (ids.ok()) (void)(*tokenizer)->Decode(*ids);
  return 0;
}

// Converts a Gemma 1/2/3 text model (HF checkpoint folder or GGUF file) into a
// GGUF file that both gemmarun and llama.cpp read, with its weight matrices in
// one storage type:
//
//   gemmarun::QuantizeOptions options;
//   options.type = "q8_0";
//   auto report = gemmarun::QuantizeModel("./gemma-2b", "gemma-2b-q8_0.gguf", options);
//
// The file holds what llama.cpp's convert_hf_to_gguf.py writes for these
// architectures: the same metadata keys, tensor names, norms stored as 1 + w in
// f32, and the SentencePiece vocabulary (tokens, scores, token types) when the
// model ships a tokenizer. Matrices are quantized with ggml's reference
// quantizers (the same code as --dtype at load), so q8_0/q4_0/q5_0 tensors are
// byte-identical to what llama-quantize --pure makes of the same f32 values.
// Every matrix, token_embd included, gets the type; a matrix whose rows are not
// whole 32-value blocks stays f16 (f32 if it was f32), as llama.cpp's converter
// does.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "gemmarun/status.h"

namespace gemmarun {

struct QuantizeOptions {
  std::string type;  // f32, f16, bf16, q8_0, q4_0, q5_0
  std::string name;  // general.name; empty: the input's name (GGUF) or folder name
  // Long work reports progress: stage name, units done, units total.
  std::function<void(const char* stage, size_t done, size_t total)> progress;
};

struct QuantizeReport {
  std::string architecture;   // gemma, gemma2, gemma3
  std::string type;           // the type asked for
  size_t tensors = 0;         // tensors written
  size_t matrices_converted = 0;  // matrices stored in `type`
  size_t matrices_kept = 0;   // matrices whose rows are not whole blocks of `type`
  size_t input_bytes = 0;     // weight bytes read
  size_t output_bytes = 0;    // size of the written file
  bool has_tokenizer = false; // false: the model ships none, so llama.cpp cannot load the file
  int vocab_trimmed_from = 0; // embedding rows dropped beyond the tokenizer's size (Gemma 3); 0: none
};

// Writes `output` (via a temporary file, so a failure leaves nothing behind).
// Fails with Unsupported for RecurrentGemma, PaliGemma, types it cannot write,
// and configurations GGUF cannot express (e.g. a query scale other than
// 1/sqrt(head_dim) outside the 27B shapes): the file is read back before it is
// written and must describe the same model.
Result<QuantizeReport> QuantizeModel(const std::string& input, const std::string& output,
                                     const QuantizeOptions& options);

// "f32, f16, bf16, q8_0, q4_0, q5_0"
const char* QuantizeTypes();

}  // namespace gemmarun

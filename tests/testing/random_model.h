// Writes a random-weight HF checkpoint folder (config.json + model.safetensors)
// for any config the engine parses, by walking the same ForEachWeight list the
// loader uses. Tests use it for models whose vocabulary must match a real
// tokenizer (256000 ids) without committing large files.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/weights.h"
#include "tensor/dtype.h"

namespace gemmarun::testing {

inline Status WriteRandomModel(const std::string& config_json, const std::string& dir, uint32_t seed = 1,
                               float scale = 0.05f) {
  namespace fs = std::filesystem;
  GR_ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(config_json, "random model config"));
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "config.json") << config_json;
  ModelWeights weights;
  ResizeWeights(config, weights);
  nlohmann::json header = nlohmann::json::object();
  std::vector<std::pair<std::string, int64_t>> tensors;  // name, elements
  size_t offset = 0;
  ForEachWeight(config, weights, [&](const WeightSpec& spec) {
    std::vector<int64_t> dims;
    for (int i = 0; i < spec.shape.rank(); ++i) dims.push_back(spec.shape[i]);
    const size_t bytes = static_cast<size_t>(spec.shape.elements()) * 2;
    header[spec.name] = {{"dtype", "BF16"}, {"shape", dims}, {"data_offsets", {offset, offset + bytes}}};
    tensors.emplace_back(spec.name, spec.shape.elements());
    offset += bytes;
  });
  const std::string header_text = header.dump();
  std::ofstream out(fs::path(dir) / "model.safetensors", std::ios::binary);
  const uint64_t header_size = header_text.size();
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out << header_text;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  // ForEachWeight order is the order of the offsets above.
  std::vector<uint16_t> buffer;
  for (const auto& [name, elements] : tensors) {
    buffer.resize(elements);
    for (auto& v : buffer) v = F32ToBF16(dist(rng));
    out.write(reinterpret_cast<const char*>(buffer.data()), buffer.size() * 2);
  }
  return out ? Status::Ok() : Internal(dir + ": write failed");
}

}  // namespace gemmarun::testing

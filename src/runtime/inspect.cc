#include "gemmarun/inspect.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "model/inspect.h"
#include "model/kv_cache.h"
#include "runtime/model_source.h"

namespace gemmarun {
namespace {

ModelReport ToReport(const ModelConfig& config, const ModelInspection& inspection, const std::string& source,
                     int64_t context) {
  ModelReport report;
  report.source = source;
  report.family = FamilyName(config.family);
  report.model_type = config.model_type;
  report.class_name = inspection.class_name;
  report.layout = inspection.layout;
  report.modules = inspection.modules;
  report.params = inspection.params;
  report.params_without_embedding = inspection.params - inspection.embedding_params;
  report.params_by_kind = inspection.params_by_kind;
  for (const auto& [dtype, bytes] : inspection.bytes_by_dtype) report.bytes_by_dtype.emplace_back(Name(dtype), bytes);
  for (const auto& [dtype, bytes] : inspection.stored_bytes_by_dtype) {
    report.stored_bytes_by_dtype.emplace_back(Name(dtype), bytes);
  }
  report.stored_bytes = inspection.stored_bytes;
  if (context > 0 && !inspection.kv_cache.empty()) {
    const KvCacheEstimate& kv = inspection.kv_cache.front();
    report.kv_cache = KvCacheReport{kv.tokens, kv.max_chunk, kv.full_bytes, kv.ring_bytes, kv.recurrent_bytes,
                                    config.max_seq_len, {}};
    for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
      if (!CheckKvCacheType(config, type).ok()) continue;
      uint64_t bytes = 0;
      for (const KvGroup& group : KvGroups(config)) bytes += KvBytesPerPosition(config, group, type);
      report.kv_cache->bytes_per_token.emplace_back(Name(type), bytes);
    }
  }
  report.notes = inspection.notes;
  return report;
}

// The KV cache grows as tokens x attention layers x KV width; its size_t sum would
// wrap (a 2^62-token context printed "0 B"), so the total is bounded in double first.
Status CheckKvCacheSize(const ModelConfig& config, int64_t context) {
  double bytes = 0;
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind == BlockKind::kAttention) bytes += 2.0 * double(context) * config.num_kv_heads * config.head_dim * 4;
  }
  if (bytes > 0x1p62) {
    char size[32];
    std::snprintf(size, sizeof(size), "%.3g", bytes);
    return InvalidArgument("--context " + std::to_string(context) + ": the KV cache would take " + size +
                           " bytes, beyond any machine's memory");
  }
  return Status::Ok();
}

Result<ModelReport> Inspect(const ModelConfig& config, const std::vector<StoredTensor>* stored,
                            const std::string& source, int64_t context) {
  GR_RETURN_IF_ERROR(CheckKvCacheSize(config, context));
  std::vector<int64_t> contexts;
  if (context > 0) contexts.push_back(context);
  return ToReport(config, InspectModelConfig(config, stored, contexts), source, context);
}

Status CheckContext(int64_t context) {
  if (context < 0) return InvalidArgument("context must be a positive number of tokens, got " + std::to_string(context));
  constexpr int64_t kMaxContext = int64_t{1} << 30;  // ModelConfig's bound on max_position_embeddings
  if (context > kMaxContext) {
    return InvalidArgument("--context " + std::to_string(context) + " is more than " + std::to_string(kMaxContext) +
                           " tokens");
  }
  return Status::Ok();
}

// "2.61 B", "697.9 M": the scale people quote model sizes in.
std::string Count(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof(buf), "%.2f B", n / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof(buf), "%.1f M", n / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof(buf), "%.1f K", n / 1e3);
  else std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(n));
  return buf;
}

std::string Grouped(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) std::snprintf(buf, sizeof(buf), "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20)) std::snprintf(buf, sizeof(buf), "%.1f MiB", n / double(1ull << 20));
  else if (n >= (1ull << 10)) std::snprintf(buf, sizeof(buf), "%.1f KiB", n / double(1ull << 10));
  else std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

std::string Row(const std::string& label, const std::string& value, const std::string& detail) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "  %-22s %16s  %s\n", label.c_str(), value.c_str(), detail.c_str());
  return buf;
}

}  // namespace

Result<ModelReport> InspectConfig(const std::string& config_path, int64_t context) {
  GR_RETURN_IF_ERROR(CheckContext(context));
  GR_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(config_path));
  return Inspect(config, nullptr, config_path, context);
}

Result<ModelReport> InspectModel(const std::string& model_path, int64_t context) {
  namespace fs = std::filesystem;
  GR_RETURN_IF_ERROR(CheckContext(context));
  std::error_code ec;
  GR_ASSIGN_OR_RETURN(const ModelPathKind kind, DetectModelPath(model_path));
  if (kind != ModelPathKind::kFolder) {
    if (kind == ModelPathKind::kGguf) {
      // The config comes from the metadata; tensor infos give the stored dtypes.
      GR_ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(model_path));
      GR_ASSIGN_OR_RETURN(ModelConfig config, ConfigFromGguf(file));
      std::vector<StoredTensor> stored;
      for (const TensorSource& t : file.tensors()) stored.push_back(StoredTensor{t.name, t.dtype, t.bytes});
      return Inspect(config, &stored, model_path, context);
    }
    // A safetensors file stands for its checkpoint folder, as for loading.
    const std::string dir = fs::path(model_path).parent_path().string();
    return InspectModel(dir.empty() ? "." : dir, context);
  }
  GR_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_path));
  const fs::path dir(model_path);
  if (!fs::exists(dir / "model.safetensors", ec) && !fs::exists(dir / "model.safetensors.index.json", ec)) {
    GR_ASSIGN_OR_RETURN(ModelReport report, Inspect(config, nullptr, model_path, context));
    report.notes.push_back("no safetensors weights in the folder: memory figures come from config.json alone");
    return report;
  }
  // Opening maps the files and parses their headers; no tensor byte is touched.
  GR_ASSIGN_OR_RETURN(SafetensorsCheckpoint checkpoint, SafetensorsCheckpoint::Open(model_path));
  std::vector<StoredTensor> stored;
  for (const TensorSource* t : checkpoint.tensors()) stored.push_back(StoredTensor{t->name, t->dtype, t->bytes});
  return Inspect(config, &stored, model_path, context);
}

std::string ModelReportToJson(const ModelReport& report) {
  // ordered_json keeps the keys in the order a reader expects.
  using Json = nlohmann::ordered_json;
  Json json;
  json["source"] = report.source;
  json["family"] = report.family;
  json["model_type"] = report.model_type;
  json["class"] = report.class_name;
  json["layout"] = report.layout;
  json["modules"] = report.modules;
  json["params"] = report.params;
  json["params_without_embedding"] = report.params_without_embedding;
  Json by_kind = Json::object();
  for (const auto& [kind, n] : report.params_by_kind) by_kind[kind] = n;
  json["params_by_kind"] = by_kind;
  Json by_dtype = Json::object();
  for (const auto& [dtype, bytes] : report.bytes_by_dtype) by_dtype[dtype] = bytes;
  json["bytes_by_dtype"] = by_dtype;
  if (!report.stored_bytes_by_dtype.empty()) {
    Json stored = Json::object();
    for (const auto& [dtype, bytes] : report.stored_bytes_by_dtype) stored[dtype] = bytes;
    json["stored_bytes_by_dtype"] = stored;
    json["stored_bytes"] = report.stored_bytes;
  }
  if (report.kv_cache) {
    const KvCacheReport& kv = *report.kv_cache;
    Json k;
    k["tokens"] = kv.tokens;
    k["entry_dtype"] = "f32";
    k["full_bytes"] = kv.full_bytes;
    k["ring_bytes"] = kv.ring_bytes;
    k["ring_max_chunk"] = kv.max_chunk;
    k["recurrent_state_bytes"] = kv.recurrent_state_bytes;
    k["max_seq_len"] = kv.max_seq_len;
    Json per_token = Json::object();
    for (const auto& [type, bytes] : kv.bytes_per_token) per_token[type] = bytes;
    k["bytes_per_token"] = per_token;
    json["kv_cache"] = k;
  }
  json["notes"] = report.notes;
  return json.dump(2);
}

std::string ModelReportToText(const ModelReport& report) {
  std::string out = report.modules + "\n\n";
  out += report.family + " (model_type " + report.model_type + "), " + report.layout + "\n\n";

  out += "Parameters (tied embeddings counted once)\n";
  for (const auto& [kind, n] : report.params_by_kind) {
    char share[32];
    std::snprintf(share, sizeof(share), "%5.1f%%", report.params > 0 ? 100.0 * n / report.params : 0.0);
    out += Row(kind, Grouped(n), share);
  }
  out += Row("total", Grouped(report.params), Count(report.params));
  out += Row("without embedding", Grouped(report.params_without_embedding), Count(report.params_without_embedding));

  out += "\nWeight memory (matrices in the dtype; norms, biases and other vectors in f32, as loaded)\n";
  for (const auto& [dtype, bytes] : report.bytes_by_dtype) out += Row(dtype, Bytes(bytes), Grouped(bytes) + " bytes");
  if (!report.stored_bytes_by_dtype.empty()) {
    out += "\nStored weights (as in the weight files)\n";
    for (const auto& [dtype, bytes] : report.stored_bytes_by_dtype) {
      out += Row(dtype, Bytes(bytes), Grouped(bytes) + " bytes");
    }
    out += Row("total", Bytes(report.stored_bytes), Grouped(report.stored_bytes) + " bytes");
  }

  if (report.kv_cache) {
    const KvCacheReport& kv = *report.kv_cache;
    out += "\nKV cache at " + Grouped(kv.tokens) + " tokens (K and V in f32, one sequence)\n";
    out += Row("without ring buffers", Bytes(kv.full_bytes), Grouped(kv.full_bytes) + " bytes");
    out += Row("with ring buffers", Bytes(kv.ring_bytes),
               Grouped(kv.ring_bytes) + " bytes (sliding-window layers keep window + chunk - 1 slots; chunk " +
                   std::to_string(kv.max_chunk) + ")");
    if (kv.recurrent_state_bytes > 0) {
      out += Row("recurrent state", Bytes(kv.recurrent_state_bytes),
                 Grouped(kv.recurrent_state_bytes) + " bytes (RG-LRU + Conv1D, included above; does not grow)");
    }
    out += "\nKV cache per token, by --cache-type (K and V of every attention layer)\n";
    for (const auto& [type, bytes] : kv.bytes_per_token) out += Row(type, Bytes(bytes), Grouped(bytes) + " bytes");
    if (kv.tokens > kv.max_seq_len) {
      out += "  note: " + Grouped(kv.tokens) + " tokens is beyond the model's max_position_embeddings " +
             Grouped(kv.max_seq_len) + "\n";
    }
  }
  for (const std::string& note : report.notes) out += "\nnote: " + note + "\n";
  return out;
}

}  // namespace gemmarun

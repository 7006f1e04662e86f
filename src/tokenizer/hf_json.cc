// Loads a HuggingFace tokenizer.json (BPE model) into a tokenizer Model.
//
// Gemma's files are 17 MB (Gemma 3: 33 MB), 99% of it the vocabulary and the
// merges. A nlohmann DOM of them alone takes ~0.4 s to build; a SAX pass that
// streams those two arrays into flat vectors and keeps only the small
// sections as a DOM takes ~0.1 s, and the whole load ~0.3 s (HF: ~1 s).
//
// ref: HF tokenizers, tokenizers/src/tokenizer/serialization.rs and
//      models/bpe/serialization.rs for the format.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun {

using tokenizer_internal::DecoderSpec;
using tokenizer_internal::Model;
using tokenizer_internal::NormalizerStep;
using tokenizer_internal::PieceType;
using tokenizer_internal::SplitPreTokenizer;

namespace {

using json = nlohmann::json;

// What the SAX pass produces.
struct TokenizerJson {
  json root;  // everything but model.vocab and model.merges
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool has_vocab = false;
};

// Builds `root` as nlohmann's own DOM parser would, except inside
// model.vocab (an object of piece -> id) and model.merges (an array of
// "left right" strings or [left, right] pairs), which go to flat vectors.
// Returning false stops the parse; error() says why.
class TokenizerJsonSax : public nlohmann::json_sax<json> {
 public:
  explicit TokenizerJsonSax(TokenizerJson* out) : out_(out) {}

  const std::string& error() const { return error_; }

  bool null() override { return Value(json(nullptr)); }
  bool boolean(bool v) override { return Value(json(v)); }
  bool number_integer(number_integer_t v) override {
    return mode_ == Mode::kVocab ? VocabEntry(v) : Value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab) {
      return VocabEntry(v > INT64_MAX ? -1 : static_cast<int64_t>(v));
    }
    return Value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    return Value(json(v));
  }
  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::kMerges: {
        // The older merge format, "left right". Pieces never hold a plain
        // space (the normalizer turned them into "▁").
        const size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos) {
          return Fail("merge \"" + v + "\" is not two pieces");
        }
        out_->merges.emplace_back(v.substr(0, space), v.substr(space + 1));
        return true;
      }
      case Mode::kMergePair:
        if (pair_size_ >= 2) return Fail("a merge has more than two pieces");
        pair_[pair_size_++] = std::move(v);
        return true;
      case Mode::kVocab:
        return Fail("model.vocab values must be ids");
      case Mode::kDom:
        return Value(json(std::move(v)));
    }
    return false;
  }
  bool binary(binary_t&) override { return Fail("unexpected binary value"); }
  bool start_object(std::size_t) override {
    if (mode_ != Mode::kDom) return Fail("unexpected object in model.vocab/merges");
    if (IsModelMember("vocab")) {
      mode_ = Mode::kVocab;
      out_->has_vocab = true;
      return true;
    }
    return Open(json::object());
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::kVocab) {
      vocab_key_ = std::move(k);
    } else {
      key_ = std::move(k);
    }
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      return true;
    }
    return Close();
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair;
      pair_size_ = 0;
      return true;
    }
    if (mode_ != Mode::kDom) return Fail("unexpected array in model.vocab/merges");
    if (IsModelMember("vocab")) {
      return Fail("model.vocab is a list (a Unigram model?), expected an object of piece -> id (BPE)");
    }
    if (IsModelMember("merges")) {
      mode_ = Mode::kMerges;
      return true;
    }
    return Open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_size_ != 2) return Fail("a merge has fewer than two pieces");
      out_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kDom;
      return true;
    }
    return Close();
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    if (error_.empty()) error_ = e.what();
    return false;
  }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  // True when the container being opened is root["model"][name].
  bool IsModelMember(std::string_view name) const {
    return stack_.size() == 2 && names_[1] == "model" && key_ == name;
  }
  // Puts a value where the parse currently is: the root, the pending key of
  // the innermost object, or the end of the innermost array.
  json* Insert(json value) {
    if (stack_.empty()) {
      out_->root = std::move(value);
      return &out_->root;
    }
    json& top = *stack_.back();
    if (top.is_object()) {
      json& slot = top[key_];
      slot = std::move(value);
      return &slot;
    }
    top.push_back(std::move(value));
    return &top.back();
  }
  bool Value(json value) {
    if (mode_ != Mode::kDom) return Fail("unexpected value in model.vocab/merges");
    Insert(std::move(value));
    return true;
  }
  bool Open(json container) {
    // The key must be read before Insert, which keeps it for the slot.
    std::string name = stack_.empty() || !stack_.back()->is_object() ? "" : key_;
    stack_.push_back(Insert(std::move(container)));
    names_.push_back(std::move(name));
    return true;
  }
  bool Close() {
    stack_.pop_back();
    names_.pop_back();
    return true;
  }
  bool VocabEntry(int64_t id) {
    if (id < 0 || id > INT32_MAX) return Fail("bad id for \"" + vocab_key_ + "\"");
    out_->vocab.emplace_back(std::move(vocab_key_), id);
    return true;
  }

  TokenizerJson* out_;
  Mode mode_ = Mode::kDom;
  std::vector<json*> stack_;        // open containers (pointers stay valid:
  std::vector<std::string> names_;  // a parent only grows once they close)
  std::string key_;
  std::string vocab_key_;
  std::string pair_[2];
  int pair_size_ = 0;
  std::string error_;
};

// Typed access to the small DOM sections; errors name the JSON path.
Result<std::string> GetString(const json& object, const char* key,
                              const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return Corrupt(where + "." + key + " must be a string");
  }
  return it->get<std::string>();
}

bool GetBool(const json& object, const char* key, bool fallback) {
  const auto it = object.find(key);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// HF patterns are {"String": s} or {"Regex": r}; we implement the first.
Result<std::string> GetStringPattern(const json& object,
                                     const std::string& where) {
  const auto it = object.find("pattern");
  if (it == object.end() || !it->is_object()) {
    return Corrupt(where + ".pattern must be an object");
  }
  if (const auto s = it->find("String"); s != it->end() && s->is_string()) {
    return s->get<std::string>();
  }
  return Unsupported(where + ": only string patterns are supported, got " +
                     it->dump());
}

// Flattens a normalizer (possibly a Sequence) into steps; anything but
// Replace and Prepend with string patterns is refused rather than ignored,
// since ignoring it would change the ids silently.
Status ParseNormalizer(const json& node, const std::string& where,
                       std::vector<NormalizerStep>* steps) {
  if (node.is_null()) return Status::Ok();
  if (!node.is_object()) return Corrupt(where + " must be an object");
  GR_ASSIGN_OR_RETURN(const std::string type, GetString(node, "type", where));
  if (type == "Sequence") {
    const auto it = node.find("normalizers");
    if (it == node.end() || !it->is_array()) {
      return Corrupt(where + ".normalizers must be an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      GR_RETURN_IF_ERROR(ParseNormalizer(
          (*it)[i], where + ".normalizers[" + std::to_string(i) + "]", steps));
    }
    return Status::Ok();
  }
  if (type == "Replace") {
    GR_ASSIGN_OR_RETURN(std::string pattern, GetStringPattern(node, where));
    GR_ASSIGN_OR_RETURN(std::string content, GetString(node, "content", where));
    if (pattern.empty()) return Corrupt(where + ": empty Replace pattern");
    steps->push_back({NormalizerStep::Kind::kReplace, std::move(pattern),
                      std::move(content)});
    return Status::Ok();
  }
  if (type == "Prepend") {
    GR_ASSIGN_OR_RETURN(std::string content, GetString(node, "prepend", where));
    steps->push_back({NormalizerStep::Kind::kPrepend, "", std::move(content)});
    return Status::Ok();
  }
  return Unsupported(where + ": normalizer " + type + " is not supported");
}

Status ParsePreTokenizer(const json& node, Model* model) {
  const std::string where = "pre_tokenizer";
  if (node.is_null()) return Status::Ok();
  if (!node.is_object()) return Corrupt(where + " must be an object");
  GR_ASSIGN_OR_RETURN(const std::string type, GetString(node, "type", where));
  if (type != "Split") {
    return Unsupported(where + ": " + type + " is not supported");
  }
  GR_ASSIGN_OR_RETURN(std::string pattern, GetStringPattern(node, where));
  GR_ASSIGN_OR_RETURN(const std::string behavior,
                      GetString(node, "behavior", where));
  if (GetBool(node, "invert", false)) {
    return Unsupported(where + ": inverted Split is not supported");
  }
  using Behavior = SplitPreTokenizer::Behavior;
  static const std::pair<const char*, Behavior> kBehaviors[] = {
      {"Removed", Behavior::kRemoved},
      {"Isolated", Behavior::kIsolated},
      {"MergedWithPrevious", Behavior::kMergedWithPrevious},
      {"MergedWithNext", Behavior::kMergedWithNext},
      {"Contiguous", Behavior::kContiguous},
  };
  for (const auto& [name, value] : kBehaviors) {
    if (behavior == name) {
      model->pre_tokenizer = SplitPreTokenizer{std::move(pattern), value};
      return Status::Ok();
    }
  }
  return Corrupt(where + ": unknown Split behavior " + behavior);
}

// Accepts Replace* ByteFallback? Fuse? Strip?, in that order: every
// SentencePiece-derived tokenizer.json (Gemma, Llama) has this shape, and the
// streaming decoder relies on it.
Status ParseDecoder(const json& node, DecoderSpec* decoder) {
  const std::string where = "decoder";
  if (!node.is_object()) {
    return Unsupported(where + ": a tokenizer without a decoder is not supported");
  }
  std::vector<const json*> steps;
  GR_ASSIGN_OR_RETURN(const std::string type, GetString(node, "type", where));
  if (type == "Sequence") {
    const auto it = node.find("decoders");
    if (it == node.end() || !it->is_array()) {
      return Corrupt(where + ".decoders must be an array");
    }
    for (const json& step : *it) steps.push_back(&step);
  } else {
    steps.push_back(&node);
  }
  // Stages must come in this order for the streaming decoder to be exact.
  enum Stage { kReplace, kByteFallback, kFuse, kStrip };
  int stage = kReplace;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = *steps[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!step.is_object()) return Corrupt(at + " must be an object");
    GR_ASSIGN_OR_RETURN(const std::string name, GetString(step, "type", at));
    int this_stage;
    if (name == "Replace") {
      this_stage = kReplace;
      GR_ASSIGN_OR_RETURN(std::string pattern, GetStringPattern(step, at));
      GR_ASSIGN_OR_RETURN(std::string content, GetString(step, "content", at));
      if (pattern.empty()) return Corrupt(at + ": empty Replace pattern");
      decoder->replacements.emplace_back(std::move(pattern), std::move(content));
    } else if (name == "ByteFallback") {
      this_stage = kByteFallback;
      decoder->byte_fallback = true;
    } else if (name == "Fuse") {
      this_stage = kFuse;
    } else if (name == "Strip") {
      this_stage = kStrip;
      GR_ASSIGN_OR_RETURN(decoder->strip_content, GetString(step, "content", at));
      const auto start = step.find("start");
      const auto stop = step.find("stop");
      if (start == step.end() || !start->is_number_unsigned() ||
          stop == step.end() || !stop->is_number_unsigned()) {
        return Corrupt(at + ": Strip needs start and stop counts");
      }
      decoder->strip_start = start->get<int>();
      decoder->strip_stop = stop->get<int>();
      if (stage < kFuse) {
        return Unsupported(at + ": Strip before Fuse is not supported");
      }
    } else {
      return Unsupported(at + ": decoder " + name + " is not supported");
    }
    if (this_stage < stage || (this_stage == stage && this_stage != kReplace)) {
      return Unsupported(where + ": decoder order " + node.dump() +
                         " is not supported");
    }
    stage = this_stage;
  }
  return Status::Ok();
}

// bos/eos/pad/unk names: "<bos>" or {"content": "<bos>", ...} or null.
std::optional<std::string> TokenName(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    if (const auto c = it->find("content"); c != it->end() && c->is_string()) {
      return c->get<std::string>();
    }
  }
  return std::nullopt;
}

// bos/eos/pad/unk ids from tokenizer_config.json next to the file, as
// transformers' AutoTokenizer reads them, else from Gemma's names.
Status ResolveSpecialIds(const std::string& tokenizer_path,
                         const std::optional<std::string>& model_unk,
                         Model* model) {
  std::optional<std::string> bos = "<bos>", eos = "<eos>", pad = "<pad>";
  std::optional<std::string> unk = "<unk>";
  const std::filesystem::path config_path =
      std::filesystem::path(tokenizer_path).parent_path() /
      "tokenizer_config.json";
  std::error_code error;
  if (std::filesystem::exists(config_path, error)) {
    GR_ASSIGN_OR_RETURN(const std::string text,
                        tokenizer_internal::ReadFile(config_path.string()));
    json config;
    try {
      config = json::parse(text);
    } catch (const json::exception& e) {
      return Corrupt(config_path.string() + ": " + e.what());
    }
    if (!config.is_object()) {
      return Corrupt(config_path.string() + ": not a JSON object");
    }
    bos = TokenName(config, "bos_token");
    eos = TokenName(config, "eos_token");
    pad = TokenName(config, "pad_token");
    unk = TokenName(config, "unk_token");
  }
  // The BPE model's own unk_token is the one its byte fallback uses.
  if (model_unk) unk = model_unk;
  auto find = [&](const std::optional<std::string>& name) -> int32_t {
    return name ? model->index.Find(*name) : -1;
  };
  model->ids = SpecialIds{find(bos), find(eos), find(pad), find(unk)};
  return Status::Ok();
}

Status BuildModel(TokenizerJson& file, const std::string& path, Model* model) {
  const json& root = file.root;
  if (!root.is_object()) return Corrupt("not a JSON object");
  const auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return Corrupt("no \"model\" object");
  }
  const json& bpe = *model_it;
  if (const auto type = bpe.find("type");
      type != bpe.end() && !(type->is_string() && *type == "BPE")) {
    return Unsupported("model type " + type->dump() +
                       " is not supported (only BPE)");
  }
  if (!file.has_vocab) return Corrupt("model.vocab is missing");
  // The GGUF path refuses an empty vocabulary too; here every text would become one <unk>.
  if (file.vocab.empty()) return Corrupt("model.vocab is empty");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const auto it = bpe.find(key);
        it != bpe.end() && !it->is_null() && *it != "") {
      return Unsupported(std::string("model.") + key + " is not supported");
    }
  }
  if (const auto it = bpe.find("dropout");
      it != bpe.end() && it->is_number() && it->get<double>() > 0) {
    return Unsupported("BPE dropout is not supported");
  }
  model->algorithm = Model::Algorithm::kMergeRanks;
  model->byte_fallback = GetBool(bpe, "byte_fallback", false);
  model->fuse_unk = GetBool(bpe, "fuse_unk", false);
  model->ignore_merges = GetBool(bpe, "ignore_merges", false);
  std::optional<std::string> model_unk;
  if (const auto it = bpe.find("unk_token"); it != bpe.end() && it->is_string()) {
    model_unk = it->get<std::string>();
  }

  // Pieces by id: the vocabulary, then the added tokens over it. Ids may go
  // past the BPE vocabulary (Gemma 3's <image_soft_token> is 262144).
  const auto added_it = root.find("added_tokens");
  const json empty_array = json::array();
  const json& added = added_it != root.end() && added_it->is_array()
                          ? *added_it
                          : empty_array;
  int64_t size = 0;
  for (const auto& [piece, id] : file.vocab) size = std::max(size, id + 1);
  for (const json& token : added) {
    if (!token.is_object() || !token.contains("id") ||
        !token["id"].is_number_unsigned() || token["id"].get<int64_t>() > INT32_MAX) {
      return Corrupt("added_tokens: entry without a valid id: " + token.dump());
    }
    size = std::max(size, token["id"].get<int64_t>() + 1);
  }
  // Ids index arrays: a stray huge id must not allocate gigabytes.
  if (size > static_cast<int64_t>(file.vocab.size() + added.size())) {
    return Corrupt("token ids go up to " + std::to_string(size - 1) +
                   " but there are only " +
                   std::to_string(file.vocab.size() + added.size()) + " tokens");
  }
  model->pieces.assign(size, std::string());
  model->types.assign(size, PieceType::kNormal);
  model->special.assign(size, 0);
  for (auto& [piece, id] : file.vocab) {
    if (!model->pieces[id].empty()) {
      return Corrupt("model.vocab: id " + std::to_string(id) + " used twice");
    }
    if (tokenizer_internal::ParseBytePiece(piece)) model->types[id] = PieceType::kByte;
    model->pieces[id] = std::move(piece);
  }
  file.vocab = {};

  GR_RETURN_IF_ERROR(ParseNormalizer(root.value("normalizer", json()),
                                     "normalizer", &model->normalizer));
  GR_RETURN_IF_ERROR(ParsePreTokenizer(root.value("pre_tokenizer", json()), model));
  GR_RETURN_IF_ERROR(ParseDecoder(root.value("decoder", json()), &model->decoder));

  // Added tokens are matched in the text before the model sees it; their
  // `special` flag only matters for IsSpecial and skip_special_tokens.
  std::vector<std::pair<std::string, int32_t>> normalized_added;
  for (const json& token : added) {
    const auto id = token["id"].get<int32_t>();
    GR_ASSIGN_OR_RETURN(std::string content,
                        GetString(token, "content", "added_tokens"));
    if (GetBool(token, "lstrip", false) || GetBool(token, "rstrip", false) ||
        GetBool(token, "single_word", false)) {
      return Unsupported("added token " + content +
                         ": lstrip/rstrip/single_word are not supported");
    }
    const bool special = GetBool(token, "special", false);
    model->types[id] = special ? PieceType::kControl : PieceType::kUserDefined;
    model->special[id] = special ? 1 : 0;
    if (content.empty()) continue;
    // HF matches normalized=true tokens in the normalized text.
    if (GetBool(token, "normalized", !special)) {
      normalized_added.emplace_back(content, id);
    } else {
      model->literals.Add(content, id);
    }
    model->pieces[id] = std::move(content);
  }
  tokenizer_internal::BuildLookupTables(model);
  for (const auto& [content, id] : normalized_added) {
    // Matched against normalized text, so spelled as the normalizer
    // would spell it.
    const std::string normalized =
        tokenizer_internal::ApplyNormalizer(model->normalizer, content);
    if (!normalized.empty()) model->normalized_literals.Add(normalized, id);
  }

  // Merges are resolved in batches: all hashes and prefetches first, then
  // the probes, so the ~2M random lookups overlap their cache misses.
  if (file.merges.size() > tokenizer_internal::MergeTable::kMaxMerges ||
      model->size() > tokenizer_internal::MergeTable::kMaxId + 1) {
    return Unsupported("vocabulary or merge list too large");
  }
  model->merges.Reserve(file.merges.size());
  constexpr size_t kBatch = 32;
  std::string merged[kBatch];
  uint32_t hashes[kBatch][3];
  int32_t resolved[kBatch][3];
  const tokenizer_internal::PieceIndex& index = model->index;
  for (size_t begin = 0; begin < file.merges.size(); begin += kBatch) {
    const size_t n = std::min(kBatch, file.merges.size() - begin);
    for (size_t i = 0; i < n; ++i) {
      const auto& [left, right] = file.merges[begin + i];
      merged[i].assign(left).append(right);
      hashes[i][0] = index.Hash(left);
      hashes[i][1] = index.Hash(right);
      hashes[i][2] = index.Hash(merged[i]);
      for (const uint32_t h : hashes[i]) index.Prefetch(h);
    }
    for (size_t i = 0; i < n; ++i) {
      for (const uint32_t h : hashes[i]) index.PrefetchPiece(h);
    }
    for (size_t i = 0; i < n; ++i) {
      const auto& [left, right] = file.merges[begin + i];
      resolved[i][0] = index.Find(left, hashes[i][0]);
      resolved[i][1] = index.Find(right, hashes[i][1]);
      resolved[i][2] = index.Find(merged[i], hashes[i][2]);
      if (resolved[i][0] < 0 || resolved[i][1] < 0 || resolved[i][2] < 0) {
        return Corrupt("merge \"" + left + " " + right +
                       "\" uses a piece missing from the vocabulary");
      }
      model->merges.Prefetch(resolved[i][0], resolved[i][1]);
    }
    for (size_t i = 0; i < n; ++i) {
      model->merges.Insert(resolved[i][0], resolved[i][1],
                           {static_cast<uint32_t>(begin + i), resolved[i][2]});
    }
  }
  file.merges = {};  // frees ~40 MB of strings before the tokenizer is used

  tokenizer_internal::FindSpaceBoundaries(model);
  GR_RETURN_IF_ERROR(ResolveSpecialIds(path, model_unk, model));
  // Without its piece, characters the vocabulary lacks would be dropped silently.
  if (model_unk && model->ids.unk < 0) {
    return Corrupt("model.unk_token \"" + *model_unk + "\" is not in the vocabulary");
  }
  return tokenizer_internal::CheckSpecialIds(*model);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(
    const std::string& path) {
  GR_ASSIGN_OR_RETURN(const std::string text, tokenizer_internal::ReadFile(path));
  TokenizerJson file;
  TokenizerJsonSax sax(&file);
  bool parsed = false;
  try {
    parsed = json::sax_parse(text, &sax);
  } catch (const json::exception& e) {
    return Corrupt(path + ": " + e.what());
  }
  if (!parsed) {
    return Corrupt(path + ": " +
                   (sax.error().empty() ? "invalid JSON" : sax.error()));
  }
  auto model = std::make_unique<Model>();
  Status status;
  try {
    status = BuildModel(file, path, model.get());
  } catch (const json::exception& e) {
    // Type errors in the small sections (e.g. a number where a string is
    // expected) that the checks above did not anticipate.
    status = Corrupt(e.what());
  }
  if (!status.ok()) return status.WithContext(path);
  return std::make_unique<Tokenizer>(std::move(model));
}

}  // namespace gemmarun

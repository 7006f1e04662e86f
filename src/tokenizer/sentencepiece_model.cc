// SentencePiece tokenizer.model files (a serialized ModelProto, read with a
// small protobuf wire-format reader instead of libprotobuf) and GGUF-style
// vocabulary arrays. Both encode with SentencePiece's score-ordered BPE.
//
// ref: https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun {

using tokenizer_internal::Model;
using tokenizer_internal::PieceType;

namespace {

// Protobuf wire format: a sequence of (tag varint, value) fields. Errors are
// sticky, so callers check ok() once at the end.
class WireReader {
 public:
  enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

  explicit WireReader(std::string_view data) : data_(data) {}

  bool ok() const { return ok_; }
  size_t offset() const { return pos_; }

  // Reads the next tag; false at the end of the message or on error.
  bool Next(uint32_t* field, uint32_t* wire_type) {
    if (!ok_ || pos_ >= data_.size()) return false;
    const uint64_t tag = Varint();
    *field = static_cast<uint32_t>(tag >> 3);
    *wire_type = static_cast<uint32_t>(tag & 7);
    if (*field == 0) ok_ = false;
    return ok_;
  }

  uint64_t Varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) break;
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      value |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
    ok_ = false;
    return 0;
  }

  std::string_view Bytes() {
    const uint64_t length = Varint();
    if (!ok_ || length > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    const std::string_view bytes = data_.substr(pos_, length);
    pos_ += length;
    return bytes;
  }

  float Float() {
    if (data_.size() - pos_ < 4) {
      ok_ = false;
      return 0;
    }
    // Little-endian on the wire, as on every machine we build for.
    float value;
    std::memcpy(&value, data_.data() + pos_, 4);
    pos_ += 4;
    return value;
  }

  void Skip(uint32_t wire_type) {
    switch (wire_type) {
      case kVarint: Varint(); break;
      case kLen: Bytes(); break;
      case kFixed64: Advance(8); break;
      case kFixed32: Advance(4); break;
      default: ok_ = false;  // groups (3, 4) are not in this schema
    }
  }

  void Fail() { ok_ = false; }

  // False (and failed) when a known field has an unexpected wire type.
  bool Expect(uint32_t wire_type, uint32_t expected) {
    if (wire_type == expected) return true;
    ok_ = false;
    return false;
  }

 private:
  void Advance(size_t n) {
    if (data_.size() - pos_ < n) {
      ok_ = false;
    } else {
      pos_ += n;
    }
  }

  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

struct SentencePieceProto {
  std::string piece;
  float score = 0;
  int32_t type = 1;  // NORMAL
};

// The fields of ModelProto we use, with the schema's defaults.
struct ModelProto {
  std::vector<SentencePieceProto> pieces;
  int32_t model_type = 1;  // UNIGRAM
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>",
              pad_piece = "<pad>";
  std::string normalizer_name;
  std::string_view precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

void ParsePiece(std::string_view bytes, WireReader* outer,
                SentencePieceProto* piece) {
  WireReader r(bytes);
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    if (field == 1 && r.Expect(wire, WireReader::kLen)) {
      piece->piece = std::string(r.Bytes());
    } else if (field == 2 && r.Expect(wire, WireReader::kFixed32)) {
      piece->score = r.Float();
    } else if (field == 3 && r.Expect(wire, WireReader::kVarint)) {
      piece->type = static_cast<int32_t>(r.Varint());
    } else if (r.ok()) {
      r.Skip(wire);
    }
  }
  if (!r.ok()) outer->Fail();
}

void ParseTrainerSpec(std::string_view bytes, WireReader* outer,
                      ModelProto* proto) {
  WireReader r(bytes);
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    const bool varint = wire == WireReader::kVarint;
    const bool len = wire == WireReader::kLen;
    if (field == 3 && varint) {
      proto->model_type = static_cast<int32_t>(r.Varint());
    } else if (field == 35 && varint) {
      proto->byte_fallback = r.Varint() != 0;
    } else if (field == 24 && varint) {
      proto->treat_whitespace_as_suffix = r.Varint() != 0;
    } else if (field >= 45 && field <= 48 && len) {
      std::string* names[] = {&proto->unk_piece, &proto->bos_piece,
                              &proto->eos_piece, &proto->pad_piece};
      const std::string_view name = r.Bytes();
      // An empty name means the default (ModelInterface::unk_piece()).
      if (!name.empty()) *names[field - 45] = std::string(name);
    } else {
      r.Skip(wire);
    }
  }
  if (!r.ok()) outer->Fail();
}

void ParseNormalizerSpec(std::string_view bytes, WireReader* outer,
                         ModelProto* proto) {
  WireReader r(bytes);
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    const bool varint = wire == WireReader::kVarint;
    const bool len = wire == WireReader::kLen;
    if (field == 1 && len) {
      proto->normalizer_name = std::string(r.Bytes());
    } else if (field == 2 && len) {
      proto->precompiled_charsmap = r.Bytes();
    } else if (field == 3 && varint) {
      proto->add_dummy_prefix = r.Varint() != 0;
    } else if (field == 4 && varint) {
      proto->remove_extra_whitespaces = r.Varint() != 0;
    } else if (field == 5 && varint) {
      proto->escape_whitespaces = r.Varint() != 0;
    } else {
      r.Skip(wire);
    }
  }
  if (!r.ok()) outer->Fail();
}

// Unknown fields are skipped, as protobuf does, so newer SentencePiece
// versions' extra fields are harmless.
Result<ModelProto> ParseModelProto(std::string_view data) {
  ModelProto proto;
  WireReader r(data);
  uint32_t field, wire;
  while (r.Next(&field, &wire)) {
    if (field >= 1 && field <= 3 && r.Expect(wire, WireReader::kLen)) {
      const std::string_view bytes = r.Bytes();
      if (!r.ok()) break;
      if (field == 1) {
        ParsePiece(bytes, &r, &proto.pieces.emplace_back());
      } else if (field == 2) {
        ParseTrainerSpec(bytes, &r, &proto);
      } else {
        ParseNormalizerSpec(bytes, &r, &proto);
      }
    } else if (r.ok()) {
      r.Skip(wire);
    }
  }
  if (!r.ok()) {
    return Corrupt("malformed protobuf near byte " + std::to_string(r.offset()));
  }
  return proto;
}

PieceType ToPieceType(int32_t type) {
  // GGUF's 0 (undefined) and unknown values read as normal pieces.
  if (type < 1 || type > 6) return PieceType::kNormal;
  return static_cast<PieceType>(type);
}

// Shared by both loaders: SentencePiece-style vocabulary with scores.
std::unique_ptr<Model> NewScoreModel(std::vector<std::string> pieces,
                                     std::vector<float> scores,
                                     std::vector<PieceType> types) {
  auto model = std::make_unique<Model>();
  model->algorithm = Model::Algorithm::kScores;
  model->pieces = std::move(pieces);
  model->scores = std::move(scores);
  model->types = std::move(types);
  model->special.assign(model->pieces.size(), 0);
  for (size_t id = 0; id < model->pieces.size(); ++id) {
    const PieceType t = model->types[id];
    model->special[id] = t == PieceType::kControl || t == PieceType::kUnknown;
    if (t == PieceType::kUnused) model->has_unused = true;
    if (t == PieceType::kByte) model->byte_fallback = true;
  }
  // What HF's converters emit for SentencePiece BPE models.
  model->decoder.replacements = {{"\xE2\x96\x81", " "}};
  model->decoder.byte_fallback = true;
  return model;
}

// The space a dummy prefix put in front of the text is not part of it: HF's
// converters end such decoders with Strip(" ", 1, 0), as spm_decode does.
void StripDummyPrefix(Model* model) {
  model->decoder.strip_content.assign(1, ' ');
  model->decoder.strip_start = 1;
}

int32_t FirstOfType(const Model& model, PieceType type) {
  for (int32_t id = 0; id < model.size(); ++id) {
    if (model.types[id] == type) return id;
  }
  return -1;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromSentencePieceModel(
    const std::string& path) {
  GR_ASSIGN_OR_RETURN(const std::string data, tokenizer_internal::ReadFile(path));
  auto parsed = ParseModelProto(data);
  if (!parsed.ok()) return parsed.status().WithContext(path);
  const ModelProto& proto = *parsed;
  if (proto.model_type != 2) {
    return Unsupported(path + ": SentencePiece model type " +
                       std::to_string(proto.model_type) +
                       " is not supported (only BPE, 2)");
  }
  if (!proto.precompiled_charsmap.empty()) {
    return Unsupported(path + ": normalization rule '" + proto.normalizer_name +
                       "' is not supported (only identity, as Gemma uses)");
  }
  if (proto.treat_whitespace_as_suffix) {
    return Unsupported(path + ": treat_whitespace_as_suffix is not supported");
  }
  if (proto.pieces.empty()) return Corrupt(path + ": no pieces");

  // Ids are positions in the pieces list.
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<PieceType> types;
  for (const SentencePieceProto& p : proto.pieces) {
    if (p.piece.empty()) return Corrupt(path + ": empty piece");
    pieces.push_back(p.piece);
    scores.push_back(p.score);
    types.push_back(ToPieceType(p.type));
  }
  auto model = NewScoreModel(std::move(pieces), std::move(scores), std::move(types));
  model->byte_fallback = proto.byte_fallback;
  model->spm_normalizer = {proto.add_dummy_prefix, proto.remove_extra_whitespaces,
                           proto.escape_whitespaces};
  if (proto.add_dummy_prefix) StripDummyPrefix(model.get());
  // spm_encode matches only user-defined symbols in the text; "<s>" or
  // "<bos>" written in a prompt stays text.
  for (int32_t id = 0; id < model->size(); ++id) {
    if (model->types[id] == PieceType::kUserDefined) {
      model->literals.Add(model->pieces[id], id);
    }
  }
  tokenizer_internal::BuildLookupTables(model.get());

  // SentencePieceProcessor::bos_id() and friends: the named piece, if it
  // is a control symbol.
  auto control = [&](const std::string& name) {
    const int32_t id = model->index.Find(name);
    return id >= 0 && model->types[id] == PieceType::kControl ? id : -1;
  };
  model->ids = SpecialIds{control(proto.bos_piece), control(proto.eos_piece),
                          control(proto.pad_piece),
                          FirstOfType(*model, PieceType::kUnknown)};
  if (model->ids.unk < 0) return Corrupt(path + ": no unknown piece");
  return std::make_unique<Tokenizer>(std::move(model));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabulary(
    std::vector<std::string> pieces, std::vector<float> scores,
    std::vector<int32_t> token_types, SpecialIds ids, bool add_space_prefix) {
  if (pieces.empty()) return InvalidArgument("empty vocabulary");
  if (scores.size() != pieces.size() || token_types.size() != pieces.size()) {
    return InvalidArgument(
        "vocabulary arrays differ in length: " + std::to_string(pieces.size()) +
        " pieces, " + std::to_string(scores.size()) + " scores, " +
        std::to_string(token_types.size()) + " token types");
  }
  std::vector<PieceType> types;
  types.reserve(token_types.size());
  for (const int32_t t : token_types) types.push_back(ToPieceType(t));
  auto model = NewScoreModel(std::move(pieces), std::move(scores), std::move(types));
  model->spm_normalizer = {add_space_prefix, false, true};
  if (add_space_prefix) StripDummyPrefix(model.get());
  // Unlike spm_encode, control tokens typed in the text count too: that is
  // what HF does with Gemma's tokenizer.json (and llama.cpp with
  // parse_special), so a GGUF model reads prompts like its HF original.
  for (int32_t id = 0; id < model->size(); ++id) {
    const PieceType t = model->types[id];
    if ((t == PieceType::kControl || t == PieceType::kUserDefined ||
         t == PieceType::kUnknown) &&
        !model->pieces[id].empty()) {
      // Literals are matched in the normalized text, where spaces are "▁";
      // GGUF stores Gemma 3's whitespace pieces ("  ", id 138) with spaces.
      std::string literal;
      tokenizer_internal::ReplaceAll(model->pieces[id], " ", "\xe2\x96\x81", &literal);
      model->literals.Add(literal, id);
    }
  }
  tokenizer_internal::BuildLookupTables(model.get());
  if (ids.unk < 0) ids.unk = FirstOfType(*model, PieceType::kUnknown);
  model->ids = ids;
  GR_RETURN_IF_ERROR(tokenizer_internal::CheckSpecialIds(*model));
  return std::make_unique<Tokenizer>(std::move(model));
}

}  // namespace gemmarun

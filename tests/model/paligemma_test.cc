// PaliGemma end to end on the tests/data/paligemma fixture (HF transformers,
// float64): the image file path gives the reference pixels, the SigLIP tower and
// projector give the reference activations, prefill and greedy decoding give the
// reference logits and tokens; the prefix-LM mask (bidirectional prompt, causal
// continuation); PIL-exact resizing; and clear errors for bad image files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "gemmarun/engine.h"
#include "gemmarun/verify.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "model/siglip.h"
#include "runtime/model_source.h"
#include "testing/golden.h"

namespace gemmarun {
namespace {

namespace fs = std::filesystem;

std::string FixtureDir() { return std::string(GR_TEST_DATA_DIR) + "/paligemma"; }

// A named f32 tensor of a fixture file, copied out.
std::vector<float> ReadF32(const std::string& file, const std::string& name, Shape* shape = nullptr) {
  auto st = SafetensorsFile::Open(FixtureDir() + "/" + file);
  EXPECT_TRUE(st.ok()) << st.status().message();
  if (!st.ok()) return {};
  for (const TensorSource& t : st->tensors()) {
    if (t.name != name || t.dtype != DType::kF32) continue;
    if (shape != nullptr) *shape = t.shape;
    std::vector<float> values(t.shape.elements());
    std::memcpy(values.data(), t.data, t.bytes);
    return values;
  }
  ADD_FAILURE() << file << " has no f32 tensor " << name;
  return {};
}

std::vector<int32_t> PromptIds() {
  auto st = SafetensorsFile::Open(FixtureDir() + "/reference.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().message();
  for (const TensorSource& t : st->tensors()) {
    if (t.name != "prompt0.input_ids") continue;
    std::vector<int32_t> ids(t.shape.elements());
    std::memcpy(ids.data(), t.data, t.bytes);
    return ids;
  }
  ADD_FAILURE() << "reference.safetensors has no prompt0.input_ids";
  return {};
}

double MaxAbs(std::span<const float> v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

double MaxDiff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return m;
}

// ---- golden ----------------------------------------------------------------

// No token-by-token check: the image prefix is only ever prefilled.
TEST(PaliGemmaGolden, MatchesReference) { testing::ExpectMatchesFixture(FixtureDir()); }

TEST(PaliGemmaGolden, MatchesReferenceThroughPanelKernels) {
  if (!testing::PanelKernelsForEveryMatMul::available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  testing::PanelKernelsForEveryMatMul panel;
  testing::ExpectMatchesFixture(FixtureDir());
}

class PaliGemmaEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto engine = Engine::Load(FixtureDir());
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value().release();
    auto image = engine_->LoadImage(FixtureDir() + "/image.png");
    ASSERT_TRUE(image.ok()) << image.status().message();
    image_ = new Image(std::move(image).value());
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete image_;
    engine_ = nullptr;
    image_ = nullptr;
  }

  // Prefills the image + `ids` prefix in a fresh session; returns every row's logits.
  static Logits PrefillPrefix(Session& session, std::span<const int32_t> ids) {
    PrefillOptions options;
    options.all_logits = true;
    options.image = image_;
    auto logits = session.Prefill(ids, options);
    EXPECT_TRUE(logits.ok()) << logits.status().message();
    return logits.ok() ? std::move(logits).value() : Logits{};
  }

  static std::unique_ptr<Session> NewSession() {
    auto session = engine_->NewSession(64);
    EXPECT_TRUE(session.ok()) << session.status().message();
    return session.ok() ? std::move(session).value() : nullptr;
  }

  static Engine* engine_;
  static Image* image_;
};

Engine* PaliGemmaEngine::engine_ = nullptr;
Image* PaliGemmaEngine::image_ = nullptr;

// The fixture's image.png is exactly image_size square: the file path must give
// the reference pixel_values ((x/255 - 0.5)/0.5, channels first) with no resize.
TEST_F(PaliGemmaEngine, ImageFileGivesReferencePixels) {
  Shape shape;
  const std::vector<float> expected = ReadF32("reference.safetensors", "pixel_values", &shape);
  ASSERT_EQ(shape, (Shape{1, 3, 32, 32}));
  EXPECT_EQ(image_->channels, 3);
  EXPECT_EQ(image_->height, 32);
  EXPECT_EQ(image_->width, 32);
  EXPECT_LE(MaxDiff(image_->pixels, expected), 1e-6);
}

TEST_F(PaliGemmaEngine, ImagePromptLayout) {
  const ModelInfo& info = engine_->info();
  EXPECT_TRUE(info.takes_image);
  EXPECT_EQ(info.image_size, 32);
  EXPECT_EQ(info.num_image_tokens, 16);
  // The fixture has no tokenizer, so the text part cannot be tokenized.
  EXPECT_FALSE(engine_->ImagePrompt("caption en").ok());
}

// The tower and projector against HF's own activations for the same pixels.
TEST(PaliGemmaVision, TowerAndProjectorMatchReference) {
  std::unique_ptr<Backend> backend = CreateCpuBackend(1);
  auto loaded = LoadModel(FixtureDir(), backend.get(), nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  Model& model = *loaded->model;
  const VisionConfig& vision = model.config().vision;
  std::vector<float> pixels = ReadF32("reference.safetensors", "pixel_values");
  const TensorView pixel_view{pixels.data(), DType::kF32, Shape{3, vision.image_size, vision.image_size}};

  Shape shape;
  const std::vector<float> vision_ref = ReadF32("activations.safetensors", "vision_out", &shape);
  ASSERT_EQ(shape, (Shape{vision.num_patches(), vision.model_dim}));
  ops::OpContext ctx{backend.get()};
  VisionActivations act;
  Tensor vision_out(DType::kF32, shape);
  ASSERT_TRUE(SiglipTower(ctx, vision, model.weights().vision, pixel_view, act, vision_out.view()).ok());
  const std::span<const float> got(vision_out.f32(), shape.elements());
  // Post-LayerNorm values are O(1); f32 against f64 lands near 1e-6.
  EXPECT_LE(MaxDiff(got, vision_ref), 1e-4 * std::max(1.0, MaxAbs(vision_ref)));

  const std::vector<float> features_ref = ReadF32("activations.safetensors", "image_features", &shape);
  auto features = model.EncodeImage(pixel_view);
  ASSERT_TRUE(features.ok()) << features.status().message();
  ASSERT_EQ(features->shape(), shape);
  EXPECT_LE(MaxDiff(std::span<const float>(features->f32(), shape.elements()), features_ref),
            1e-4 * std::max(1.0, MaxAbs(features_ref)));

  // Wrong pixel shapes are the caller's mistake, reported as a Status.
  const TensorView wrong{pixels.data(), DType::kF32, Shape{3, 16, 64}};
  auto bad = model.EncodeImage(wrong);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("[3, 32, 32]"), std::string::npos) << bad.status().message();
}

// ---- prefix-LM mask ------------------------------------------------------------

// Every prompt token is in the prefix, so an earlier position sees the last one:
// changing only the last prompt token must change the logits at earlier positions
// (the image tokens, <bos>, the first text token).
TEST_F(PaliGemmaEngine, PrefixAttendsBidirectionally) {
  std::vector<int32_t> ids = PromptIds();
  ASSERT_GT(ids.size(), 18u);
  auto a = NewSession();
  auto b = NewSession();
  ASSERT_TRUE(a && b);
  const Logits original = PrefillPrefix(*a, ids);
  ids.back() = ids.back() == 7 ? 8 : 7;
  const Logits changed = PrefillPrefix(*b, ids);
  ASSERT_EQ(original.rows, static_cast<int64_t>(ids.size()));
  ASSERT_EQ(changed.rows, original.rows);
  for (int64_t row : {int64_t{0}, int64_t{16}, int64_t{17}, original.rows - 2}) {
    SCOPED_TRACE("row " + std::to_string(row));
    // Random-weight logits are O(1); a real dependence moves them far above rounding.
    EXPECT_GT(MaxDiff(original.row(row), changed.row(row)), 1e-3);
  }
}

// Generated tokens are causal: the logits after generated token t must not depend
// on tokens appended after it. A session fed the continuation one token at a time
// is compared with fresh sessions that get the whole continuation up to step t in
// one chunk (all rows checked, so no row may see a later row of its chunk).
TEST_F(PaliGemmaEngine, GeneratedTokensDoNotAttendAhead) {
  const std::vector<int32_t> ids = PromptIds();
  const std::vector<int32_t> continuation = {5, 17, 300, 42, 5, 9};
  auto stepwise = NewSession();
  ASSERT_TRUE(stepwise);
  PrefillPrefix(*stepwise, ids);
  std::vector<Logits> steps;
  for (int32_t id : continuation) {
    auto logits = stepwise->Prefill(std::span<const int32_t>(&id, 1));
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    steps.push_back(std::move(logits).value());
  }
  for (size_t t = 1; t <= continuation.size(); ++t) {
    auto fresh = NewSession();
    ASSERT_TRUE(fresh);
    PrefillPrefix(*fresh, ids);
    PrefillOptions all;
    all.all_logits = true;
    auto chunk = fresh->Prefill(std::span<const int32_t>(continuation.data(), t), all);
    ASSERT_TRUE(chunk.ok()) << chunk.status().message();
    ASSERT_EQ(chunk->rows, static_cast<int64_t>(t));
    for (size_t j = 0; j < t; ++j) {
      SCOPED_TRACE("chunk of " + std::to_string(t) + ", row " + std::to_string(j));
      const double scale = std::max(1.0, MaxAbs(steps[j].row(0)));
      EXPECT_LE(MaxDiff(chunk->row(j), steps[j].row(0)), 1e-5 * scale);
    }
  }
}

// ---- image loading ---------------------------------------------------------------

class ImageFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gr_image_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static std::string FixturePng() {
    std::ifstream in(FixtureDir() + "/image.png", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Expects a failure whose message names the file and contains `needle`.
  static void ExpectError(const Result<RgbImage>& result, const std::string& path, const std::string& needle) {
    ASSERT_FALSE(result.ok()) << path << " decoded";
    const std::string& message = result.status().message();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  }

  fs::path dir_;
};

TEST_F(ImageFiles, DecodesTheFixturePng) {
  auto image = ReadImageFile(FixtureDir() + "/image.png");
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(image->width, 32);
  EXPECT_EQ(image->height, 32);
  EXPECT_EQ(image->pixels.size(), 32u * 32u * 3u);
}

TEST_F(ImageFiles, MissingFile) {
  const std::string path = (dir_ / "nope.png").string();
  auto image = ReadImageFile(path);
  ExpectError(image, path, "No such file");
  EXPECT_EQ(image.status().code(), StatusCode::kNotFound);
}

TEST_F(ImageFiles, EmptyFile) {
  const std::string path = Write("empty.png", "");
  ExpectError(ReadImageFile(path), path, "empty");
}

TEST_F(ImageFiles, TruncatedPng) {
  const std::string png = FixturePng();
  ASSERT_GT(png.size(), 100u);
  const std::string path = Write("truncated.png", png.substr(0, png.size() / 2));
  auto image = ReadImageFile(path);
  ExpectError(image, path, "truncated");
  EXPECT_EQ(image.status().code(), StatusCode::kCorrupt);
  // Cut inside the header too.
  const std::string header_path = Write("header.png", png.substr(0, 20));
  ExpectError(ReadImageFile(header_path), header_path, "PNG");
}

TEST_F(ImageFiles, TextFile) {
  const std::string path = Write("notes.png", "just some text, not pixels\n");
  ExpectError(ReadImageFile(path), path, "not a PNG or JPEG image");
}

TEST_F(ImageFiles, OtherFormatIsNamed) {
  const std::string path = Write("anim.gif", "GIF89a\x01\x00\x01\x00");
  auto image = ReadImageFile(path);
  ExpectError(image, path, "GIF");
  EXPECT_EQ(image.status().code(), StatusCode::kUnsupported);
}

// A 33-byte PNG can claim 100000 x 100000 pixels (30 GB decoded): refused from
// its header, before any allocation.
TEST_F(ImageFiles, HugeDimensionsRefusedFromHeader) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += be32(13) + "IHDR" + be32(100000) + be32(100000);
  png += std::string("\x08\x02\x00\x00\x00", 5) + be32(0);  // 8-bit RGB; CRC not checked first
  const std::string path = Write("huge.png", png);
  ExpectError(ReadImageFile(path), path, "100000x100000");
  // Just over the per-side limit, with few pixels.
  std::string wide("\x89PNG\r\n\x1a\n", 8);
  wide += be32(13) + "IHDR" + be32(kMaxImageSide + 1) + be32(1) + std::string("\x08\x02\x00\x00\x00", 5) + be32(0);
  const std::string wide_path = Write("wide.png", wide);
  ExpectError(ReadImageFile(wide_path), wide_path, "pixels per side");
}

TEST_F(ImageFiles, EngineReportsBadImagesAndNonVisionModels) {
  auto engine = Engine::Load(FixtureDir());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  const std::string path = Write("empty.jpg", "");
  auto image = (*engine)->LoadImage(path);
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("empty"), std::string::npos) << image.status().message();

  auto text_model = Engine::Load(std::string(GR_TEST_DATA_DIR) + "/gemma1_mqa");
  ASSERT_TRUE(text_model.ok()) << text_model.status().message();
  auto none = (*text_model)->LoadImage(FixtureDir() + "/image.png");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnsupported);
}

TEST_F(ImageFiles, PreprocessorConfigIsRead) {
  ImagePreprocess p;
  const std::string path = Write("preprocessor_config.json", R"({
    "do_normalize": true, "do_rescale": true, "do_resize": true, "resample": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": 0.5,
    "rescale_factor": 0.00392156862745098, "size": {"height": 448, "width": 448}})");
  ASSERT_TRUE(ReadPreprocessorConfig(path, &p).ok());
  EXPECT_EQ(p.width, 448);
  EXPECT_EQ(p.height, 448);
  EXPECT_EQ(p.resample, Resample::kBilinear);
  EXPECT_FLOAT_EQ(p.mean[2], 0.40821073f);
  EXPECT_FLOAT_EQ(p.std[1], 0.5f);
  const std::string bad = Write("bad.json", R"({"resample": 1})");
  const Status status = ReadPreprocessorConfig(bad, &p);
  EXPECT_EQ(status.code(), StatusCode::kUnsupported) << status.message();
}

// ---- PIL-exact resizing --------------------------------------------------------

RgbImage Pattern(int width, int height) {
  RgbImage image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        image.pixels[(y * width + x) * 3 + c] =
            static_cast<uint8_t>((x * 37 + y * 91 + c * 53 + (x * y) % 7 * 11) % 256);
      }
    }
  }
  return image;
}

// Expected bytes from Pillow 13.0: Image.fromarray(Pattern(w, h)).resize((ow, oh), resample).
TEST(ResizeImage, MatchesPillowByteForByte) {
  struct Case {
    int width, height, out_width, out_height;
    Resample resample;
    std::vector<uint8_t> expected;
  };
  const Case cases[] = {
      {13, 9, 5, 4, Resample::kBicubic,  // downscale: the kernel widens by the scale
       {105, 132, 147, 128, 141, 162, 129, 125, 142, 121, 135, 150, 125, 152, 126, 132, 156, 105, 125, 121,
        105, 122, 105, 142, 134, 162, 96,  131, 106, 131, 114, 177, 123, 129, 135, 81,  128, 162, 112, 116,
        173, 115, 143, 133, 81,  126, 141, 113, 144, 137, 92,  135, 108, 128, 136, 156, 108, 144, 98,  94}},
      {4, 3, 7, 5, Resample::kBicubic,  // upscale: overshoot clipped to [0, 255]
       {0,   43,  96,  3,   56,  108, 26,  79,  132, 48,  100, 164, 68,  122, 194, 92,  158, 218, 105, 178, 230,
        26,  77,  142, 38,  95,  160, 65,  129, 185, 94,  160, 156, 124, 172, 125, 150, 132, 151, 164, 108, 168,
        87,  140, 193, 104, 157, 219, 135, 188, 249, 163, 232, 141, 191, 232, 33,  222, 97,  63,  239, 16,  89,
        149, 216, 89,  175, 172, 113, 210, 100, 149, 155, 121, 127, 99,  152, 105, 134, 122, 141, 160, 103, 164,
        184, 255, 14,  215, 174, 35,  252, 34,  75,  141, 38,  119, 30,  91,  163, 67,  143, 203, 98,  172, 223}},
      {5, 13, 4, 5, Resample::kBicubic,  // tall: Pillow 13 runs the vertical pass first
       {88,  126, 137, 122, 139, 150, 147, 136, 132, 106, 124, 184, 113, 156, 126, 144, 165, 96,  101, 161,
        82,  112, 91,  100, 114, 155, 142, 120, 185, 108, 152, 165, 87,  136, 102, 69,  128, 95,  153, 101,
        133, 111, 137, 110, 117, 148, 95,  92,  147, 106, 144, 115, 129, 94,  115, 167, 128, 105, 147, 190}},
      {13, 9, 6, 5, Resample::kBilinear,
       {83,  128, 154, 130, 136, 156, 134, 147, 144, 100, 114, 151, 129, 145, 142, 125, 158, 106,
        138, 136, 116, 129, 135, 116, 137, 103, 150, 137, 125, 115, 134, 141, 117, 138, 117, 155,
        125, 178, 114, 102, 143, 88,  119, 130, 123, 119, 170, 136, 118, 165, 87,  113, 117, 110,
        111, 164, 134, 148, 155, 82,  151, 112, 83,  105, 156, 132, 142, 170, 95,  172, 112, 76,
        122, 125, 108, 133, 137, 109, 137, 140, 102, 143, 110, 125, 130, 148, 110, 131, 99,  94}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.width) + "x" + std::to_string(c.height) + " -> " + std::to_string(c.out_width) +
                 "x" + std::to_string(c.out_height));
    const RgbImage out = ResizeImage(Pattern(c.width, c.height), c.out_width, c.out_height, c.resample);
    EXPECT_EQ(out.width, c.out_width);
    EXPECT_EQ(out.height, c.out_height);
    EXPECT_EQ(out.pixels, c.expected);
  }
}

TEST(ResizeImage, ConstantStaysConstantAndSameSizeIsIdentity) {
  RgbImage flat{50, 30, std::vector<uint8_t>(50 * 30 * 3, 200)};
  const RgbImage down = ResizeImage(flat, 7, 11, Resample::kBicubic);
  EXPECT_TRUE(std::all_of(down.pixels.begin(), down.pixels.end(), [](uint8_t v) { return v == 200; }));
  const RgbImage up = ResizeImage(flat, 64, 64, Resample::kBicubic);
  EXPECT_TRUE(std::all_of(up.pixels.begin(), up.pixels.end(), [](uint8_t v) { return v == 200; }));
  const RgbImage pattern = Pattern(13, 9);
  EXPECT_EQ(ResizeImage(pattern, 13, 9, Resample::kBicubic).pixels, pattern.pixels);
}

TEST(PreprocessImage, ResizesRescalesAndNormalisesChannelsFirst) {
  ImagePreprocess p;
  p.width = p.height = 4;
  const RgbImage image = Pattern(9, 6);
  const RgbImage resized = ResizeImage(image, 4, 4, Resample::kBicubic);
  const std::vector<float> pixels = PreprocessImage(image, p);
  ASSERT_EQ(pixels.size(), 3u * 4u * 4u);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 16; ++i) {
      const float expected = (resized.pixels[i * 3 + c] / 255.0f - 0.5f) / 0.5f;
      EXPECT_NEAR(pixels[c * 16 + i], expected, 1e-6f);
    }
  }
}

}  // namespace
}  // namespace gemmarun

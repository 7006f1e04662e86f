// RecurrentGemma (Griffin): the golden fixture (HF transformers, float64) through
// prefill, token-by-token decoding and greedy search; and the state contract: a
// prefill leaves exactly the state that feeding the same tokens one at a time
// leaves, the state's size does not depend on the sequence length, and prompts
// longer than the attention window work whatever the chunking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "gemmarun/verify.h"
#include "testing/golden.h"
#include "model/griffin.h"
#include "runtime/model_source.h"
#include "testing/batch_runner.h"

namespace gemmarun {
namespace {

const std::string kFixture = std::string(GR_TEST_DATA_DIR) + "/recurrentgemma";

TEST(GriffinGoldenTest, MatchesReference) { testing::ExpectMatchesFixture(kFixture, testing::Stepwise::kRequired); }

TEST(GriffinGoldenTest, MatchesReferenceThroughPanelKernels) {
  if (!testing::PanelKernelsForEveryMatMul::available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  testing::PanelKernelsForEveryMatMul panel;
  testing::ExpectMatchesFixture(kFixture, testing::Stepwise::kRequired);
}

class GriffinStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = CreateCpuBackend(2);
    auto loaded = LoadModel(kFixture, backend_.get(), nullptr);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    model_ = std::move(loaded->model);
    ASSERT_EQ(model_->config().family, ModelFamily::kRecurrentGemma);
  }

  std::unique_ptr<testing::BatchRunner> NewRunner(int64_t max_tokens = 64) {
    return std::make_unique<testing::BatchRunner>(*model_, 1, max_tokens, DType::kF32);
  }

  // Token ids spread over the vocabulary, starting with <bos>.
  std::vector<int32_t> Prompt(int length) const {
    std::vector<int32_t> ids = {model_->config().bos_id};
    for (int i = 1; i < length; ++i) ids.push_back((i * 37 + 11) % model_->config().vocab_size);
    return ids;
  }

  static void ExpectClose(const float* a, const float* b, int64_t n, const std::string& what) {
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(a[i], b[i], 1e-5 * std::max(1.0f, std::fabs(b[i]))) << what << " at " << i;
    }
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
};

TEST_F(GriffinStateTest, PrefillLeavesTheStateOfTokenByTokenFeeding) {
  const ModelConfig& config = model_->config();
  const std::vector<int32_t> tokens = Prompt(23);  // longer than the window (9 keys)
  auto whole = NewRunner(), stepwise = NewRunner(), chunked = NewRunner();
  const std::vector<float> whole_logits = whole->Feed(0, tokens, tokens.size());
  const std::vector<float> step_logits = stepwise->Feed(0, tokens, 1);
  const std::vector<float> chunk_logits = chunked->Feed(0, tokens, 5);
  ASSERT_EQ(whole_logits.size(), tokens.size() * config.vocab_size);
  ExpectClose(step_logits.data(), whole_logits.data(), whole_logits.size(), "stepwise logits");
  ExpectClose(chunk_logits.data(), whole_logits.data(), whole_logits.size(), "chunked logits");

  int recurrent_layers = 0;
  for (int i = 0; i < config.num_layers(); ++i) {
    if (config.layers[i].kind != BlockKind::kRecurrent) continue;
    SCOPED_TRACE("layer " + std::to_string(i));
    const TensorView conv = whole->pool().conv_state(i, 0);
    const TensorView h = whole->pool().lru_state(i, 0);
    ASSERT_EQ(conv.shape, (Shape{config.conv1d_width - 1, config.lru_width}));
    for (const testing::BatchRunner* other : {stepwise.get(), chunked.get()}) {
      ExpectClose(other->pool().conv_state(i, 0).f32(), conv.f32(), conv.shape.elements(), "conv state");
      ExpectClose(other->pool().lru_state(i, 0).f32(), h.f32(), h.shape.elements(), "h");
    }
    // The Conv1D history is the last pre-conv inputs: it must not be all zeros.
    EXPECT_TRUE(std::any_of(conv.f32(), conv.f32() + conv.shape.elements(), [](float v) { return v != 0.0f; }));
    ++recurrent_layers;
  }
  EXPECT_GT(recurrent_layers, 0);
}

TEST_F(GriffinStateTest, StateBytesDoNotDependOnMaxTokens) {
  const ModelConfig& config = model_->config();
  const auto bytes = [&](int64_t max_tokens, int64_t chunk) {
    auto pool = KvPool::Create(config, testing::BatchRunner::ShapeFor(config, 1, max_tokens, DType::kF32, chunk));
    EXPECT_TRUE(pool.ok()) << pool.status().message();
    return pool.ok() ? pool->bytes() : 0;
  };
  const size_t small = bytes(4096, 256), huge = bytes(config.max_seq_len, 256);  // 2^30 tokens: as cheap
  EXPECT_EQ(small, huge);
  // Recurrent layers: Conv1D history + h; attention layers: window + chunk in whole blocks.
  size_t bound = 0;
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind == BlockKind::kRecurrent) {
      bound += sizeof(float) * config.lru_width * config.conv1d_width;
    } else {
      bound += 2 * sizeof(float) * config.num_kv_heads * config.head_dim *
               (layer.attention_window + 256 + 2 * kKvBlockSize);
    }
  }
  EXPECT_LE(huge, bound);
  // Decoding one token at a time needs only the window itself.
  EXPECT_LT(bytes(config.max_seq_len, 1), huge);
}

TEST_F(GriffinStateTest, PromptsLongerThanTheWindowMatchWhateverTheChunking) {
  // 3x the window, prefilled whole, in chunks that straddle block boundaries, and token by token.
  const std::vector<int32_t> tokens = Prompt(31);
  auto whole = NewRunner(40), chunked = NewRunner(40), stepwise = NewRunner(40);
  const std::vector<float> expected = whole->Feed(0, tokens, tokens.size());
  const std::vector<float> chunk_logits = chunked->Feed(0, tokens, 4);
  const std::vector<float> step_logits = stepwise->Feed(0, tokens, 1);
  ExpectClose(chunk_logits.data(), expected.data(), expected.size(), "chunked logits");
  ExpectClose(step_logits.data(), expected.data(), expected.size(), "stepwise logits");
  for (float v : expected) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(GriffinStateTest, RejectsInputsGriffinCannotTake) {
  auto pool = KvPool::Create(model_->config(), testing::BatchRunner::ShapeFor(model_->config(), 1, 64, DType::kF32, 16));
  ASSERT_TRUE(pool.ok());
  auto ws = model_->NewWorkspace(16, 16);
  ASSERT_TRUE(ws.ok());
  const std::vector<int32_t> tokens = Prompt(4);
  const std::vector<int32_t> table(8, 0);
  SequenceChunk chunk;
  chunk.tokens = tokens;
  chunk.block_tables.assign(pool->groups().size(), table);
  chunk.recurrent_slot = 0;
  chunk.prefix_end = 4;  // a bidirectional prefix
  EXPECT_FALSE(model_->Forward(std::span<const SequenceChunk>(&chunk, 1), *pool, **ws).ok());
  chunk.prefix_end = 0;
  chunk.recurrent_slot = 3;  // outside the pool
  EXPECT_FALSE(model_->Forward(std::span<const SequenceChunk>(&chunk, 1), *pool, **ws).ok());
  const std::vector<int32_t> too_many = Prompt(17);  // more than the workspace holds
  chunk.tokens = too_many;
  chunk.recurrent_slot = 0;
  EXPECT_FALSE(model_->Forward(std::span<const SequenceChunk>(&chunk, 1), *pool, **ws).ok());
}

}  // namespace
}  // namespace gemmarun

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

  std::unique_ptr<GriffinState> NewState(int64_t max_tokens, int64_t max_chunk) {
    auto state = model_->NewState(max_tokens, max_chunk);
    EXPECT_TRUE(state.ok()) << state.status().message();
    return std::unique_ptr<GriffinState>(static_cast<GriffinState*>(state->release()));
  }

  // Feeds tokens in chunks of `chunk` (one Forward call each) and returns every logits row.
  std::vector<float> Feed(GriffinState& state, const std::vector<int32_t>& tokens, size_t chunk) {
    std::vector<float> all;
    for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
      ForwardInput input;
      input.tokens = std::span<const int32_t>(tokens).subspan(begin, std::min(chunk, tokens.size() - begin));
      input.all_logits = true;
      auto logits = model_->Forward(input, state);
      EXPECT_TRUE(logits.ok()) << logits.status().message();
      if (!logits.ok()) return all;
      const float* values = logits->f32();
      all.insert(all.end(), values, values + logits->shape.elements());
    }
    return all;
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
  auto whole = NewState(64, 0);
  auto stepwise = NewState(64, 1);
  auto chunked = NewState(64, 5);
  const std::vector<float> whole_logits = Feed(*whole, tokens, tokens.size());
  const std::vector<float> step_logits = Feed(*stepwise, tokens, 1);
  const std::vector<float> chunk_logits = Feed(*chunked, tokens, 5);
  ASSERT_EQ(whole_logits.size(), tokens.size() * config.vocab_size);
  ExpectClose(step_logits.data(), whole_logits.data(), whole_logits.size(), "stepwise logits");
  ExpectClose(chunk_logits.data(), whole_logits.data(), whole_logits.size(), "chunked logits");
  EXPECT_EQ(whole->length(), 23);
  EXPECT_EQ(stepwise->length(), 23);

  int recurrent_layers = 0;
  for (int i = 0; i < config.num_layers(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const GriffinState::Layer& a = whole->layers[i];
    for (const GriffinState* other : {stepwise.get(), chunked.get()}) {
      const GriffinState::Layer& b = other->layers[i];
      if (config.layers[i].kind == BlockKind::kRecurrent) {
        ASSERT_EQ(a.conv.shape(), (Shape{config.conv1d_width - 1, config.lru_width}));
        ASSERT_EQ(a.h.shape(), Shape{config.lru_width});
        ExpectClose(b.conv.f32(), a.conv.f32(), a.conv.shape().elements(), "conv state");
        ExpectClose(b.h.f32(), a.h.f32(), a.h.shape().elements(), "h");
        // The Conv1D history is the last pre-conv inputs: it must not be all zeros.
        EXPECT_TRUE(std::any_of(a.conv.f32(), a.conv.f32() + a.conv.shape().elements(),
                                [](float v) { return v != 0.0f; }));
      } else {
        // The rings differ in size; the last `window` keys must agree slot for slot.
        const int64_t kv = int64_t{config.num_kv_heads} * config.head_dim;
        for (int64_t index = 23 - config.layers[i].attention_window; index < 23; ++index) {
          const float* ka = a.cache.k.f32() + (index % a.cache.capacity) * kv;
          const float* kb = b.cache.k.f32() + (index % b.cache.capacity) * kv;
          const float* va = a.cache.v.f32() + (index % a.cache.capacity) * kv;
          const float* vb = b.cache.v.f32() + (index % b.cache.capacity) * kv;
          ExpectClose(kb, ka, kv, "k at " + std::to_string(index));
          ExpectClose(vb, va, kv, "v at " + std::to_string(index));
        }
      }
    }
    recurrent_layers += config.layers[i].kind == BlockKind::kRecurrent;
  }
  EXPECT_GT(recurrent_layers, 0);
}

TEST_F(GriffinStateTest, StateBytesDoNotDependOnMaxTokens) {
  const ModelConfig& config = model_->config();
  auto small = NewState(4096, 0);
  auto huge = NewState(config.max_seq_len, 0);  // 2^30 tokens: must be as cheap
  ASSERT_NE(small, nullptr);
  ASSERT_NE(huge, nullptr);
  EXPECT_EQ(small->bytes(), huge->bytes());
  // Recurrent layers: Conv1D history + h; attention layers: window + chunk - 1 K/V slots.
  size_t expected = 0;
  for (const LayerConfig& layer : config.layers) {
    if (layer.kind == BlockKind::kRecurrent) {
      expected += sizeof(float) * config.lru_width * config.conv1d_width;
    } else {
      expected += 2 * sizeof(float) * config.num_kv_heads * config.head_dim *
                  (layer.attention_window + GriffinModel::kMaxChunk - 1);
    }
  }
  EXPECT_EQ(huge->bytes(), expected);
  // Decoding one token at a time needs only the window itself.
  auto decode = NewState(config.max_seq_len, 1);
  EXPECT_LT(decode->bytes(), huge->bytes());
}

TEST_F(GriffinStateTest, PromptsLongerThanTheWindowMatchWhateverTheChunking) {
  // 3x the window, prefilled whole, in chunks that straddle the ring's wrap, and
  // token by token through a ring of exactly `window` slots.
  const std::vector<int32_t> tokens = Prompt(31);
  auto whole = NewState(40, 0);
  auto chunked = NewState(40, 4);
  auto stepwise = NewState(40, 1);
  const std::vector<float> expected = Feed(*whole, tokens, tokens.size());
  const std::vector<float> chunk_logits = Feed(*chunked, tokens, 4);
  const std::vector<float> step_logits = Feed(*stepwise, tokens, 1);
  ExpectClose(chunk_logits.data(), expected.data(), expected.size(), "chunked logits");
  ExpectClose(step_logits.data(), expected.data(), expected.size(), "stepwise logits");
  for (float v : expected) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(GriffinStateTest, ResetStartsAFreshSequence) {
  const std::vector<int32_t> tokens = Prompt(12);
  auto state = NewState(64, 0);
  const std::vector<float> first = Feed(*state, tokens, tokens.size());
  state->Reset();
  EXPECT_EQ(state->length(), 0);
  const std::vector<float> again = Feed(*state, tokens, 3);
  ExpectClose(again.data(), first.data(), first.size(), "after Reset");
}

TEST_F(GriffinStateTest, RejectsInputsGriffinCannotTake) {
  auto state = NewState(8, 0);
  const std::vector<int32_t> tokens = Prompt(9);
  ForwardInput input;
  input.tokens = tokens;
  EXPECT_FALSE(model_->Forward(input, *state).ok());  // longer than max_tokens
  input.tokens = std::span<const int32_t>(tokens).subspan(0, 4);
  input.bidirectional = true;
  EXPECT_FALSE(model_->Forward(input, *state).ok());
  EXPECT_FALSE(model_->NewState(0, 0).ok());
  EXPECT_FALSE(model_->NewState(int64_t{model_->config().max_seq_len} + 1, 0).ok());
}

}  // namespace
}  // namespace gemmarun

#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "base/check.h"
#include "base/thread_pool.h"
#include "tensor/quant.h"

namespace gemmarun {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(int num_threads, MatMulPrecision precision)
      : pool_(num_threads > 0 ? num_threads : ThreadPool::DefaultThreadCount()), precision_(precision) {}

  const char* name() const override { return "cpu"; }
  int num_threads() const override { return pool_.num_threads(); }

  void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
              const TensorView& out) override {
    cpu::MatMul(pool_, matmul_workspace_, x, w, bias, out, precision_);
  }

  void Embed(const TensorView& table, std::span<const int32_t> ids, float scale,
             const TensorView& out) override {
    const size_t dim = table.shape.cols();
    for (size_t t = 0; t < ids.size(); ++t) {
      float* row = out.f32() + t * dim;
      DequantizeRow(table.dtype, table.row(ids[t]), row, dim);
      for (size_t i = 0; i < dim; ++i) row[i] *= scale;
    }
  }

  void RmsNorm(const TensorView& x, const TensorView& weight, float eps,
               const TensorView& out) override {
    const size_t rows = x.shape.rows();
    const size_t dim = x.shape.cols();
    GR_CHECK(static_cast<size_t>(weight.shape.elements()) == dim);
    for (size_t r = 0; r < rows; ++r) {
      const float* in = x.f32() + r * dim;
      const float mean_square = cpu::SumSquares(in, dim) / static_cast<float>(dim);
      cpu::ScaleMul(in, 1.0f / std::sqrt(mean_square + eps), weight.f32(), out.f32() + r * dim, dim);
    }
  }

  void LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps,
                 const TensorView& out) override {
    const size_t rows = x.shape.rows();
    const size_t dim = x.shape.cols();
    for (size_t r = 0; r < rows; ++r) {
      const float* in = x.f32() + r * dim;
      float* o = out.f32() + r * dim;
      double mean = 0.0;
      for (size_t i = 0; i < dim; ++i) mean += in[i];
      mean /= static_cast<double>(dim);
      double var = 0.0;
      for (size_t i = 0; i < dim; ++i) var += (in[i] - mean) * (in[i] - mean);
      var /= static_cast<double>(dim);
      const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
      for (size_t i = 0; i < dim; ++i) {
        o[i] = (in[i] - static_cast<float>(mean)) * inv * weight.f32()[i] + bias.f32()[i];
      }
    }
  }

  void Rope(const TensorView& x, std::span<const float> positions, int rotary_dim, float theta,
            float position_scale) override {
    const int64_t num_tokens = x.shape[0];
    const int64_t heads = x.shape[1];
    const int64_t head_dim = x.shape[2];
    const int half = rotary_dim / 2;
    GR_CHECK(static_cast<int64_t>(positions.size()) == num_tokens && rotary_dim <= head_dim);
    std::vector<float> cos_table(half), sin_table(half);
    for (int64_t t = 0; t < num_tokens; ++t) {
      // As HF: inv_freq in f32, angle = position * inv_freq in f32, then cos/sin.
      for (int i = 0; i < half; ++i) {
        const float inv_freq =
            1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(rotary_dim));
        const float angle = positions[t] * (inv_freq / position_scale);
        cos_table[i] = std::cos(angle);
        sin_table[i] = std::sin(angle);
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x.f32() + (t * heads + h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = v[i];
          const float b = v[i + half];
          v[i] = a * cos_table[i] - b * sin_table[i];
          v[i + half] = b * cos_table[i] + a * sin_table[i];
        }
      }
    }
  }

  void Attention(const AttentionArgs& args) override { cpu::Attention(pool_, attention_workspace_, args); }

  void WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
               const KvCacheView& cache) override {
    cpu::WriteKv(pool_, k, v, slots, cache);
  }

  void GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    const size_t cols = gate.shape.cols();
    const size_t rows = gate.shape.rows();
    pool_.ParallelFor(rows, 1, [&](size_t begin, size_t end, int) {
      for (size_t r = begin; r < end; ++r) {
        cpu::GeluMulRow(gate.f32() + r * cols, up.f32() + r * cols, out.f32() + r * cols, cols);
      }
    });
  }

  void Gelu(const TensorView& x) override {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    float* v = x.f32();
    for (int64_t i = 0; i < x.shape.elements(); ++i) {
      const float a = v[i];
      v[i] = 0.5f * a * (1.0f + std::tanh(kSqrt2OverPi * (a + 0.044715f * a * a * a)));
    }
  }

  void Add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    cpu::AddRow(a.f32(), b.f32(), out.f32(), a.shape.elements());
  }

  void Mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    const int64_t n = a.shape.elements();
    for (int64_t i = 0; i < n; ++i) out.f32()[i] = a.f32()[i] * b.f32()[i];
  }

  void SoftCap(const TensorView& x, float cap) override {
    float* v = x.f32();
    const int64_t n = x.shape.elements();
    for (int64_t i = 0; i < n; ++i) v[i] = cap * std::tanh(v[i] / cap);
  }

  void CopyRows(const TensorView& src, const TensorView& dst) override {
    std::copy(src.f32(), src.f32() + src.shape.elements(), dst.f32());
  }

  // Channels are independent: each thread convolves, then shifts the state of, its
  // own range of columns. The work is tiny next to the projections around it.
  void CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias, const TensorView& state,
                    const TensorView& out) override {
    const int64_t num_tokens = x.shape.rows();
    const int64_t channels = x.shape.cols();
    const int64_t width = weight.shape.cols();
    const int64_t history = width - 1;
    const float* xs = x.f32();
    const float* w = weight.f32();
    const float* b = bias.f32();
    float* st = history > 0 ? state.f32() : nullptr;
    float* ys = out.f32();
    pool_.ParallelFor(channels, 64, [&](size_t begin, size_t end, int) {
      for (int64_t t = 0; t < num_tokens; ++t) {
        float* y = ys + t * channels;
        for (size_t c = begin; c < end; ++c) y[c] = b[c];
        for (int64_t k = 0; k < width; ++k) {
          const int64_t time = t - history + k;  // negative: a row of the carried state
          const float* in = time >= 0 ? xs + time * channels : st + (history + time) * channels;
          for (size_t c = begin; c < end; ++c) y[c] += w[c * width + k] * in[c];
        }
      }
      // New state row j = joined row num_tokens + j; reading ahead of the write keeps
      // the in-place shift safe when the chunk is shorter than the history.
      for (int64_t j = 0; j < history; ++j) {
        const int64_t source = num_tokens + j;  // index into [state rows..., x rows...]
        const float* in = source < history ? st + source * channels : xs + (source - history) * channels;
        std::copy(in + begin, in + end, st + j * channels + begin);
      }
    });
  }

  void BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                           const TensorView& out) override {
    const int64_t num_tokens = x.shape.rows();
    const int64_t channels = x.shape.cols();
    const int64_t heads = w.shape[0];
    const int64_t block = w.shape[1];
    // w[h] is [in, out]: row i of a head's block is contiguous over the outputs, so
    // each input element adds a scaled weight row (an axpy) to the output block.
    pool_.ParallelFor(num_tokens * heads, 1, [&](size_t begin, size_t end, int) {
      for (size_t item = begin; item < end; ++item) {
        const int64_t t = item / heads;
        const int64_t h = item % heads;
        const float* in = x.f32() + t * channels + h * block;
        const float* wh = w.f32() + h * block * block;
        float* o = out.f32() + t * channels + h * block;
        std::copy(bias.f32() + h * block, bias.f32() + (h + 1) * block, o);
        for (int64_t i = 0; i < block; ++i) cpu::Axpy(in[i], wh + i * block, o, block);
      }
    });
  }

  // ref: HF modeling_recurrent_gemma RecurrentGemmaRglru (+ _rnn_scan). A scan over
  // time, parallel over channels; h stays f32 as HF's acc_dtype.
  void RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
             const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
             const TensorView& out) override {
    const int64_t num_tokens = x.shape.rows();
    const int64_t channels = x.shape.cols();
    auto sigmoid = [](float z) { return 1.0f / (1.0f + std::exp(-z)); };
    pool_.ParallelFor(channels, 64, [&](size_t begin, size_t end, int thread) {
      std::vector<float>& softplus = Scratch(thread, end - begin);
      for (size_t c = begin; c < end; ++c) {
        const float z = recurrent_param.f32()[c];
        softplus[c - begin] = z > 20.0f ? z : std::log1p(std::exp(z));  // torch softplus threshold 20
      }
      float* h = state.f32();
      for (int64_t t = 0; t < num_tokens; ++t) {
        // Sequence index 0 starts a document: forget h and pass the input unscaled.
        const bool reset = first_index + t == 0;
        const float* xs = x.f32() + t * channels;
        const float* gx = input_gate.f32() + t * channels;
        const float* ga = recurrent_gate.f32() + t * channels;
        float* o = out.f32() + t * channels;
        for (size_t c = begin; c < end; ++c) {
          const float log_a = -8.0f * sigmoid(ga[c]) * softplus[c - begin];
          // sqrt(1 - a²) as sqrt(-expm1(2 log a)): no cancellation when a is near 1.
          const float multiplier = reset ? 1.0f : std::sqrt(-std::expm1(2.0f * log_a));
          const float carried = reset ? 0.0f : std::exp(log_a) * h[c];
          h[c] = carried + xs[c] * sigmoid(gx[c]) * multiplier;
          o[c] = h[c];
        }
      }
    });
  }

 private:
  // Per-thread scratch, grown on first use and then reused: no allocation per token.
  std::vector<float>& Scratch(int thread, size_t size) {
    std::vector<float>& buffer = scratch_[thread];
    if (buffer.size() < size) buffer.resize(size);
    return buffer;
  }

  ThreadPool pool_;
  MatMulPrecision precision_;
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(pool_.num_threads());
  cpu::MatMulWorkspace matmul_workspace_{pool_.num_threads()};
  cpu::AttentionWorkspace attention_workspace_{pool_.num_threads()};
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend(int num_threads, MatMulPrecision precision) {
  return std::make_unique<CpuBackend>(num_threads, precision);
}

}  // namespace gemmarun

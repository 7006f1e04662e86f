#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_target.h"
#include "backend/cpu/griffin_kernels.h"
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
    float* v = x.f32();
    ForElements(x.shape.elements(), [&](size_t begin, size_t end) { cpu::GeluRow(v + begin, end - begin); });
  }

  void Add(const TensorView& a, const TensorView& b, const TensorView& out) override {
    cpu::AddRow(a.f32(), b.f32(), out.f32(), a.shape.elements());
  }

  void Mul(const TensorView& a, const TensorView& b, const TensorView& out) override {
    ForElements(a.shape.elements(), [&](size_t begin, size_t end) {
      cpu::MulRow(a.f32() + begin, b.f32() + begin, out.f32() + begin, end - begin);
    });
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
  // own range of columns, with the taps of its range transposed to [width][range]
  // so that a vector of channels loads one tap each.
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
    constexpr int64_t kMaxWidth = 16;
    GR_CHECK(width <= kMaxWidth) << "CausalConv1D: width " << width;
    pool_.ParallelFor(channels, 64, [&](size_t begin, size_t end, int thread) {
      const size_t range = end - begin;
      std::vector<float>& taps = Scratch(thread, width * range);
      for (size_t c = begin; c < end; ++c) {
        for (int64_t k = 0; k < width; ++k) taps[k * range + (c - begin)] = w[c * width + k];
      }
      const float* inputs[kMaxWidth];
      for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t k = 0; k < width; ++k) {
          const int64_t time = t - history + k;  // negative: a row of the carried state
          inputs[k] = (time >= 0 ? xs + time * channels : st + (history + time) * channels) + begin;
        }
        cpu::CausalConvRow(inputs, taps.data(), range, width, b + begin, ys + t * channels + begin, range);
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
    const size_t heads = w.shape[0];
    const size_t block = w.shape[1];
    GR_CHECK(w.dtype == DType::kF32) << "BlockDiagonalMatMul: weights of type " << Name(w.dtype);
    // Work items: (head, 64 output columns, 64 tokens), tokens fastest, so that
    // consecutive items of a thread reuse a head's column slice from cache.
    // Decode still has heads * block / 64 items to spread (40 for RecurrentGemma-2B).
    constexpr size_t kColumns = 64, kTokens = 64;
    const size_t column_blocks = (block + kColumns - 1) / kColumns;
    const size_t token_blocks = (num_tokens + kTokens - 1) / kTokens;
    const size_t items = heads * column_blocks * token_blocks;
    pool_.ParallelForDynamic(items, std::max<size_t>(1, items / (4 * pool_.num_threads())),
                             [&](size_t begin, size_t end, int) {
      for (size_t item = begin; item < end; ++item) {
        const size_t tb = item % token_blocks;
        const size_t cb = item / token_blocks % column_blocks;
        const size_t h = item / token_blocks / column_blocks;
        const size_t t0 = tb * kTokens;
        const size_t offset = t0 * channels + h * block;
        cpu::BlockDiagonalTile(x.f32() + offset, channels, w.f32() + h * block * block, block,
                               bias.f32() + h * block, std::min<size_t>(kTokens, num_tokens - t0), cb * kColumns,
                               std::min(block, (cb + 1) * kColumns), out.f32() + offset, channels);
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
    pool_.ParallelFor(channels, 64, [&](size_t begin, size_t end, int thread) {
      std::vector<float>& softplus = Scratch(thread, end - begin);
      cpu::SoftplusRow(recurrent_param.f32() + begin, softplus.data(), end - begin);
      for (int64_t t = 0; t < num_tokens; ++t) {
        // Sequence index 0 starts a document: forget h and pass the input unscaled.
        const size_t row = t * channels + begin;
        cpu::RgLruRow(x.f32() + row, input_gate.f32() + row, recurrent_gate.f32() + row, softplus.data(),
                      first_index + t == 0, state.f32() + begin, out.f32() + row, end - begin);
      }
    });
  }

 private:
  // body(begin, end) over [0, count) elements: threaded only where the work
  // outweighs waking the pool (a decode step's rows are a few thousand floats).
  template <class Body>
  void ForElements(size_t count, Body&& body) {
    constexpr size_t kMinPerThread = size_t{1} << 15;
    if (count < 2 * kMinPerThread || pool_.num_threads() == 1) return body(0, count);
    pool_.ParallelFor(count, 1024, [&](size_t begin, size_t end, int) { body(begin, end); });
  }

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
  // Honours GEMMARUN_CPU_TARGET for callers that skip the engine (tests,
  // benchmarks); a bad value is the engine's to report, so it is ignored here.
  (void)cpu::PinTargetFromEnvironment();
  return std::make_unique<CpuBackend>(num_threads, precision);
}

}  // namespace gemmarun

#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/kernels.h"
#include "base/check.h"
#include "base/thread_pool.h"
#include "tensor/quant.h"

namespace gemmarun {
namespace {

// Dot product of one stored weight row with an f32 activation row. Plain types
// go straight to SIMD; block-quantized rows are expanded into `scratch` first.
float DotWeightRow(DType dtype, const uint8_t* w_row, const float* x, size_t k, float* scratch) {
  switch (dtype) {
    case DType::kF32: return cpu::DotF32(reinterpret_cast<const float*>(w_row), x, k);
    case DType::kBF16: return cpu::DotBF16(reinterpret_cast<const uint16_t*>(w_row), x, k);
    case DType::kF16: return cpu::DotF16(reinterpret_cast<const uint16_t*>(w_row), x, k);
    default:
      DequantizeRow(dtype, w_row, scratch, k);
      return cpu::DotF32(scratch, x, k);
  }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads)
      : pool_(num_threads > 0 ? num_threads : ThreadPool::DefaultThreadCount()) {}

  const char* name() const override { return "cpu"; }
  int num_threads() const override { return pool_.num_threads(); }

  void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
              const TensorView& out) override {
    const size_t num_tokens = x.shape.rows();
    const size_t k = x.shape.cols();
    const size_t n = w.shape.rows();
    GR_CHECK(static_cast<size_t>(w.shape.cols()) == k) << "MatMul: x " << x.shape.ToString() << " w " << w.shape.ToString();
    GR_CHECK(static_cast<size_t>(out.shape.cols()) == n && static_cast<size_t>(out.shape.rows()) == num_tokens);
    const float* xs = x.f32();
    float* ys = out.f32();
    const float* b = bias.empty() ? nullptr : bias.f32();
    const size_t w_row_bytes = w.row_bytes();
    const bool quantized = IsQuantized(w.dtype);
    // Rows of W are split across threads; each weight row is read once from memory
    // and reused for every token while it sits in L1.
    pool_.ParallelFor(n, 16, [&](size_t begin, size_t end, int thread) {
      std::vector<float>& scratch = Scratch(thread, quantized ? k : 0);
      for (size_t row = begin; row < end; ++row) {
        const uint8_t* w_row = static_cast<const uint8_t*>(w.data) + row * w_row_bytes;
        const float add = b ? b[row] : 0.0f;
        for (size_t t = 0; t < num_tokens; ++t) {
          ys[t * n + row] = DotWeightRow(w.dtype, w_row, xs + t * k, k, scratch.data()) + add;
        }
      }
    });
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

  void Attention(const AttentionArgs& args) override {
    const int64_t num_tokens = args.q.shape[0];
    const int64_t num_heads = args.q.shape[1];
    const int64_t head_dim = args.q.shape[2];
    const int64_t num_kv_heads = args.k_cache.shape[1];
    const int64_t group = num_heads / num_kv_heads;
    const size_t max_keys = static_cast<size_t>(args.first_index + num_tokens);
    pool_.ParallelFor(num_tokens * num_heads, 1, [&](size_t begin, size_t end, int thread) {
      std::vector<float>& scores = Scratch(thread, max_keys);
      for (size_t item = begin; item < end; ++item) {
        const int64_t t = item / num_heads;
        const int64_t h = item % num_heads;
        const int64_t kv = h / group;
        const int64_t index = args.first_index + t;
        // Visible keys: causal (or up to the end of a bidirectional prefix), limited to the window.
        const int64_t last = index < args.prefix_end ? args.prefix_end - 1 : index;
        const int64_t first = args.window > 0 ? std::max<int64_t>(0, index - args.window + 1) : 0;
        GR_DCHECK(last - first < args.capacity) << "attention span exceeds the cache";
        const float* q = args.q.f32() + (t * num_heads + h) * head_dim;
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t j = first; j <= last; ++j) {
          const float* k = args.k_cache.f32() + ((j % args.capacity) * num_kv_heads + kv) * head_dim;
          float s = cpu::DotF32(q, k, head_dim) * args.scale;
          if (args.softcap > 0.0f) s = args.softcap * std::tanh(s / args.softcap);
          scores[j - first] = s;
          max_score = std::max(max_score, s);
        }
        float total = 0.0f;
        for (int64_t j = first; j <= last; ++j) {
          scores[j - first] = std::exp(scores[j - first] - max_score);
          total += scores[j - first];
        }
        float* o = args.out.f32() + (t * num_heads + h) * head_dim;
        std::fill(o, o + head_dim, 0.0f);
        const float inv_total = 1.0f / total;
        for (int64_t j = first; j <= last; ++j) {
          const float* v = args.v_cache.f32() + ((j % args.capacity) * num_kv_heads + kv) * head_dim;
          cpu::Axpy(scores[j - first] * inv_total, v, o, head_dim);
        }
      }
    });
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

 private:
  // Per-thread scratch, grown on first use and then reused: no allocation per token.
  std::vector<float>& Scratch(int thread, size_t size) {
    std::vector<float>& buffer = scratch_[thread];
    if (buffer.size() < size) buffer.resize(size);
    return buffer;
  }

  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(pool_.num_threads());
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend(int num_threads) {
  return std::make_unique<CpuBackend>(num_threads);
}

}  // namespace gemmarun

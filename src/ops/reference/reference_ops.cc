#include "ops/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/quant.h"

namespace gemmarun::reference {

std::vector<float> MatMul(const TensorView& x, const TensorView& w, const TensorView& bias) {
  const int64_t t_count = x.shape.rows(), k = x.shape.cols(), n = w.shape.rows();
  std::vector<float> out(t_count * n);
  std::vector<float> row(k);
  for (int64_t r = 0; r < n; ++r) {
    DequantizeRow(w.dtype, w.row(r), row.data(), k);
    for (int64_t t = 0; t < t_count; ++t) {
      double sum = bias.empty() ? 0.0 : bias.f32()[r];
      for (int64_t i = 0; i < k; ++i) sum += static_cast<double>(x.f32()[t * k + i]) * row[i];
      out[t * n + r] = static_cast<float>(sum);
    }
  }
  return out;
}

std::vector<float> RmsNorm(const TensorView& x, const TensorView& weight, float eps) {
  const int64_t rows = x.shape.rows(), dim = x.shape.cols();
  std::vector<float> out(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x.f32()[r * dim + i]) * x.f32()[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = static_cast<float>(x.f32()[r * dim + i] * inv * weight.f32()[i]);
  }
  return out;
}

std::vector<float> LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps) {
  const int64_t rows = x.shape.rows(), dim = x.shape.cols();
  std::vector<float> out(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x.f32() + r * dim;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i) mean += in[i];
    mean /= dim;
    for (int64_t i = 0; i < dim; ++i) var += (in[i] - mean) * (in[i] - mean);
    var /= dim;
    for (int64_t i = 0; i < dim; ++i) {
      out[r * dim + i] = static_cast<float>((in[i] - mean) / std::sqrt(var + eps) * weight.f32()[i] + bias.f32()[i]);
    }
  }
  return out;
}

std::vector<float> Rope(const TensorView& x, std::span<const float> positions, int rotary_dim,
                        float theta, float position_scale) {
  const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2];
  std::vector<float> out(x.f32(), x.f32() + x.shape.elements());
  const int half = rotary_dim / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = out.data() + (t * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double angle = positions[t] / std::pow(static_cast<double>(theta), 2.0 * i / rotary_dim) / position_scale;
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * std::cos(angle) - b * std::sin(angle));
        v[i + half] = static_cast<float>(b * std::cos(angle) + a * std::sin(angle));
      }
    }
  }
  return out;
}

namespace {
// One cached K or V row of sequence index j, dequantized to f32.
std::vector<float> CachedRow(const TensorView& cache, int64_t block_size, std::span<const int32_t> table,
                             int64_t j, int64_t kv_head) {
  const int64_t head_dim = cache.shape[2];
  const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
  const uint8_t* row = static_cast<const uint8_t*>(cache.data) +
                       (slot * cache.shape[1] + kv_head) * RowBytes(cache.dtype, head_dim);
  std::vector<float> values(head_dim);
  DequantizeRow(cache.dtype, row, values.data(), head_dim);
  return values;
}
}  // namespace

std::vector<float> Attention(const AttentionArgs& args) {
  const int64_t tokens = args.q.shape[0], heads = args.q.shape[1], head_dim = args.q.shape[2];
  const int64_t kv_heads = args.cache.k.shape[1], block_size = args.cache.block_size;
  std::vector<float> out(tokens * heads * head_dim, 0.0f);
  for (const AttentionSequence& seq : args.sequences) {
    for (int64_t r = 0; r < seq.num_rows; ++r) {
      const int64_t t = seq.first_row + r, index = seq.first_index + r;
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t kv = h / (heads / kv_heads);
        std::vector<double> scores;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < std::max(index + 1, seq.prefix_end); ++j) {
          const bool visible = j <= index || (index < seq.prefix_end && j < seq.prefix_end);
          const bool in_window = args.window == 0 || j > index - args.window;
          if (!visible || !in_window) continue;
          const std::vector<float> k = CachedRow(args.cache.k, block_size, seq.block_table, j, kv);
          const float* q = args.q.f32() + (t * heads + h) * head_dim;
          double s = 0.0;
          for (int64_t i = 0; i < head_dim; ++i) s += static_cast<double>(q[i]) * k[i];
          s *= args.scale;
          if (args.softcap > 0) s = args.softcap * std::tanh(s / args.softcap);
          scores.push_back(s);
          keys.push_back(j);
        }
        const double max_score = *std::max_element(scores.begin(), scores.end());
        double total = 0.0;
        for (double& s : scores) total += (s = std::exp(s - max_score));
        for (size_t n = 0; n < keys.size(); ++n) {
          const std::vector<float> v = CachedRow(args.cache.v, block_size, seq.block_table, keys[n], kv);
          for (int64_t i = 0; i < head_dim; ++i) {
            out[(t * heads + h) * head_dim + i] += static_cast<float>(scores[n] / total * v[i]);
          }
        }
      }
    }
  }
  return out;
}

std::vector<float> GeluMul(std::span<const float> gate, std::span<const float> up) {
  std::vector<float> out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double x = gate[i];
    out[i] = static_cast<float>(0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))) * up[i]);
  }
  return out;
}

std::vector<float> SoftCap(std::span<const float> x, float cap) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(cap * std::tanh(static_cast<double>(x[i]) / cap));
  return out;
}

std::vector<float> CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                                std::vector<float>& state) {
  const int64_t tokens = x.shape.rows(), channels = x.shape.cols(), width = weight.shape.cols();
  const int64_t history = width - 1;
  // The joined sequence: state rows (oldest first), then x.
  std::vector<double> joined((history + tokens) * channels);
  for (int64_t i = 0; i < history * channels; ++i) joined[i] = state[i];
  for (int64_t i = 0; i < tokens * channels; ++i) joined[history * channels + i] = x.f32()[i];
  std::vector<float> out(tokens * channels);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < channels; ++c) {
      double sum = bias.f32()[c];
      for (int64_t k = 0; k < width; ++k) sum += weight.f32()[c * width + k] * joined[(t + k) * channels + c];
      out[t * channels + c] = static_cast<float>(sum);
    }
  }
  for (int64_t i = 0; i < history * channels; ++i) state[i] = static_cast<float>(joined[tokens * channels + i]);
  return out;
}

std::vector<float> BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias) {
  const int64_t tokens = x.shape.rows(), channels = x.shape.cols();
  const int64_t heads = w.shape[0], block = w.shape[1];
  std::vector<float> out(tokens * channels);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < block; ++j) {
        double sum = bias.f32()[h * block + j];
        for (int64_t i = 0; i < block; ++i) {
          sum += static_cast<double>(x.f32()[t * channels + h * block + i]) * w.f32()[(h * block + i) * block + j];
        }
        out[t * channels + h * block + j] = static_cast<float>(sum);
      }
    }
  }
  return out;
}

std::vector<float> RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
                         const TensorView& recurrent_param, int64_t first_index, std::vector<float>& state) {
  const int64_t tokens = x.shape.rows(), channels = x.shape.cols();
  std::vector<float> out(tokens * channels);
  auto sigmoid = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  for (int64_t c = 0; c < channels; ++c) {
    const double z = recurrent_param.f32()[c];
    const double softplus = z > 20.0 ? z : std::log1p(std::exp(z));  // as torch.nn.functional.softplus
    double h = state[c];
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t i = t * channels + c;
      const double log_a = -8.0 * sigmoid(recurrent_gate.f32()[i]) * softplus;
      const bool reset = first_index + t == 0;
      const double multiplier = reset ? 1.0 : std::sqrt(1.0 - std::exp(2.0 * log_a));
      const double carried = reset ? 0.0 : std::exp(log_a) * h;
      h = carried + x.f32()[i] * sigmoid(input_gate.f32()[i]) * multiplier;
      out[i] = static_cast<float>(h);
    }
    state[c] = static_cast<float>(h);
  }
  return out;
}

}  // namespace gemmarun::reference

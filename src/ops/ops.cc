#include "ops/ops.h"

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "base/check.h"

namespace gemmarun::ops {
namespace {

void CheckF32(const TensorView& t, const char* op, const char* what) {
  GR_CHECK(!t.empty() && t.dtype == DType::kF32) << op << ": " << what << " must be f32";
}

// Every tensor an op touches must live where the backend computes: a host view
// handed to a device backend (or the reverse) is a bug in the caller, caught
// here instead of as a fault inside a kernel.
void CheckDevices(const OpContext& ctx, const char* op, std::initializer_list<const TensorView*> views) {
  const Device device = ctx.backend->device();
  for (const TensorView* v : views) {
    GR_CHECK(v->empty() || v->device == device)
        << op << ": a tensor on " << v->device.ToString() << " given to the " << device.ToString() << " backend";
  }
}

void CheckSameElements(const TensorView& a, const TensorView& b, const char* op) {
  GR_CHECK(a.shape.elements() == b.shape.elements())
      << op << ": " << a.shape.ToString() << " vs " << b.shape.ToString();
}

}  // namespace

void MatMul(const OpContext& ctx, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& out) {
  CheckF32(x, "MatMul", "x");
  CheckF32(out, "MatMul", "out");
  GR_CHECK(w.shape.rank() == 2 && x.shape.cols() == w.shape[1] && out.shape.cols() == w.shape[0] &&
           out.shape.rows() == x.shape.rows())
      << "MatMul: x " << x.shape.ToString() << " w " << w.shape.ToString() << " out " << out.shape.ToString();
  GR_CHECK(bias.empty() || bias.shape.elements() == w.shape[0]) << "MatMul: bias " << bias.shape.ToString();
  CheckDevices(ctx, "MatMul", {&x, &w, &bias, &out});
  ctx.backend->MatMul(x, w, bias, out);
}

void Embed(const OpContext& ctx, const TensorView& table, std::span<const int32_t> ids, float scale,
           const TensorView& out) {
  CheckF32(out, "Embed", "out");
  GR_CHECK(out.shape.rows() == static_cast<int64_t>(ids.size()) && out.shape.cols() == table.shape.cols());
  for (int32_t id : ids) GR_CHECK(id >= 0 && id < table.shape.rows()) << "Embed: id " << id;
  CheckDevices(ctx, "Embed", {&table, &out});
  ctx.backend->Embed(table, ids, scale, out);
}

void RmsNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight, float eps,
             const TensorView& out) {
  CheckF32(x, "RmsNorm", "x");
  CheckF32(weight, "RmsNorm", "weight");
  CheckSameElements(x, out, "RmsNorm");
  GR_CHECK(weight.shape.elements() == x.shape.cols()) << "RmsNorm: weight " << weight.shape.ToString();
  CheckDevices(ctx, "RmsNorm", {&x, &weight, &out});
  ctx.backend->RmsNorm(x, weight, eps, out);
}

void LayerNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight,
               const TensorView& bias, float eps, const TensorView& out) {
  CheckF32(x, "LayerNorm", "x");
  CheckSameElements(x, out, "LayerNorm");
  GR_CHECK(weight.shape.elements() == x.shape.cols() && bias.shape.elements() == x.shape.cols());
  CheckDevices(ctx, "LayerNorm", {&x, &weight, &bias, &out});
  ctx.backend->LayerNorm(x, weight, bias, eps, out);
}

void Rope(const OpContext& ctx, const TensorView& x, std::span<const float> positions,
          int rotary_dim, float theta, float position_scale) {
  CheckF32(x, "Rope", "x");
  GR_CHECK(x.shape.rank() == 3 && rotary_dim % 2 == 0 && rotary_dim <= x.shape[2] &&
           static_cast<int64_t>(positions.size()) == x.shape[0]);
  CheckDevices(ctx, "Rope", {&x});
  ctx.backend->Rope(x, positions, rotary_dim, theta, position_scale);
}

namespace {

bool IsCacheDType(DType type) {
  return type == DType::kF32 || type == DType::kF16 || type == DType::kBF16 || type == DType::kQ8_0;
}

void CheckCache(const KvCacheView& cache, const char* op) {
  const TensorView& k = cache.k;
  GR_CHECK(!k.empty() && !cache.v.empty() && k.shape.rank() == 3 && cache.v.shape == k.shape &&
           cache.v.dtype == k.dtype)
      << op << ": cache k " << Name(k.dtype) << " " << k.shape.ToString() << " v " << Name(cache.v.dtype) << " "
      << cache.v.shape.ToString() << ", expected equal [slots, kv_heads, head_dim]";
  GR_CHECK(IsCacheDType(k.dtype)) << op << ": cache dtype " << Name(k.dtype) << ", expected f32, f16, bf16 or q8_0";
  GR_CHECK(k.dtype != DType::kQ8_0 || k.shape[2] % 32 == 0)
      << op << ": a q8_0 cache needs head_dim a multiple of 32, got " << k.shape[2];
  GR_CHECK(cache.block_size > 0 && k.shape[0] % cache.block_size == 0)
      << op << ": " << k.shape[0] << " slots are not whole blocks of " << cache.block_size;
}

}  // namespace

void Attention(const OpContext& ctx, const AttentionArgs& args) {
  CheckF32(args.q, "Attention", "q");
  CheckF32(args.out, "Attention", "out");
  CheckCache(args.cache, "Attention");
  const TensorView& k = args.cache.k;
  GR_CHECK(args.q.shape.rank() == 3 && args.out.shape == args.q.shape && args.q.shape[2] == k.shape[2] &&
           args.q.shape[1] % k.shape[1] == 0)
      << "Attention: q " << args.q.shape.ToString() << " out " << args.out.shape.ToString() << " cache "
      << k.shape.ToString();
  GR_CHECK(args.window >= 0 && args.softcap >= 0.0f)
      << "Attention: window " << args.window << " softcap " << args.softcap;
  const int64_t num_rows = args.q.shape[0];
  const int64_t block_size = args.cache.block_size;
  const int64_t num_blocks = k.shape[0] / block_size;
  // Every row belongs to exactly one sequence. The marks are reused: no allocation per call.
  thread_local std::vector<uint8_t> covered;
  covered.assign(num_rows, 0);
  for (const AttentionSequence& s : args.sequences) {
    GR_CHECK(s.num_rows > 0 && s.first_row >= 0 && s.first_row + s.num_rows <= num_rows && s.first_index >= 0 &&
             s.prefix_end >= 0)
        << "Attention: sequence rows [" << s.first_row << ", " << s.first_row + s.num_rows << ") of " << num_rows
        << ", first index " << s.first_index << ", prefix_end " << s.prefix_end;
    for (int64_t r = s.first_row; r < s.first_row + s.num_rows; ++r) {
      GR_CHECK(!covered[r]) << "Attention: row " << r << " is in two sequences";
      covered[r] = 1;
    }
    // The keys the rows can see: [lowest, highest], all of which must be mapped.
    const int64_t last_index = s.first_index + s.num_rows - 1;
    const int64_t highest = s.first_index < s.prefix_end ? std::max(last_index, s.prefix_end - 1) : last_index;
    const int64_t lowest = args.window > 0 ? std::max<int64_t>(0, s.first_index - args.window + 1) : 0;
    GR_CHECK(static_cast<int64_t>(s.block_table.size()) * block_size > highest)
        << "Attention: a block table of " << s.block_table.size() << " blocks of " << block_size
        << " does not reach index " << highest;
    for (int64_t b = lowest / block_size; b <= highest / block_size; ++b) {
      GR_CHECK(s.block_table[b] >= 0 && s.block_table[b] < num_blocks)
          << "Attention: logical block " << b << " maps to " << s.block_table[b] << " of " << num_blocks;
    }
  }
  for (int64_t r = 0; r < num_rows; ++r) GR_CHECK(covered[r]) << "Attention: row " << r << " is in no sequence";
  CheckDevices(ctx, "Attention", {&args.q, &args.out, &args.cache.k, &args.cache.v});
  ctx.backend->Attention(args);
}

void WriteKv(const OpContext& ctx, const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
             const KvCacheView& cache) {
  CheckF32(k, "WriteKv", "k");
  CheckF32(v, "WriteKv", "v");
  CheckCache(cache, "WriteKv");
  const int64_t kv_dim = cache.k.shape[1] * cache.k.shape[2];
  GR_CHECK(v.shape == k.shape && k.shape.rows() == static_cast<int64_t>(slots.size()) && k.shape.cols() == kv_dim)
      << "WriteKv: k " << k.shape.ToString() << " v " << v.shape.ToString() << " for " << slots.size()
      << " slots of " << kv_dim << " values";
  for (int64_t slot : slots) {
    GR_CHECK(slot >= 0 && slot < cache.k.shape[0]) << "WriteKv: slot " << slot << " of " << cache.k.shape[0];
  }
  CheckDevices(ctx, "WriteKv", {&k, &v, &cache.k, &cache.v});
  ctx.backend->WriteKv(k, v, slots, cache);
}

void GeluMul(const OpContext& ctx, const TensorView& gate, const TensorView& up, const TensorView& out) {
  CheckSameElements(gate, up, "GeluMul");
  CheckSameElements(gate, out, "GeluMul");
  CheckDevices(ctx, "GeluMul", {&gate, &up, &out});
  ctx.backend->GeluMul(gate, up, out);
}

void Gelu(const OpContext& ctx, const TensorView& x) {
  CheckF32(x, "Gelu", "x");
  CheckDevices(ctx, "Gelu", {&x});
  ctx.backend->Gelu(x);
}

void Add(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out) {
  CheckSameElements(a, b, "Add");
  CheckSameElements(a, out, "Add");
  CheckDevices(ctx, "Add", {&a, &b, &out});
  ctx.backend->Add(a, b, out);
}

void Mul(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out) {
  CheckSameElements(a, b, "Mul");
  CheckSameElements(a, out, "Mul");
  CheckDevices(ctx, "Mul", {&a, &b, &out});
  ctx.backend->Mul(a, b, out);
}

void SoftCap(const OpContext& ctx, const TensorView& x, float cap) {
  CheckF32(x, "SoftCap", "x");
  GR_CHECK(cap > 0.0f);
  CheckDevices(ctx, "SoftCap", {&x});
  ctx.backend->SoftCap(x, cap);
}

void CopyRows(const OpContext& ctx, const TensorView& src, const TensorView& dst) {
  CheckSameElements(src, dst, "CopyRows");
  CheckDevices(ctx, "CopyRows", {&src, &dst});
  ctx.backend->CopyRows(src, dst);
}

void CausalConv1D(const OpContext& ctx, const TensorView& x, const TensorView& weight, const TensorView& bias,
                  const TensorView& state, const TensorView& out) {
  CheckF32(x, "CausalConv1D", "x");
  CheckF32(weight, "CausalConv1D", "weight");
  CheckF32(bias, "CausalConv1D", "bias");
  CheckF32(out, "CausalConv1D", "out");
  const int64_t channels = x.shape.cols();
  const int64_t width = weight.shape.cols();
  GR_CHECK(weight.shape.rank() == 2 && weight.shape.rows() == channels && bias.shape.elements() == channels &&
           out.shape == x.shape)
      << "CausalConv1D: x " << x.shape.ToString() << " weight " << weight.shape.ToString() << " bias "
      << bias.shape.ToString() << " out " << out.shape.ToString();
  // A width-1 convolution carries no state (the view may then be empty).
  GR_CHECK(state.shape.elements() == (width - 1) * channels && (width == 1 || state.dtype == DType::kF32))
      << "CausalConv1D: state " << state.shape.ToString() << ", expected [" << width - 1 << ", " << channels << "]";
  GR_CHECK(out.data != x.data && (width == 1 || out.data != state.data)) << "CausalConv1D: out aliases an input";
  CheckDevices(ctx, "CausalConv1D", {&x, &weight, &bias, &state, &out});
  ctx.backend->CausalConv1D(x, weight, bias, state, out);
}

void BlockDiagonalMatMul(const OpContext& ctx, const TensorView& x, const TensorView& w, const TensorView& bias,
                         const TensorView& out) {
  CheckF32(x, "BlockDiagonalMatMul", "x");
  CheckF32(w, "BlockDiagonalMatMul", "w");
  CheckF32(bias, "BlockDiagonalMatMul", "bias");
  CheckF32(out, "BlockDiagonalMatMul", "out");
  GR_CHECK(w.shape.rank() == 3 && w.shape[1] == w.shape[2] && w.shape[0] * w.shape[1] == x.shape.cols() &&
           bias.shape.elements() == x.shape.cols() && out.shape.elements() == x.shape.elements() &&
           out.shape.cols() == x.shape.cols())
      << "BlockDiagonalMatMul: x " << x.shape.ToString() << " w " << w.shape.ToString() << " bias "
      << bias.shape.ToString() << " out " << out.shape.ToString();
  GR_CHECK(out.data != x.data) << "BlockDiagonalMatMul: out aliases x";
  CheckDevices(ctx, "BlockDiagonalMatMul", {&x, &w, &bias, &out});
  ctx.backend->BlockDiagonalMatMul(x, w, bias, out);
}

void RgLru(const OpContext& ctx, const TensorView& x, const TensorView& input_gate,
           const TensorView& recurrent_gate, const TensorView& recurrent_param, int64_t first_index,
           const TensorView& state, const TensorView& out) {
  CheckF32(x, "RgLru", "x");
  CheckF32(input_gate, "RgLru", "input_gate");
  CheckF32(recurrent_gate, "RgLru", "recurrent_gate");
  CheckF32(recurrent_param, "RgLru", "recurrent_param");
  CheckF32(state, "RgLru", "state");
  CheckF32(out, "RgLru", "out");
  const int64_t channels = x.shape.cols();
  GR_CHECK(input_gate.shape == x.shape && recurrent_gate.shape == x.shape && out.shape == x.shape &&
           recurrent_param.shape.elements() == channels && state.shape.elements() == channels)
      << "RgLru: x " << x.shape.ToString() << " gates " << input_gate.shape.ToString() << ", "
      << recurrent_gate.shape.ToString() << " param " << recurrent_param.shape.ToString() << " state "
      << state.shape.ToString() << " out " << out.shape.ToString();
  GR_CHECK(first_index >= 0) << "RgLru: first_index " << first_index;
  CheckDevices(ctx, "RgLru", {&x, &input_gate, &recurrent_gate, &recurrent_param, &state, &out});
  ctx.backend->RgLru(x, input_gate, recurrent_gate, recurrent_param, first_index, state, out);
}

}  // namespace gemmarun::ops

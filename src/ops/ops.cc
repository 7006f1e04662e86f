#include "ops/ops.h"

#include "base/check.h"

namespace gemmarun::ops {
namespace {

void CheckF32(const TensorView& t, const char* op, const char* what) {
  GR_CHECK(!t.empty() && t.dtype == DType::kF32) << op << ": " << what << " must be f32";
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
  ctx.backend->MatMul(x, w, bias, out);
}

void Embed(const OpContext& ctx, const TensorView& table, std::span<const int32_t> ids, float scale,
           const TensorView& out) {
  CheckF32(out, "Embed", "out");
  GR_CHECK(out.shape.rows() == static_cast<int64_t>(ids.size()) && out.shape.cols() == table.shape.cols());
  for (int32_t id : ids) GR_CHECK(id >= 0 && id < table.shape.rows()) << "Embed: id " << id;
  ctx.backend->Embed(table, ids, scale, out);
}

void RmsNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight, float eps,
             const TensorView& out) {
  CheckF32(x, "RmsNorm", "x");
  CheckF32(weight, "RmsNorm", "weight");
  CheckSameElements(x, out, "RmsNorm");
  GR_CHECK(weight.shape.elements() == x.shape.cols()) << "RmsNorm: weight " << weight.shape.ToString();
  ctx.backend->RmsNorm(x, weight, eps, out);
}

void LayerNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight,
               const TensorView& bias, float eps, const TensorView& out) {
  CheckF32(x, "LayerNorm", "x");
  CheckSameElements(x, out, "LayerNorm");
  GR_CHECK(weight.shape.elements() == x.shape.cols() && bias.shape.elements() == x.shape.cols());
  ctx.backend->LayerNorm(x, weight, bias, eps, out);
}

void Rope(const OpContext& ctx, const TensorView& x, std::span<const float> positions,
          int rotary_dim, float theta, float position_scale) {
  CheckF32(x, "Rope", "x");
  GR_CHECK(x.shape.rank() == 3 && rotary_dim % 2 == 0 && rotary_dim <= x.shape[2] &&
           static_cast<int64_t>(positions.size()) == x.shape[0]);
  ctx.backend->Rope(x, positions, rotary_dim, theta, position_scale);
}

void Attention(const OpContext& ctx, const AttentionArgs& args) {
  CheckF32(args.q, "Attention", "q");
  const TensorView& k = args.cache.k;
  GR_CHECK(args.q.shape.rank() == 3 && k.shape.rank() == 3 && args.out.shape == args.q.shape);
  GR_CHECK(k.shape == args.cache.v.shape && k.dtype == args.cache.v.dtype && args.cache.block_size > 0);
  GR_CHECK(args.q.shape[2] == k.shape[2] && args.q.shape[1] % k.shape[1] == 0);
  ctx.backend->Attention(args);
}

void GeluMul(const OpContext& ctx, const TensorView& gate, const TensorView& up, const TensorView& out) {
  CheckSameElements(gate, up, "GeluMul");
  CheckSameElements(gate, out, "GeluMul");
  ctx.backend->GeluMul(gate, up, out);
}

void Gelu(const OpContext& ctx, const TensorView& x) {
  CheckF32(x, "Gelu", "x");
  ctx.backend->Gelu(x);
}

void Add(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out) {
  CheckSameElements(a, b, "Add");
  CheckSameElements(a, out, "Add");
  ctx.backend->Add(a, b, out);
}

void Mul(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out) {
  CheckSameElements(a, b, "Mul");
  CheckSameElements(a, out, "Mul");
  ctx.backend->Mul(a, b, out);
}

void SoftCap(const OpContext& ctx, const TensorView& x, float cap) {
  CheckF32(x, "SoftCap", "x");
  GR_CHECK(cap > 0.0f);
  ctx.backend->SoftCap(x, cap);
}

void CopyRows(const OpContext& ctx, const TensorView& src, const TensorView& dst) {
  CheckSameElements(src, dst, "CopyRows");
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
  ctx.backend->RgLru(x, input_gate, recurrent_gate, recurrent_param, first_index, state, out);
}

}  // namespace gemmarun::ops

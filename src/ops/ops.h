// The op layer model code calls. Each op checks the shapes it is given (a
// mismatch is a programmer error: GR_CHECK) and forwards to the context's backend,
// so model code is the same whichever device runs it. Dims are passed through
// tensors; no op knows about ModelConfig.
#pragma once

#include <span>

#include "ops/backend.h"

namespace gemmarun::ops {

struct OpContext {
  Backend* backend = nullptr;
};

void MatMul(const OpContext& ctx, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& out);
inline void MatMul(const OpContext& ctx, const TensorView& x, const TensorView& w,
                   const TensorView& out) {
  MatMul(ctx, x, w, TensorView{}, out);
}
void Embed(const OpContext& ctx, const TensorView& table, std::span<const int32_t> ids, float scale,
           const TensorView& out);
void RmsNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight, float eps,
             const TensorView& out);
void LayerNorm(const OpContext& ctx, const TensorView& x, const TensorView& weight,
               const TensorView& bias, float eps, const TensorView& out);
void Rope(const OpContext& ctx, const TensorView& x, std::span<const float> positions,
          int rotary_dim, float theta, float position_scale);
void Attention(const OpContext& ctx, const AttentionArgs& args);
void WriteKv(const OpContext& ctx, const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
             const KvCacheView& cache);
void GeluMul(const OpContext& ctx, const TensorView& gate, const TensorView& up, const TensorView& out);
void Gelu(const OpContext& ctx, const TensorView& x);
void Add(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out);
void Mul(const OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView& out);
void SoftCap(const OpContext& ctx, const TensorView& x, float cap);
void CopyRows(const OpContext& ctx, const TensorView& src, const TensorView& dst);

// Griffin's Conv1D, block-diagonal gates and RG-LRU scan (see Backend for the math).
void CausalConv1D(const OpContext& ctx, const TensorView& x, const TensorView& weight, const TensorView& bias,
                  const TensorView& state, const TensorView& out);
void BlockDiagonalMatMul(const OpContext& ctx, const TensorView& x, const TensorView& w, const TensorView& bias,
                         const TensorView& out);
void RgLru(const OpContext& ctx, const TensorView& x, const TensorView& input_gate,
           const TensorView& recurrent_gate, const TensorView& recurrent_param, int64_t first_index,
           const TensorView& state, const TensorView& out);

}  // namespace gemmarun::ops

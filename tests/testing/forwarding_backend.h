// A Backend that hands every op to another one: test backends derive from it
// and override only what they change (the arithmetic of one op, where memory
// lives), so that a new op in backend.h is forwarded in one place.
#pragma once

#include <memory>
#include <span>
#include <utility>

#include "ops/backend.h"

namespace gemmarun::testing {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
  const char* name() const override { return inner_->name(); }
  int num_threads() const override { return inner_->num_threads(); }

  void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) override {
    inner_->MatMul(x, w, bias, out);
  }
  void Embed(const TensorView& table, std::span<const int32_t> ids, float scale, const TensorView& out) override {
    inner_->Embed(table, ids, scale, out);
  }
  void RmsNorm(const TensorView& x, const TensorView& weight, float eps, const TensorView& out) override {
    inner_->RmsNorm(x, weight, eps, out);
  }
  void LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps,
                 const TensorView& out) override {
    inner_->LayerNorm(x, weight, bias, eps, out);
  }
  void Rope(const TensorView& x, std::span<const float> positions, int rotary_dim, float theta,
            float position_scale) override {
    inner_->Rope(x, positions, rotary_dim, theta, position_scale);
  }
  void Attention(const AttentionArgs& args) override { inner_->Attention(args); }
  void WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
               const KvCacheView& cache) override {
    inner_->WriteKv(k, v, slots, cache);
  }
  void GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) override {
    inner_->GeluMul(gate, up, out);
  }
  void Gelu(const TensorView& x) override { inner_->Gelu(x); }
  void Add(const TensorView& a, const TensorView& b, const TensorView& out) override { inner_->Add(a, b, out); }
  void Mul(const TensorView& a, const TensorView& b, const TensorView& out) override { inner_->Mul(a, b, out); }
  void SoftCap(const TensorView& x, float cap) override { inner_->SoftCap(x, cap); }
  void CopyRows(const TensorView& src, const TensorView& dst) override { inner_->CopyRows(src, dst); }
  void CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias, const TensorView& state,
                    const TensorView& out) override {
    inner_->CausalConv1D(x, weight, bias, state, out);
  }
  void BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                           const TensorView& out) override {
    inner_->BlockDiagonalMatMul(x, w, bias, out);
  }
  void RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
             const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
             const TensorView& out) override {
    inner_->RgLru(x, input_gate, recurrent_gate, recurrent_param, first_index, state, out);
  }

 protected:
  Backend& inner() { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace gemmarun::testing

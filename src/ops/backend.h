// The op interface every backend implements. Model code calls these through
// ops.h and never knows which device runs them; a new backend (CUDA) is a new
// subclass, not a change to model code. Virtual calls happen once per op call,
// never per row or element. Activations are f32 [rows, cols] row-major; weights
// may be any stored DType (dequantization is the backend's business).
#pragma once

#include <cstdint>
#include <span>

#include "gemmarun/status.h"
#include "tensor/device.h"
#include "tensor/tensor.h"

namespace gemmarun {

class ThreadPool;

// How MatMul treats bf16 weights. kF32: exact products of the stored weights
// with f32 activations (the default; what the golden tests pin). kBF16: the
// activations are rounded to bf16 first, as llama.cpp and bf16 PyTorch do, so
// a CPU with AVX512_BF16 multiplies pairs natively (twice the f32 FMA rate);
// sums stay f32. Other weight types are unaffected.
enum class MatMulPrecision { kF32, kBF16 };

// The K/V of one attention layer in a paged pool shared by many sequences. Slot
// s = block * block_size + offset holds one position's keys (values) for every
// KV head, in the cache's dtype (f32, f16, bf16 or q8_0; a q8_0 row is one
// head's head_dim values, so head_dim must be a multiple of 32).
struct KvCacheView {
  TensorView k;  // [num_blocks * block_size, num_kv_heads, head_dim]
  TensorView v;  // same shape and dtype as k
  int64_t block_size = 0;
};

// One sequence's rows of a batched Attention call. Its rows are consecutive in
// q/out and are consecutive positions of the sequence.
struct AttentionSequence {
  int64_t first_row = 0;    // row of q/out holding the sequence's first query
  int64_t num_rows = 0;
  int64_t first_index = 0;  // sequence index (position) of that first query
  int64_t prefix_end = 0;   // indices < prefix_end see each other both ways (prefix-LM)
  // Logical block b (sequence indices [b * block_size, (b + 1) * block_size))
  // lives in physical block block_table[b]. Blocks that no query of this call
  // can see (left behind by a sliding window) may be -1.
  std::span<const int32_t> block_table;
};

struct AttentionArgs {
  TensorView q;    // [num_tokens, num_heads, head_dim] f32, RoPE applied
  TensorView out;  // [num_tokens, num_heads, head_dim] f32
  KvCacheView cache;
  std::span<const AttentionSequence> sequences;  // cover q's rows, in any order
  int64_t window = 0;       // keys visible to a query, itself included; 0 = all earlier keys
  float scale = 1.0f;       // multiplies q·k
  float softcap = 0.0f;     // scores = softcap * tanh(scores / softcap) when > 0
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int num_threads() const = 0;

  // Where this backend's ops read and write: every TensorView handed to an op
  // lives there (the spans of the interface are host memory). The CPU backend
  // computes on the host; a device backend allocates, uploads and downloads
  // through its own memory.
  virtual DeviceMemory& memory() { return HostMemory(); }
  Device device() { return memory().device(); }
  // Ops return at once on an asynchronous device; this waits for them and
  // returns the first error since the last call (the runtime checks it once
  // per forward pass).
  Status Synchronize() { return memory().Synchronize(); }
  // Whether Attention/WriteKv run on a cache of this dtype and head size.
  virtual Status CheckKvCache(DType dtype, int64_t head_dim) const { return Status::Ok(); }

  // out[t, n] = sum_k x[t, k] * w[n, k] + bias[n]. x, out f32; w any weight dtype [N, K]; bias f32 [N] or empty.
  virtual void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                      const TensorView& out) = 0;
  // out[t] = table[ids[t]] * scale, dequantized to f32. ids were range-checked by the caller.
  virtual void Embed(const TensorView& table, std::span<const int32_t> ids, float scale,
                     const TensorView& out) = 0;
  // Each row of x [rows, dim]: x * rsqrt(mean(x²) + eps) * weight. Gemma's (1+w) is folded at load.
  virtual void RmsNorm(const TensorView& x, const TensorView& weight, float eps,
                       const TensorView& out) = 0;
  // Each row: (x - mean) / sqrt(var + eps) * weight + bias (SigLIP).
  virtual void LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias,
                         float eps, const TensorView& out) = 0;
  // In place on x [num_tokens, heads, head_dim]; rotate_half (NeoX) pairing over the first
  // rotary_dim dims; row t's angle is positions[t] * theta^(-2i/rotary_dim) / position_scale.
  virtual void Rope(const TensorView& x, std::span<const float> positions, int rotary_dim,
                    float theta, float position_scale) = 0;
  // A query at sequence index i sees the keys j <= i (and every j < prefix_end
  // when i < prefix_end), limited to j > i - window when window > 0. The keys of
  // the call's own rows must already be in the cache (WriteKv first).
  virtual void Attention(const AttentionArgs& args) = 0;
  // Stores row t of k and v ([num_tokens, num_kv_heads * head_dim] f32) in cache
  // slot slots[t], converted to the cache's dtype (vLLM's reshape_and_cache).
  virtual void WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
                       const KvCacheView& cache) = 0;
  // out = gelu_tanh(gate) * up, elementwise (out may alias gate).
  virtual void GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) = 0;
  // In place gelu_tanh.
  virtual void Gelu(const TensorView& x) = 0;
  // out = a + b (out may alias either).
  virtual void Add(const TensorView& a, const TensorView& b, const TensorView& out) = 0;
  // out = a * b elementwise.
  virtual void Mul(const TensorView& a, const TensorView& b, const TensorView& out) = 0;
  // In place x = cap * tanh(x / cap).
  virtual void SoftCap(const TensorView& x, float cap) = 0;
  // Copies rows of f32 src into f32 dst (both [rows, cols]): used for cache writes.
  virtual void CopyRows(const TensorView& src, const TensorView& dst) = 0;

  // Griffin (RecurrentGemma) temporal mixing; ref: architectures.md §5.2.
  //
  // Depthwise causal convolution over time of x [num_tokens, channels] with weight
  // [channels, width] (tap width-1 multiplies the current step) and bias [channels]:
  // out[t, c] = bias[c] + sum_k weight[c, k] * in[t - (width-1) + k, c], where in is x
  // preceded by state [width-1, channels], the inputs before row 0, oldest first. On
  // return state holds the last width-1 inputs of that joined sequence. out must not
  // alias x or state.
  virtual void CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                            const TensorView& state, const TensorView& out) = 0;
  // Per head h of x [num_tokens, num_heads * block]: out_h = x_h @ w[h] + bias[h], with
  // w [num_heads, block, block] stored [in, out] (not transposed like MatMul's weights)
  // and bias [num_heads, block]. out must not alias x.
  virtual void BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                                   const TensorView& out) = 0;
  // The RG-LRU scan over num_tokens rows whose row 0 is sequence index first_index;
  // every argument but recurrent_param and state is [num_tokens, channels]:
  //   log_a = -8 * sigmoid(recurrent_gate) * softplus(recurrent_param)
  //   h     = a * h + x * sigmoid(input_gate) * sqrt(1 - a^2)   (a = exp(log_a))
  //   out   = h
  // At sequence index 0 (a reset) a = 0 and the multiplier is 1: h = x * sigmoid(input_gate),
  // whatever h held. state [channels] f32 holds h before row 0 and after the last row.
  // out may alias x.
  virtual void RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
                     const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
                     const TensorView& out) = 0;
};

}  // namespace gemmarun

// Launchers for the CUDA kernels: plain C++ functions on device pointers, so
// host code never includes a .cu file. Each enqueues on `stream` and returns at
// once; the caller checks cudaGetLastError. Shapes are row-major as in tensor.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace gemmarun::cuda {

// ---- matmul (gemv.cu) ----
// out[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n]) for t < t_count <= kMaxGemvBatch,
// w any weight dtype with rows of RowBytes(type, k). x must be 16-byte aligned
// with k a multiple of 4 for the quantized types (the backend copies otherwise).
// `partials` is scratch of GemvScratchFloats(n, k, t_count) floats (may be null when 0).
constexpr int kMaxGemvBatch = 8;
bool GemvSupports(DType type);
int64_t GemvScratchFloats(int64_t n, int64_t k, int t_count);
void LaunchGemv(DType type, const void* w, int64_t n, int64_t k, const float* x, int t_count,
                const float* bias, float* out, float* partials, cudaStream_t stream);
// Several products of the same x in one launch (q, k and v; gate and up), each
// row computed exactly as LaunchGemv computes it alone. Every field is 8 bytes
// wide, so a value-initialized GemvTargets has no padding (pass recording
// compares launches byte for byte).
constexpr int kMaxGemvTargets = 3;
struct GemvTarget {
  const void* w;
  const float* bias;  // may be null
  float* out;         // [t_count, n]
  int64_t n;
};
struct GemvTargets {
  GemvTarget target[kMaxGemvTargets];
  int64_t count;
  // When set (count 2, the same n): also gated[t, r] = gelu_tanh(out0[t, r]) * out1[t, r],
  // as LaunchGeluMul computes it.
  float* gated;
};
// The K-slices LaunchGemv cuts this product into; a group takes only products of 1.
int GemvSplits(DType type, int64_t n, int64_t k);
void LaunchGemvGroup(DType type, const GemvTargets& targets, int64_t k, const float* x, int t_count,
                     cudaStream_t stream);
// Rows [row_begin, row_begin + rows) of w [*, k] dequantized to `out_type` (f32, f16 or bf16),
// [rows, k] contiguous.
void LaunchDequantizeRows(DType type, const void* w, int64_t row_begin, int64_t rows, int64_t k,
                          DType out_type, void* out, cudaStream_t stream);
// f32 -> f16 or bf16, round to nearest even.
void LaunchConvertF32(const float* x, int64_t count, DType out_type, void* out, cudaStream_t stream);
// out[r, n] += bias[n] for out [rows, ld] columns [0, n).
void LaunchAddBias(float* out, int64_t rows, int64_t n, int64_t ld, const float* bias, cudaStream_t stream);
// ids[r] = argmax of row r (lowest index on ties).
void LaunchArgMax(const float* logits, int64_t rows, int64_t cols, int32_t* ids, cudaStream_t stream);

// ---- elementwise (elementwise.cu) ----
void LaunchEmbed(DType type, const void* table, int64_t cols, const int32_t* ids, int64_t count,
                 float scale, float* out, cudaStream_t stream);
void LaunchGeluMul(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream);
void LaunchGelu(float* x, int64_t count, cudaStream_t stream);
void LaunchAdd(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream);
void LaunchMul(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream);
void LaunchSoftCap(float* x, int64_t count, float cap, cudaStream_t stream);
void LaunchRope(float* x, const float* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                int rotary_dim, float theta, float position_scale, cudaStream_t stream);

// LaunchRope on q and on k (the same positions), then LaunchWriteKv of k and v,
// in one launch. Every field is 8 bytes wide (no padding: see GemvTargets).
struct RopeWriteKv {
  float* q;  // [tokens, q_heads, head_dim]
  float* k;  // [tokens, kv_heads, head_dim]
  const float* v;
  const float* positions;
  const int64_t* slots;
  void* k_cache;
  void* v_cache;
  int64_t tokens, q_heads, kv_heads, head_dim;
  int64_t rotary_dim;
  double theta, position_scale;
  int64_t cache_type;  // a DType: f32, f16 or bf16
};
void LaunchRopeWriteKv(const RopeWriteKv& args, cudaStream_t stream);

// Copies `bytes` (a multiple of 16, both pointers 16-byte aligned) with 16-byte
// loads and stores: the bandwidth probe that matvec speeds are compared with.
void LaunchCopy(const void* src, void* dst, size_t bytes, cudaStream_t stream);
// Holds the stream for about `milliseconds` (one spinning thread): profiling.
void LaunchHold(double milliseconds, cudaStream_t stream);

// ---- norms (norm.cu) ----
void LaunchRmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out,
                   cudaStream_t stream);
// sum = a + b (elementwise, [rows, dim]), then out = RmsNorm(sum).
void LaunchAddRmsNorm(const float* a, const float* b, float* sum, const float* weight, int64_t rows, int64_t dim,
                      float eps, float* out, cudaStream_t stream);
void LaunchLayerNorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
                     float eps, float* out, cudaStream_t stream);

// ---- attention over the paged KV cache (attention.cu) ----
struct DeviceSequence {
  int32_t first_row;
  int32_t num_rows;
  int32_t table_offset;  // into the concatenated block tables
  int32_t table_size;
  int64_t first_index;
  int64_t prefix_end;
};
// Up to kAttentionTileRows consecutive rows of one sequence, attended by one block (prefill).
constexpr int kAttentionTileRows = 16;
struct DeviceTile {
  int32_t sequence;
  int32_t first_row;  // row of q
  int32_t num_rows;
};
struct AttentionLaunch {
  const float* q;   // [tokens, heads, head_dim]
  float* out;       // same
  const void* k_cache;  // [slots, kv_heads, head_dim] of cache_type
  const void* v_cache;
  DType cache_type;     // f32, f16 or bf16
  int64_t block_size;
  int64_t tokens, heads, kv_heads, head_dim;
  const int32_t* row_sequence;     // [tokens]: index into sequences
  const DeviceSequence* sequences;
  const int32_t* block_tables;
  int64_t window;
  float scale, softcap;
  // Rows of single-row sequences (decode) go to the split kernel; the rows of
  // longer ones to the tiled kernel, which stages K/V once for a tile's rows.
  const int32_t* decode_rows;
  int64_t num_decode_rows;
  int64_t max_keys;     // most keys a decode row sees (sizes the split)
  float* scratch;       // AttentionScratchFloats(num_decode_rows, ...) floats
  const DeviceTile* tiles;
  int64_t num_tiles;
};
bool AttentionSupports(DType cache_type, int64_t head_dim);
int64_t AttentionScratchFloats(int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_keys);
void LaunchAttention(const AttentionLaunch& args, cudaStream_t stream);
// Prefill of long sequences through GEMMs (the backend runs them with cuBLASLt
// between these kernels): K and V of keys [key_lo, key_lo + keys) gathered
// from the cache per KV head, the heads' query rows packed per KV head, a
// masked softmax over the scores, and the outputs scattered back. Rows of a
// KV head are (row, head in its group) pairs; keys_padded (a multiple of 8)
// pads the leading dimensions, the padding keys being zero and invisible.
struct GemmAttentionPlan {
  const float* q;  // [tokens, heads, head_dim]
  float* out;
  const void* k_cache;
  const void* v_cache;
  DType cache_type;
  int64_t block_size;
  const int32_t* block_table;  // device
  int64_t heads, kv_heads, head_dim;
  int64_t key_lo, keys, keys_padded;
  int64_t first_row;    // of q/out: these rows are [first_row, first_row + rows)
  int64_t rows;
  int64_t first_index;  // position of the first row
  int64_t prefix_end, window;
  float scale, softcap;
  DType gemm_type;  // f32 or bf16
  void* kc;         // [kv_heads, keys_padded, head_dim] of gemm_type
  void* vc;         // same
  void* qp;         // [kv_heads, rows * group, head_dim] of gemm_type
  float* scores;    // [kv_heads, rows * group, keys_padded]
  void* probs;      // same shape, gemm_type (may alias scores for f32)
  float* outputs;   // [kv_heads, rows * group, head_dim]
};
void LaunchGatherKv(const GemmAttentionPlan& plan, cudaStream_t stream);
void LaunchPackQueries(const GemmAttentionPlan& plan, cudaStream_t stream);
void LaunchMaskedSoftmax(const GemmAttentionPlan& plan, cudaStream_t stream);
void LaunchScatterOutputs(const GemmAttentionPlan& plan, cudaStream_t stream);

// Row t of k, v [tokens, kv_dim] f32 into slot slots[t] of caches [slots, kv_dim] of cache_type.
void LaunchWriteKv(const float* k, const float* v, const int64_t* slots, int64_t tokens, int64_t kv_dim,
                   DType cache_type, void* k_cache, void* v_cache, cudaStream_t stream);

// ---- Griffin (griffin.cu); the math is Backend's ----
void LaunchCausalConv1D(const float* x, const float* weight, const float* bias, float* state, float* out,
                        int64_t tokens, int64_t channels, int64_t width, cudaStream_t stream);
void LaunchBlockDiagonalMatMul(const float* x, const float* w, const float* bias, float* out,
                               int64_t tokens, int64_t heads, int64_t block, cudaStream_t stream);
void LaunchRgLru(const float* x, const float* input_gate, const float* recurrent_gate,
                 const float* recurrent_param, int64_t first_index, float* state, float* out,
                 int64_t tokens, int64_t channels, cudaStream_t stream);

}  // namespace gemmarun::cuda

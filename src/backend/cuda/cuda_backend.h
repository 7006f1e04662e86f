// The CUDA implementation of Backend. Every TensorView handed to it points to
// device memory (allocated and filled through its DeviceMemory side); the spans of
// the interface (positions, ids, slots, sequences, block tables) are host
// memory, uploaded per call through a pinned staging buffer. Ops are enqueued on
// one stream and return at once; a launch or runtime error is kept and returned
// by the next Synchronize().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gemmarun/status.h"
#include "ops/backend.h"
#include "tensor/device.h"

namespace gemmarun {

// Number of usable CUDA devices; 0 when there is no driver or GPU.
int CudaDeviceCount();

class CudaBackend final : public Backend, public DeviceMemory {
 public:
  // The device must exist (CudaDeviceCount() > device).
  static Result<std::unique_ptr<CudaBackend>> Create(int device = 0,
                                                     MatMulPrecision precision = MatMulPrecision::kF32);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  int num_threads() const override { return 1; }
  DeviceMemory& memory() override { return *this; }
  Status CheckKvCache(DType dtype, int64_t head_dim) const override;
  // The device's name as the driver reports it ("NVIDIA H200").
  std::string device_name() const;

  Device device() const override;
  Result<void*> Allocate(size_t bytes) override;
  void Free(void* device_ptr) override;
  Status Upload(void* device_dst, const void* host_src, size_t bytes) override;
  Status Download(void* host_dst, const void* device_src, size_t bytes) override;
  void Copy(void* device_dst, const void* device_src, size_t bytes) override;
  void Zero(void* device_dst, size_t bytes) override;
  Status Synchronize() override;

  // Rows of t at or below this use the fused matrix-vector kernels; more go to cuBLASLt.
  static constexpr int64_t kMaxGemvRows = 8;

  void MatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) override;
  void Embed(const TensorView& table, std::span<const int32_t> ids, float scale, const TensorView& out) override;
  void RmsNorm(const TensorView& x, const TensorView& weight, float eps, const TensorView& out) override;
  void LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps,
                 const TensorView& out) override;
  void Rope(const TensorView& x, std::span<const float> positions, int rotary_dim, float theta,
            float position_scale) override;
  void Attention(const AttentionArgs& args) override;
  void WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
               const KvCacheView& cache) override;
  void GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) override;
  void Gelu(const TensorView& x) override;
  void Add(const TensorView& a, const TensorView& b, const TensorView& out) override;
  void Mul(const TensorView& a, const TensorView& b, const TensorView& out) override;
  void SoftCap(const TensorView& x, float cap) override;
  void CopyRows(const TensorView& src, const TensorView& dst) override;
  void CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                    const TensorView& state, const TensorView& out) override;
  void BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                           const TensorView& out) override;
  void RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
             const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
             const TensorView& out) override;

  // Greedy sampling on the device: ids[r] = argmax of row r of logits [rows, vocab]
  // (the lowest index on ties). ids is a device pointer to rows int32 values.
  void ArgMax(const TensorView& logits, int32_t* device_ids);

 private:
  struct State;
  explicit CudaBackend(std::unique_ptr<State> state);
  // Copies host bytes into device scratch for the current op (ordered on the stream).
  void* StageToDevice(const void* host, size_t bytes);
  void CheckLaunch(const char* op);
  // fn(args..., stream) now, or recorded for the pass's graph (launch_log.h).
  template <class Fn, class... A>
  void Enqueue(Fn* launcher, const A&... args);
  // Records the launch that waits for a possible merge with the next op.
  void ReleaseHeld();
  void HoldGemv(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out);
  // Launches what this pass recorded; its remaining ops are launched as they come.
  void StopRecording();
  void RunRecordedPass();  // at Synchronize
  // Op-local device scratch (valid until the next call).
  void* Scratch(size_t bytes);
  void CheckMatMulLaunch(const char* op, const TensorView& w, int64_t rows);  // labels shapes when profiling
  void GemmMatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out);
  // Prefill sequences of at least this many rows attend through GEMMs.
  static constexpr int64_t kGemmAttentionRows = 64;
  static constexpr int64_t kGemmAttentionScores = int64_t{32} << 20;  // floats of scores at a time
  void GemmAttention(const AttentionArgs& args, const AttentionSequence& seq, const int32_t* device_table);

  std::unique_ptr<State> state_;
};

}  // namespace gemmarun

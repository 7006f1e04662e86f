#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "base/check.h"

namespace gemmarun {
namespace {

constexpr size_t kLtWorkspaceBytes = 32u << 20;
// Dequantized weight tiles for prefill GEMMs are at most this large.
constexpr size_t kMaxTileBytes = 64u << 20;

Status CudaError(const char* what, cudaError_t error) {
  return Internal(std::string("cuda: ") + what + ": " + cudaGetErrorString(error));
}

// A device buffer that grows on demand; growing waits for the stream, since
// kernels enqueued earlier may still read the old one.
class DeviceArena {
 public:
  ~DeviceArena() {
    if (data_) cudaFree(data_);
  }
  void* Get(size_t bytes, cudaStream_t stream) {
    if (bytes <= size_) return data_;
    cudaStreamSynchronize(stream);
    if (data_) cudaFree(data_);
    size_ = std::max(bytes, size_ * 2);
    if (cudaMalloc(&data_, size_) != cudaSuccess) {
      data_ = nullptr;
      size_ = 0;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

size_t AlignUp(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

// Host spans reach the device through a ring of pinned memory mirrored on the
// device: a span is copied into pinned memory and its transfer is enqueued
// asynchronously (a copy from pageable memory stalls the CPU until the driver
// has staged it, tens of such copies per decode step). Regions are handed out
// in order and reused only after the stream has drained: at Synchronize, which
// ends every forward pass, or when the ring is full. A span equal to one staged
// since then (the positions every layer's RoPE reads, a KV group's slots) reuses
// that device copy, which nothing overwrites before the ring starts over.
class StagingRing {
 public:
  ~StagingRing() { Release(); }
  // The device copy of `bytes` at host, or null when memory ran out.
  void* Stage(const void* host, size_t bytes, cudaStream_t stream) {
    for (const Span& s : recent_) {
      if (s.bytes == bytes && (bytes == 0 || std::memcmp(host_ + s.offset, host, bytes) == 0)) {
        return device_ + s.offset;
      }
    }
    const size_t need = AlignUp(std::max<size_t>(bytes, 1));
    if (used_ + need > size_) {
      cudaStreamSynchronize(stream);  // every region in flight is done
      Reset();
      if (need > size_) {
        Release();
        const size_t size = std::max({need, size_ * 2, size_t{1} << 20});
        if (cudaHostAlloc(reinterpret_cast<void**>(&host_), size, cudaHostAllocDefault) != cudaSuccess ||
            cudaMalloc(reinterpret_cast<void**>(&device_), size) != cudaSuccess) {
          cudaGetLastError();
          Release();
          return nullptr;
        }
        size_ = size;
      }
    }
    const size_t offset = used_;
    used_ += need;
    if (bytes > 0) {
      std::memcpy(host_ + offset, host, bytes);
      cudaMemcpyAsync(device_ + offset, host_ + offset, bytes, cudaMemcpyHostToDevice, stream);
    }
    recent_[next_recent_++ % kRecent] = Span{offset, bytes};
    return device_ + offset;
  }
  // After the stream has drained: every region may be reused.
  void Reset() {
    used_ = 0;
    recent_.fill(Span{});
    next_recent_ = 0;
  }

 private:
  struct Span {
    size_t offset = 0;
    size_t bytes = SIZE_MAX;  // matches no span
  };
  static constexpr size_t kRecent = 8;
  void Release() {
    if (host_) cudaFreeHost(host_);
    if (device_) cudaFree(device_);
    host_ = device_ = nullptr;
    size_ = 0;
    Reset();
  }
  uint8_t* host_ = nullptr;
  uint8_t* device_ = nullptr;
  size_t size_ = 0, used_ = 0;
  std::array<Span, kRecent> recent_{};
  size_t next_recent_ = 0;
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

struct CudaBackend::State {
  int device = 0;
  MatMulPrecision precision = MatMulPrecision::kF32;
  cudaStream_t stream = nullptr;
  cuda::LtGemm gemm;
  DeviceArena scratch;  // op-local temporaries (split partials, converted activations, tiles)
  StagingRing staged;   // host spans (ids, positions, slots, attention plans) on their way to the device
  Status error;         // first error since the last Synchronize
  ~State() {
    if (stream) cudaStreamDestroy(stream);
  }
};

Result<std::unique_ptr<CudaBackend>> CudaBackend::Create(int device, MatMulPrecision precision) {
  const int count = CudaDeviceCount();
  if (device < 0 || device >= count) {
    return InvalidArgument("cuda:" + std::to_string(device) + ": no such device (found " + std::to_string(count) + ")");
  }
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return CudaError("set device", e);
  auto state = std::make_unique<State>();
  state->device = device;
  state->precision = precision;
  if (cudaError_t e = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking); e != cudaSuccess) {
    return CudaError("create stream", e);
  }
  GR_RETURN_IF_ERROR(state->gemm.Init(kLtWorkspaceBytes));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(state)));
}

CudaBackend::CudaBackend(std::unique_ptr<State> state) : state_(std::move(state)) {}
CudaBackend::~CudaBackend() {
  if (state_ && state_->stream) cudaStreamSynchronize(state_->stream);
}

Device CudaBackend::device() const { return Device{Device::Kind::kCuda, state_->device}; }

std::string CudaBackend::device_name() const {
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, state_->device) != cudaSuccess) {
    cudaGetLastError();
    return "unknown GPU";
  }
  return properties.name;
}

Status CudaBackend::CheckKvCache(DType dtype, int64_t head_dim) const {
  if (cuda::AttentionSupports(dtype, head_dim)) return Status::Ok();
  return Unsupported(std::string("the cuda backend has no ") + Name(dtype) + " KV cache for head_dim " +
                     std::to_string(head_dim) + " (it takes f32, f16 or bf16, head_dim up to 256)");
}

void CudaBackend::Copy(void* device_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  if (cudaError_t e = cudaMemcpyAsync(device_dst, device_src, bytes, cudaMemcpyDeviceToDevice, state_->stream);
      e != cudaSuccess && state_->error.ok()) {
    state_->error = CudaError("copy", e);
  }
}

void CudaBackend::Zero(void* device_dst, size_t bytes) {
  if (bytes == 0) return;
  if (cudaError_t e = cudaMemsetAsync(device_dst, 0, bytes, state_->stream); e != cudaSuccess && state_->error.ok()) {
    state_->error = CudaError("zero fill", e);
  }
}

Result<void*> CudaBackend::Allocate(size_t bytes) {
  void* ptr = nullptr;
  if (cudaError_t e = cudaMalloc(&ptr, std::max<size_t>(bytes, 1)); e != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhausted("cuda: cannot allocate " + std::to_string(bytes) + " bytes: " + cudaGetErrorString(e));
  }
  return ptr;
}

void CudaBackend::Free(void* device_ptr) {
  if (device_ptr) cudaFree(device_ptr);
}

Status CudaBackend::Upload(void* device_dst, const void* host_src, size_t bytes) {
  if (cudaError_t e = cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, state_->stream);
      e != cudaSuccess) {
    return CudaError("upload", e);
  }
  return Synchronize();
}

Status CudaBackend::Download(void* host_dst, const void* device_src, size_t bytes) {
  if (cudaError_t e = cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, state_->stream);
      e != cudaSuccess) {
    return CudaError("download", e);
  }
  return Synchronize();
}

Status CudaBackend::Synchronize() {
  if (cudaError_t e = cudaStreamSynchronize(state_->stream); e != cudaSuccess && state_->error.ok()) {
    state_->error = CudaError("stream", e);
  }
  state_->staged.Reset();  // the stream is drained: no staged copy is in flight
  Status error = std::move(state_->error);
  state_->error = Status::Ok();
  return error;
}

void CudaBackend::CheckLaunch(const char* op) {
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess && state_->error.ok()) state_->error = CudaError(op, e);
}

void* CudaBackend::StageToDevice(const void* host, size_t bytes) {
  void* device = state_->staged.Stage(host, bytes, state_->stream);
  if (device == nullptr && state_->error.ok()) state_->error = ResourceExhausted("cuda: cannot allocate staging memory");
  return device;
}

void CudaBackend::MatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) {
  const int64_t t = x.shape.rows(), k = x.shape.cols(), n = w.shape.rows();
  GR_CHECK(w.shape.cols() == k && out.shape.rows() == t && out.shape.cols() == n);
  if (t == 0) return;
  const bool gemv_ok = cuda::GemvSupports(w.dtype) && reinterpret_cast<uintptr_t>(w.data) % 2 == 0;
  if (t > kMaxGemvRows || !gemv_ok) return GemmMatMul(x, w, bias, out);
  const int64_t partial_floats = cuda::GemvScratchFloats(n, k, static_cast<int>(t));
  const bool needs_aligned_x = reinterpret_cast<uintptr_t>(x.data) % 16 != 0 || k % 4 != 0;
  const size_t x_bytes = needs_aligned_x && IsQuantized(w.dtype) ? AlignUp(t * k * sizeof(float)) : 0;
  auto* scratch = static_cast<uint8_t*>(state_->scratch.Get(x_bytes + partial_floats * sizeof(float) + 256,
                                                             state_->stream));
  if (scratch == nullptr) {
    if (state_->error.ok()) state_->error = ResourceExhausted("cuda: cannot allocate matmul scratch");
    return;
  }
  const float* x_ptr = x.f32();
  if (x_bytes > 0) {  // quantized kernels read x with 16-byte loads (k is a multiple of 32 there)
    cudaMemcpyAsync(scratch, x.data, t * k * sizeof(float), cudaMemcpyDeviceToDevice, state_->stream);
    x_ptr = reinterpret_cast<const float*>(scratch);
  }
  cuda::LaunchGemv(w.dtype, w.data, n, k, x_ptr, static_cast<int>(t), bias.empty() ? nullptr : bias.f32(),
                   out.f32(), reinterpret_cast<float*>(scratch + x_bytes), state_->stream);
  CheckLaunch("matmul");
}

// Prefill: float weights go to cuBLASLt as they are (f32 stays f32; f16/bf16
// multiply 16-bit activations when precision is kBF16, else f32 tiles), and
// quantized weights are dequantized tile by tile into the GEMM's input type.
void CudaBackend::GemmMatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) {
  const int64_t t = x.shape.rows(), k = x.shape.cols(), n = w.shape.rows();
  if (w.dtype == DType::kI32) {
    if (state_->error.ok()) state_->error = Unsupported("cuda: matmul with i32 weights");
    return;
  }
  const bool half_precision = state_->precision == MatMulPrecision::kBF16 && w.dtype != DType::kF32;
  const DType gemm_type = !half_precision ? DType::kF32 : (w.dtype == DType::kF16 ? DType::kF16 : DType::kBF16);
  const size_t elem = gemm_type == DType::kF32 ? 4 : 2;
  const bool weights_as_is = w.dtype == gemm_type;
  int64_t tile_rows = n;
  if (!weights_as_is) {
    tile_rows = std::min<int64_t>(n, std::max<int64_t>(128, kMaxTileBytes / (k * elem) / 128 * 128));
  }
  const size_t x_bytes = gemm_type == DType::kF32 ? 0 : AlignUp(t * k * elem);
  const size_t tile_bytes = weights_as_is ? 0 : AlignUp(tile_rows * k * elem);
  auto* scratch = static_cast<uint8_t*>(state_->scratch.Get(x_bytes + tile_bytes + 256, state_->stream));
  if (scratch == nullptr) {
    if (state_->error.ok()) state_->error = ResourceExhausted("cuda: cannot allocate matmul scratch");
    return;
  }
  const void* x_gemm = x.data;
  if (x_bytes > 0) {
    cuda::LaunchConvertF32(x.f32(), t * k, gemm_type, scratch, state_->stream);
    x_gemm = scratch;
  }
  for (int64_t row = 0; row < n; row += tile_rows) {
    const int64_t rows = std::min(tile_rows, n - row);
    const void* w_tile = w.row(row);
    if (!weights_as_is) {
      cuda::LaunchDequantizeRows(w.dtype, w.data, row, rows, k, gemm_type, scratch + x_bytes, state_->stream);
      w_tile = scratch + x_bytes;
    }
    Status status = state_->gemm.Run(gemm_type, x_gemm, w_tile, out.f32() + row, t, rows, k, n, state_->stream);
    if (!status.ok() && state_->error.ok()) state_->error = status;
  }
  if (!bias.empty()) cuda::LaunchAddBias(out.f32(), t, n, n, bias.f32(), state_->stream);
  CheckLaunch("matmul (gemm)");
}

void CudaBackend::Embed(const TensorView& table, std::span<const int32_t> ids, float scale, const TensorView& out) {
  if (table.dtype == DType::kI32) {
    if (state_->error.ok()) state_->error = Unsupported("cuda: embedding table of i32");
    return;
  }
  const auto* device_ids = static_cast<const int32_t*>(StageToDevice(ids.data(), ids.size_bytes()));
  if (device_ids == nullptr) return;
  cuda::LaunchEmbed(table.dtype, table.data, table.shape.cols(), device_ids, static_cast<int64_t>(ids.size()), scale,
                    out.f32(), state_->stream);
  CheckLaunch("embed");
}

void CudaBackend::RmsNorm(const TensorView& x, const TensorView& weight, float eps, const TensorView& out) {
  cuda::LaunchRmsNorm(x.f32(), weight.f32(), x.shape.rows(), x.shape.cols(), eps, out.f32(), state_->stream);
  CheckLaunch("rms_norm");
}

void CudaBackend::LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps,
                            const TensorView& out) {
  cuda::LaunchLayerNorm(x.f32(), weight.f32(), bias.f32(), x.shape.rows(), x.shape.cols(), eps, out.f32(),
                        state_->stream);
  CheckLaunch("layer_norm");
}

void CudaBackend::Rope(const TensorView& x, std::span<const float> positions, int rotary_dim, float theta,
                       float position_scale) {
  const auto* device_positions = static_cast<const float*>(StageToDevice(positions.data(), positions.size_bytes()));
  if (device_positions == nullptr) return;
  cuda::LaunchRope(x.f32(), device_positions, x.shape[0], x.shape[1], x.shape[2], rotary_dim, theta, position_scale,
                   state_->stream);
  CheckLaunch("rope");
}

void CudaBackend::Attention(const AttentionArgs& args) {
  const int64_t tokens = args.q.shape[0], heads = args.q.shape[1], head_dim = args.q.shape[2];
  const KvCacheView& cache = args.cache;
  if (!cuda::AttentionSupports(cache.k.dtype, head_dim)) {
    if (state_->error.ok()) {
      state_->error = Unsupported(std::string("cuda: attention over a ") + Name(cache.k.dtype) + " cache with head_dim " +
                                  std::to_string(head_dim));
    }
    return;
  }
  if (tokens == 0) return;
  // One upload: [row -> sequence][decode rows][sequences][prefill tiles][block tables].
  std::vector<int32_t> row_sequence(tokens, 0), decode_rows;
  std::vector<cuda::DeviceSequence> sequences;
  std::vector<cuda::DeviceTile> tiles;
  std::vector<int32_t> tables;
  int64_t max_keys = 1;
  for (size_t s = 0; s < args.sequences.size(); ++s) {
    const AttentionSequence& seq = args.sequences[s];
    sequences.push_back({static_cast<int32_t>(seq.first_row), static_cast<int32_t>(seq.num_rows),
                         static_cast<int32_t>(tables.size()), static_cast<int32_t>(seq.block_table.size()),
                         seq.first_index, seq.prefix_end});
    tables.insert(tables.end(), seq.block_table.begin(), seq.block_table.end());
    for (int64_t r = 0; r < seq.num_rows; ++r) row_sequence[seq.first_row + r] = static_cast<int32_t>(s);
    if (seq.num_rows == 1) {
      decode_rows.push_back(static_cast<int32_t>(seq.first_row));
      const int64_t index = seq.first_index;
      const int64_t lo = args.window > 0 ? std::max<int64_t>(0, index - args.window + 1) : 0;
      const int64_t hi = index < seq.prefix_end ? seq.prefix_end : index + 1;
      max_keys = std::max(max_keys, hi - lo);
      continue;
    }
    for (int64_t r = 0; r < seq.num_rows; r += cuda::kAttentionTileRows) {
      tiles.push_back({static_cast<int32_t>(s), static_cast<int32_t>(seq.first_row + r),
                       static_cast<int32_t>(std::min<int64_t>(cuda::kAttentionTileRows, seq.num_rows - r))});
    }
  }
  std::vector<uint8_t> packed;
  auto append = [&packed](const void* data, size_t bytes) {
    const size_t offset = packed.size();
    packed.resize(AlignUp(offset + bytes));
    if (bytes > 0) std::copy_n(static_cast<const uint8_t*>(data), bytes, packed.data() + offset);
    return offset;
  };
  const size_t rows_at = append(row_sequence.data(), row_sequence.size() * sizeof(int32_t));
  const size_t decode_at = append(decode_rows.data(), decode_rows.size() * sizeof(int32_t));
  const size_t seq_at = append(sequences.data(), sequences.size() * sizeof(cuda::DeviceSequence));
  const size_t tiles_at = append(tiles.data(), tiles.size() * sizeof(cuda::DeviceTile));
  const size_t tables_at = append(tables.data(), tables.size() * sizeof(int32_t));
  auto* device_meta = static_cast<uint8_t*>(StageToDevice(packed.data(), packed.size()));
  const int64_t num_decode = static_cast<int64_t>(decode_rows.size());
  const int64_t scratch_floats = cuda::AttentionScratchFloats(num_decode, heads, head_dim, max_keys);
  auto* scratch = static_cast<float*>(state_->scratch.Get((scratch_floats + 64) * sizeof(float), state_->stream));
  if (device_meta == nullptr || scratch == nullptr) {
    if (state_->error.ok()) state_->error = ResourceExhausted("cuda: cannot allocate attention scratch");
    return;
  }
  cuda::AttentionLaunch launch{};
  launch.q = args.q.f32();
  launch.out = args.out.f32();
  launch.k_cache = cache.k.data;
  launch.v_cache = cache.v.data;
  launch.cache_type = cache.k.dtype;
  launch.block_size = cache.block_size;
  launch.tokens = tokens;
  launch.heads = heads;
  launch.kv_heads = cache.k.shape[1];
  launch.head_dim = head_dim;
  launch.row_sequence = reinterpret_cast<const int32_t*>(device_meta + rows_at);
  launch.sequences = reinterpret_cast<const cuda::DeviceSequence*>(device_meta + seq_at);
  launch.block_tables = reinterpret_cast<const int32_t*>(device_meta + tables_at);
  launch.decode_rows = reinterpret_cast<const int32_t*>(device_meta + decode_at);
  launch.num_decode_rows = num_decode;
  launch.tiles = reinterpret_cast<const cuda::DeviceTile*>(device_meta + tiles_at);
  launch.num_tiles = static_cast<int64_t>(tiles.size());
  launch.window = args.window;
  launch.scale = args.scale;
  launch.softcap = args.softcap;
  launch.max_keys = max_keys;
  launch.scratch = scratch;
  cuda::LaunchAttention(launch, state_->stream);
  CheckLaunch("attention");
}

void CudaBackend::WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
                          const KvCacheView& cache) {
  if (!cuda::AttentionSupports(cache.k.dtype, cache.k.shape[2])) {
    if (state_->error.ok()) state_->error = Unsupported(std::string("cuda: a ") + Name(cache.k.dtype) + " KV cache");
    return;
  }
  const auto* device_slots = static_cast<const int64_t*>(StageToDevice(slots.data(), slots.size_bytes()));
  if (device_slots == nullptr) return;
  cuda::LaunchWriteKv(k.f32(), v.f32(), device_slots, k.shape.rows(), k.shape.cols(), cache.k.dtype, cache.k.data,
                      cache.v.data, state_->stream);
  CheckLaunch("write_kv");
}

void CudaBackend::GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) {
  cuda::LaunchGeluMul(gate.f32(), up.f32(), out.f32(), gate.shape.elements(), state_->stream);
  CheckLaunch("gelu_mul");
}

void CudaBackend::Gelu(const TensorView& x) {
  cuda::LaunchGelu(x.f32(), x.shape.elements(), state_->stream);
  CheckLaunch("gelu");
}

void CudaBackend::Add(const TensorView& a, const TensorView& b, const TensorView& out) {
  cuda::LaunchAdd(a.f32(), b.f32(), out.f32(), a.shape.elements(), state_->stream);
  CheckLaunch("add");
}

void CudaBackend::Mul(const TensorView& a, const TensorView& b, const TensorView& out) {
  cuda::LaunchMul(a.f32(), b.f32(), out.f32(), a.shape.elements(), state_->stream);
  CheckLaunch("mul");
}

void CudaBackend::SoftCap(const TensorView& x, float cap) {
  cuda::LaunchSoftCap(x.f32(), x.shape.elements(), cap, state_->stream);
  CheckLaunch("soft_cap");
}

void CudaBackend::CopyRows(const TensorView& src, const TensorView& dst) {
  GR_CHECK(src.shape.rows() == dst.shape.rows() && src.shape.cols() == dst.shape.cols());
  cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, state_->stream);
  CheckLaunch("copy_rows");
}

void CudaBackend::CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                               const TensorView& state, const TensorView& out) {
  if (weight.shape.cols() > 8) {
    if (state_->error.ok()) state_->error = Unsupported("cuda: causal conv1d wider than 8");
    return;
  }
  cuda::LaunchCausalConv1D(x.f32(), weight.f32(), bias.f32(), state.f32(), out.f32(), x.shape.rows(), x.shape.cols(),
                           weight.shape.cols(), state_->stream);
  CheckLaunch("causal_conv1d");
}

void CudaBackend::BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                                      const TensorView& out) {
  cuda::LaunchBlockDiagonalMatMul(x.f32(), w.f32(), bias.f32(), out.f32(), x.shape.rows(), w.shape[0], w.shape[1],
                                  state_->stream);
  CheckLaunch("block_diagonal_matmul");
}

void CudaBackend::RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
                        const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
                        const TensorView& out) {
  cuda::LaunchRgLru(x.f32(), input_gate.f32(), recurrent_gate.f32(), recurrent_param.f32(), first_index, state.f32(),
                    out.f32(), x.shape.rows(), x.shape.cols(), state_->stream);
  CheckLaunch("rg_lru");
}

void CudaBackend::ArgMax(const TensorView& logits, int32_t* device_ids) {
  cuda::LaunchArgMax(logits.f32(), logits.shape.rows(), logits.shape.cols(), device_ids, state_->stream);
  CheckLaunch("argmax");
}

}  // namespace gemmarun

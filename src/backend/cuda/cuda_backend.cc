#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch_log.h"
#include "backend/cuda/op_profile.h"
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
  bool Fits(size_t bytes) const { return bytes <= size_; }
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
  // Whether Stage(bytes) would first have to wait for the stream and start over.
  bool Full(size_t bytes) const { return used_ + AlignUp(std::max<size_t>(bytes, 1)) > size_; }
  // Like Stage, but the transfer waits for CopyDeferred, which moves every span
  // staged since in one copy; no span is shared, so the device addresses depend
  // on the sizes staged alone. The ring must not be Full(bytes).
  void* StageDeferred(const void* host, size_t bytes) {
    const size_t offset = used_;
    used_ += AlignUp(std::max<size_t>(bytes, 1));
    if (bytes > 0) std::memcpy(host_ + offset, host, bytes);
    return device_ + offset;
  }
  void CopyDeferred(cudaStream_t stream) {
    if (used_ > deferred_from_) {
      cudaMemcpyAsync(device_ + deferred_from_, host_ + deferred_from_, used_ - deferred_from_,
                      cudaMemcpyHostToDevice, stream);
    }
    deferred_from_ = used_;
  }
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
    used_ = deferred_from_ = 0;
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
  size_t size_ = 0, used_ = 0, deferred_from_ = 0;
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
  std::unique_ptr<cuda::OpProfile> profile;  // GEMMARUN_CUDA_PROFILE

  // CUDA graphs. A pass (the ops between two Synchronize calls) is recorded, not
  // launched; at its Synchronize it replays the graph of an equal earlier pass,
  // or is captured into one when it equals the pass before it (a decode step
  // like the last), or else runs as recorded. An op that cannot be recorded
  // (cuBLASLt GEMMs, transfers) first runs what was recorded: the rest of that
  // pass is launched as it comes.
  struct Graph {
    cuda::LaunchLog launches;
    cudaGraphExec_t exec = nullptr;
  };
  static constexpr size_t kMaxGraphs = 8;
  bool graphs_enabled = false;
  bool recording = false;  // this pass's ops go to `launches`
  // While recording, a launch that may merge with the next op waits here: matrix-
  // vector products of one x (q, k, v; gate and up, with the GeluMul after them)
  // become one launch, and a residual Add becomes one launch with the RmsNorm of
  // its sum. Each value is computed as the separate kernels compute it.
  enum class Held { kNone, kGemv, kAdd, kRope };
  Held held = Held::kNone;
  struct HeldGemv {
    DType type;
    int64_t k;
    const float* x;
    int t_count;
    cuda::GemvTargets targets;
  } held_gemv{};
  struct HeldAdd {
    const float* a;
    const float* b;
    float* out;
    int64_t count;
  } held_add{};
  // RoPE of q, then of k with the same positions: one launch with the WriteKv of k.
  struct HeldRope {
    float* x[2];
    int64_t heads[2];
    int count;
    const float* positions;  // staged
    std::span<const float> host_positions;
    int64_t tokens, head_dim;
    int rotary_dim;
    float theta, position_scale;
  } held_rope{};
  cuda::LaunchLog launches, previous;
  std::vector<Graph> graphs;  // most recently used first
  int64_t replays = 0, captures = 0, launched_passes = 0;  // GEMMARUN_CUDA_GRAPH_STATS prints them at exit
  // Host time between Synchronize calls, and time spent waiting in them.
  double host_seconds = 0, wait_seconds = 0;
  std::chrono::steady_clock::time_point since_sync = std::chrono::steady_clock::now();

  ~State() {
    if (const char* stats = std::getenv("GEMMARUN_CUDA_GRAPH_STATS"); stats != nullptr && *stats == '1') {
      const double passes = std::max<int64_t>(1, replays + captures + launched_passes);
      std::fprintf(stderr,
                   "cuda graphs: %lld passes replayed, %lld captured, %lld recorded passes launched op by op; "
                   "per pass %.0f us on the host between synchronizations, %.0f us waiting for the GPU\n",
                   static_cast<long long>(replays), static_cast<long long>(captures),
                   static_cast<long long>(launched_passes), 1e6 * host_seconds / passes, 1e6 * wait_seconds / passes);
    }
    for (Graph& g : graphs) cudaGraphExecDestroy(g.exec);
    profile.reset();
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
  if (cuda::OpProfile::Requested()) state->profile = std::make_unique<cuda::OpProfile>(state->stream);
  const char* graphs = std::getenv("GEMMARUN_CUDA_GRAPHS");
  state->graphs_enabled = !state->profile && !(graphs != nullptr && std::strcmp(graphs, "0") == 0);
  state->recording = state->graphs_enabled;
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

namespace {
// Launchers of the stream's own copy and fill, so that passes can record them.
void CopyOnDevice(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}
void ZeroOnDevice(void* dst, size_t bytes, cudaStream_t stream) { cudaMemsetAsync(dst, 0, bytes, stream); }
}  // namespace

void CudaBackend::ReleaseHeld() {
  State& s = *state_;
  const State::Held held = s.held;
  s.held = State::Held::kNone;
  if (held == State::Held::kGemv) {
    const State::HeldGemv& g = s.held_gemv;
    s.launches.Add(&cuda::LaunchGemvGroup, g.type, g.targets, g.k, g.x, g.t_count);
  } else if (held == State::Held::kAdd) {
    const State::HeldAdd& a = s.held_add;
    s.launches.Add(&cuda::LaunchAdd, a.a, a.b, a.out, a.count);
  } else if (held == State::Held::kRope) {
    const State::HeldRope& r = s.held_rope;
    for (int i = 0; i < r.count; ++i) {
      s.launches.Add(&cuda::LaunchRope, r.x[i], r.positions, r.tokens, r.heads[i], r.head_dim, r.rotary_dim, r.theta,
                     r.position_scale);
    }
  }
}

template <class Fn, class... A>
void CudaBackend::Enqueue(Fn* launcher, const A&... args) {
  if (state_->recording) {
    ReleaseHeld();
    state_->launches.Add(launcher, args...);
  } else {
    launcher(args..., state_->stream);
  }
}

void CudaBackend::StopRecording() {
  State& s = *state_;
  if (!s.recording) return;
  ReleaseHeld();
  s.recording = false;
  s.staged.CopyDeferred(s.stream);
  if (s.launches.empty()) return;  // a transfer between passes (the logits): the last pass still counts
  s.launches.Replay(s.stream);
  s.launches.Clear();
  s.previous.Clear();
}

void* CudaBackend::Scratch(size_t bytes) {
  if (state_->recording && !state_->scratch.Fits(bytes)) StopRecording();  // recorded ops use the old buffer
  return state_->scratch.Get(bytes, state_->stream);
}

void CudaBackend::RunRecordedPass() {
  State& s = *state_;
  if (s.recording) ReleaseHeld();
  s.recording = false;
  if (s.launches.empty()) return;
  s.staged.CopyDeferred(s.stream);
  for (size_t i = 0; i < s.graphs.size(); ++i) {
    if (s.graphs[i].launches == s.launches) {
      if (cudaError_t e = cudaGraphLaunch(s.graphs[i].exec, s.stream); e != cudaSuccess && s.error.ok()) {
        s.error = CudaError("graph launch", e);
      }
      std::rotate(s.graphs.begin(), s.graphs.begin() + i, s.graphs.begin() + i + 1);
      ++s.replays;
      s.launches.Clear();
      return;
    }
  }
  if (!(s.launches == s.previous)) {  // a pass unlike the last: not worth a graph yet
    ++s.launched_passes;
    s.launches.Replay(s.stream);
    std::swap(s.previous, s.launches);
    s.launches.Clear();
    return;
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal);
  if (e == cudaSuccess) {
    s.launches.Replay(s.stream);
    e = cudaStreamEndCapture(s.stream, &graph);
  }
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e == cudaSuccess) e = cudaGraphLaunch(exec, s.stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (exec) cudaGraphExecDestroy(exec);
    std::fprintf(stderr, "warning: cuda: graph capture failed (%s); passes run without graphs\n",
                 cudaGetErrorString(e));
    s.graphs_enabled = false;
    s.launches.Replay(s.stream);
    s.launches.Clear();
    return;
  }
  if (s.graphs.size() == State::kMaxGraphs) {
    cudaGraphExecDestroy(s.graphs.back().exec);
    s.graphs.pop_back();
  }
  s.graphs.insert(s.graphs.begin(), State::Graph{std::move(s.launches), exec});
  ++s.captures;
  s.launches.Clear();
  s.previous.Clear();
}

void CudaBackend::Copy(void* device_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  Enqueue(&CopyOnDevice, device_dst, device_src, bytes);
  CheckLaunch("copy");
}

void CudaBackend::Zero(void* device_dst, size_t bytes) {
  if (bytes == 0) return;
  Enqueue(&ZeroOnDevice, device_dst, bytes);
  CheckLaunch("zero fill");
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
  StopRecording();  // what the pass recorded so far comes first
  if (cudaError_t e = cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, state_->stream);
      e != cudaSuccess) {
    return CudaError("upload", e);
  }
  return Synchronize();
}

Status CudaBackend::Download(void* host_dst, const void* device_src, size_t bytes) {
  StopRecording();
  if (cudaError_t e = cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, state_->stream);
      e != cudaSuccess) {
    return CudaError("download", e);
  }
  return Synchronize();
}

Status CudaBackend::Synchronize() {
  const auto start = std::chrono::steady_clock::now();
  state_->host_seconds += std::chrono::duration<double>(start - state_->since_sync).count();
  RunRecordedPass();
  if (cudaError_t e = cudaStreamSynchronize(state_->stream); e != cudaSuccess && state_->error.ok()) {
    state_->error = CudaError("stream", e);
  }
  state_->since_sync = std::chrono::steady_clock::now();
  state_->wait_seconds += std::chrono::duration<double>(state_->since_sync - start).count();
  state_->staged.Reset();  // the stream is drained: no staged copy is in flight
  if (state_->profile) state_->profile->EndPass();
  state_->recording = state_->graphs_enabled;  // the next pass
  Status error = std::move(state_->error);
  state_->error = Status::Ok();
  return error;
}

void CudaBackend::CheckLaunch(const char* op) {
  if (state_->recording) return;  // nothing was launched yet
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess && state_->error.ok()) state_->error = CudaError(op, e);
  if (state_->profile) state_->profile->Mark(op);
}

void CudaBackend::CheckMatMulLaunch(const char* op, const TensorView& w, int64_t rows) {
  if (!state_->profile || state_->recording) return CheckLaunch(op);
  const std::string label = std::string(op) + " " + Name(w.dtype) + " " + std::to_string(w.shape.rows()) + "x" +
                            std::to_string(w.shape.cols()) + " t" + std::to_string(rows);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess && state_->error.ok()) state_->error = CudaError(op, e);
  state_->profile->Mark(label);
}

void* CudaBackend::StageToDevice(const void* host, size_t bytes) {
  if (state_->recording && state_->staged.Full(bytes)) StopRecording();
  void* device = state_->recording ? state_->staged.StageDeferred(host, bytes)
                                   : state_->staged.Stage(host, bytes, state_->stream);
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
  auto* scratch = static_cast<uint8_t*>(Scratch(x_bytes + partial_floats * sizeof(float) + 256));
  if (scratch == nullptr) {
    if (state_->error.ok()) state_->error = ResourceExhausted("cuda: cannot allocate matmul scratch");
    return;
  }
  if (state_->recording && x_bytes == 0 && cuda::GemvSplits(w.dtype, n, k) == 1) {
    HoldGemv(x, w, bias, out);
    return CheckMatMulLaunch("matmul", w, t);
  }
  const float* x_ptr = x.f32();
  if (x_bytes > 0) {  // quantized kernels read x with 16-byte loads (k is a multiple of 32 there)
    Enqueue(&CopyOnDevice, static_cast<void*>(scratch), static_cast<const void*>(x.data), t * k * sizeof(float));
    x_ptr = reinterpret_cast<const float*>(scratch);
  }
  Enqueue(&cuda::LaunchGemv, w.dtype, static_cast<const void*>(w.data), n, k, x_ptr, static_cast<int>(t),
          bias.empty() ? nullptr : bias.f32(), out.f32(), reinterpret_cast<float*>(scratch + x_bytes));
  CheckMatMulLaunch("matmul", w, t);
}

void CudaBackend::HoldGemv(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) {
  State& s = *state_;
  State::HeldGemv& g = s.held_gemv;
  const int t = static_cast<int>(x.shape.rows());
  const cuda::GemvTarget target{w.data, bias.empty() ? nullptr : bias.f32(), out.f32(), w.shape.rows()};
  if (s.held == State::Held::kGemv && g.type == w.dtype && g.k == x.shape.cols() && g.x == x.f32() &&
      g.t_count == t && g.targets.count < cuda::kMaxGemvTargets) {
    g.targets.target[g.targets.count++] = target;
    return;
  }
  ReleaseHeld();
  g = State::HeldGemv{};
  g.type = w.dtype;
  g.k = x.shape.cols();
  g.x = x.f32();
  g.t_count = t;
  g.targets.target[0] = target;
  g.targets.count = 1;
  s.held = State::Held::kGemv;
}

// Prefill: float weights go to cuBLASLt as they are (f32 stays f32; f16/bf16
// multiply 16-bit activations when precision is kBF16, else f32 tiles), and
// quantized weights are dequantized tile by tile into the GEMM's input type.
void CudaBackend::GemmMatMul(const TensorView& x, const TensorView& w, const TensorView& bias, const TensorView& out) {
  StopRecording();  // cuBLASLt calls are not recorded: the rest of the pass is launched as it comes
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
  auto* scratch = static_cast<uint8_t*>(Scratch(x_bytes + tile_bytes + 256));
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
  CheckMatMulLaunch("matmul (gemm)", w, t);
}

void CudaBackend::Embed(const TensorView& table, std::span<const int32_t> ids, float scale, const TensorView& out) {
  if (table.dtype == DType::kI32) {
    if (state_->error.ok()) state_->error = Unsupported("cuda: embedding table of i32");
    return;
  }
  const auto* device_ids = static_cast<const int32_t*>(StageToDevice(ids.data(), ids.size_bytes()));
  if (device_ids == nullptr) return;
  Enqueue(&cuda::LaunchEmbed, table.dtype, static_cast<const void*>(table.data), table.shape.cols(), device_ids,
          static_cast<int64_t>(ids.size()), scale, out.f32());
  CheckLaunch("embed");
}

void CudaBackend::RmsNorm(const TensorView& x, const TensorView& weight, float eps, const TensorView& out) {
  State& s = *state_;
  if (s.recording && s.held == State::Held::kAdd && s.held_add.out == x.f32() &&
      s.held_add.count == x.shape.elements()) {
    s.held = State::Held::kNone;
    s.launches.Add(&cuda::LaunchAddRmsNorm, s.held_add.a, s.held_add.b, s.held_add.out, weight.f32(), x.shape.rows(),
                   x.shape.cols(), eps, out.f32());
    return CheckLaunch("add + rms_norm");
  }
  Enqueue(&cuda::LaunchRmsNorm, x.f32(), weight.f32(), x.shape.rows(), x.shape.cols(), eps, out.f32());
  CheckLaunch("rms_norm");
}

void CudaBackend::LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps,
                            const TensorView& out) {
  Enqueue(&cuda::LaunchLayerNorm, x.f32(), weight.f32(), bias.f32(), x.shape.rows(), x.shape.cols(), eps, out.f32());
  CheckLaunch("layer_norm");
}

void CudaBackend::Rope(const TensorView& x, std::span<const float> positions, int rotary_dim, float theta,
                       float position_scale) {
  State& s = *state_;
  State::HeldRope& held = s.held_rope;
  if (s.recording && s.held == State::Held::kRope && held.count == 1 && held.tokens == x.shape[0] &&
      held.head_dim == x.shape[2] && held.rotary_dim == rotary_dim && held.theta == theta &&
      held.position_scale == position_scale && held.host_positions.data() == positions.data() &&
      held.host_positions.size() == positions.size()) {
    held.x[1] = x.f32();
    held.heads[1] = x.shape[1];
    held.count = 2;
    return CheckLaunch("rope");
  }
  const auto* device_positions = static_cast<const float*>(StageToDevice(positions.data(), positions.size_bytes()));
  if (device_positions == nullptr) return;
  if (s.recording) {
    ReleaseHeld();
    held = State::HeldRope{{x.f32(), nullptr}, {x.shape[1], 0}, 1, device_positions, positions, x.shape[0],
                           x.shape[2], rotary_dim, theta, position_scale};
    s.held = State::Held::kRope;
    return CheckLaunch("rope");
  }
  Enqueue(&cuda::LaunchRope, x.f32(), device_positions, x.shape[0], x.shape[1], x.shape[2], rotary_dim, theta,
          position_scale);
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
  std::vector<size_t> gemm_sequences;  // long prefills: through GEMMs below
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
    if (seq.num_rows >= kGemmAttentionRows && head_dim % 8 == 0) {
      gemm_sequences.push_back(s);
      continue;
    }
    for (int64_t r = 0; r < seq.num_rows; r += cuda::kAttentionTileRows) {
      tiles.push_back({static_cast<int32_t>(s), static_cast<int32_t>(seq.first_row + r),
                       static_cast<int32_t>(std::min<int64_t>(cuda::kAttentionTileRows, seq.num_rows - r))});
    }
  }
  // Launch sizes that grow with the context move in steps, so that consecutive
  // decode passes launch alike and can share a graph: the split kernel is sized
  // for a multiple of 256 keys (the surplus splits are empty), and the block
  // tables take a multiple of 256 entries.
  max_keys = (max_keys + 255) / 256 * 256;
  tables.resize((tables.size() + 255) / 256 * 256, 0);
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
  auto* scratch = static_cast<float*>(Scratch((scratch_floats + 64) * sizeof(float)));
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
  if (!tiles.empty() || num_decode > 0) Enqueue(&cuda::LaunchAttention, launch);
  for (size_t s : gemm_sequences) {
    GemmAttention(args, args.sequences[s], launch.block_tables + sequences[s].table_offset);
  }
  CheckLaunch(tiles.empty() ? "attention (decode)" : "attention");
}

// Softmax(Q K^T) V of one long prefill as two GEMMs per KV head (tensor cores
// in bf16 precision, true f32 otherwise), the scores of at most
// kGemmAttentionScores floats at a time.
void CudaBackend::GemmAttention(const AttentionArgs& args, const AttentionSequence& seq,
                                const int32_t* device_table) {
  StopRecording();
  State& s = *state_;
  const int64_t heads = args.q.shape[1], head_dim = args.q.shape[2], kv_heads = args.cache.k.shape[1];
  const int64_t group = heads / kv_heads;
  const auto lo_of = [&](int64_t index) { return args.window > 0 ? std::max<int64_t>(0, index - args.window + 1) : 0; };
  const auto hi_of = [&](int64_t index) { return index < seq.prefix_end ? seq.prefix_end : index + 1; };
  const int64_t key_lo = lo_of(seq.first_index);
  const int64_t key_hi = std::max(hi_of(seq.first_index), hi_of(seq.first_index + seq.num_rows - 1));
  cuda::GemmAttentionPlan plan{};
  plan.q = args.q.f32();
  plan.out = args.out.f32();
  plan.k_cache = args.cache.k.data;
  plan.v_cache = args.cache.v.data;
  plan.cache_type = args.cache.k.dtype;
  plan.block_size = args.cache.block_size;
  plan.block_table = device_table;
  plan.heads = heads;
  plan.kv_heads = kv_heads;
  plan.head_dim = head_dim;
  plan.key_lo = key_lo;
  plan.keys = key_hi - key_lo;
  plan.keys_padded = (plan.keys + 7) / 8 * 8;
  plan.prefix_end = seq.prefix_end;
  plan.window = args.window;
  plan.scale = args.scale;
  plan.softcap = args.softcap;
  plan.gemm_type = s.precision == MatMulPrecision::kBF16 ? DType::kBF16 : DType::kF32;
  const size_t elem = plan.gemm_type == DType::kF32 ? 4 : 2;
  const int64_t sub_rows = std::min<int64_t>(
      seq.num_rows, std::max<int64_t>(16, kGemmAttentionScores / (heads * plan.keys_padded)));
  const size_t kv_bytes = AlignUp(kv_heads * plan.keys_padded * head_dim * elem);
  const size_t q_bytes = AlignUp(sub_rows * heads * head_dim * elem);
  const size_t score_bytes = AlignUp(sub_rows * heads * plan.keys_padded * sizeof(float));
  const size_t prob_bytes = elem == 4 ? 0 : AlignUp(sub_rows * heads * plan.keys_padded * elem);
  const size_t out_bytes = AlignUp(sub_rows * heads * head_dim * sizeof(float));
  auto* scratch = static_cast<uint8_t*>(Scratch(2 * kv_bytes + q_bytes + score_bytes + prob_bytes + out_bytes));
  if (scratch == nullptr) {
    if (s.error.ok()) s.error = ResourceExhausted("cuda: cannot allocate attention scratch");
    return;
  }
  plan.kc = scratch;
  plan.vc = scratch + kv_bytes;
  plan.qp = scratch + 2 * kv_bytes;
  plan.scores = reinterpret_cast<float*>(scratch + 2 * kv_bytes + q_bytes);
  plan.probs = prob_bytes > 0 ? static_cast<void*>(scratch + 2 * kv_bytes + q_bytes + score_bytes) : plan.scores;
  plan.outputs = reinterpret_cast<float*>(scratch + 2 * kv_bytes + q_bytes + score_bytes + prob_bytes);
  cuda::LaunchGatherKv(plan, s.stream);
  for (int64_t r = 0; r < seq.num_rows; r += sub_rows) {
    plan.first_row = seq.first_row + r;
    plan.first_index = seq.first_index + r;
    plan.rows = std::min(sub_rows, seq.num_rows - r);
    const int64_t m = plan.rows * group;  // GEMM rows per KV head
    cuda::LaunchPackQueries(plan, s.stream);
    for (int64_t h = 0; h < kv_heads; ++h) {
      Status status = s.gemm.Run(plan.gemm_type, static_cast<uint8_t*>(plan.qp) + h * m * head_dim * elem, head_dim,
                                 static_cast<uint8_t*>(plan.kc) + h * plan.keys_padded * head_dim * elem, head_dim,
                                 false, plan.scores + h * m * plan.keys_padded, plan.keys_padded, m, plan.keys_padded,
                                 head_dim, s.stream);
      if (!status.ok() && s.error.ok()) s.error = status;
    }
    cuda::LaunchMaskedSoftmax(plan, s.stream);
    for (int64_t h = 0; h < kv_heads; ++h) {
      Status status = s.gemm.Run(plan.gemm_type, static_cast<uint8_t*>(plan.probs) + h * m * plan.keys_padded * elem,
                                 plan.keys_padded, static_cast<uint8_t*>(plan.vc) + h * plan.keys_padded * head_dim * elem,
                                 head_dim, true, plan.outputs + h * m * head_dim, head_dim, m, head_dim,
                                 plan.keys_padded, s.stream);
      if (!status.ok() && s.error.ok()) s.error = status;
    }
    cuda::LaunchScatterOutputs(plan, s.stream);
  }
  CheckLaunch("attention (gemm)");
}

void CudaBackend::WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
                          const KvCacheView& cache) {
  if (!cuda::AttentionSupports(cache.k.dtype, cache.k.shape[2])) {
    if (state_->error.ok()) state_->error = Unsupported(std::string("cuda: a ") + Name(cache.k.dtype) + " KV cache");
    return;
  }
  const auto* device_slots = static_cast<const int64_t*>(StageToDevice(slots.data(), slots.size_bytes()));
  if (device_slots == nullptr) return;
  State& s = *state_;
  const State::HeldRope& r = s.held_rope;
  if (s.recording && s.held == State::Held::kRope && r.count == 2 && r.x[1] == k.f32() && r.x[0] != r.x[1] &&
      r.tokens == k.shape.rows() && r.heads[1] * r.head_dim == k.shape.cols() && cache.k.shape[2] == r.head_dim) {
    s.held = State::Held::kNone;
    cuda::RopeWriteKv fused{};
    fused.q = r.x[0];
    fused.k = r.x[1];
    fused.v = v.f32();
    fused.positions = r.positions;
    fused.slots = device_slots;
    fused.k_cache = cache.k.data;
    fused.v_cache = cache.v.data;
    fused.tokens = r.tokens;
    fused.q_heads = r.heads[0];
    fused.kv_heads = r.heads[1];
    fused.head_dim = r.head_dim;
    fused.rotary_dim = r.rotary_dim;
    fused.theta = r.theta;
    fused.position_scale = r.position_scale;
    fused.cache_type = static_cast<int64_t>(cache.k.dtype);
    s.launches.Add(&cuda::LaunchRopeWriteKv, fused);
    return CheckLaunch("rope q, k + write_kv");
  }
  Enqueue(&cuda::LaunchWriteKv, k.f32(), v.f32(), device_slots, k.shape.rows(), k.shape.cols(), cache.k.dtype,
          cache.k.data, cache.v.data);
  CheckLaunch("write_kv");
}

void CudaBackend::GeluMul(const TensorView& gate, const TensorView& up, const TensorView& out) {
  State& s = *state_;
  cuda::GemvTargets& held = s.held_gemv.targets;
  if (s.recording && s.held == State::Held::kGemv && held.count == 2 && held.target[0].out == gate.f32() &&
      held.target[1].out == up.f32() && held.target[0].n == held.target[1].n &&
      gate.shape.elements() == s.held_gemv.t_count * held.target[0].n && up.shape.elements() == gate.shape.elements()) {
    held.gated = out.f32();
    ReleaseHeld();
    return CheckLaunch("matmul gate + up + gelu_mul");
  }
  Enqueue(&cuda::LaunchGeluMul, gate.f32(), up.f32(), out.f32(), gate.shape.elements());
  CheckLaunch("gelu_mul");
}

void CudaBackend::Gelu(const TensorView& x) {
  Enqueue(&cuda::LaunchGelu, x.f32(), x.shape.elements());
  CheckLaunch("gelu");
}

void CudaBackend::Add(const TensorView& a, const TensorView& b, const TensorView& out) {
  if (state_->recording) {
    ReleaseHeld();
    state_->held_add = State::HeldAdd{a.f32(), b.f32(), out.f32(), a.shape.elements()};
    state_->held = State::Held::kAdd;
    return CheckLaunch("add");
  }
  Enqueue(&cuda::LaunchAdd, a.f32(), b.f32(), out.f32(), a.shape.elements());
  CheckLaunch("add");
}

void CudaBackend::Mul(const TensorView& a, const TensorView& b, const TensorView& out) {
  Enqueue(&cuda::LaunchMul, a.f32(), b.f32(), out.f32(), a.shape.elements());
  CheckLaunch("mul");
}

void CudaBackend::SoftCap(const TensorView& x, float cap) {
  Enqueue(&cuda::LaunchSoftCap, x.f32(), x.shape.elements(), cap);
  CheckLaunch("soft_cap");
}

void CudaBackend::CopyRows(const TensorView& src, const TensorView& dst) {
  GR_CHECK(src.shape.rows() == dst.shape.rows() && src.shape.cols() == dst.shape.cols());
  Enqueue(&CopyOnDevice, static_cast<void*>(dst.data), static_cast<const void*>(src.data), src.bytes());
  CheckLaunch("copy_rows");
}

void CudaBackend::CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                               const TensorView& state, const TensorView& out) {
  if (weight.shape.cols() > 8) {
    if (state_->error.ok()) state_->error = Unsupported("cuda: causal conv1d wider than 8");
    return;
  }
  Enqueue(&cuda::LaunchCausalConv1D, x.f32(), weight.f32(), bias.f32(), state.f32(), out.f32(), x.shape.rows(),
          x.shape.cols(), weight.shape.cols());
  CheckLaunch("causal_conv1d");
}

void CudaBackend::BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias,
                                      const TensorView& out) {
  Enqueue(&cuda::LaunchBlockDiagonalMatMul, x.f32(), w.f32(), bias.f32(), out.f32(), x.shape.rows(), w.shape[0],
          w.shape[1]);
  CheckLaunch("block_diagonal_matmul");
}

void CudaBackend::RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
                        const TensorView& recurrent_param, int64_t first_index, const TensorView& state,
                        const TensorView& out) {
  Enqueue(&cuda::LaunchRgLru, x.f32(), input_gate.f32(), recurrent_gate.f32(), recurrent_param.f32(), first_index,
          state.f32(), out.f32(), x.shape.rows(), x.shape.cols());
  CheckLaunch("rg_lru");
}

void CudaBackend::ArgMax(const TensorView& logits, int32_t* device_ids) {
  Enqueue(&cuda::LaunchArgMax, logits.f32(), logits.shape.rows(), logits.shape.cols(), device_ids);
  CheckLaunch("argmax");
}

}  // namespace gemmarun

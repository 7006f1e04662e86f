#include "backend/cpu/matmul.h"

#include <algorithm>
#include <atomic>

#include "backend/cpu/matmul_float.h"
#include "backend/cpu/matmul_panel.h"
#include "base/check.h"
#include "base/thread_pool.h"
#include "tensor/quant.h"

namespace gemmarun::cpu {
namespace {

// Tokens processed together against a tile of weights (prefill). More tokens
// amortise the unpacking of a tile further (int8: ~4% of the time at 256);
// K is chunked so that the block's activations stay within L2.
constexpr size_t kQuantTokenBlock = 256;
constexpr size_t kFloatTokenBlock = 64;
// Activation bytes of one token block that K chunks are sized to (per core
// L2 is 1 MiB here; half leaves room for the weight tiles and the output).
constexpr size_t kActivationBudget = size_t{256} << 10;
constexpr size_t kFloatRowTile = 8;  // rows per work item of the float path
// The panel kernels (matmul_panel.h) take prefills of at least this
// many tokens; below, packing a panel costs more than the products it serves.
constexpr size_t kPanelMinTokens = 16;
std::atomic<size_t> g_panel_min_tokens{kPanelMinTokens};  // tests lower it
constexpr size_t kPanelTokenBlock = 504;  // a multiple of kPanelTokens
constexpr size_t kPanelItemRows = kPanelRows;
// K chunk: a packed panel (64 rows x chunk, 256 KiB either way) stays in L2
// while every token of the block passes over it, and the sums stay in registers
// for the whole chunk. Short chunks that fit L1 measured slower (Gemma-2B MLP,
// f16, 2 threads: 148 vs 211 GFLOP/s at 64 vs 1024): the output rows of the
// tokens, a row length apart, were read and written once per chunk and their
// equal offsets collide in the caches.
constexpr size_t kPanelChunkF32 = 1024;
constexpr size_t kPanelChunkBf16 = 2048;

// Splits [0, k) into chunks that are multiples of `step` (except the last)
// and hold about `budget_elements` per token block.
size_t ChunkSize(size_t k, size_t budget_elements, size_t step) {
  if (k <= budget_elements) return k;
  return std::max(step, budget_elements / step * step);
}

// Work items handed out per claim: about four per thread, so that a thread
// that starts late or runs slow (other jobs on the machine) is made up for.
size_t ClaimSize(size_t items, const ThreadPool& pool) {
  return std::max<size_t>(1, items / (4 * static_cast<size_t>(pool.num_threads())));
}

using QuantTileFn = void (*)(const QuantTile&, float*);

QuantTileFn QuantTileFunction(QuantPath path) {
  switch (path) {
    case QuantPath::kAvx512Vnni: return QuantTileAvx512Vnni;
    case QuantPath::kAvx512VnniNoVbmi: return QuantTileAvx512VnniNoVbmi;
    case QuantPath::kNeonDot: return QuantTileNeonDot;
    case QuantPath::kAvx2: return QuantTileAvx2;
    case QuantPath::kPortable: break;
  }
  return QuantTilePortable;
}

// Visits the work items [begin, end) of a (token block x row tile) grid, row
// tiles fastest, as runs of row tiles that share a token block.
template <class F>
void ForEachRun(size_t begin, size_t end, size_t row_tiles, F&& f) {
  for (size_t item = begin; item < end;) {
    const size_t token_block = item / row_tiles;
    const size_t tile_begin = item % row_tiles;
    const size_t tile_end = std::min(row_tiles, tile_begin + (end - item));
    f(token_block, tile_begin, tile_end);
    item += tile_end - tile_begin;
  }
}

// The float paths' work: (token block x tile of rows) items, the tiles of one
// token block next to each other, spread over the pool; each item sweeps K in
// chunks, the first writing out (+ bias) and the rest adding to it.
// `proto` carries the weights, activations, out and bias; kernel(block, thread).
template <class Block, class Kernel>
void RunFloatBlocks(ThreadPool& pool, const Block& proto, size_t num_tokens, size_t token_block, size_t n,
                    size_t tile_rows, size_t k, size_t chunk, Kernel&& kernel) {
  const size_t token_blocks = (num_tokens + token_block - 1) / token_block;
  const size_t row_tiles = (n + tile_rows - 1) / tile_rows;
  const size_t items = token_blocks * row_tiles;
  pool.ParallelForDynamic(items, ClaimSize(items, pool), [&](size_t begin, size_t end, int thread) {
    ForEachRun(begin, end, row_tiles, [&](size_t tb, size_t tile_begin, size_t tile_end) {
      Block block = proto;
      block.row_begin = tile_begin * tile_rows;
      block.row_end = std::min(n, tile_end * tile_rows);
      block.token_begin = tb * token_block;
      block.token_end = std::min(num_tokens, block.token_begin + token_block);
      for (size_t k_begin = 0; k_begin < k; k_begin += chunk) {
        block.k_begin = k_begin;
        block.k_end = std::min(k, k_begin + chunk);
        block.accumulate = k_begin > 0;
        kernel(block, thread);
      }
    });
  });
}

}  // namespace

void SetPanelMinTokensForTest(size_t tokens) { g_panel_min_tokens.store(tokens == 0 ? kPanelMinTokens : tokens); }

void MatMul(ThreadPool& pool, MatMulWorkspace& workspace, const TensorView& x, const TensorView& w,
            const TensorView& bias, const TensorView& out, MatMulPrecision precision) {
  const size_t num_tokens = x.shape.rows();
  const size_t k = x.shape.cols();
  const size_t n = w.shape.rows();
  GR_CHECK(static_cast<size_t>(w.shape.cols()) == k) << "MatMul: x " << x.shape.ToString() << " w " << w.shape.ToString();
  GR_CHECK(static_cast<size_t>(out.shape.cols()) == n && static_cast<size_t>(out.shape.rows()) == num_tokens);
  if (num_tokens == 0 || n == 0) return;
  const float* xs = x.f32();
  float* ys = out.f32();
  const float* b = bias.empty() ? nullptr : bias.f32();
  const auto* wdata = static_cast<const uint8_t*>(w.data);
  const size_t w_row_bytes = w.row_bytes();

  if (IsIntegerKernelType(w.dtype)) {
    const size_t token_block = std::min(num_tokens, kQuantTokenBlock);
    const size_t token_blocks = (num_tokens + token_block - 1) / token_block;
    const QuantPath path = ActiveQuantPath();
    const size_t tile_rows = QuantTileRows(path);
    const size_t row_tiles = (n + tile_rows - 1) / tile_rows;
    QuantizedActivations& acts = workspace.acts_;
    acts.Resize(num_tokens, k);
    pool.ParallelFor(num_tokens, 4, [&](size_t begin, size_t end, int) {
      for (size_t t = begin; t < end; ++t) acts.QuantizeRow(t, xs + t * k);
    });
    const QuantTileFn tile_fn = QuantTileFunction(path);
    // One token: each row in one sweep (the kernels add its K pieces in order);
    // more: pieces of kQuantKChunk, so that a token block's activations of one
    // piece stay in L2 while the row tiles pass.
    static_assert(kQuantKChunk * kQuantTokenBlock <= kActivationBudget && kQuantKChunk % kQKK == 0);
    const size_t chunk = num_tokens == 1 ? k : kQuantKChunk;
    const size_t items = token_blocks * row_tiles;
    pool.ParallelForDynamic(items, ClaimSize(items, pool), [&](size_t begin, size_t end, int thread) {
      std::vector<float>& scratch = workspace.tile_scratch_[thread];
      if (scratch.size() < token_block * kQuantScratchPerToken) scratch.resize(token_block * kQuantScratchPerToken);
      ForEachRun(begin, end, row_tiles, [&](size_t tb, size_t tile_begin, size_t tile_end) {
        QuantTile tile{};
        tile.type = w.dtype;
        tile.w = wdata;
        tile.w_row_bytes = w_row_bytes;
        tile.acts = &acts;
        tile.token_begin = tb * token_block;
        tile.num_tokens = std::min(num_tokens - tile.token_begin, token_block);
        tile.out = ys;
        tile.out_stride = n;
        tile.bias = b;
        for (size_t k_begin = 0; k_begin < k; k_begin += chunk) {
          tile.k_begin = k_begin;
          tile.k_end = std::min(k, k_begin + chunk);
          tile.accumulate = k_begin > 0;
          for (size_t rt = tile_begin; rt < tile_end; ++rt) {
            tile.row_begin = rt * tile_rows;
            tile.rows = std::min(tile_rows, n - tile.row_begin);
            tile.next_rows = std::min(tile_rows, n - tile.row_begin - tile.rows);
            tile_fn(tile, scratch.data());
          }
        }
      });
    });
    return;
  }

  GR_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16)
      << "MatMul: weights of type " << Name(w.dtype);
  const bool round_to_bf16 = precision == MatMulPrecision::kBF16 && w.dtype == DType::kBF16;
  const bool panel = HasPanelKernels() && num_tokens >= g_panel_min_tokens.load(std::memory_order_relaxed);
  const bool bf16_products = panel && round_to_bf16 && HasBf16Products();
  if (round_to_bf16 && !bf16_products) {
    // Without vdpbf16ps: the same arithmetic (bf16 x bf16 products are exact
    // in f32) by the f32 kernels on rounded activations.
    std::vector<float>& rounded = workspace.rounded_x_;
    if (rounded.size() < num_tokens * k) rounded.resize(num_tokens * k);
    for (size_t i = 0; i < num_tokens * k; ++i) rounded[i] = BF16ToF32(F32ToBF16(xs[i]));
    xs = rounded.data();
  }
  if (panel) {
    std::vector<float>& packed = workspace.packed_x_;
    if (packed.size() < PackedActivationFloats(num_tokens, k, bf16_products)) {
      packed.resize(PackedActivationFloats(num_tokens, k, bf16_products));
    }
    const size_t groups = (num_tokens + kPanelTokens - 1) / kPanelTokens;
    pool.ParallelFor(groups, 1, [&](size_t begin, size_t end, int) {
      PackActivations(xs, num_tokens, k, bf16_products, begin, end, packed.data());
    });
    PanelBlock proto{};
    proto.type = w.dtype;
    proto.w = wdata;
    proto.w_row_bytes = w_row_bytes;
    proto.x = packed.data();
    proto.x_stride = k;
    proto.bf16_products = bf16_products;
    proto.out = ys;
    proto.out_stride = n;
    proto.bias = b;
    const size_t chunk = bf16_products ? kPanelChunkBf16 : kPanelChunkF32;
    RunFloatBlocks(pool, proto, num_tokens, std::min(num_tokens, kPanelTokenBlock), n, kPanelItemRows, k, chunk,
                   [&](const PanelBlock& block, int thread) {
                     std::vector<float>& scratch = workspace.tile_scratch_[thread];
                     if (scratch.size() < PanelScratchFloats(chunk)) scratch.resize(PanelScratchFloats(chunk));
                     PanelMatMul(block, scratch.data());
                   });
    return;
  }

  const size_t token_block = std::min(num_tokens, kFloatTokenBlock);
  FloatBlock proto{};
  proto.type = w.dtype;
  proto.w = wdata;
  proto.w_row_bytes = w_row_bytes;
  proto.x = xs;
  proto.x_stride = k;
  proto.out = ys;
  proto.out_stride = n;
  proto.bias = b;
  RunFloatBlocks(pool, proto, num_tokens, token_block, n, kFloatRowTile, k,
                 ChunkSize(k, kActivationBudget / sizeof(float) / token_block, 64),
                 [](const FloatBlock& block, int) { FloatMatMulBlock(block); });
}

}  // namespace gemmarun::cpu

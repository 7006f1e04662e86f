// Highway per-target bodies of the attention kernels (this file is compiled
// once per target through foreach_target.h), then the work split, the decode
// merge and WriteKv, compiled once. attention.h describes the scheme.
#undef HWY_TARGET_INCLUDE
// SVE vectors are sizeless, and these kernels keep arrays of accumulators,
// which only fixed-width targets allow: on ARM they run as NEON.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif
#define HWY_TARGET_INCLUDE "backend/cpu/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/cpu/attention.h"
#include "base/thread_pool.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

HWY_BEFORE_NAMESPACE();
namespace gemmarun::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Cache rows of each dtype, read as f32: Load gives lanes [i, i + Lanes) (i a
// multiple of Lanes), At one element (the tails of head dims that are not a
// multiple of the vector).
struct F32Rows {
  static HWY_INLINE VF Load(DF d, const uint8_t* row, size_t i) {
    return hn::LoadU(d, reinterpret_cast<const float*>(row) + i);
  }
  static HWY_INLINE float At(const uint8_t* row, size_t i) {
    float value;
    std::memcpy(&value, row + i * sizeof(float), sizeof(value));
    return value;
  }
};

struct F16Rows {
  static HWY_INLINE VF Load(DF d, const uint8_t* row, size_t i) {
    const hn::Rebind<hwy::float16_t, DF> d16;
    return hn::PromoteTo(d, hn::LoadU(d16, reinterpret_cast<const hwy::float16_t*>(row) + i));
  }
  static HWY_INLINE float At(const uint8_t* row, size_t i) {
    uint16_t bits;
    std::memcpy(&bits, row + i * 2, sizeof(bits));
    return F16ToF32(bits);
  }
};

// bf16 is the top half of an f32: widen to u32 and shift, which every target has.
struct BF16Rows {
  static HWY_INLINE VF Load(DF d, const uint8_t* row, size_t i) {
    const hn::Rebind<uint16_t, DF> d16;
    const hn::RebindToUnsigned<DF> du32;
    const auto bits = hn::LoadU(d16, reinterpret_cast<const uint16_t*>(row) + i);
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, bits)));
  }
  static HWY_INLINE float At(const uint8_t* row, size_t i) {
    uint16_t bits;
    std::memcpy(&bits, row + i * 2, sizeof(bits));
    return BF16ToF32(bits);
  }
};

// ggml's q8_0: per 32 values an f16 scale then 32 int8 codes; value = code * scale,
// the same f32 product as DequantizeRow. A vector (at most 16 f32 lanes on x86)
// never straddles two blocks.
struct Q8Rows {
  static HWY_INLINE float Scale(const uint8_t* block) {
    const hn::CappedTag<float, 1> d1;
    const hn::Rebind<hwy::float16_t, decltype(d1)> d16;
    return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(d16, reinterpret_cast<const hwy::float16_t*>(block))));
  }
  static HWY_INLINE VF Load(DF d, const uint8_t* row, size_t i) {
    const uint8_t* block = row + (i / kQK) * sizeof(BlockQ8_0);
    const hn::Rebind<int8_t, DF> d8;
    const hn::RebindToSigned<DF> di;
    const auto codes = hn::LoadU(d8, reinterpret_cast<const int8_t*>(block + 2) + i % kQK);
    return hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, codes)), hn::Set(d, Scale(block)));
  }
  static HWY_INLINE float At(const uint8_t* row, size_t i) {
    const uint8_t* block = row + (i / kQK) * sizeof(BlockQ8_0);
    uint16_t bits;
    std::memcpy(&bits, block, sizeof(bits));
    return static_cast<float>(static_cast<int8_t>(block[2 + i % kQK])) * F16ToF32(bits);
  }
};

// scores[g * stride + j] = q[g] . k_j for kG queries and `count` keys. Each key
// row is loaded (and converted) once for all kG queries; two keys at a time so
// that the sums interleave. One dot product's order of operations is the same
// whichever queries and keys share the loop.
//
// prefetch_rows (or null): rows of `prefetch_bytes` to pull into the cache while
// the keys stream by, the values of the same keys. AccumulateValues reads them a
// vector of every row at a time, which the hardware prefetcher does not follow.
template <class Rows, int kG>
HWY_INLINE void ScoreKeys(const float* const* q, const uint8_t* const* k_rows, size_t count, size_t dim,
                          float* HWY_RESTRICT scores, size_t stride, const uint8_t* const* prefetch_rows,
                          size_t prefetch_bytes) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t vector_dim = dim / N * N;
  size_t j = 0;
  for (; j + 2 <= count; j += 2) {
    if (prefetch_rows != nullptr) {
      for (size_t offset = 0; offset < prefetch_bytes; offset += 64) {
        hwy::Prefetch(prefetch_rows[j] + offset);
        hwy::Prefetch(prefetch_rows[j + 1] + offset);
      }
    }
    VF s0[kG], s1[kG];
    for (int g = 0; g < kG; ++g) s0[g] = s1[g] = hn::Zero(d);
    for (size_t i = 0; i < vector_dim; i += N) {
      const VF k0 = Rows::Load(d, k_rows[j], i);
      const VF k1 = Rows::Load(d, k_rows[j + 1], i);
      for (int g = 0; g < kG; ++g) {
        const VF vq = hn::LoadU(d, q[g] + i);
        s0[g] = hn::MulAdd(vq, k0, s0[g]);
        s1[g] = hn::MulAdd(vq, k1, s1[g]);
      }
    }
    for (int g = 0; g < kG; ++g) {
      float r0 = hn::GetLane(hn::SumOfLanes(d, s0[g]));
      float r1 = hn::GetLane(hn::SumOfLanes(d, s1[g]));
      for (size_t i = vector_dim; i < dim; ++i) {
        r0 += q[g][i] * Rows::At(k_rows[j], i);
        r1 += q[g][i] * Rows::At(k_rows[j + 1], i);
      }
      scores[g * stride + j] = r0;
      scores[g * stride + j + 1] = r1;
    }
  }
  for (; j < count; ++j) {
    VF s0[kG];
    for (int g = 0; g < kG; ++g) s0[g] = hn::Zero(d);
    for (size_t i = 0; i < vector_dim; i += N) {
      const VF k0 = Rows::Load(d, k_rows[j], i);
      for (int g = 0; g < kG; ++g) s0[g] = hn::MulAdd(hn::LoadU(d, q[g] + i), k0, s0[g]);
    }
    for (int g = 0; g < kG; ++g) {
      float r0 = hn::GetLane(hn::SumOfLanes(d, s0[g]));
      for (size_t i = vector_dim; i < dim; ++i) r0 += q[g][i] * Rows::At(k_rows[j], i);
      scores[g * stride + j] = r0;
    }
  }
}

// acc[g] = acc[g] * alpha[g] + sum_j p[g * stride + j] * v_j: one vector of each
// of the kG accumulators stays in registers over all the keys, and each value
// vector is loaded (and converted) once for all of them.
template <class Rows, int kG>
HWY_INLINE void AccumulateValues(const float* HWY_RESTRICT p, size_t stride, const uint8_t* const* v_rows,
                                 size_t count, size_t dim, float* const* acc, const float* alpha) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t vector_dim = dim / N * N;
  size_t i = 0;
  // Two vectors per pass over the rows: a 64-byte line of f32 (two of f16)
  // per row and pass, and more FMAs per load of the weights.
  for (; i + 2 * N <= vector_dim; i += 2 * N) {
    VF a0[kG], a1[kG];
    for (int g = 0; g < kG; ++g) {
      a0[g] = hn::Mul(hn::LoadU(d, acc[g] + i), hn::Set(d, alpha[g]));
      a1[g] = hn::Mul(hn::LoadU(d, acc[g] + i + N), hn::Set(d, alpha[g]));
    }
    for (size_t j = 0; j < count; ++j) {
      const VF v0 = Rows::Load(d, v_rows[j], i);
      const VF v1 = Rows::Load(d, v_rows[j], i + N);
      for (int g = 0; g < kG; ++g) {
        const VF weight = hn::Set(d, p[g * stride + j]);
        a0[g] = hn::MulAdd(weight, v0, a0[g]);
        a1[g] = hn::MulAdd(weight, v1, a1[g]);
      }
    }
    for (int g = 0; g < kG; ++g) {
      hn::StoreU(a0[g], d, acc[g] + i);
      hn::StoreU(a1[g], d, acc[g] + i + N);
    }
  }
  for (; i < vector_dim; i += N) {
    VF a[kG];
    for (int g = 0; g < kG; ++g) a[g] = hn::Mul(hn::LoadU(d, acc[g] + i), hn::Set(d, alpha[g]));
    for (size_t j = 0; j < count; ++j) {
      const VF v = Rows::Load(d, v_rows[j], i);
      for (int g = 0; g < kG; ++g) a[g] = hn::MulAdd(hn::Set(d, p[g * stride + j]), v, a[g]);
    }
    for (int g = 0; g < kG; ++g) hn::StoreU(a[g], d, acc[g] + i);
  }
  for (size_t i_tail = vector_dim; i_tail < dim; ++i_tail) {
    for (int g = 0; g < kG; ++g) {
      float a = acc[g][i_tail] * alpha[g];
      for (size_t j = 0; j < count; ++j) a += p[g * stride + j] * Rows::At(v_rows[j], i_tail);
      acc[g][i_tail] = a;
    }
  }
}

// s = softcap(s * scale) in place; returns the maximum.
HWY_INLINE float ScaleAndCap(float* HWY_RESTRICT s, size_t n, float scale, float softcap) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto vscale = hn::Set(d, scale);
  const auto vcap = hn::Set(d, softcap), vinv_cap = hn::Set(d, softcap > 0.0f ? 1.0f / softcap : 0.0f);
  auto vmax = hn::Set(d, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + N <= n; i += N) {
    auto x = hn::Mul(hn::LoadU(d, s + i), vscale);
    if (softcap > 0.0f) x = hn::Mul(vcap, hn::Tanh(d, hn::Mul(x, vinv_cap)));
    hn::StoreU(x, d, s + i);
    vmax = hn::Max(vmax, x);
  }
  float max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < n; ++i) {
    float x = s[i] * scale;
    if (softcap > 0.0f) x = softcap * std::tanh(x * (1.0f / softcap));
    s[i] = x;
    max = std::max(max, x);
  }
  return max;
}

// s = exp(s - max) in place; returns the sum.
HWY_INLINE float ExpShiftSum(float* HWY_RESTRICT s, size_t n, float max) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto vmax = hn::Set(d, max);
  auto sum = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, s + i), vmax));
    hn::StoreU(e, d, s + i);
    sum = hn::Add(sum, e);
  }
  float total = hn::GetLane(hn::SumOfLanes(d, sum));
  for (; i < n; ++i) {
    s[i] = std::exp(s[i] - max);
    total += s[i];
  }
  return total;
}

// Query vector n of an item is row row_begin + n / group, head kv_head * group + n % group.
template <class Rows>
void RunItemT(const AttentionArgs& args, const AttentionItem& item, int64_t key_tile, float* m, float* l, float* acc,
              float* scores, const uint8_t** rows) {
  const AttentionSequence& seq = args.sequences[item.sequence];
  const int64_t heads = args.q.shape[1], dim = args.q.shape[2];
  const int64_t kv_heads = args.cache.k.shape[1];
  const int64_t group = heads / kv_heads;
  const int64_t num_queries = (item.row_end - item.row_begin) * group;
  const int64_t block_size = args.cache.block_size;
  const size_t row_bytes = args.cache.k.row_bytes();
  const uint8_t* k_base = static_cast<const uint8_t*>(args.cache.k.data) + item.kv_head * row_bytes;
  const uint8_t* v_base = static_cast<const uint8_t*>(args.cache.v.data) + item.kv_head * row_bytes;
  const uint8_t** k_rows = rows;
  const uint8_t** v_rows = rows + key_tile;
  std::fill(m, m + num_queries, -std::numeric_limits<float>::infinity());
  std::fill(l, l + num_queries, 0.0f);
  std::fill(acc, acc + num_queries * dim, 0.0f);

  for (int64_t tile = item.key_begin / key_tile * key_tile; tile < item.key_end; tile += key_tile) {
    const int64_t begin = std::max(tile, item.key_begin);
    const int64_t end = std::min(tile + key_tile, item.key_end);
    // Row addresses, one run of consecutive slots per block (one division per block, not per key).
    for (int64_t j = begin; j < end;) {
      const int64_t block = j / block_size;
      const int64_t offset = j - block * block_size;
      const int64_t run = std::min(end - j, block_size - offset);
      const size_t first_slot = seq.block_table[block] * block_size + offset;
      for (int64_t x = 0; x < run; ++x) {
        k_rows[j - begin + x] = k_base + (first_slot + x) * kv_heads * row_bytes;
        v_rows[j - begin + x] = v_base + (first_slot + x) * kv_heads * row_bytes;
      }
      j += run;
    }
    for (int64_t n0 = 0; n0 < num_queries; n0 += 4) {
      const int count = static_cast<int>(std::min<int64_t>(4, num_queries - n0));
      // The keys of the tile each query sees, and their union.
      int64_t lo[4], hi[4];
      const float* q[4];
      float* a[4];
      float alpha[4];
      int64_t union_lo = end, union_hi = begin;
      for (int g = 0; g < count; ++g) {
        const int64_t n = n0 + g;
        const int64_t row = item.row_begin + n / group;
        const int64_t head = item.kv_head * group + n % group;
        const int64_t index = seq.first_index + row;
        const int64_t last = index < seq.prefix_end ? std::max(index, seq.prefix_end - 1) : index;
        const int64_t first = args.window > 0 ? std::max<int64_t>(0, index - args.window + 1) : 0;
        lo[g] = std::max(begin, first);
        hi[g] = std::min(end, last + 1);
        q[g] = args.q.f32() + ((seq.first_row + row) * heads + head) * dim;
        a[g] = acc + n * dim;
        if (lo[g] < hi[g]) {
          union_lo = std::min(union_lo, lo[g]);
          union_hi = std::max(union_hi, hi[g]);
        }
      }
      if (union_lo >= union_hi) continue;  // a tile no query of the group sees
      const size_t span = union_hi - union_lo;
      const uint8_t* const* k_span = k_rows + (union_lo - begin);
      const uint8_t* const* v_span = v_rows + (union_lo - begin);
      // The first group of a tile brings the tile's values in; later ones find them cached.
      const uint8_t* const* prefetch = n0 == 0 ? v_span : nullptr;
      switch (count) {
        case 1: ScoreKeys<Rows, 1>(q, k_span, span, dim, scores, key_tile, prefetch, row_bytes); break;
        case 2: ScoreKeys<Rows, 2>(q, k_span, span, dim, scores, key_tile, prefetch, row_bytes); break;
        case 3: ScoreKeys<Rows, 3>(q, k_span, span, dim, scores, key_tile, prefetch, row_bytes); break;
        default: ScoreKeys<Rows, 4>(q, k_span, span, dim, scores, key_tile, prefetch, row_bytes); break;
      }
      // Online softmax: scores become weights exp(s - new max), zero outside the
      // query's keys; the old sum and accumulator are scaled by exp(old - new max).
      for (int g = 0; g < count; ++g) {
        float* s = scores + g * key_tile;
        const int64_t n = n0 + g;
        alpha[g] = 1.0f;
        if (lo[g] >= hi[g]) {
          std::fill(s, s + span, 0.0f);
          continue;
        }
        std::fill(s, s + (lo[g] - union_lo), 0.0f);
        std::fill(s + (hi[g] - union_lo), s + span, 0.0f);
        float* seen = s + (lo[g] - union_lo);
        const size_t seen_count = hi[g] - lo[g];
        const float tile_max = ScaleAndCap(seen, seen_count, args.scale, args.softcap);
        const float new_max = std::max(m[n], tile_max);
        alpha[g] = std::exp(m[n] - new_max);  // 0 for the first tile (m = -inf), 1 if the max stays
        l[n] = l[n] * alpha[g] + ExpShiftSum(seen, seen_count, new_max);
        m[n] = new_max;
      }
      switch (count) {
        case 1: AccumulateValues<Rows, 1>(scores, key_tile, v_span, span, dim, a, alpha); break;
        case 2: AccumulateValues<Rows, 2>(scores, key_tile, v_span, span, dim, a, alpha); break;
        case 3: AccumulateValues<Rows, 3>(scores, key_tile, v_span, span, dim, a, alpha); break;
        default: AccumulateValues<Rows, 4>(scores, key_tile, v_span, span, dim, a, alpha); break;
      }
    }
  }
}

void RunItemImpl(const AttentionArgs& args, const AttentionItem& item, int64_t key_tile, float* m, float* l,
                 float* acc, float* scores, const uint8_t** rows) {
  switch (args.cache.k.dtype) {
    case DType::kF16: return RunItemT<F16Rows>(args, item, key_tile, m, l, acc, scores, rows);
    case DType::kBF16: return RunItemT<BF16Rows>(args, item, key_tile, m, l, acc, scores, rows);
    case DType::kQ8_0: return RunItemT<Q8Rows>(args, item, key_tile, m, l, acc, scores, rows);
    default: return RunItemT<F32Rows>(args, item, key_tile, m, l, acc, scores, rows);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace gemmarun::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmarun::cpu {

HWY_EXPORT(RunItemImpl);

namespace {

AttentionTileSizes g_tile_sizes = kAttentionTileSizes;

// The keys sequence index `index` sees: [FirstKey, LastKey].
int64_t FirstKey(const AttentionArgs& args, int64_t index) {
  return args.window > 0 ? std::max<int64_t>(0, index - args.window + 1) : 0;
}
int64_t LastKey(const AttentionSequence& seq, int64_t index) {
  return index < seq.prefix_end ? std::max(index, seq.prefix_end - 1) : index;
}

// Fills items and merges; returns the floats the decode partials need.
int64_t SplitWork(const AttentionArgs& args, const AttentionTileSizes& sizes, AttentionWorkspace& ws) {
  const int64_t kv_heads = args.cache.k.shape[1];
  const int64_t group = args.q.shape[1] / kv_heads;
  const int64_t dim = args.q.shape[2];
  ws.items.clear();
  ws.merges.clear();
  int64_t partial_floats = 0;
  for (size_t s = 0; s < args.sequences.size(); ++s) {
    const AttentionSequence& seq = args.sequences[s];
    const auto sequence = static_cast<int32_t>(s);
    for (int32_t kv = 0; kv < kv_heads; ++kv) {
      if (seq.num_rows <= kDecodeMaxRows) {
        const int64_t lo = FirstKey(args, seq.first_index);
        const int64_t hi = LastKey(seq, seq.first_index + seq.num_rows - 1) + 1;
        AttentionMerge merge{sequence, kv, static_cast<int64_t>(ws.items.size()), 0};
        for (int64_t piece = lo / sizes.split_keys * sizes.split_keys; piece < hi; piece += sizes.split_keys) {
          const int64_t piece_end = std::min(piece + sizes.split_keys, hi);
          ws.items.push_back({sequence, kv, 0, seq.num_rows, std::max(piece, lo), piece_end, partial_floats});
          partial_floats += seq.num_rows * group * (dim + 2);
          ++merge.num_items;
        }
        ws.merges.push_back(merge);
      } else {
        // Last blocks first: under a causal mask they see the most keys, and the
        // pool hands items out in order, so the long ones do not end the call.
        const int64_t num_blocks = (seq.num_rows + sizes.query_rows - 1) / sizes.query_rows;
        for (int64_t block = num_blocks - 1; block >= 0; --block) {
          const int64_t r = block * sizes.query_rows;
          const int64_t r_end = std::min(r + sizes.query_rows, seq.num_rows);
          ws.items.push_back({sequence, kv, r, r_end, FirstKey(args, seq.first_index + r),
                              LastKey(seq, seq.first_index + r_end - 1) + 1, -1});
        }
      }
    }
  }
  return partial_floats;
}

// out = acc / sum for query vector n of an item (see RunItemT for the numbering).
float* OutputRow(const AttentionArgs& args, const AttentionItem& item, int64_t n) {
  const int64_t heads = args.q.shape[1], dim = args.q.shape[2];
  const int64_t group = heads / args.cache.k.shape[1];
  const AttentionSequence& seq = args.sequences[item.sequence];
  const int64_t row = seq.first_row + item.row_begin + n / group;
  return args.out.f32() + (row * heads + item.kv_head * group + n % group) * dim;
}

}  // namespace

void SetAttentionTileSizesForTest(const AttentionTileSizes& sizes) { g_tile_sizes = sizes; }

void Attention(ThreadPool& pool, AttentionWorkspace& ws, const AttentionArgs& args) {
  const AttentionTileSizes sizes = g_tile_sizes;
  const int64_t dim = args.q.shape[2];
  const int64_t group = args.q.shape[1] / args.cache.k.shape[1];
  const int64_t partial_floats = SplitWork(args, sizes, ws);
  if (static_cast<int64_t>(ws.partials.size()) < partial_floats) ws.partials.resize(partial_floats);
  const int64_t max_queries = std::max(sizes.query_rows, kDecodeMaxRows) * group;
  const size_t scratch_floats = max_queries * (dim + 2) + 4 * sizes.key_tile;

  pool.ParallelForDynamic(ws.items.size(), 1, [&](size_t begin, size_t end, int thread) {
    std::vector<float>& scratch = ws.thread_scratch[thread];
    if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
    std::vector<const uint8_t*>& rows = ws.thread_rows[thread];
    if (rows.size() < static_cast<size_t>(2 * sizes.key_tile)) rows.resize(2 * sizes.key_tile);
    for (size_t i = begin; i < end; ++i) {
      const AttentionItem& item = ws.items[i];
      const int64_t num_queries = (item.row_end - item.row_begin) * group;
      float* state = item.partial >= 0 ? ws.partials.data() + item.partial : scratch.data();
      float* m = state;
      float* l = state + num_queries;
      float* acc = state + 2 * num_queries;
      float* scores = scratch.data() + max_queries * (dim + 2);
      HWY_DYNAMIC_DISPATCH(RunItemImpl)(args, item, sizes.key_tile, m, l, acc, scores, rows.data());
      if (item.partial >= 0) continue;
      for (int64_t n = 0; n < num_queries; ++n) {
        float* out = OutputRow(args, item, n);
        const float inv_sum = 1.0f / l[n];
        for (int64_t d = 0; d < dim; ++d) out[d] = acc[n * dim + d] * inv_sum;
      }
    }
  });

  // Decode: the pieces of the context, merged in order (each piece's state is
  // relative to its own max, rescaled to the overall one).
  pool.ParallelForDynamic(ws.merges.size(), 1, [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) {
      const AttentionMerge& merge = ws.merges[i];
      const AttentionItem* items = ws.items.data() + merge.first_item;
      const int64_t num_queries = items[0].row_end * group;
      for (int64_t n = 0; n < num_queries; ++n) {
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t p = 0; p < merge.num_items; ++p) max = std::max(max, ws.partials[items[p].partial + n]);
        float* out = OutputRow(args, items[0], n);
        std::fill(out, out + dim, 0.0f);
        float sum = 0.0f;
        for (int64_t p = 0; p < merge.num_items; ++p) {
          const float* state = ws.partials.data() + items[p].partial;
          const float weight = std::exp(state[n] - max);
          sum += state[num_queries + n] * weight;
          const float* acc = state + 2 * num_queries + n * dim;
          for (int64_t d = 0; d < dim; ++d) out[d] += acc[d] * weight;
        }
        const float inv_sum = 1.0f / sum;
        for (int64_t d = 0; d < dim; ++d) out[d] *= inv_sum;
      }
    }
  });
}

void WriteKv(ThreadPool& pool, const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
             const KvCacheView& cache) {
  const int64_t kv_heads = cache.k.shape[1], dim = cache.k.shape[2];
  auto write_rows = [&](size_t begin, size_t end, int) {
    for (size_t t = begin; t < end; ++t) {
      for (int64_t h = 0; h < kv_heads; ++h) {
        const int64_t offset = (static_cast<int64_t>(t) * kv_heads + h) * dim;
        QuantizeRow(cache.k.dtype, k.f32() + offset, cache.k.row(slots[t] * kv_heads + h), dim);
        QuantizeRow(cache.v.dtype, v.f32() + offset, cache.v.row(slots[t] * kv_heads + h), dim);
      }
    }
  };
  // A decode step's few rows are not worth waking the pool for.
  constexpr int64_t kMinParallelValues = 1 << 15;
  if (static_cast<int64_t>(slots.size()) * kv_heads * dim < kMinParallelValues) {
    write_rows(0, slots.size(), 0);
  } else {
    pool.ParallelFor(slots.size(), 1, write_rows);
  }
}

}  // namespace gemmarun::cpu
#endif  // HWY_ONCE

// The x86 integer kernels, written once and compiled twice by matmul_quant_x86.cc:
// for AVX2 (GR_QUANT_VNNI 0) and for AVX-512 VNNI (GR_QUANT_VNNI 1), each time
// inside its own namespace and target attributes. No include guard on purpose.
//
// Shape of the work: a tile of 8 weight rows against a run of tokens, one group
// of 256 weights (8 blocks of 32) at a time. Each group is first unpacked for
// the 8 rows into bytes plus per-block scales (Pack*), then every token runs
// over it (Compute): per block, 8 rows x 32 byte products reduced to one int32
// per row, whose vector of 8 rows takes the float scales at once. Unpacking is
// paid once per tile and group, however many tokens there are (prefill), and the
// output is a vector of 8 adjacent rows: out is [num_tokens, N], so it is stored
// as is.
//
// Byte products: vpdpbusd (unsigned x signed, 4 products into an int32 lane,
// exact) on VNNI; maddubs (pairs into int16, saturating) + madd on AVX2. Weights
// are the unsigned operand, so signed formats are stored with an offset that the
// activation block sums remove exactly in integers: q - 8 (Q4_0), q - 16 (Q5_0),
// q - 32 (Q6_K), and on VNNI Q8_0 as (q ^ 0x80) = q + 128. AVX2 keeps Q8_0
// signed and uses abs/sign instead, because (q + 128) * x pairs would overflow
// maddubs' int16. Every unsigned weight byte is < 64 elsewhere, so maddubs
// (2 * 63 * 127 < 32767) cannot saturate.

#if GR_QUANT_VNNI
#define GR_QUANT_Q8_OFFSET 128
#else
#define GR_QUANT_Q8_OFFSET 0
#endif

namespace {

constexpr size_t kRows = kQuantTileRows;  // 8: one ymm of int32 / f32 per tile
constexpr size_t kGroup = 8;              // blocks of 32 per group (256 weights)

// Unsigned x signed bytes: 4 products summed into each of the 8 int32 lanes.
inline __m256i DotU8S8(__m256i u, __m256i s) {
#if GR_QUANT_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// As DotU8S8, with lanes 0-3 (bytes 0-15) multiplied by one integer scale and
// lanes 4-7 by another (Q6_K's 16-weight sub-blocks). `scale` is the lane
// vector Pack stored: int32 x 8 (VNNI) or int16 x 16 (AVX2, where the scale
// replaces madd's ones at no cost).
inline __m256i DotU8S8Scaled(__m256i u, __m256i s, __m256i scale) {
#if GR_QUANT_VNNI
  return _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), scale);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale);
#endif
}

// Lane r of the result = sum of the 8 lanes of t[r].
inline __m256i ReduceRows(__m256i t0, __m256i t1, __m256i t2, __m256i t3, __m256i t4, __m256i t5,
                          __m256i t6, __m256i t7) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(t0, t1), _mm256_hadd_epi32(t2, t3));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(t4, t5), _mm256_hadd_epi32(t6, t7));
  // a = [r0..r3 low halves | r0..r3 high halves], b likewise for r4..r7.
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

inline float HalfToFloat(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return _cvtsh_ss(bits);
}

inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of nibbles -> 32 bytes: low nibbles (weights 0..15), then high (16..31).
inline __m256i UnpackNibbles16(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit i of `bits` -> 0x10 in byte i.
inline __m256i BitsTo0x10(uint32_t bits) {
#if GR_QUANT_VNNI
  return _mm256_maskz_mov_epi8(static_cast<__mmask32>(bits), _mm256_set1_epi8(0x10));
#else
  // ref: ggml-cpu/arch/x86/quants.c bytes_from_bits_32
  const __m256i shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_and_si256(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
#endif
}

// Per-format traits. Load() unpacks blocks [0, nb) of group g (256 weights) of
// one row into w[0..nb) as bytes, unsigned with kOffset subtracted later (Q8_0
// on AVX2: signed, kSigned). Pack* / decode read the scales as described there.
struct Q8_0Format {
  static constexpr int kOffset = GR_QUANT_Q8_OFFSET;
  static constexpr bool kSigned = GR_QUANT_Q8_OFFSET == 0;
  static constexpr bool kMin = false, kScale16 = false, kHalfScales = true;
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t nb, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    for (size_t j = 0; j < nb; ++j, block += kBlockBytes) {
      w[j] = Load256(block + 2);
      if (kOffset) w[j] = _mm256_xor_si256(w[j], _mm256_set1_epi8(static_cast<char>(0x80)));
    }
  }
};

struct Q4_0Format {
  static constexpr int kOffset = 8;
  static constexpr bool kSigned = false, kMin = false, kScale16 = false, kHalfScales = true;
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t nb, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    for (size_t j = 0; j < nb; ++j, block += kBlockBytes) w[j] = UnpackNibbles16(block + 2);
  }
};

struct Q5_0Format {
  static constexpr int kOffset = 16;
  static constexpr bool kSigned = false, kMin = false, kScale16 = false, kHalfScales = true;
  static constexpr size_t kBlockBytes = sizeof(BlockQ5_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t nb, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    for (size_t j = 0; j < nb; ++j, block += kBlockBytes) {
      uint32_t high;
      std::memcpy(&high, block + 2, sizeof(high));
      w[j] = _mm256_or_si256(UnpackNibbles16(block + 6), BitsTo0x10(high));
    }
  }
};

// ref: ggml/src/ggml-quants.c dequantize_row_q4_K: block j (32 weights) is
// d * scale_j * q - dmin * min_j; the 128 bytes hold 4 chunks of 32 whose low
// nibbles are block 2c and high nibbles block 2c + 1.
struct Q4_KFormat {
  static constexpr int kOffset = 0;
  static constexpr bool kSigned = false, kMin = true, kScale16 = false, kHalfScales = false;
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_K), kGroupBytes = kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t, __m256i* w) {
    const uint8_t* qs = row + g * kGroupBytes + 16;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (size_t c = 0; c < 4; ++c) {
      const __m256i v = Load256(qs + 32 * c);
      w[2 * c] = _mm256_and_si256(v, low4);
      w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
  }
  // The 8 6-bit scales (bytes 0-7) and mins (8-15) of a super-block, as
  // ggml's vec_dot_q4_K_q8_K unpacks them (ref: kmask1..3 there).
  static HWY_INLINE __m128i ScalesAndMins(const uint8_t* block) {
    uint32_t u[4];
    std::memcpy(u, block + 4, 12);
    constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
    u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
    const uint32_t mins_low = u[1] & kMask1;
    u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
    u[2] = mins_low;
    u[0] &= kMask1;
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
  }
};

// ref: ggml/src/ggml-quants.c dequantize_row_q6_K: weight i of block j (32
// weights) is d * scales[2j + i/16] * (q - 32), q = 4 low bits from ql and 2
// high bits from qh; see DequantizeQ6_K in tensor/quant.cc for the bit layout.
struct Q6_KFormat {
  static constexpr int kOffset = 32;
  static constexpr bool kSigned = false, kMin = false, kScale16 = true, kHalfScales = false;
  static constexpr size_t kBlockBytes = sizeof(BlockQ6_K), kGroupBytes = kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = block + 64 * half;
      const __m256i ql0 = Load256(ql), ql1 = Load256(ql + 32);
      const __m256i qh = Load256(block + 128 + 32 * half);
      w[4 * half + 0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
      w[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
      w[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
      w[4 * half + 3] =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
    }
  }
};

template <class Format>
HWY_INLINE __m256i BlockDot(__m256i w, __m256i x) {
  if constexpr (Format::kSigned) {
    return DotU8S8(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
  } else {
    return DotU8S8(w, x);
  }
}

// Sum of each block's 32 codes, for blocks [0, 8) of a group: pairs of sums16.
HWY_INLINE __m256i BlockSums(const int16_t* sums16) {
  return _mm256_madd_epi16(Load256(sums16), _mm256_set1_epi16(1));
}

// ---------------------------------------------------------------- decode
// One token: each row is swept alone from start to end (one sequential stream
// per thread, which the hardware prefetchers follow best), 8 blocks at a time;
// the vector of those 8 blocks' integer sums takes the 8 blocks' scales at once.

// The activation side of a group of 8 blocks.
struct GroupActs {
  const int8_t* qs;
  const float* scales;
  const float* scaled_sums;
  const int16_t* sums16;
};

// acc (8 lanes, one per block) += blocks [0, nb) of group g of `row` times x.
// ws16: the group's 8 f16 weight scales (formats with kHalfScales).
template <class Format>
HWY_INLINE __m256 DecodeGroup(const uint8_t* row, size_t g, size_t nb, const GroupActs& x, const uint16_t* ws16,
                              __m256 acc) {
  __m256i w[kGroup], t[kGroup];
  Format::Load(row, g, nb, w);
  for (size_t j = 0; j < kGroup; ++j) {
    t[j] = j < nb ? BlockDot<Format>(w[j], Load256(x.qs + 32 * j)) : _mm256_setzero_si256();
  }
  __m256i sum;
  const uint8_t* block = row + g * Format::kGroupBytes;
  if constexpr (Format::kScale16) {
    // Stop the reduction at 16-weight halves, which is where Q6_K's integer
    // scales apply: a = [first halves of blocks 0-3 | second halves of 0-3],
    // b likewise for blocks 4-7.
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(t[4], t[5]), _mm256_hadd_epi32(t[6], t[7]));
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 192));
    const __m128i even_odd_a = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i even_odd_b = _mm_setr_epi8(8, 10, 12, 14, 9, 11, 13, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i sa = _mm256_mullo_epi32(a, _mm256_cvtepi8_epi32(_mm_shuffle_epi8(sc, even_odd_a)));
    const __m256i sb = _mm256_mullo_epi32(b, _mm256_cvtepi8_epi32(_mm_shuffle_epi8(sc, even_odd_b)));
    sum = _mm256_add_epi32(_mm256_permute2x128_si256(sa, sb, 0x20), _mm256_permute2x128_si256(sa, sb, 0x31));
    // sum_i sc_i (q_i - 32) x_i: remove 32 * (sc_a * S_a + sc_b * S_b) per block.
    const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), Load256(x.sums16));
    sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(corr, 5));
  } else {
    sum = ReduceRows(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
    if constexpr (Format::kOffset != 0) {
      // kOffset is a power of two.
      sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(BlockSums(x.sums16), __builtin_ctz(Format::kOffset)));
    }
  }
  const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(x.scales));
  if constexpr (Format::kHalfScales) {
    return _mm256_fmadd_ps(scaled, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws16))), acc);
  } else if constexpr (Format::kMin) {
    const __m128i scales_mins = Q4_KFormat::ScalesAndMins(block);
    const __m256 scales = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(scales_mins));
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(scales_mins, 8)));
    acc = _mm256_fmadd_ps(scaled, _mm256_mul_ps(_mm256_set1_ps(HalfToFloat(block)), scales), acc);
    return _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(HalfToFloat(block + 2)), mins),
                            _mm256_loadu_ps(x.scaled_sums), acc);
  } else {
    return _mm256_fmadd_ps(scaled, _mm256_set1_ps(HalfToFloat(block + 208)), acc);
  }
}

inline float SumLanes(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class Format>
void DecodeTile(const QuantTile& tile) {
  const QuantizedActivations& acts = *tile.acts;
  const size_t token = tile.token_begin;
  const size_t begin_block = tile.k_begin / 32, end_block = tile.k_end / 32;
  const size_t full_end = begin_block + (end_block - begin_block) / kGroup * kGroup;
  auto group_acts = [&](size_t block) {
    return GroupActs{acts.qs(token) + 32 * block, acts.scales(token) + block, acts.scaled_sums(token) + block,
                     acts.sums16(token) + 2 * block};
  };
  // The last group of a row may be short (Q8_0/Q4_0/Q5_0): its activation
  // vectors come from zero-padded copies so that no load runs past the data.
  const size_t tail = end_block - full_end;
  alignas(32) float tail_scales[kGroup] = {}, tail_scaled_sums[kGroup] = {};
  alignas(32) int16_t tail_sums16[2 * kGroup] = {};
  GroupActs tail_acts = group_acts(full_end);
  if (tail > 0) {
    std::memcpy(tail_scales, tail_acts.scales, tail * sizeof(float));
    std::memcpy(tail_scaled_sums, tail_acts.scaled_sums, tail * sizeof(float));
    std::memcpy(tail_sums16, tail_acts.sums16, 2 * tail * sizeof(int16_t));
    tail_acts = GroupActs{tail_acts.qs, tail_scales, tail_scaled_sums, tail_sums16};
  }
  // kHalfScales: the f16 scales of a segment of blocks are gathered one segment
  // ahead of their use. The scalar stores have retired by the time the vector
  // loads read them (a load spanning several queued stores cannot be forwarded),
  // and the pass pulls the segment's cache lines in early.
  constexpr size_t kSegment = 8 * kGroup;
  alignas(32) uint16_t ws16[2][kSegment + kGroup];
  auto gather_scales = [&](const uint8_t* row, size_t first, uint16_t* dst) {
    const size_t count = std::min(kSegment, end_block - first);
    const uint8_t* block = row + first * Format::kBlockBytes;
    for (size_t i = 0; i < count; ++i, block += Format::kBlockBytes) std::memcpy(dst + i, block, sizeof(uint16_t));
    for (size_t i = count; i < (count + kGroup - 1) / kGroup * kGroup; ++i) dst[i] = 0;
  };
  float* out = tile.out + token * tile.out_stride + tile.row_begin;
  for (size_t r = 0; r < tile.rows; ++r) {
    const uint8_t* row = tile.w + (tile.row_begin + r) * tile.w_row_bytes;
    __m256 acc = _mm256_setzero_ps();
    if constexpr (Format::kHalfScales) {
      gather_scales(row, begin_block, ws16[0]);
      for (size_t seg = begin_block, i = 0; seg < end_block; seg += kSegment, ++i) {
        if (seg + kSegment < end_block) gather_scales(row, seg + kSegment, ws16[(i + 1) % 2]);
        const size_t seg_end = std::min(end_block, seg + kSegment);
        for (size_t block = seg; block < seg_end; block += kGroup) {
          const uint16_t* scales = ws16[i % 2] + (block - seg);
          if (block < full_end) {
            acc = DecodeGroup<Format>(row, block / kGroup, kGroup, group_acts(block), scales, acc);
          } else {
            acc = DecodeGroup<Format>(row, block / kGroup, tail, tail_acts, scales, acc);
          }
        }
      }
    } else {
      for (size_t block = begin_block; block < end_block; block += kGroup) {
        acc = DecodeGroup<Format>(row, block / kGroup, kGroup, group_acts(block), nullptr, acc);
      }
    }
    const float sum = SumLanes(acc);
    if (tile.accumulate) {
      out[r] += sum;
    } else {
      out[r] = sum + (tile.bias ? tile.bias[tile.row_begin + r] : 0.0f);
    }
  }
}

// ---------------------------------------------------------------- prefill
// Several tokens: a group is unpacked for the 8 rows of a tile once (Pack), then
// every token of the block runs over it; per block, the 8 rows' integer sums
// form one vector that takes the 8 rows' scales at once, and the result is a
// vector of 8 adjacent outputs.

// One group of up to 8 blocks, unpacked for the 8 rows of a tile.
struct alignas(64) Packed {
  uint8_t q[kGroup][kRows][32];    // [block][row]: weight bytes as Load() returns them
  float ws[kGroup][kRows];         // weight scale per block and row (K-quants)
  uint16_t ws16[kGroup][kRows];    // the same as stored f16 bits (Q8_0, Q4_0, Q5_0)
  float wm[kGroup][kRows];         // Q4_K: dmin * min, subtracted per unit of activation
  int32_t sc[kGroup][kRows][8];    // Q6_K: lane scales for DotU8S8Scaled
  int32_t sc_pair[kGroup][kRows];  // Q6_K: the two 16-weight scales as int16 (low, high)
};

template <class Format>
void Pack(const uint8_t* const* rows, size_t g, size_t nb, Packed& p) {
  for (size_t r = 0; r < kRows; ++r) {
    __m256i w[kGroup];
    Format::Load(rows[r], g, nb, w);
    for (size_t j = 0; j < nb; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(p.q[j][r]), w[j]);
    const uint8_t* block = rows[r] + g * Format::kGroupBytes;
    if constexpr (Format::kHalfScales) {
      for (size_t j = 0; j < nb; ++j) std::memcpy(&p.ws16[j][r], block + j * Format::kBlockBytes, sizeof(uint16_t));
    } else if constexpr (Format::kMin) {
      const float d = HalfToFloat(block), dmin = HalfToFloat(block + 2);
      for (int j = 0; j < 8; ++j) {
        uint8_t scale, min;
        Q4KScaleMin(j, block + 4, &scale, &min);
        p.ws[j][r] = d * scale;
        p.wm[j][r] = dmin * min;
      }
    } else {
      const float d = HalfToFloat(block + 208);
      const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
      for (int j = 0; j < 8; ++j) {
        p.ws[j][r] = d;
        const int a = sc[2 * j], b = sc[2 * j + 1];
#if GR_QUANT_VNNI
        for (int lane = 0; lane < 8; ++lane) p.sc[j][r][lane] = lane < 4 ? a : b;
#else
        const int32_t pa = (a & 0xFFFF) | (a << 16), pb = (b & 0xFFFF) | (b << 16);
        for (int lane = 0; lane < 8; ++lane) p.sc[j][r][lane] = lane < 4 ? pa : pb;
#endif
        p.sc_pair[j][r] = static_cast<int32_t>((a & 0xFFFF) | (static_cast<uint32_t>(b) << 16));
      }
    }
  }
}

template <class Format>
HWY_INLINE __m256i RowDot(const Packed& p, size_t j, size_t r, __m256i x) {
  const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[j][r]));
  if constexpr (Format::kScale16) {
    return DotU8S8Scaled(q, x, _mm256_load_si256(reinterpret_cast<const __m256i*>(p.sc[j][r])));
  } else {
    return BlockDot<Format>(q, x);
  }
}

// acc (8 rows of token t) += the nb blocks of `p` times the token's blocks
// starting at `block0`.
template <class Format>
inline __m256 Compute(const Packed& p, size_t nb, const QuantizedActivations& acts, size_t t, size_t block0,
                      __m256 acc) {
  const int8_t* xq = acts.qs(t) + block0 * 32;
  const float* xs = acts.scales(t) + block0;
  const float* xds = acts.scaled_sums(t) + block0;
  const int16_t* s16 = acts.sums16(t) + 2 * block0;
  for (size_t j = 0; j < nb; ++j) {
    const __m256i x = Load256(xq + 32 * j);
    __m256i sum = ReduceRows(RowDot<Format>(p, j, 0, x), RowDot<Format>(p, j, 1, x), RowDot<Format>(p, j, 2, x),
                             RowDot<Format>(p, j, 3, x), RowDot<Format>(p, j, 4, x), RowDot<Format>(p, j, 5, x),
                             RowDot<Format>(p, j, 6, x), RowDot<Format>(p, j, 7, x));
    if constexpr (Format::kScale16) {
      // sum_i sc_i (q_i - 32) x_i = sum_i sc_i q_i x_i - 32 (sc_a S_a + sc_b S_b) per row.
      int32_t pair;
      std::memcpy(&pair, s16 + 2 * j, sizeof(pair));
      const __m256i corr = _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p.sc_pair[j])),
                                             _mm256_set1_epi32(pair));
      sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(corr, 5));
    } else if constexpr (Format::kOffset != 0) {
      const int block_sum = s16[2 * j] + s16[2 * j + 1];
      sum = _mm256_sub_epi32(sum, _mm256_set1_epi32(Format::kOffset * block_sum));
    }
    const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(xs[j]));
    const __m256 ws = Format::kHalfScales
                          ? _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p.ws16[j])))
                          : _mm256_load_ps(p.ws[j]);
    acc = _mm256_fmadd_ps(scaled, ws, acc);
    if constexpr (Format::kMin) acc = _mm256_fnmadd_ps(_mm256_load_ps(p.wm[j]), _mm256_set1_ps(xds[j]), acc);
  }
  return acc;
}

template <class Format>
void TileImpl(const QuantTile& tile, float* scratch) {
  if (tile.num_tokens == 1) return DecodeTile<Format>(tile);
  const uint8_t* rows[kRows];
  for (size_t r = 0; r < kRows; ++r) {
    // Missing rows of a partial tile repeat the last one; their lanes are dropped.
    rows[r] = tile.w + (tile.row_begin + std::min(r, tile.rows - 1)) * tile.w_row_bytes;
  }
  for (size_t t = 0; t < tile.num_tokens; ++t) _mm256_storeu_ps(scratch + t * kRows, _mm256_setzero_ps());
  // Two buffers: group g + 1 is unpacked before group g is used, so the scalar
  // stores of its scales have long left the store queue when vector loads read
  // them (a load that spans several pending stores cannot be forwarded and waits).
  Packed packed[2];
  const size_t begin_block = tile.k_begin / 32, end_block = tile.k_end / 32;
  auto pack = [&](size_t block, Packed& p) { Pack<Format>(rows, block / kGroup, std::min(kGroup, end_block - block), p); };
  pack(begin_block, packed[0]);
  for (size_t block = begin_block, i = 0; block < end_block; block += kGroup, ++i) {
    if (block + kGroup < end_block) pack(block + kGroup, packed[(i + 1) % 2]);
    const Packed& p = packed[i % 2];
    const size_t nb = std::min(kGroup, end_block - block);
    for (size_t t = 0; t < tile.num_tokens; ++t) {
      float* acc = scratch + t * kRows;
      _mm256_storeu_ps(acc, Compute<Format>(p, nb, *tile.acts, tile.token_begin + t, block, _mm256_loadu_ps(acc)));
    }
  }
  StoreTile(tile, scratch);
}

inline int32_t SumLanes(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

// QuantizeActivationsQ8 (tensor/quant.cc) with the same IEEE operations in the
// same order per value, so the codes and scales are bit-identical (the kernel
// tests check it): max|x| (a NaN never wins: maxps returns its second operand),
// 127 / max, x * that, clamp (NaN -> -127 as fmax/fmin), round to nearest even.
void QuantizeActivations(const float* x, size_t k, int8_t* qs, float* scales, float* scaled_sums,
                         int16_t* sums16) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (size_t b = 0; b < k / 32; ++b) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
      amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), amax);
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float a = _mm_cvtss_f32(m);
    scales[b] = a / 127.0f;
    const __m256 id = _mm256_set1_ps(a > 0.0f ? 127.0f / a : 0.0f);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      q[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi));
    }
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * b), _mm256_permutevar8x32_epi32(packed, order));
    const int32_t first = SumLanes(_mm256_add_epi32(q[0], q[1]));
    const int32_t second = SumLanes(_mm256_add_epi32(q[2], q[3]));
    sums16[2 * b] = static_cast<int16_t>(first);
    sums16[2 * b + 1] = static_cast<int16_t>(second);
    scaled_sums[b] = scales[b] * static_cast<float>(first + second);
  }
}

void Tile(const QuantTile& tile, float* scratch) {
  switch (tile.type) {
    case DType::kQ8_0: return TileImpl<Q8_0Format>(tile, scratch);
    case DType::kQ4_0: return TileImpl<Q4_0Format>(tile, scratch);
    case DType::kQ5_0: return TileImpl<Q5_0Format>(tile, scratch);
    case DType::kQ4_K: return TileImpl<Q4_KFormat>(tile, scratch);
    case DType::kQ6_K: return TileImpl<Q6_KFormat>(tile, scratch);
    default: GR_CHECK(false) << "integer matmul: " << Name(tile.type);
  }
}

#undef GR_QUANT_Q8_OFFSET

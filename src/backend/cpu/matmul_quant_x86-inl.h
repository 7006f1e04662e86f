// The x86 integer kernels, written once and compiled three times by
// matmul_quant_x86.cc: for AVX2 (GR_QUANT_VNNI 0) and for AVX-512 VNNI
// (GR_QUANT_VNNI 1) with and without VBMI (GR_QUANT_VBMI, only the Q4_0
// decode kernel needs it), each time inside its own namespace and target
// attributes. No include guard on purpose.
//
// Work comes in tiles of rows (16 on VNNI, 8 on AVX2) against a run of tokens,
// one group of 256 weights (8 blocks of 32) at a time, so that a vector holds
// the scales of 8 blocks (decode) or of the tile's rows (prefill). Decode (one
// token) sweeps each row alone; prefill unpacks a group for the tile's rows
// once and runs every token over it (see the two parts below). Both give a
// token's row sums bit for bit alike (batch invariance, see QuantTile).
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

constexpr size_t kGroup = 8;              // blocks of 32 per group (256 weights)

// Unsigned x signed bytes: 4 products summed into each of the 8 int32 lanes.
inline __m256i DotU8S8(__m256i u, __m256i s) {
#if GR_QUANT_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
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
  static constexpr bool kMin = false, kScale16 = false, kHalfScales = true, kPairs = false;
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t nb, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    for (size_t j = 0; j < nb; ++j, block += kBlockBytes) {
      w[j] = Load256(block + 2);
      if (kOffset) w[j] = _mm256_xor_si256(w[j], _mm256_set1_epi8(static_cast<char>(0x80)));
    }
  }
};

// Two blocks' 16 bytes of nibbles -> their low nibbles (weights 0..15 of block
// 0, then of block 1) and their high nibbles (weights 16..31 of each): 4 ops
// for 64 weights, against the activations in QuantizedActivations::qs_quads order.
inline void UnpackNibblePair(const uint8_t* first, const uint8_t* second, __m256i* low, __m256i* high) {
  const __m256i v = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(second), reinterpret_cast<const __m128i*>(first));
  *low = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
  *high = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

struct Q4_0Format {
  static constexpr int kOffset = 8;
  static constexpr bool kSigned = false, kMin = false, kScale16 = false, kHalfScales = true, kPairs = true;
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void Load(const uint8_t* row, size_t g, size_t nb, __m256i* w) {
    const uint8_t* block = row + g * kGroupBytes;
    for (size_t j = 0; j < nb; ++j, block += kBlockBytes) w[j] = UnpackNibbles16(block + 2);
  }
  // Blocks 2p and 2p + 1 of a group, split as UnpackNibblePair does.
  static HWY_INLINE void LoadPair(const uint8_t* group, size_t p, __m256i* low, __m256i* high) {
    const uint8_t* block = group + 2 * p * kBlockBytes;
    UnpackNibblePair(block + 2, block + kBlockBytes + 2, low, high);
  }
};

struct Q5_0Format {
  static constexpr int kOffset = 16;
  static constexpr bool kSigned = false, kMin = false, kScale16 = false, kHalfScales = true, kPairs = true;
  static constexpr size_t kBlockBytes = sizeof(BlockQ5_0), kGroupBytes = kGroup * kBlockBytes;
  static HWY_INLINE void LoadPair(const uint8_t* group, size_t p, __m256i* low, __m256i* high) {
    const uint8_t* block = group + 2 * p * kBlockBytes;
    UnpackNibblePair(block + 6, block + kBlockBytes + 6, low, high);
    uint32_t h0, h1;
    std::memcpy(&h0, block + 2, sizeof(h0));
    std::memcpy(&h1, block + kBlockBytes + 2, sizeof(h1));
    *low = _mm256_or_si256(*low, BitsTo0x10((h0 & 0xFFFF) | (h1 << 16)));
    *high = _mm256_or_si256(*high, BitsTo0x10((h0 >> 16) | (h1 & 0xFFFF0000u)));
  }
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
  static constexpr bool kSigned = false, kMin = true, kScale16 = false, kHalfScales = false, kPairs = false;
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
  static constexpr bool kSigned = false, kMin = false, kScale16 = true, kHalfScales = false, kPairs = false;
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

// ---------------------------------------------------------------- decode
// One token: each row is swept alone from start to end (one sequential stream
// per thread, which the hardware prefetchers follow best), 8 blocks at a time;
// the vector of those 8 blocks' integer sums takes the 8 blocks' scales at once.

// The activation side of a group of 8 blocks.
struct GroupActs {
  const int8_t* qs;
  const int8_t* qs_quads;
  const float* scales;
  const float* scaled_sums;
  const int16_t* sums16;
  const int32_t* neg_sums;
};

// The f16 scales of blocks [0, nb) of a 32-block format's group, as f32.
// Scalar loads inserted into a vector measured faster here than vpgatherdd
// (Zen 4) and than a scalar pre-pass per row (which costs as much as a short row).
template <class Format>
HWY_INLINE __m256 HalfScales(const uint8_t* group, size_t nb) {
  uint16_t h[kGroup] = {};
  for (size_t j = 0; j < nb; ++j) std::memcpy(&h[j], group + j * Format::kBlockBytes, 2);
  const __m128i halves = _mm_setr_epi16(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
  return _mm256_cvtph_ps(halves);
}

// acc (8 lanes, one per block) += blocks [0, nb) of group g of `row` times x.
// nb is a template argument so that a short last group is straight-line code too.
template <class Format, size_t nb = kGroup>
HWY_INLINE __m256 DecodeGroup(const uint8_t* row, size_t g, const GroupActs& x, __m256 acc) {
  __m256i sum;
  const uint8_t* block = row + g * Format::kGroupBytes;
  if constexpr (Format::kPairs && nb == kGroup) {
    // 4-bit formats, a whole group: blocks in pairs (UnpackNibblePair), each
    // pair's two halves accumulated into one vector whose lanes 0-3 belong to
    // the first block and 4-7 to the second. Three hadds leave the 8 block sums
    // in the order 0 2 4 6 1 3 5 7, which one permute restores.
    __m256i t[kGroup / 2];
    for (size_t p = 0; p < kGroup / 2; ++p) {
      __m256i low, high;
      Format::LoadPair(block, p, &low, &high);
      // Pair p's codes 0-15 sit in quarter p % 2 of its quad's first half,
      // codes 16-31 in the same quarter of the second half.
      const int8_t* codes = x.qs_quads + 128 * (p / 2) + 32 * (p % 2);
      t[p] = DotU8S8(low, Load256(codes));
#if GR_QUANT_VNNI
      t[p] = _mm256_dpbusd_epi32(t[p], high, Load256(codes + 64));
#else
      t[p] = _mm256_add_epi32(t[p], DotU8S8(high, Load256(codes + 64)));
#endif
    }
    const __m256i mixed = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    sum = _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    sum = _mm256_add_epi32(sum, _mm256_slli_epi32(Load256(x.neg_sums), __builtin_ctz(Format::kOffset)));
  } else if constexpr (Format::kScale16) {
    __m256i w[kGroup], t[kGroup];
    Format::Load(row, g, nb, w);
    for (size_t j = 0; j < kGroup; ++j) t[j] = BlockDot<Format>(w[j], Load256(x.qs + 32 * j));
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
    __m256i w[kGroup], t[kGroup];
    Format::Load(row, g, nb, w);
    for (size_t j = 0; j < kGroup; ++j) {
      t[j] = j < nb ? BlockDot<Format>(w[j], Load256(x.qs + 32 * j)) : _mm256_setzero_si256();
    }
    sum = ReduceRows(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
    if constexpr (Format::kOffset != 0) {
      // kOffset is a power of two.
      sum = _mm256_add_epi32(sum, _mm256_slli_epi32(Load256(x.neg_sums), __builtin_ctz(Format::kOffset)));
    }
  }
  const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(x.scales));
  if constexpr (Format::kHalfScales) {
    return _mm256_fmadd_ps(scaled, HalfScales<Format>(block, nb), acc);
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

constexpr size_t kPrefetchDistance = 8192;  // bytes; see DecodeTile

// Fetches the group kPrefetchDistance bytes ahead of `group` into L2.
template <size_t kGroupBytes>
HWY_INLINE void PrefetchAhead(const uint8_t* group) {
  for (size_t i = 0; i < kGroupBytes; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(group + kPrefetchDistance + i), _MM_HINT_T1);
  }
}

#if GR_QUANT_VBMI
// Q4_0 decode of whole groups, 512 bits at a time. DecodeGroup works in
// 256-bit halves and gathers the 8 f16 scales one by one, which held one
// thread to ~23 GB/s, under the memory's pace. Here two byte permutes (VBMI)
// compact the 8 blocks' nibbles (16 of every 18 bytes) into two vectors of 4
// blocks, which line up with qs_quads, and one word permute gathers the 8
// scales. The block sums then take DecodeGroup's exact arithmetic (lane j =
// block j, the same integer sums, scaled and accumulated alike), so this path
// gives the very bits of the others (batch invariance, see QuantTile).
struct Q4_0WideIndices {
  alignas(64) uint8_t nibbles[2][64];  // vpermt2b: blocks 0-3 from bytes [0, 128), 4-7 from [64, 128) + [80, 144)
  alignas(64) uint16_t scales[32];     // vpermt2w over bytes [0, 128): word 9j is block j's scale
  constexpr Q4_0WideIndices() : nibbles{}, scales{} {
    for (int j = 0; j < 8; ++j) {
      for (int i = 0; i < 16; ++i) {
        const int byte = 18 * j + 2 + i;  // within the group
        const int index = j < 4 ? byte : (byte < 128 ? byte - 64 : 64 + byte - 80);
        nibbles[j / 4][16 * (j % 4) + i] = static_cast<uint8_t>(index);
      }
      scales[j] = static_cast<uint16_t>(9 * j);
    }
  }
};
inline constexpr Q4_0WideIndices kQ4_0Wide{};

// acc (lane j = block j of each group) += groups [group_begin, group_end) of a
// Q4_0 row times the activations x (starting at group_begin).
HWY_INLINE __m256 DecodeQ4_0Groups(const uint8_t* row, size_t group_begin, size_t group_end, const GroupActs& x,
                                   __m256 acc) {
  constexpr size_t kBytes = Q4_0Format::kGroupBytes;
  const __m512i nibbles0 = _mm512_load_si512(kQ4_0Wide.nibbles[0]), nibbles1 = _mm512_load_si512(kQ4_0Wide.nibbles[1]);
  const __m512i scale_words = _mm512_load_si512(kQ4_0Wide.scales);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (size_t g = group_begin; g < group_end; ++g) {
    const uint8_t* group = row + g * kBytes;
    PrefetchAhead<kBytes>(group);
    const __m512i at0 = _mm512_loadu_si512(group), at64 = _mm512_loadu_si512(group + 64);
    const __m512i at80 = _mm512_loadu_si512(group + 80);
    const __m512i blocks0 = _mm512_permutex2var_epi8(at0, nibbles0, at64);
    const __m512i blocks1 = _mm512_permutex2var_epi8(at64, nibbles1, at80);
    const __m128i halves = _mm512_castsi512_si128(_mm512_permutex2var_epi16(at0, scale_words, at64));

    const size_t i = g - group_begin;
    const int8_t* codes = x.qs_quads + 256 * i;
    // 128-bit lane b of sum0 (sum1) holds block b's (4 + b's) partial sums.
    __m512i sum0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(blocks0, low4), _mm512_loadu_si512(codes));
    sum0 = _mm512_dpbusd_epi32(sum0, _mm512_and_si512(_mm512_srli_epi16(blocks0, 4), low4), _mm512_loadu_si512(codes + 64));
    __m512i sum1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(blocks1, low4), _mm512_loadu_si512(codes + 128));
    sum1 = _mm512_dpbusd_epi32(sum1, _mm512_and_si512(_mm512_srli_epi16(blocks1, 4), low4), _mm512_loadu_si512(codes + 192));
    // Two hadd levels leave the block sums in the order 0 2 4 6 1 3 5 7.
    const __m256i h0 = _mm256_hadd_epi32(_mm512_castsi512_si256(sum0), _mm512_extracti64x4_epi64(sum0, 1));
    const __m256i h1 = _mm256_hadd_epi32(_mm512_castsi512_si256(sum1), _mm512_extracti64x4_epi64(sum1, 1));
    const __m256i mixed = _mm256_hadd_epi32(h0, h1);
    __m256i sum = _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    sum = _mm256_add_epi32(sum, _mm256_slli_epi32(Load256(x.neg_sums + 8 * i), 3));  // q - 8
    const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(x.scales + 8 * i));
    acc = _mm256_fmadd_ps(scaled, _mm256_cvtph_ps(halves), acc);
  }
  return acc;
}
#endif

template <class Format>
void DecodeTile(const QuantTile& tile) {
  const QuantizedActivations& acts = *tile.acts;
  const size_t token = tile.token_begin;
  const size_t begin_block = tile.k_begin / 32, end_block = tile.k_end / 32;
  const size_t full_end = begin_block + (end_block - begin_block) / kGroup * kGroup;
  auto group_acts = [&](size_t block) {
    return GroupActs{acts.qs(token) + 32 * block, acts.qs_quads(token) + 32 * block, acts.scales(token) + block,
                     acts.scaled_sums(token) + block, acts.sums16(token) + 2 * block, acts.neg_sums(token) + block};
  };
  // The last group of a row may be short (Q8_0/Q4_0/Q5_0): its activation
  // vectors come from zero-padded copies so that no load runs past the data.
  const size_t tail = end_block - full_end;
  alignas(32) float tail_scales[kGroup] = {}, tail_scaled_sums[kGroup] = {};
  alignas(32) int16_t tail_sums16[2 * kGroup] = {};
  alignas(32) int32_t tail_neg_sums[kGroup] = {};
  GroupActs tail_acts = group_acts(full_end);
  if (tail > 0) {
    std::memcpy(tail_scales, tail_acts.scales, tail * sizeof(float));
    std::memcpy(tail_scaled_sums, tail_acts.scaled_sums, tail * sizeof(float));
    std::memcpy(tail_sums16, tail_acts.sums16, 2 * tail * sizeof(int16_t));
    std::memcpy(tail_neg_sums, tail_acts.neg_sums, tail * sizeof(int32_t));
    tail_acts = GroupActs{tail_acts.qs, nullptr, tail_scales, tail_scaled_sums, tail_sums16, tail_neg_sums};
  }
  float* out = tile.out + token * tile.out_stride + tile.row_begin;
  constexpr size_t kPieceBlocks = kQuantKChunk / 32;
  for (size_t r = 0; r < tile.rows; ++r) {
    const uint8_t* row = tile.w + (tile.row_begin + r) * tile.w_row_bytes;
    // The row's K pieces (see QuantTile) summed in order, as TileImpl's callers
    // add them to out: the first plus the bias, then each next one.
    float value = tile.accumulate ? out[r] : 0.0f;
    bool started = tile.accumulate;
    for (size_t piece = begin_block; piece < end_block;) {
      const size_t piece_end = std::min(end_block, (piece / kPieceBlocks + 1) * kPieceBlocks);
      const size_t piece_full_end = std::min(piece_end, full_end);
      __m256 acc = _mm256_setzero_ps();
      size_t block = piece;
#if GR_QUANT_VBMI
      if constexpr (std::is_same_v<Format, Q4_0Format>) {
        acc = DecodeQ4_0Groups(row, piece / kGroup, piece_full_end / kGroup, group_acts(piece), acc);
        block = piece_full_end;
      }
#endif
      for (; block < piece_full_end; block += kGroup) {
        // Fetch the weights kPrefetchDistance ahead into L2 (not L1: there the
        // stream evicts the activations, up to 16 KiB, that every row re-reads).
        // One thread, Gemma-2B down projection (K = 16384): 18 -> 26 GB/s (Q8_0),
        // 16 -> 24 (Q4_0) against non-temporal prefetch into L1 at 4 KiB; K = 2048
        // no worse. 4, 12 and 16 KiB ahead measured no better.
        PrefetchAhead<Format::kGroupBytes>(row + (block / kGroup) * Format::kGroupBytes);
        acc = DecodeGroup<Format>(row, block / kGroup, group_acts(block), acc);
      }
      if (piece_end == end_block) {
        const size_t g = block / kGroup;
        switch (tail) {  // only 32-block formats have one
          case 1: acc = DecodeGroup<Format, 1>(row, g, tail_acts, acc); break;
          case 2: acc = DecodeGroup<Format, 2>(row, g, tail_acts, acc); break;
          case 3: acc = DecodeGroup<Format, 3>(row, g, tail_acts, acc); break;
          case 4: acc = DecodeGroup<Format, 4>(row, g, tail_acts, acc); break;
          case 5: acc = DecodeGroup<Format, 5>(row, g, tail_acts, acc); break;
          case 6: acc = DecodeGroup<Format, 6>(row, g, tail_acts, acc); break;
          case 7: acc = DecodeGroup<Format, 7>(row, g, tail_acts, acc); break;
          default: break;
        }
      }
      const float sum = SumLanes(acc);
      value = started ? value + sum : sum + (tile.bias ? tile.bias[tile.row_begin + r] : 0.0f);
      started = true;
      piece = piece_end;
    }
    out[r] = value;
  }
}

// ---------------------------------------------------------------- prefill
// Several tokens against a tile of kRows rows. A group is unpacked once for
// the tile (Pack) into the interleaved layout of ggml's repacked GEMMs: vector
// k of block j holds weights 4k..4k+3 of every row of the tile, one row per
// int32 lane. vpdpbusd of that vector with the token's 4 activation bytes
// broadcast then adds each row's 4 products into its own lane, so 8 of them
// leave the block's row sums in one vector with no horizontal reduction, ready
// for the rows' scales. Each unpacked vector serves kTileTokens tokens from a
// register, and a group is unpacked once per block of up to 256 tokens (the
// unpacking is ~4% of the time there).

constexpr size_t kTileTokens = 4;

// The tile's vectors: one int32 / f32 lane per row. On VNNI a 512-bit vector
// (16 rows): vpdpbusd zmm does 64 products per instruction, which halves the
// instructions per product (the ymm form already issues at full rate, so the
// front end was the limit); AVX2 has 256 bits (8 rows).
#if GR_QUANT_VNNI
constexpr size_t kRows = 16;
using VecI = __m512i;
using VecF = __m512;
#define GR_VEC(op) _mm512_##op
HWY_INLINE VecI ZeroI() { return _mm512_setzero_si512(); }
HWY_INLINE VecI LoadI(const void* p) { return _mm512_load_si512(p); }
HWY_INLINE VecF HalvesToF(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p))); }
#else
constexpr size_t kRows = 8;
using VecI = __m256i;
using VecF = __m256;
#define GR_VEC(op) _mm256_##op
HWY_INLINE VecI ZeroI() { return _mm256_setzero_si256(); }
HWY_INLINE VecI LoadI(const void* p) { return _mm256_load_si256(static_cast<const __m256i*>(p)); }
HWY_INLINE VecF HalvesToF(const uint16_t* p) { return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p))); }
#endif
// The rest have the same name at both widths.
HWY_INLINE VecF ZeroF() { return GR_VEC(setzero_ps)(); }
HWY_INLINE VecI SetI(int32_t v) { return GR_VEC(set1_epi32)(v); }
HWY_INLINE VecF SetF(float v) { return GR_VEC(set1_ps)(v); }
HWY_INLINE VecF LoadF(const float* p) { return GR_VEC(load_ps)(p); }
HWY_INLINE VecF LoadUF(const float* p) { return GR_VEC(loadu_ps)(p); }
HWY_INLINE void StoreUF(float* p, VecF v) { GR_VEC(storeu_ps)(p, v); }
HWY_INLINE VecI AddI(VecI a, VecI b) { return GR_VEC(add_epi32)(a, b); }
HWY_INLINE VecI SubI(VecI a, VecI b) { return GR_VEC(sub_epi32)(a, b); }
HWY_INLINE VecI MulI(VecI a, VecI b) { return GR_VEC(mullo_epi32)(a, b); }
HWY_INLINE VecI MaddI16(VecI a, VecI b) { return GR_VEC(madd_epi16)(a, b); }
template <int kShift>
HWY_INLINE VecI ShiftLeftI(VecI a) { return GR_VEC(slli_epi32)(a, kShift); }
HWY_INLINE VecF ToF(VecI a) { return GR_VEC(cvtepi32_ps)(a); }
HWY_INLINE VecF MulF(VecF a, VecF b) { return GR_VEC(mul_ps)(a, b); }
HWY_INLINE VecF AddF(VecF a, VecF b) { return GR_VEC(add_ps)(a, b); }
HWY_INLINE VecF MulAddF(VecF a, VecF b, VecF c) { return GR_VEC(fmadd_ps)(a, b, c); }
HWY_INLINE VecF NegMulAddF(VecF a, VecF b, VecF c) { return GR_VEC(fnmadd_ps)(a, b, c); }
#undef GR_VEC

HWY_INLINE int32_t Load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// a += the 4 products per lane of w (unsigned bytes; Q8_0 on AVX2: signed)
// and the 4 activation bytes at x, broadcast.
template <class Format>
HWY_INLINE VecI Accumulate4(VecI a, VecI w, const int8_t* x) {
#if GR_QUANT_VNNI
  return _mm512_dpbusd_epi32(a, w, _mm512_set1_epi32(Load4(x)));
#else
  return _mm256_add_epi32(a, BlockDot<Format>(w, _mm256_set1_epi32(Load4(x))));
#endif
}

struct alignas(64) Packed {
  uint8_t q[kGroup][8][kRows][4];  // [block][4-weight chunk][row]: one vector per chunk
  float ws[kGroup][kRows];         // weight scale per block and row (K-quants)
  uint16_t ws16[kGroup][kRows];    // the same as stored f16 bits (Q8_0, Q4_0, Q5_0)
  float wm[kGroup][kRows];         // Q4_K: dmin * min, subtracted per unit of activation
  int32_t sc[2][kGroup][kRows];    // Q6_K: integer scale of weights 0-15 / 16-31
  int32_t sc_pair[kGroup][kRows];  // Q6_K: the two scales as int16 (low, high)
};

// 8x8 transpose of 32-bit elements: out[k] lane r = in[r] lane k.
HWY_INLINE void Transpose8x8(const __m256i* in, __m256i* out) {
  const __m256i t0 = _mm256_unpacklo_epi32(in[0], in[1]), t1 = _mm256_unpackhi_epi32(in[0], in[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(in[2], in[3]), t3 = _mm256_unpackhi_epi32(in[2], in[3]);
  const __m256i t4 = _mm256_unpacklo_epi32(in[4], in[5]), t5 = _mm256_unpackhi_epi32(in[4], in[5]);
  const __m256i t6 = _mm256_unpacklo_epi32(in[6], in[7]), t7 = _mm256_unpackhi_epi32(in[6], in[7]);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
  const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
  const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
  out[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
  out[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
  out[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
  out[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
  out[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
  out[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
  out[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
  out[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

template <class Format>
void Pack(const uint8_t* const* rows, size_t g, size_t nb, Packed& p) {
  alignas(32) __m256i row_major[kGroup][kRows];
  for (size_t r = 0; r < kRows; ++r) {
    __m256i w[kGroup];
    Format::Load(rows[r], g, nb, w);
    for (size_t j = 0; j < nb; ++j) row_major[j][r] = w[j];
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
        p.sc[0][j][r] = sc[2 * j];
        p.sc[1][j][r] = sc[2 * j + 1];
        p.sc_pair[j][r] = static_cast<int32_t>((sc[2 * j] & 0xFFFF) | (static_cast<uint32_t>(sc[2 * j + 1]) << 16));
      }
    }
  }
  for (size_t j = 0; j < nb; ++j) {
    for (size_t half = 0; half < kRows / 8; ++half) {
      __m256i chunks[8];
      Transpose8x8(row_major[j] + 8 * half, chunks);
      for (size_t k = 0; k < 8; ++k) _mm256_store_si256(reinterpret_cast<__m256i*>(p.q[j][k][8 * half]), chunks[k]);
    }
  }
}

// sums[(c * kGroup + j) * kRows + r] (row r of the tile, token t0 + c, block
// position j of every group) += blocks [0, kBlocks) of `p` times the tokens'
// blocks starting at `block0`. One partial sum per block position, as
// DecodeTile's lanes, so that a row's sum comes out in DecodeTile's order (see
// TileImpl); each is loaded and stored around its one update per group (an L1
// hit), which leaves the registers to the products.
template <class Format, size_t C, size_t kBlocks>
HWY_INLINE void Compute(const Packed& p, const QuantizedActivations& acts, size_t t0, size_t block0,
                        float* __restrict sums) {
  // The tokens' activation pointers, read once: the stores to `sums` would
  // otherwise make the compiler reload them from `acts` for every block.
  const int8_t* qs[C];
  const float *scales[C], *scaled_sums[C];
  const int16_t* sums16[C];
  const int32_t* neg_sums[C];
  for (size_t c = 0; c < C; ++c) {
    qs[c] = acts.qs(t0 + c) + 32 * block0;
    scales[c] = acts.scales(t0 + c) + block0;
    scaled_sums[c] = acts.scaled_sums(t0 + c) + block0;
    sums16[c] = acts.sums16(t0 + c) + 2 * block0;
    neg_sums[c] = acts.neg_sums(t0 + c) + block0;
  }
  for (size_t j = 0; j < kBlocks; ++j) {
    VecI w[8];
    for (size_t k = 0; k < 8; ++k) w[k] = LoadI(p.q[j][k]);
    const VecF ws = Format::kHalfScales ? HalvesToF(p.ws16[j]) : LoadF(p.ws[j]);
    for (size_t c = 0; c < C; ++c) {
      const int8_t* x = qs[c] + 32 * j;
      // Two chains (weights 0-15 and 16-31) halve the wait on vpdpbusd's latency.
      // An offset format starts from offset * (-sum x), exactly.
      VecI lo = ZeroI(), hi = ZeroI();
      if constexpr (!Format::kScale16 && Format::kOffset != 0) {
        lo = ShiftLeftI<__builtin_ctz(Format::kOffset)>(SetI(neg_sums[c][j]));
      }
      for (size_t k = 0; k < 4; ++k) {
        lo = Accumulate4<Format>(lo, w[k], x + 4 * k);
        hi = Accumulate4<Format>(hi, w[k + 4], x + 16 + 4 * k);
      }
      VecI sum;
      if constexpr (Format::kScale16) {
        sum = AddI(MulI(lo, LoadI(p.sc[0][j])), MulI(hi, LoadI(p.sc[1][j])));
        // sum_i sc_i (q_i - 32) x_i = sum_i sc_i q_i x_i - 32 (sc_a S_a + sc_b S_b) per row.
        int32_t pair;
        std::memcpy(&pair, sums16[c] + 2 * j, sizeof(pair));
        sum = SubI(sum, ShiftLeftI<5>(MaddI16(LoadI(p.sc_pair[j]), SetI(pair))));
      } else {
        sum = AddI(lo, hi);
      }
      float* partial = sums + (c * kGroup + j) * kRows;
      VecF a = MulAddF(MulF(ToF(sum), SetF(scales[c][j])), ws, LoadUF(partial));
      if constexpr (Format::kMin) a = NegMulAddF(LoadF(p.wm[j]), SetF(scaled_sums[c][j]), a);
      StoreUF(partial, a);
    }
  }
}

template <class Format, size_t C>
void ComputeTokens(const Packed& p, size_t nb, const QuantizedActivations& acts, size_t t0, size_t block0,
                   float* sums) {
  switch (nb) {  // a constant count, so that the block loop unrolls
    case 1: return Compute<Format, C, 1>(p, acts, t0, block0, sums);
    case 2: return Compute<Format, C, 2>(p, acts, t0, block0, sums);
    case 3: return Compute<Format, C, 3>(p, acts, t0, block0, sums);
    case 4: return Compute<Format, C, 4>(p, acts, t0, block0, sums);
    case 5: return Compute<Format, C, 5>(p, acts, t0, block0, sums);
    case 6: return Compute<Format, C, 6>(p, acts, t0, block0, sums);
    case 7: return Compute<Format, C, 7>(p, acts, t0, block0, sums);
    default: return Compute<Format, C, kGroup>(p, acts, t0, block0, sums);
  }
}

// Several tokens against a tile of kRows rows, over at most one K piece. A
// group is unpacked once for the tile (Pack) and every token runs over it. A
// token's sums come out bit for bit as DecodeTile's (the same integer block
// sums, the same float operations per block position, the same final
// reduction), so a sequence's logits do not depend on the batch it runs in.
template <class Format>
void TileImpl(const QuantTile& tile, float* scratch) {
  if (tile.num_tokens == 1) return DecodeTile<Format>(tile);
  if (tile.k_end - tile.k_begin > kQuantKChunk) {
    return ForEachKChunk(tile, [&](const QuantTile& piece) { TileImpl<Format>(piece, scratch); });
  }
  const uint8_t* rows[kRows];
  for (size_t r = 0; r < kRows; ++r) {
    // Missing rows of a partial tile repeat the last one; their lanes are dropped.
    rows[r] = tile.w + (tile.row_begin + std::min(r, tile.rows - 1)) * tile.w_row_bytes;
  }
  constexpr size_t kTokenFloats = kGroup * kRows;  // a token's partial sums
  std::memset(scratch, 0, tile.num_tokens * kTokenFloats * sizeof(float));
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
    size_t t = 0;
    for (; t + kTileTokens <= tile.num_tokens; t += kTileTokens) {
      ComputeTokens<Format, kTileTokens>(p, nb, *tile.acts, tile.token_begin + t, block, scratch + t * kTokenFloats);
    }
    for (; t < tile.num_tokens; ++t) {
      ComputeTokens<Format, 1>(p, nb, *tile.acts, tile.token_begin + t, block, scratch + t * kTokenFloats);
    }
  }
  // Each token's 8 partial sums, reduced in SumLanes' order:
  // ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)); into the token's first kRows floats.
  for (size_t t = 0; t < tile.num_tokens; ++t) {
    float* v = scratch + t * kTokenFloats;
    const auto at = [&](size_t j) { return LoadUF(v + j * kRows); };
    StoreUF(v, AddF(AddF(AddF(at(0), at(4)), AddF(at(2), at(6))), AddF(AddF(at(1), at(5)), AddF(at(3), at(7)))));
  }
  if (tile.rows < kRows) return StoreTile(tile, scratch, kTokenFloats);
  const VecF bias = tile.bias && !tile.accumulate ? LoadUF(tile.bias + tile.row_begin) : ZeroF();
  for (size_t t = 0; t < tile.num_tokens; ++t) {
    float* out = tile.out + (tile.token_begin + t) * tile.out_stride + tile.row_begin;
    const VecF sum = LoadUF(scratch + t * kTokenFloats);
    StoreUF(out, tile.accumulate ? AddF(LoadUF(out), sum) : AddF(sum, bias));
  }
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
                         int16_t* sums16, int32_t* neg_sums) {
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
    neg_sums[b] = -(first + second);
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

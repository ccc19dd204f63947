// A read-only view of one linear layer's weight matrix [n_out, n_in] in its native
// checkpoint format. Weights are never converted to fp32 copies: kernels read these
// bytes directly (they point into the memory-mapped checkpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

enum class WeightFormat : uint8_t {
  F32,           // float32 [n_out, n_in]
  BF16,          // bfloat16 [n_out, n_in]
  FP8_BLOCK128,  // e4m3 [n_out, n_in] + e8m0 scale [ceil(n_out/128), ceil(n_in/128)]
  FP4_BLOCK32,   // packed e2m1 [n_out, n_in/2] (low nibble = even column) + e8m0 scale [n_out, n_in/32]
};

const char* weight_format_name(WeightFormat f);

struct WeightView {
  WeightFormat format = WeightFormat::F32;
  int64_t n_out = 0;             // rows (output features)
  int64_t n_in = 0;              // columns (input features, the reduction dimension)
  const uint8_t* data = nullptr;
  const uint8_t* scale = nullptr;  // E8M0 bytes; null for F32/BF16
  // FP8 only: row 0 of this view is row `row_offset` of the stored tensor, whose scale
  // grid `scale` points at (lets a view start mid-block, e.g. one wo_a group).
  int64_t row_offset = 0;
  // FP8 only, optional: one bit per (stored row, 128-column block), bit (row * n_blocks +
  // block) of the stored tensor (row_offset applies, like the scale grid), set when every
  // code of the block in that row is a normal number: exponent field != 0 and not NaN
  // (fp8_normal_blocks). The AVX2 kernels decode with byte lookups, right for normal
  // codes, and decode the blocks without the bit again exactly; null: no flags, and the
  // kernels check every block as they decode it.
  const uint64_t* fp8_normal = nullptr;
  std::string name;              // checkpoint tensor name, for error messages and dumps

  // Bytes of one stored row of `data`.
  int64_t row_bytes() const;
  // Total bytes read by one full pass over the weight (data + scales).
  int64_t total_bytes() const;
  // Exact dequantisation of row r into out[0..n_in).
  void dequant_row(int64_t r, float* out) const;
  // Exact value of element (r, c). Slow; for tests and single lookups.
  float at(int64_t r, int64_t c) const;
};

// The fp8_normal bits of an FP8 weight whose view starts at its stored row 0 (row_offset
// 0): a word array of ceil(n_out * ceil(n_in / 128) / 64) words. Reads every code once.
std::vector<uint64_t> fp8_normal_blocks(const WeightView& w);
// Where the fp8_normal bit of (stored row, block) lies: bit i % 64 of word i / 64, for
// i = stored_row * ceil(n_in / 128) + block. Block b of a row is bit row_bit + b.
inline uint64_t fp8_normal_bit(const WeightView& w, int64_t stored_row, int64_t block) {
  return uint64_t(stored_row) * uint64_t((w.n_in + 127) / 128) + uint64_t(block);
}
inline bool fp8_normal_test(const uint64_t* bits, uint64_t i) { return (bits[i / 64] >> (i % 64)) & 1; }

// A row-range of w: rows [row0, row0+n_rows). Row 0 of the result is row row0 of w.
WeightView weight_rows(const WeightView& w, int64_t row0, int64_t n_rows);

}  // namespace dsv4

#include "core/weight.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv4 {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::FP8_BLOCK128: return "fp8_e4m3_block128";
    case WeightFormat::FP4_BLOCK32: return "fp4_e2m1_block32";
  }
  return "?";
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t WeightView::row_bytes() const {
  switch (format) {
    case WeightFormat::F32: return n_in * 4;
    case WeightFormat::BF16: return n_in * 2;
    case WeightFormat::FP8_BLOCK128: return n_in;
    case WeightFormat::FP4_BLOCK32: return n_in / 2;
  }
  return 0;
}

int64_t WeightView::total_bytes() const {
  int64_t bytes = row_bytes() * n_out;
  if (format == WeightFormat::FP8_BLOCK128) {
    const int64_t nb = ceil_div(n_in, 128);
    bytes += (ceil_div(row_offset + n_out, 128) - row_offset / 128) * nb;  // the scale rows
    if (fp8_normal != nullptr) bytes += 8 * (ceil_div((row_offset + n_out) * nb, 64) - row_offset * nb / 64);
  }
  if (format == WeightFormat::FP4_BLOCK32) bytes += n_out * (n_in / 32);
  return bytes;
}

// A code is normal unless its exponent field is 0 (zero, subnormals) or it is NaN
// (0x7F, 0xFF). The OR over a block's bytes vectorises.
std::vector<uint64_t> fp8_normal_blocks(const WeightView& w) {
  check(w.format == WeightFormat::FP8_BLOCK128 && w.row_offset == 0,
        "fp8_normal_blocks: " + w.name + " is not a whole FP8 tensor");
  const int64_t nb = ceil_div(w.n_in, 128);
  std::vector<uint64_t> bits(size_t(ceil_div(w.n_out * nb, 64)), 0);
  for (int64_t r = 0; r < w.n_out; ++r) {
    const uint8_t* row = w.data + r * w.n_in;
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t special = 0;
      for (int64_t c = b * 128; c < std::min(w.n_in, b * 128 + 128); ++c)
        special |= uint8_t(((row[c] & 0x78) == 0) | ((row[c] & 0x7F) == 0x7F));
      const uint64_t i = fp8_normal_bit(w, r, b);
      if (!special) bits[i / 64] |= uint64_t(1) << (i % 64);
    }
  }
  return bits;
}

void WeightView::dequant_row(int64_t r, float* out) const {
  assert(r >= 0 && r < n_out);
  const uint8_t* row = data + r * row_bytes();
  switch (format) {
    case WeightFormat::F32:
      std::memcpy(out, row, size_t(n_in) * 4);
      return;
    case WeightFormat::BF16:
      for (int64_t c = 0; c < n_in; ++c) out[c] = bf16_to_f32(load_u16(row + 2 * c));
      return;
    case WeightFormat::FP8_BLOCK128: {
      const uint8_t* srow = scale + ((r + row_offset) / 128) * ceil_div(n_in, 128);
      for (int64_t c = 0; c < n_in; ++c) out[c] = e4m3_to_f32(row[c]) * e8m0_to_f32(srow[c / 128]);
      return;
    }
    case WeightFormat::FP4_BLOCK32: {
      const uint8_t* srow = scale + r * (n_in / 32);
      for (int64_t c = 0; c < n_in; c += 2) {
        const float s = e8m0_to_f32(srow[c / 32]);
        out[c] = e2m1_to_f32(row[c / 2] & 0xF) * s;
        out[c + 1] = e2m1_to_f32(row[c / 2] >> 4) * s;
      }
      return;
    }
  }
}

float WeightView::at(int64_t r, int64_t c) const {
  const uint8_t* row = data + r * row_bytes();
  switch (format) {
    case WeightFormat::F32: return load_f32(row + 4 * c);
    case WeightFormat::BF16: return bf16_to_f32(load_u16(row + 2 * c));
    case WeightFormat::FP8_BLOCK128:
      return e4m3_to_f32(row[c]) * e8m0_to_f32(scale[((r + row_offset) / 128) * ceil_div(n_in, 128) + c / 128]);
    case WeightFormat::FP4_BLOCK32: {
      const uint8_t b = row[c / 2];
      return e2m1_to_f32((c & 1) ? (b >> 4) : (b & 0xF)) * e8m0_to_f32(scale[r * (n_in / 32) + c / 32]);
    }
  }
  return 0.0f;
}

WeightView weight_rows(const WeightView& w, int64_t row0, int64_t n_rows) {
  check(row0 >= 0 && n_rows >= 0 && row0 + n_rows <= w.n_out, "weight_rows: range outside " + w.name);
  WeightView v = w;
  v.n_out = n_rows;
  v.data = w.data + row0 * w.row_bytes();
  if (w.format == WeightFormat::FP8_BLOCK128) {
    v.row_offset = w.row_offset + row0;  // scale grid stays the stored tensor's
  } else if (w.format == WeightFormat::FP4_BLOCK32) {
    v.scale = w.scale + row0 * (w.n_in / 32);
  }
  return v;
}

}  // namespace dsv4

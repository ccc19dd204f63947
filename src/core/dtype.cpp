#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

namespace dsv4 {

namespace {
constexpr std::array<std::pair<DType, std::string_view>, 12> kNames = {{
    {DType::BOOL, "BOOL"}, {DType::U8, "U8"},     {DType::I8, "I8"},
    {DType::I16, "I16"},   {DType::I32, "I32"},   {DType::I64, "I64"},
    {DType::F16, "F16"},   {DType::BF16, "BF16"}, {DType::F32, "F32"},
    {DType::F64, "F64"},   {DType::F8_E4M3, "F8_E4M3"}, {DType::F8_E8M0, "F8_E8M0"},
}};
}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::BOOL: case DType::U8: case DType::I8:
    case DType::F8_E4M3: case DType::F8_E8M0: return 1;
    case DType::I16: case DType::F16: case DType::BF16: return 2;
    case DType::I32: case DType::F32: return 4;
    case DType::I64: case DType::F64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  for (const auto& [d, n] : kNames)
    if (d == t) return n;
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& [d, n] : kNames)
    if (n == name) return d;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(float(man), -24);
  else if (exp == 31) v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else v = std::ldexp(float(man | 0x400), exp - 25);
  return sign ? -v : v;
}

float e4m3_to_f32(uint8_t b) {
  const int sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 7;
  if (exp == 15 && man == 7) return std::numeric_limits<float>::quiet_NaN();
  const float v = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), exp - 10);
  return sign ? -v : v;
}

uint8_t f32_to_e4m3(float v) {
  if (std::isnan(v)) return 0x7F;
  // The finite non-negative codes 0..0x7E in ascending order of value.
  static const std::array<float, 0x7F> values = [] {
    std::array<float, 0x7F> t{};
    for (int c = 0; c < 0x7F; ++c) t[size_t(c)] = e4m3_to_f32(uint8_t(c));
    return t;
  }();
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  const float a = std::min(std::fabs(v), 448.0f);
  const auto hi = std::lower_bound(values.begin(), values.end(), a);  // first code >= a
  uint8_t code = uint8_t(hi - values.begin());
  if (code > 0 && *hi != a) {  // between code - 1 and code: the nearer, ties to even
    const float below = a - values[code - 1u], above = *hi - a;
    if (below < above || (below == above && (code - 1) % 2 == 0)) --code;
  }
  return uint8_t(sign | code);
}

float quantize_int8_block(const float* x, int8_t* q) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < kInt8Block; ++i) {
    finite &= std::isfinite(x[i]);
    amax = std::max(amax, std::fabs(x[i]));
  }
  if (!finite || amax == 0.0f) {
    std::fill(q, q + kInt8Block, int8_t(0));
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  // In double: 127 / amax overflows fp32 for a subnormal amax.
  const double inv = 127.0 / double(amax);
  for (int64_t i = 0; i < kInt8Block; ++i) {
    // |x[i] * inv| <= 127 (1 + 2^-52) rounds to at most 127; the clamp is only a guard.
    const double v = std::nearbyint(double(x[i]) * inv);
    q[i] = int8_t(std::clamp(v, -127.0, 127.0));
  }
  return amax / 127.0f;
}

float e8m0_to_f32(uint8_t b) {
  if (b == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(b) - 127);
}

}  // namespace dsv4

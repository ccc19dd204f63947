// Element types found in DeepSeek-V4 checkpoints and the exact decoders for the
// narrow floating-point formats (BF16, F16, FP8 E4M3, E8M0 scales, FP4 E2M1).
// Every decoder is exact: each code maps to the one float32 value the format defines.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace dsv4 {

enum class DType : uint8_t {
  BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64,
  F8_E4M3,  // float8 e4m3fn: no infinities, 0x7F/0xFF are NaN, max 448
  F8_E8M0,  // unsigned power-of-two scale: 2^(b-127), 0xFF is NaN
};

// Bytes per stored element (I8 holding packed FP4 still counts one byte per element
// of the stored [out, in/2] tensor).
size_t dtype_size(DType t);
// The safetensors header spelling ("BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype string; nullopt for anything unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Multi-byte elements of a tensor read one at a time. A mapped tensor starts wherever the
// file puts it (safetensors packs tensors back to back, odd-sized E8M0 scale tensors
// included), so a BF16 or F32 element may sit at any byte; memcpy is one plain load.
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

// Round-to-nearest-even float32 -> bfloat16 (NaN stays NaN).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// The activation rounding of the `fast` numerics: round to the nearest bfloat16 (ties to
// even), results below the smallest normal flushed to a signed zero (what the AVX-512
// BF16 dot product does with its inputs). Returned as the bf16 bits / as a float.
inline uint16_t f32_to_bf16_ftz(float f) {
  const uint16_t h = f32_to_bf16(f);
  return (h & 0x7f80u) == 0 ? uint16_t(h & 0x8000u) : h;
}
inline float round_bf16_ftz(float f) { return bf16_to_f32(f32_to_bf16_ftz(f)); }

float f16_to_f32(uint16_t h);

// FP8 E4M3FN: sign bit 7, exponent bits 6..3 (bias 7), mantissa bits 2..0.
// E = 0 is subnormal: (M/8) * 2^-6. 0x7F / 0xFF decode to NaN.
float e4m3_to_f32(uint8_t b);
// The nearest E4M3 code to v (ties to the even code), saturating at +-448 (0x7E / 0xFE);
// -0 and values that round to zero give 0x00 / 0x80 by their sign, NaN gives 0x7F.
uint8_t f32_to_e4m3(float v);

// E8M0 scale byte: 2^(b-127); 0xFF decodes to NaN. b = 0 is 2^-127 (an fp32 subnormal).
float e8m0_to_f32(uint8_t b);

// FP4 E2M1 nibble: bit 3 sign, bits 2..1 exponent (bias 1), bit 0 mantissa.
inline constexpr float kE2M1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                         -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
inline float e2m1_to_f32(uint8_t nibble) { return kE2M1Values[nibble & 0xF]; }
// Twice the E2M1 value of a nibble: an integer in [-12, 12] (the int8 numerics multiply it
// with 8-bit activations; the factor 1/2 joins the scale).
inline constexpr int8_t kE2M1Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// The activation quantisation of the `int8` numerics: a block of kInt8Block floats becomes
// q[i] = nearest-even(x[i] * (127 / amax)) in [-127, 127] (in double) and the returned scale
// d = amax / 127 in fp32 (amax = max |x[i]|), so x[i] ~ q[i] * d with |x[i] - q[i] d| <= d / 2
// up to the rounding of d. An all-zero block gives d = 0 and
// q = 0; a block holding a NaN or an infinity gives d = NaN and q = 0, so every product that
// reads it is NaN (as in exact numerics, where such an input also spoils the sum).
inline constexpr int64_t kInt8Block = 32;
float quantize_int8_block(const float* x, int8_t* q);

}  // namespace dsv4

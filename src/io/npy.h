// NumPy .npy reader/writer (format 1.0/2.0, little-endian, C order). Used for golden
// test data, CLI inputs/outputs and layer dumps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dsv4::io {

struct NpyArray {
  DType dtype = DType::F32;        // F32, F64, I32, I64, U8, I8, ... ('<f4' -> F32, '<i4' -> I32)
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;      // raw little-endian data, C order

  int64_t numel() const;
  // Typed copies (convert from any integer / float dtype; throw on a non-numeric dtype).
  std::vector<float> to_f32() const;
  std::vector<int64_t> to_i64() const;
};

// Throws dsv4::Error naming the file on: unreadable file, bad magic, unsupported version,
// malformed header dict, big-endian or unknown descr, fortran_order True, data size mismatch.
NpyArray read_npy(const std::string& path);

void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data);
inline void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  write_npy(path, DType::F32, shape, data);
}

}  // namespace dsv4::io

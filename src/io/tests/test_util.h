// Helpers for the io tests: a fresh temporary directory per test and raw file writers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tests/scratch_dir.h"

namespace dsv4::io::test {

inline std::string golden_dir(const std::string& name) { return std::string(DSV4_TEST_DATA_DIR) + "/golden/" + name; }

// A directory unique to this test, removed on destruction.
using TempDir = dsv4::test::ScratchDir;

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file made of the given header text (unpadded) and `data_bytes` zero bytes.
inline std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

// Runs fn, expects a dsv4::Error whose message contains every one of `parts` and no newline.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected dsv4::Error";
  } catch (const dsv4::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
  }
}

}  // namespace dsv4::io::test

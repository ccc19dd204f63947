// Scratch directories for tests: created unique under the test temp dir, removed when they go
// out of scope. ctest runs every test case as its own process, so a directory left behind
// per process adds up to gigabytes per suite run (each tiny checkpoint is ~30 MB): every
// test that writes files takes them from here.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsv4::test {

// A fresh directory `<TempDir>/<prefix>XXXXXX`, removed with everything in it on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "dsv4_test_") {
    std::string tmpl = testing::TempDir();
    if (tmpl.empty() || tmpl.back() != '/') tmpl += '/';
    tmpl += prefix + "XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = buf.data();
  }
  ~ScratchDir() {
    std::error_code ec;  // a failed cleanup must not turn a passing test into a crash
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One scratch directory for the whole test process, removed at normal exit (static
// destruction), for fixtures shared by the test cases of one binary.
inline const ScratchDir& process_scratch() {
  static const ScratchDir dir("dsv4_test_");
  return dir;
}

}  // namespace dsv4::test

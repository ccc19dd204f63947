// The tests' scratch directories must not outlive them (a leaked tiny checkpoint per test
// process filled CI's disk once).
#include "core/tests/scratch_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dsv4::test {
namespace {

namespace fs = std::filesystem;

TEST(ScratchDir, RemovedWithItsContentsOnDestruction) {
  std::string path;
  {
    const ScratchDir a("dsv4_scratch_test_"), b("dsv4_scratch_test_");
    path = a.path();
    EXPECT_NE(a.path(), b.path());
    ASSERT_TRUE(fs::is_directory(path));
    fs::create_directories(a.file("sub/dir"));
    std::ofstream(a.file("sub/dir/f.bin")) << "data";
    ASSERT_TRUE(fs::exists(a.file("sub/dir/f.bin")));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(ScratchDir, ProcessScratchIsOneDirectory) {
  EXPECT_EQ(process_scratch().path(), process_scratch().path());
  EXPECT_TRUE(fs::is_directory(process_scratch().path()));
}

}  // namespace
}  // namespace dsv4::test

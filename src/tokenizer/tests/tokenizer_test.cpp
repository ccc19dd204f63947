#include "tokenizer/tokenizer.h"
#include <gtest/gtest.h>
#include <cstdio>
using dsv4::tok::Tokenizer;
TEST(Tok, Smoke) {
  auto t = Tokenizer::load(std::string(DSV4_SOURCE_DIR) + "/third_party/npm/dsv4-tokenizer/tokenizer.json");
  auto ids = t.encode("Hello, world! 123\nsecond line");
  for (auto i : ids) std::printf("%d ", i);
  std::printf("\n");
}

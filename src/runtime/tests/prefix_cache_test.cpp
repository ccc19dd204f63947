// PrefixCache on hand-made states: longest-prefix lookup, the max_len bound, copies,
// LRU order and the byte budget, min_tokens, duplicate keys.
#include <gtest/gtest.h>

#include "runtime/prefix_cache.h"

namespace dsv4::runtime {
namespace {

// A state whose n_past is n and whose single layer ring holds `floats` values tagged with n.
kv::SequenceState fake_state(int64_t n, size_t floats = 100) {
  kv::SequenceState st;
  st.n_past = n;
  st.layers.resize(1);
  st.layers[0].ring.assign(floats, float(n));
  return st;
}

std::vector<int32_t> seq(int64_t n, int32_t base = 0) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(base + int32_t(i));
  return v;
}

int64_t entry_bytes(int64_t n, size_t floats = 100) { return int64_t(floats * sizeof(float)) + n * 4; }

TEST(PrefixCache, LongestPrefixWithinMaxLen) {
  PrefixCache c(1 << 20, 2);
  const auto toks = seq(50);
  ASSERT_TRUE(c.insert(std::span(toks).first(10), fake_state(10)));
  ASSERT_TRUE(c.insert(std::span(toks).first(30), fake_state(30)));
  ASSERT_TRUE(c.insert(std::span(toks).first(49), fake_state(49)));
  kv::SequenceState out;
  EXPECT_EQ(c.lookup(toks, 49, &out), 49);
  EXPECT_EQ(out.n_past, 49);
  EXPECT_EQ(c.lookup(toks, 48, &out), 30);
  EXPECT_EQ(out.n_past, 30);
  EXPECT_EQ(out.layers[0].ring[0], 30.0f);
  EXPECT_EQ(c.lookup(std::span(toks).first(20), 19, &out), 10);
  // A different token inside the prefix: no hit.
  auto other = toks;
  other[5] = 999;
  out = fake_state(7);
  EXPECT_EQ(c.lookup(other, 49, &out), 0);
  EXPECT_EQ(out.n_past, 7);  // untouched on a miss
  // A key longer than the query never matches.
  EXPECT_EQ(c.lookup(std::span(toks).first(9), 9, &out), 0);
}

TEST(PrefixCache, ReportsTheBranchPoint) {
  PrefixCache c(1 << 20, 1);
  const auto toks = seq(50);
  ASSERT_TRUE(c.insert(std::span(toks).first(40), fake_state(40)));
  ASSERT_TRUE(c.insert(std::span(toks).first(10), fake_state(10)));
  auto other = toks;
  other[25] = 999;  // shares 25 tokens with the 40-token key
  kv::SequenceState out;
  int64_t common = -1;
  EXPECT_EQ(c.lookup(other, 49, &out, &common), 10);
  EXPECT_EQ(common, 25);
  EXPECT_EQ(c.lookup(toks, 49, &out, &common), 40);
  EXPECT_EQ(common, 40);
  EXPECT_EQ(c.lookup(std::span(toks).first(30), 29, &out, &common), 10);
  EXPECT_EQ(common, 30);  // the whole query is a prefix of the 40-token key
  auto none = toks;
  none[0] = 999;
  EXPECT_EQ(c.lookup(none, 49, &out, &common), 0);
  EXPECT_EQ(common, 0);
}

TEST(PrefixCache, LookupReturnsACopy) {
  PrefixCache c(1 << 20, 1);
  const auto toks = seq(20);
  ASSERT_TRUE(c.insert(std::span(toks).first(10), fake_state(10)));
  kv::SequenceState a;
  ASSERT_EQ(c.lookup(toks, 19, &a), 10);
  a.layers[0].ring[0] = -1;
  a.n_past = 99;
  kv::SequenceState b;
  ASSERT_EQ(c.lookup(toks, 19, &b), 10);
  EXPECT_EQ(b.n_past, 10);
  EXPECT_EQ(b.layers[0].ring[0], 10.0f);
}

TEST(PrefixCache, LruEvictionWithinBudget) {
  // Room for exactly two entries of 10 tokens.
  const int64_t budget = 2 * entry_bytes(10) + 1;
  PrefixCache c(budget, 1);
  const auto a = seq(10, 0), b = seq(10, 100), d = seq(10, 200);
  ASSERT_TRUE(c.insert(a, fake_state(10)));
  ASSERT_TRUE(c.insert(b, fake_state(10)));
  EXPECT_EQ(c.entries(), 2);
  EXPECT_EQ(c.bytes(), 2 * entry_bytes(10));
  kv::SequenceState out;
  auto a_long = a;
  a_long.push_back(7);
  ASSERT_EQ(c.lookup(a_long, 10, &out), 10);  // a becomes most recent
  ASSERT_TRUE(c.insert(d, fake_state(10)));    // evicts b
  EXPECT_EQ(c.entries(), 2);
  EXPECT_LE(c.bytes(), budget);
  auto b_long = b, d_long = d;
  b_long.push_back(7);
  d_long.push_back(7);
  EXPECT_EQ(c.lookup(b_long, 10, &out), 0);
  EXPECT_EQ(c.lookup(a_long, 10, &out), 10);
  EXPECT_EQ(c.lookup(d_long, 10, &out), 10);
}

TEST(PrefixCache, RefusesWhatCannotFit) {
  PrefixCache off(0, 1);
  EXPECT_FALSE(off.enabled());
  EXPECT_FALSE(off.insert(seq(10), fake_state(10)));
  PrefixCache small(entry_bytes(10) - 1, 1);
  EXPECT_FALSE(small.insert(seq(10), fake_state(10)));
  EXPECT_EQ(small.entries(), 0);
  PrefixCache c(1 << 20, 16);
  EXPECT_FALSE(c.insert(seq(15), fake_state(15)));  // below min_tokens
  EXPECT_FALSE(c.insert(seq(20), fake_state(19)));  // state does not match the key
  EXPECT_TRUE(c.insert(seq(16), fake_state(16)));
  EXPECT_TRUE(c.insert(seq(16), fake_state(16)));   // duplicate: kept once
  EXPECT_EQ(c.entries(), 1);
  c.clear();
  EXPECT_EQ(c.entries(), 0);
  EXPECT_EQ(c.bytes(), 0);
}

}  // namespace
}  // namespace dsv4::runtime

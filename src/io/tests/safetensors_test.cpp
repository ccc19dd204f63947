// SafetensorsFile / SafetensorsWriter: round trips and every malformed-file error.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/tests/test_util.h"

namespace dsv4::io {
namespace {

using test::expect_error;
using test::safetensors_bytes;
using test::TempDir;

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 131);
  return v;
}

const DType kAllDtypes[] = {DType::BOOL, DType::U8,   DType::I8,  DType::I16, DType::I32,     DType::I64,
                            DType::F16,  DType::BF16, DType::F32, DType::F64, DType::F8_E4M3, DType::F8_E8M0};

TEST(SafetensorsWriter, RoundTripEveryDtype) {
  TempDir tmp;
  SafetensorsWriter w;
  uint8_t seed = 1;
  for (DType t : kAllDtypes) {
    const std::vector<int64_t> shape = {3, 7};
    w.add("t." + std::string(dtype_name(t)), t, shape, pattern(21 * dtype_size(t), seed++));
  }
  w.add("scalar", DType::F32, {}, pattern(4, 99));
  w.add("empty", DType::BF16, {0, 5}, {});
  const std::string path = tmp.file("all.safetensors");
  w.write(path);

  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  ASSERT_EQ(f->tensors().size(), std::size(kAllDtypes) + 2);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  seed = 1;
  for (DType t : kAllDtypes) {
    const TensorInfo* info = f->find("t." + std::string(dtype_name(t)));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, t);
    EXPECT_EQ(info->shape, (std::vector<int64_t>{3, 7}));
    EXPECT_EQ(info->numel(), 21);
    EXPECT_EQ(info->file, path);
    const auto want = pattern(21 * dtype_size(t), seed++);
    ASSERT_EQ(info->nbytes, want.size());
    EXPECT_EQ(std::memcmp(info->data, want.data(), want.size()), 0) << dtype_name(t);
  }
  const TensorInfo* scalar = f->find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel(), 1);
  EXPECT_EQ(scalar->shape_str(), "[]");
  EXPECT_EQ(f->find("empty")->nbytes, 0u);
  EXPECT_EQ(f->find("empty")->numel(), 0);
  EXPECT_EQ(f->find("absent"), nullptr);
  EXPECT_EQ(w.data_bytes(), 21u * (1 + 1 + 1 + 2 + 4 + 8 + 2 + 2 + 4 + 8 + 1 + 1) + 4);
  EXPECT_EQ(w.names().front(), "t.BOOL");
  EXPECT_EQ(w.names().back(), "empty");
}

// A copied file holds the same tensors and bytes as the mapping, each tensor on a 64-byte
// boundary although the file places them back to back (odd sizes: misaligned there).
TEST(SafetensorsFile, CopyAlignsEveryTensor) {
  TempDir tmp;
  SafetensorsWriter w;
  uint8_t seed = 1;
  for (int64_t n : {1, 3, 5, 64, 100, 7, 4096 + 3}) {
    std::string name = "t";  // appended: GCC 12 warns, wrongly, on "t" + std::string&&
    name += std::to_string(n);
    w.add(name, DType::U8, {n}, pattern(size_t(n), seed++));
  }
  w.add("bf", DType::BF16, {3, 5}, pattern(30, 40));
  w.add("empty", DType::F32, {0}, {});
  const std::string path = tmp.file("odd.safetensors");
  w.write(path);
  const auto mapped = SafetensorsFile::open(path, Residency::kMap);
  const auto copied = SafetensorsFile::open(path, Residency::kCopy);
  ASSERT_EQ(mapped->tensors().size(), copied->tensors().size());
  int misaligned_in_file = 0;
  for (const TensorInfo& a : mapped->tensors()) {
    const TensorInfo* b = copied->find(a.name);
    ASSERT_NE(b, nullptr) << a.name;
    EXPECT_EQ(b->shape, a.shape);
    ASSERT_EQ(b->nbytes, a.nbytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % 64, 0u) << a.name;
    misaligned_in_file += reinterpret_cast<uintptr_t>(a.data) % 64 != 0;
    EXPECT_EQ(std::memcmp(a.data, b->data, a.nbytes), 0) << a.name;
  }
  EXPECT_GE(misaligned_in_file, 5);  // the case is real: the file's layout is not aligned
  EXPECT_EQ(copied->metadata(), mapped->metadata());
}

// A mapping starts on a 2 MiB boundary (so that 2 MiB page-cache folios can be mapped
// whole, see map_file); its bytes are the file's. An unaligned mmap of a small file
// lands on any 4 KiB page.
TEST(SafetensorsFile, MappingStartsOnHugePageBoundary) {
  TempDir tmp;
  for (int k = 0; k < 4; ++k) {  // several files: each mapping must be aligned on its own
    SafetensorsWriter w;
    w.add("a", DType::U8, {int64_t(5000 + k)}, pattern(size_t(5000 + k), uint8_t(k + 1)));
    const std::string path = tmp.file("m" + std::to_string(k) + ".safetensors");
    w.write(path);
    const auto f = SafetensorsFile::open(path, Residency::kMap);
    const auto regions = f->regions();
    ASSERT_EQ(regions.size(), 1u);  // the mapping only
    EXPECT_EQ(reinterpret_cast<uintptr_t>(regions[0].first) % (uintptr_t(2) << 20), 0u) << path;
    EXPECT_EQ(regions[0].second, std::filesystem::file_size(path));
    const TensorInfo* a = f->find("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(std::memcmp(a->data, pattern(size_t(5000 + k), uint8_t(k + 1)).data(), a->nbytes), 0);
  }
}

TEST(SafetensorsWriter, OfficialLayout) {
  TempDir tmp;
  SafetensorsWriter w;
  w.add("b", DType::U8, {3}, {1, 2, 3});
  w.add("a", DType::I16, {2}, {4, 5, 6, 7});
  w.write(tmp.file("x.safetensors"));
  const std::string raw = file_text(tmp.file("x.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + n + 7);
  const std::string header = raw.substr(8, n);
  const size_t json_end = header.rfind('}') + 1;  // padding is spaces only
  EXPECT_EQ(header.find_first_not_of(' ', json_end), std::string::npos);
  const auto j = nlohmann::ordered_json::parse(header);
  auto it = j.begin();
  EXPECT_EQ(it.key(), "__metadata__");
  EXPECT_EQ((++it).key(), "b");  // order added, not sorted
  EXPECT_EQ((++it).key(), "a");
  EXPECT_EQ(j["b"]["data_offsets"], nlohmann::ordered_json::parse("[0, 3]"));
  EXPECT_EQ(j["a"]["data_offsets"], nlohmann::ordered_json::parse("[3, 7]"));
  EXPECT_EQ(raw.substr(8 + n), std::string("\x01\x02\x03\x04\x05\x06\x07", 7));
}

// Re-writing a golden shard's tensors in file order reproduces it byte for byte.
TEST(SafetensorsWriter, ReproducesGoldenShard) {
  TempDir tmp;
  const std::string shard = test::golden_dir("tiny_shrunk_p64") + "/model-00002-of-00002.safetensors";
  const auto f = SafetensorsFile::open(shard);
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : f->tensors()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data < b->data; });
  SafetensorsWriter w;
  for (const TensorInfo* t : order) w.add(t->name, t->dtype, t->shape, std::vector<uint8_t>(t->data, t->data + t->nbytes));
  w.write(tmp.file("copy.safetensors"));
  EXPECT_TRUE(file_text(shard) == file_text(tmp.file("copy.safetensors")));
}

TEST(SafetensorsWriter, Errors) {
  TempDir tmp;
  SafetensorsWriter w;
  expect_error([&] { w.add("x", DType::F32, {2}, {1, 2, 3}); }, {"'x'", "bytes"});
  expect_error([&] { w.add("neg", DType::F32, {-1}, {}); }, {"'neg'"});
  expect_error([&] { w.add("huge", DType::F32, {int64_t(1) << 40, int64_t(1) << 40}, {}); }, {"'huge'"});
  w.add("ok", DType::U8, {1}, {7});
  expect_error([&] { w.add("ok", DType::U8, {1}, {7}); }, {"duplicate", "'ok'"});
  expect_error([&] { w.add("__metadata__", DType::U8, {1}, {7}); }, {"__metadata__"});
  expect_error([&] { w.write(tmp.path() + "/no/dir/x.safetensors"); }, {"x.safetensors"});
}

// ---------------------------------------------------------------- malformed files

class SafetensorsErrors : public testing::Test {
 protected:
  // Writes `bytes` to a file named `name`, expects open() to fail naming the file and `parts`.
  void expect_open_error(const std::string& name, const std::string& bytes, std::vector<std::string> parts) {
    const std::string path = tmp_.file(name);
    test::write_bytes(path, bytes);
    parts.push_back(path);
    SCOPED_TRACE(name);
    expect_error([&] { SafetensorsFile::open(path); }, parts);
    // The copy reads the header on its own first: the same errors.
    expect_error([&] { SafetensorsFile::open(path, Residency::kCopy); }, parts);
    // parse() on the same bytes fails the same way; an exact-size heap copy lets ASan
    // catch a read even one byte past the end.
    const std::vector<uint8_t> exact(bytes.begin(), bytes.end());
    expect_error([&] { SafetensorsFile::parse(exact.data(), exact.size(), path); }, parts);
  }
  // One tensor "w" with this JSON entry and `data` bytes of payload.
  void expect_tensor_error(const std::string& name, const std::string& entry, size_t data, std::vector<std::string> parts) {
    parts.push_back("'w'");
    expect_open_error(name, safetensors_bytes("{\"w\":" + entry + "}", data), parts);
  }
  TempDir tmp_;
};

TEST_F(SafetensorsErrors, Truncated) {
  expect_open_error("empty.safetensors", "", {"too short"});
  expect_open_error("seven.safetensors", "1234567", {"too short", "7 bytes"});
}

TEST_F(SafetensorsErrors, HeaderLength) {
  std::string past_end = safetensors_bytes("{}", 0);
  past_end[0] = 3;  // claims 3 header bytes, file has 2
  expect_open_error("past_end.safetensors", past_end, {"past end"});
  std::string absurd = safetensors_bytes("{}", 0);
  for (int i = 0; i < 8; ++i) absurd[size_t(i)] = '\xff';
  expect_open_error("absurd.safetensors", absurd, {"absurdly large"});
  std::string big = safetensors_bytes("{}", 0);
  big[5] = 1;  // 2^40 + 2
  expect_open_error("big.safetensors", big, {"absurdly large"});
}

TEST_F(SafetensorsErrors, HeaderJson) {
  expect_open_error("json.safetensors", safetensors_bytes("{\"w\": {", 0), {"malformed JSON"});
  expect_open_error("json2.safetensors", safetensors_bytes("", 0), {"malformed JSON"});
  expect_open_error("json3.safetensors", safetensors_bytes("{} trailing", 0), {"malformed JSON"});
  expect_open_error("utf8.safetensors", safetensors_bytes("{\"\xff\": 1}", 0), {"malformed JSON"});
  expect_open_error("deep.safetensors", safetensors_bytes(std::string(100000, '['), 0), {"nested too deeply"});
  expect_open_error("array.safetensors", safetensors_bytes("[1, 2]", 0), {"not an object"});
  expect_open_error("string.safetensors", safetensors_bytes("\"hi\"", 0), {"not an object"});
  expect_open_error("meta.safetensors", safetensors_bytes("{\"__metadata__\": 3}", 0), {"__metadata__"});
  expect_open_error("meta2.safetensors", safetensors_bytes("{\"__metadata__\": {\"a\": 1}}", 0), {"__metadata__", "'a'"});
  expect_tensor_error("entry.safetensors", "[]", 0, {"not an object"});
}

TEST_F(SafetensorsErrors, Dtype) {
  expect_tensor_error("dtype.safetensors", R"({"dtype":"F4","shape":[1],"data_offsets":[0,1]})", 1,
                      {"unknown dtype", "'F4'"});
  expect_tensor_error("dtype2.safetensors", R"({"dtype":7,"shape":[1],"data_offsets":[0,1]})", 1, {"dtype"});
  expect_tensor_error("dtype3.safetensors", R"({"shape":[1],"data_offsets":[0,1]})", 1, {"dtype"});
}

TEST_F(SafetensorsErrors, Shape) {
  for (const char* shape : {"5", "[-1]", "[1.5]", "[\"2\"]", "[[2]]", "{}", "[9223372036854775808]", "null"}) {
    expect_tensor_error("shape.safetensors",
                        std::string(R"({"dtype":"U8","shape":)") + shape + R"(,"data_offsets":[0,0]})", 0,
                        {"shape"});
  }
  expect_tensor_error("noshape.safetensors", R"({"dtype":"U8","data_offsets":[0,0]})", 0, {"shape"});
}

TEST_F(SafetensorsErrors, ShapeOverflow) {
  expect_tensor_error("overflow.safetensors",
                      R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0, {"overflow"});
  // numel fits but numel * 8 does not
  expect_tensor_error("overflow2.safetensors",
                      R"({"dtype":"F64","shape":[2305843009213693952,2],"data_offsets":[0,0]})", 0, {"overflow"});
  // wraps to exactly 0 bytes in 64-bit arithmetic: must still be caught
  expect_tensor_error("overflow3.safetensors",
                      R"({"dtype":"U8","shape":[4294967296,4294967296,0,4294967296],"data_offsets":[0,0]})", 0,
                      {});
}

TEST_F(SafetensorsErrors, DataOffsets) {
  for (const char* off : {"[0]", "[0,1,2]", "[]", "5", "[0,\"1\"]", "[-1,0]", "[0.0,1]"})
    expect_tensor_error("offsets.safetensors",
                        std::string(R"({"dtype":"U8","shape":[1],"data_offsets":)") + off + "}", 1,
                        {"data_offsets"});
  expect_tensor_error("nooffsets.safetensors", R"({"dtype":"U8","shape":[1]})", 1, {"data_offsets"});
  expect_tensor_error("order.safetensors", R"({"dtype":"U8","shape":[1],"data_offsets":[4,3]})", 8,
                      {"out of order"});
  expect_tensor_error("size.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 8,
                      {"needs 8"});
  expect_tensor_error("outside.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", 8,
                      {"outside"});
  expect_tensor_error("outside2.safetensors",
                      R"({"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,18446744073709551615]})",
                      8, {"data_offsets"});
}

TEST_F(SafetensorsErrors, Overlap) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_open_error("overlap.safetensors", safetensors_bytes(header, 12), {"overlap", "'a'", "'b'"});
  const std::string inside = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                             R"("c":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}})";
  expect_open_error("inside.safetensors", safetensors_bytes(inside, 16), {"overlap"});
  // Touching ranges and empty tensors anywhere are fine; so are holes.
  const std::string ok = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
                         R"("c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                         R"("d":{"dtype":"U8","shape":[1],"data_offsets":[10,11]}})";
  test::write_bytes(tmp_.file("ok.safetensors"), safetensors_bytes(ok, 12));
  EXPECT_EQ(SafetensorsFile::open(tmp_.file("ok.safetensors"))->tensors().size(), 4u);
}

TEST_F(SafetensorsErrors, NamesStayOnOneLine) {
  expect_open_error("newline.safetensors",
                    safetensors_bytes(R"({"bad\nname":{"dtype":"X","shape":[],"data_offsets":[0,0]}})", 0),
                    {"bad\\x0aname", "unknown dtype"});
}

TEST_F(SafetensorsErrors, Unreadable) {
  expect_error([&] { SafetensorsFile::open(tmp_.file("missing.safetensors")); }, {tmp_.file("missing.safetensors")});
  expect_error([&] { SafetensorsFile::open(tmp_.path()); }, {tmp_.path(), "not a regular file"});
}

TEST(Safetensors, ParseInMemory) {
  const std::string bytes = safetensors_bytes(R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", 4);
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto tensors = SafetensorsFile::parse(base, bytes.size(), "mem");
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].data, base + bytes.size() - 4 + 1);
  EXPECT_EQ(tensors[0].file, "mem");
  EXPECT_EQ(tensors[0].nbytes, 2u);
}

}  // namespace
}  // namespace dsv4::io

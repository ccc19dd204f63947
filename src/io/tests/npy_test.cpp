// read_npy / write_npy: round trips, golden files, malformed files.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "io/tests/test_util.h"

namespace dsv4::io {
namespace {

using test::expect_error;
using test::TempDir;

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A v1.0 npy file with this header dict text and these data bytes.
std::string npy_v1(const std::string& dict, const std::string& data) {
  std::string header = dict + "\n";
  std::string out = std::string("\x93NUMPY", 6) + '\x01' + '\x00';
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + data;
}

TEST(Npy, RoundTripEveryDtype) {
  TempDir tmp;
  const std::vector<std::pair<DType, std::string>> dtypes = {
      {DType::F32, "<f4"}, {DType::F64, "<f8"}, {DType::I32, "<i4"}, {DType::I64, "<i8"},
      {DType::U8, "|u1"},  {DType::I8, "|i1"},  {DType::F16, "<f2"},
  };
  for (const auto& [dtype, descr] : dtypes) {
    const std::vector<int64_t> shape = {3, 5};
    std::vector<uint8_t> data(15 * dtype_size(dtype));
    for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 37 + 11);
    const std::string path = tmp.file("a_" + descr.substr(1) + ".npy");
    write_npy(path, dtype, shape, data.data());
    const std::string raw = file_text(path);
    EXPECT_NE(raw.find("'descr': '" + descr + "'"), std::string::npos);
    const size_t header_end = raw.size() - data.size();
    EXPECT_EQ(header_end % 64, 0u) << "numpy aligns data to 64 bytes";
    EXPECT_EQ(raw[header_end - 1], '\n');
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.dtype, dtype);
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.numel(), 15);
    EXPECT_EQ(a.bytes, data);
  }
}

TEST(Npy, ShapesScalarOneDimAndEmpty) {
  TempDir tmp;
  const float one = 1.5f;
  write_npy_f32(tmp.file("s.npy"), {}, &one);
  EXPECT_NE(file_text(tmp.file("s.npy")).find("'shape': ()"), std::string::npos);
  NpyArray s = read_npy(tmp.file("s.npy"));
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.to_f32(), std::vector<float>{1.5f});

  const float v[4] = {1, 2, 3, 4};
  write_npy_f32(tmp.file("v.npy"), {4}, v);
  EXPECT_NE(file_text(tmp.file("v.npy")).find("'shape': (4,)"), std::string::npos);
  EXPECT_EQ(read_npy(tmp.file("v.npy")).to_f32(), (std::vector<float>{1, 2, 3, 4}));

  write_npy_f32(tmp.file("e.npy"), {0, 7}, nullptr);
  const NpyArray e = read_npy(tmp.file("e.npy"));
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 7}));
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.bytes.empty());
}

TEST(Npy, Conversions) {
  TempDir tmp;
  const int32_t iv[3] = {-7, 0, 123456};
  write_npy(tmp.file("i.npy"), DType::I32, {3}, iv);
  const NpyArray a = read_npy(tmp.file("i.npy"));
  EXPECT_EQ(a.to_i64(), (std::vector<int64_t>{-7, 0, 123456}));
  EXPECT_EQ(a.to_f32(), (std::vector<float>{-7.f, 0.f, 123456.f}));
  const int64_t big[2] = {(int64_t(1) << 62) + 1, -3};  // exact: not through double
  write_npy(tmp.file("l.npy"), DType::I64, {2}, big);
  EXPECT_EQ(read_npy(tmp.file("l.npy")).to_i64(), (std::vector<int64_t>{(int64_t(1) << 62) + 1, -3}));
  const uint16_t h[2] = {0x3c00, 0xc000};  // f16 1.0, -2.0
  write_npy(tmp.file("h.npy"), DType::F16, {2}, h);
  EXPECT_EQ(read_npy(tmp.file("h.npy")).to_f32(), (std::vector<float>{1.0f, -2.0f}));
  const double d[1] = {0.25};
  write_npy(tmp.file("d.npy"), DType::F64, {1}, d);
  EXPECT_EQ(read_npy(tmp.file("d.npy")).to_f32(), std::vector<float>{0.25f});
  const int8_t b[2] = {-128, 127};
  write_npy(tmp.file("b.npy"), DType::I8, {2}, b);
  EXPECT_EQ(read_npy(tmp.file("b.npy")).to_i64(), (std::vector<int64_t>{-128, 127}));
}

TEST(Npy, ReadsVersion2) {
  TempDir tmp;
  const std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
  std::string raw = std::string("\x93NUMPY", 6) + '\x02' + '\x00';
  for (int i = 0; i < 4; ++i) raw += char((header.size() >> (8 * i)) & 0xff);
  const int32_t v[2] = {5, -6};
  raw += header + std::string(reinterpret_cast<const char*>(v), 8);
  test::write_bytes(tmp.file("v2.npy"), raw);
  EXPECT_EQ(read_npy(tmp.file("v2.npy")).to_i64(), (std::vector<int64_t>{5, -6}));
}

TEST(Npy, ReadsGoldenFiles) {
  const std::string dir = test::golden_dir("tiny_shrunk_p64") + "/expected/";
  const NpyArray ids = read_npy(dir + "prompt_ids.npy");
  EXPECT_EQ(ids.dtype, DType::I32);
  EXPECT_EQ(ids.shape, std::vector<int64_t>{64});
  for (int64_t id : ids.to_i64()) EXPECT_TRUE(id >= 0 && id < 1000);
  const NpyArray h = read_npy(dir + "hidden_layer0.npy");
  EXPECT_EQ(h.dtype, DType::F32);
  EXPECT_EQ(h.shape, (std::vector<int64_t>{64, 4, 256}));
  EXPECT_EQ(h.to_f32().size(), size_t(64 * 4 * 256));
}

TEST(Npy, Errors) {
  TempDir tmp;
  auto bad = [&](const std::string& name, const std::string& bytes, std::vector<std::string> parts) {
    const std::string path = tmp.file(name);
    test::write_bytes(path, bytes);
    parts.push_back(path);
    expect_error([&] { read_npy(path); }, parts);
  };
  const std::string f4x2(8, '\0');
  bad("empty.npy", "", {"magic"});
  bad("magic.npy", "PK\x03\x04 not numpy at all", {"magic"});
  bad("trunc.npy", std::string("\x93NUMPY\x01", 7), {});
  bad("version.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4x2).replace(6, 1, "\x09"),
      {"version"});
  bad("hdrlen.npy", std::string("\x93NUMPY\x01\x00\xff\x7f{}", 12), {"past end"});
  bad("dict.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", f4x2), {"malformed"});
  bad("dict2.npy", npy_v1("descr", f4x2), {"malformed"});
  bad("shape.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", f4x2), {"malformed"});
  bad("shape_big.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", f4x2),
      {"too large"});
  bad("overflow.npy",
      npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", f4x2), {"overflow"});
  bad("nokey.npy", npy_v1("{'descr': '<f4', 'shape': (2,), }", f4x2), {"fortran_order"});
  bad("extra.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", f4x2), {"'x'"});
  bad("bigendian.npy", npy_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f4x2), {"big-endian"});
  bad("descr.npy", npy_v1("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", f4x2), {"<c8"});
  bad("fortran.npy", npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f4x2), {"fortran"});
  bad("short.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4x2), {"expected 12"});
  bad("long.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f4x2), {"expected 4"});
  expect_error([&] { read_npy(tmp.file("missing.npy")); }, {tmp.file("missing.npy")});
  expect_error([&] { read_npy(tmp.path()); }, {tmp.path()});  // a directory
  const float x = 0;
  expect_error([&] { write_npy(tmp.path() + "/no/such/dir/x.npy", DType::F32, {1}, &x); }, {"x.npy"});
  expect_error([&] { write_npy(tmp.file("bf.npy"), DType::BF16, {1}, &x); }, {"bf.npy", "BF16"});
}

}  // namespace
}  // namespace dsv4::io

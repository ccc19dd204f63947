#include "io/npy.h"

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "io/util.h"

namespace dsv4::io {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

// descr strings this reader understands (all little-endian or byte-sized).
constexpr std::array<std::pair<std::string_view, DType>, 9> kDescrs = {{
    {"<f4", DType::F32}, {"<f8", DType::F64}, {"<i4", DType::I32}, {"<i8", DType::I64}, {"|u1", DType::U8},
    {"|i1", DType::I8},  {"<f2", DType::F16}, {"<i2", DType::I16}, {"|b1", DType::BOOL},
}};

std::optional<DType> dtype_from_descr(std::string_view d) {
  for (const auto& [name, t] : kDescrs)
    if (name == d) return t;
  return std::nullopt;
}

std::optional<std::string_view> descr_from_dtype(DType t) {
  for (const auto& [name, d] : kDescrs)
    if (d == t) return name;
  return std::nullopt;
}

// The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// This parses exactly that subset: string keys; string, True/False or int-tuple values.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
    bool has_descr = false, has_order = false, has_shape = false;
  };

  Header parse() {
    Header h;
    expect('{');
    while (!peek_is('}')) {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        h.descr = string_literal();
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = bool_literal();
        h.has_order = true;
      } else if (key == "shape") {
        h.shape = int_tuple();
        h.has_shape = true;
      } else {
        fail("unexpected key " + quoted(key));
      }
      if (!peek_is(',')) break;
      expect(',');
    }
    expect('}');
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_ + ": malformed npy header: " + what);
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool peek_is(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c) {
    if (!peek_is(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a string");
    const char quote = s_[pos_++];
    const size_t end = s_.find(quote, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }
  bool bool_literal() {
    skip_space();
    if (s_.substr(pos_, 4) == "True") { pos_ += 4; return true; }
    if (s_.substr(pos_, 5) == "False") { pos_ += 5; return false; }
    fail("expected True or False");
  }
  int64_t int_literal() {
    skip_space();
    int64_t v = 0;
    size_t digits = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      if (__builtin_mul_overflow(v, int64_t(10), &v) || __builtin_add_overflow(v, int64_t(s_[pos_] - '0'), &v))
        fail("shape dimension too large");
      ++pos_;
      ++digits;
    }
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long suffix
    if (digits == 0) fail("expected a non-negative integer");
    return v;
  }
  std::vector<int64_t> int_tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (!peek_is(')')) {
      out.push_back(int_literal());
      if (!peek_is(',')) break;
      expect(',');
    }
    expect(')');
    return out;
  }

  std::string_view s_;
  const std::string& path_;
  size_t pos_ = 0;
};

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

uint64_t checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size, const std::string& path) {
  uint64_t total = elem_size;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(total, uint64_t(d), &total)) throw Error(path + ": npy shape overflows 64 bits");
  return total;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Element i of `a` as double (exact for every supported type except I64 beyond 2^53).
double element_f64(const NpyArray& a, int64_t i) {
  const uint8_t* p = a.bytes.data() + size_t(i) * dtype_size(a.dtype);
  switch (a.dtype) {
    case DType::BOOL: case DType::U8: return *p;
    case DType::I8: return int8_t(*p);
    case DType::I16: return load<int16_t>(p);
    case DType::I32: return load<int32_t>(p);
    case DType::I64: return double(load<int64_t>(p));
    case DType::F16: return f16_to_f32(load<uint16_t>(p));
    case DType::BF16: return bf16_to_f32(load<uint16_t>(p));
    case DType::F32: return load<float>(p);
    case DType::F64: return load<double>(p);
    case DType::F8_E4M3: return e4m3_to_f32(*p);
    case DType::F8_E8M0: return e8m0_to_f32(*p);
  }
  throw Error("npy: non-numeric dtype");
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = float(element_f64(*this, i));
  return out;
}

std::vector<int64_t> NpyArray::to_i64() const {
  std::vector<int64_t> out(static_cast<size_t>(numel()));
  if (dtype == DType::I64) {  // exact: do not go through double
    for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = load<int64_t>(bytes.data() + 8 * i);
    return out;
  }
  for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = int64_t(element_f64(*this, i));
  return out;
}

NpyArray read_npy(const std::string& path) {
  const std::string file = read_file_bytes(path);
  if (file.size() < kMagicLen + 2 || file.compare(0, kMagicLen, kMagic, kMagicLen) != 0)
    throw Error(path + ": not an npy file (bad magic)");
  const int major = uint8_t(file[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    if (file.size() < 10) throw Error(path + ": npy file truncated");
    header_len = uint8_t(file[8]) | size_t(uint8_t(file[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) throw Error(path + ": npy file truncated");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | uint8_t(file[8 + size_t(i)]);
    header_start = 12;
  } else {
    throw Error(path + ": unsupported npy version " + std::to_string(major));
  }
  if (header_len > file.size() - header_start) throw Error(path + ": npy header runs past end of file");

  const std::string_view header_text(file.data() + header_start, header_len);
  const auto h = HeaderParser(header_text, path).parse();
  if (!h.has_descr || !h.has_order || !h.has_shape)
    throw Error(path + ": npy header lacks descr, fortran_order or shape");
  if (h.fortran_order) throw Error(path + ": fortran_order arrays are not supported");
  if (!h.descr.empty() && h.descr[0] == '>') throw Error(path + ": big-endian descr " + quoted(h.descr) + " not supported");
  const auto dtype = dtype_from_descr(h.descr);
  if (!dtype) throw Error(path + ": unsupported npy descr " + quoted(h.descr));

  NpyArray a;
  a.dtype = *dtype;
  a.shape = h.shape;
  const uint64_t nbytes = checked_nbytes(a.shape, dtype_size(a.dtype), path);
  const size_t data_start = header_start + header_len;
  if (file.size() - data_start != nbytes)
    throw Error(path + ": npy data is " + std::to_string(file.size() - data_start) + " bytes, expected " +
                std::to_string(nbytes));
  a.bytes.assign(file.begin() + std::ptrdiff_t(data_start), file.end());
  return a;
}

void write_npy(const std::string& path, DType dtype, const std::vector<int64_t>& shape, const void* data) {
  const auto descr = descr_from_dtype(dtype);
  if (!descr) throw Error(path + ": dtype " + std::string(dtype_name(dtype)) + " has no npy descr");
  for (int64_t d : shape) check(d >= 0, path + ": negative npy dimension");
  const uint64_t nbytes = checked_nbytes(shape, dtype_size(dtype), path);

  std::string shape_text = "(";
  for (size_t i = 0; i < shape.size(); ++i) shape_text += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) shape_text += ",";  // Python's one-element tuple
  shape_text += ")";
  std::string header = "{'descr': '" + std::string(*descr) + "', 'fortran_order': False, 'shape': " + shape_text + ", }";
  // Version 2.0 only when the header outgrows 1.0's 2-byte length field.
  const bool v2 = header.size() + 64 > 0xffff;
  const size_t prefix = v2 ? 12 : 10;
  // numpy aligns the data to 64 bytes: pad with spaces and end with a newline.
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot create: " + std::strerror(errno));
  out.write(kMagic, kMagicLen);
  const char version[2] = {char(v2 ? 2 : 1), 0};
  out.write(version, 2);
  const size_t len = header.size();
  const char len_le[4] = {char(len & 0xff), char((len >> 8) & 0xff), char((len >> 16) & 0xff), char((len >> 24) & 0xff)};
  out.write(len_le, v2 ? 4 : 2);
  out.write(header.data(), std::streamsize(header.size()));
  if (nbytes) out.write(static_cast<const char*>(data), std::streamsize(nbytes));
  out.close();
  if (!out) throw Error(path + ": write failed");
}

}  // namespace dsv4::io

#include "cli_ids.h"

#include <climits>
#include <sstream>

#include "core/error.h"
#include "io/npy.h"

namespace dsv4::cli {

std::vector<int32_t> parse_ids(const std::string& arg, const std::string& option_name) {
  std::vector<int32_t> ids;
  if (arg.size() > 4 && arg.compare(arg.size() - 4, 4, ".npy") == 0) {
    const io::NpyArray a = io::read_npy(arg);
    check(a.dtype == DType::I32 || a.dtype == DType::I64 || a.dtype == DType::I16 || a.dtype == DType::U8,
          arg + ": " + option_name + " expects an integer array, got " + std::string(dtype_name(a.dtype)));
    for (int64_t v : a.to_i64()) {
      check(v >= 0 && v <= INT32_MAX, arg + ": token id " + std::to_string(v) + " is out of range");
      ids.push_back(int32_t(v));
    }
    return ids;
  }
  std::stringstream ss(arg);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    long long v = -1;
    try { v = std::stoll(item, &pos); } catch (...) { pos = 0; }
    check(pos == item.size() && !item.empty() && v >= 0 && v <= INT32_MAX,
          option_name + ": '" + item + "' is not a token id (expected a comma-separated list of non-negative integers or a .npy file)");
    ids.push_back(int32_t(v));
  }
  check(!ids.empty(), option_name + " is empty");
  return ids;
}

io::Residency parse_load(const std::string& arg) {
  const std::optional<io::Residency> r = io::parse_residency(arg);
  check(r.has_value(), "--load must be auto, mmap or copy (got '" + arg + "')");
  return *r;
}

backend::Numerics parse_numerics_arg(const std::string& arg) {
  const std::optional<backend::Numerics> n = backend::parse_numerics(arg);
  check(n.has_value(), "--numerics must be exact or fast (got '" + arg + "')");
  return *n;
}

}  // namespace dsv4::cli

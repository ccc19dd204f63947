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

void add_model_load_options(Args& args, ModelLoadFlags flags) {
  if (flags.backend) args.option("backend", "NAME", "ref (scalar oracle) or cpu", "cpu");
  if (flags.kernel_threads) args.option("threads", "N", "kernel threads (0 = physical cores)", "0");
  args.option("load", "MODE",
              "where weights live: copy (into huge pages), split (copy all but the routed experts, which stay "
              "mapped), mmap (zero copy), or auto (copy if the checkpoint fits in half the available memory, "
              "else split if the rest fits, else mmap)",
              "auto")
      .option("numerics", "MODE",
              "weight-product arithmetic: exact (fp32 activations), fast (bf16 activations) or int8 (8-bit "
              "activations in the FP4 expert products); see docs/numerics.md",
              "exact");
}

ModelLoadOptions model_load_options(const Args& args, ModelLoadFlags flags) {
  ModelLoadOptions o;
  if (flags.backend) o.backend = args.get("backend");
  if (flags.kernel_threads) o.threads = int(args.get_int("threads"));
  const std::string load = args.get("load"), numerics = args.get("numerics");
  const std::optional<io::Residency> r = io::parse_residency(load);
  check(r.has_value(), "--load must be auto, mmap, copy or split (got '" + load + "')");
  const std::optional<backend::Numerics> n = backend::parse_numerics(numerics);
  check(n.has_value(), std::string("--numerics must be ") + backend::numerics_choices() + " (got '" + numerics + "')");
  o.residency = *r;
  o.numerics = *n;
  return o;
}

}  // namespace dsv4::cli

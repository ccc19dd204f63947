// Token-id inputs on the command line: "1,2,3" or a path to a .npy array of integers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "cli_args.h"
#include "io/safetensors.h"

namespace dsv4::cli {

// Throws dsv4::Error with a clear message on malformed lists, bad files or non-integer arrays.
std::vector<int32_t> parse_ids(const std::string& arg, const std::string& option_name);

// How a command loads its model: --backend, --threads (kernel threads), --load and
// --numerics, declared once here so every command spells and validates them alike.
struct ModelLoadFlags {
  bool backend = true;         // --backend ref|cpu (bench always runs cpu)
  bool kernel_threads = true;  // --threads N (serve's --threads means HTTP workers)
};
struct ModelLoadOptions {
  std::string backend = "cpu";
  int threads = 0;  // 0 = physical cores
  io::Residency residency = io::Residency::kAuto;
  backend::Numerics numerics = backend::Numerics::kExact;
};
void add_model_load_options(Args& args, ModelLoadFlags flags = {});
// After parse(): the values, validated (one clear error line for a bad --load/--numerics).
ModelLoadOptions model_load_options(const Args& args, ModelLoadFlags flags = {});

}  // namespace dsv4::cli

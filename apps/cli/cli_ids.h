// Token-id inputs on the command line: "1,2,3" or a path to a .npy array of integers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "io/safetensors.h"

namespace dsv4::cli {

// Throws dsv4::Error with a clear message on malformed lists, bad files or non-integer arrays.
std::vector<int32_t> parse_ids(const std::string& arg, const std::string& option_name);

// --load auto|mmap|copy (where the checkpoint's bytes live). Throws dsv4::Error otherwise.
io::Residency parse_load(const std::string& arg);
// The help text of --load, shared by every command that loads a model.
inline constexpr const char* kLoadHelp =
    "where weights live: auto (copy into huge pages if the checkpoint fits in half the available RAM), "
    "mmap (zero copy), copy";

// --numerics exact|fast (weight-product arithmetic). Throws dsv4::Error otherwise.
backend::Numerics parse_numerics_arg(const std::string& arg);
// The help text of --numerics, shared by every command that loads a model.
inline constexpr const char* kNumericsHelp =
    "weight-product arithmetic: exact (fp32 activations) or fast (bf16 activations; see docs/numerics.md)";

}  // namespace dsv4::cli

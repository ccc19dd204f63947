// Token-id inputs on the command line: "1,2,3" or a path to a .npy array of integers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::cli {

// Throws dsv4::Error with a clear message on malformed lists, bad files or non-integer arrays.
std::vector<int32_t> parse_ids(const std::string& arg, const std::string& option_name);

}  // namespace dsv4::cli

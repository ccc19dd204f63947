// Error type used across dsv4: every failure a user can cause (bad file, bad config,
// bad request) becomes one dsv4::Error with a one-line message naming what was wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace dsv4 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws dsv4::Error(message) when cond is false. For checks on user-supplied data;
// internal invariants use assert.
inline void check(bool cond, const std::string& message) {
  if (!cond) throw Error(message);
}

}  // namespace dsv4

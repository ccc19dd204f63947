// Small helpers shared by the io sources (internal; not part of the io API).
#pragma once

#include <cstdio>
#include <string>

namespace dsv4::io {

// Error messages are one line: control characters from hostile input are escaped.
inline std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

// 'name' for messages, escaped to stay on one line. (Built by appending: GCC 12 warns,
// wrongly, about `"'" + std::string&&` with -Wrestrict.)
inline std::string quoted(const std::string& s) {
  std::string out = "'";
  out += one_line(s);
  out += '\'';
  return out;
}

}  // namespace dsv4::io

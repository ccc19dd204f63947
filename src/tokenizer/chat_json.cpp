#include "tokenizer/chat_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dsv4::chat {
namespace {

void quote_into(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void dump_into(std::string& out, const nlohmann::ordered_json& v) {
  using V = nlohmann::ordered_json::value_t;
  switch (v.type()) {
    case V::null: out += "null"; break;
    case V::boolean: out += v.get<bool>() ? "true" : "false"; break;
    case V::number_integer: out += std::to_string(v.get<std::int64_t>()); break;
    case V::number_unsigned: out += std::to_string(v.get<std::uint64_t>()); break;
    case V::number_float: out += py_float_repr(v.get<double>()); break;
    case V::string: quote_into(out, v.get_ref<const std::string&>()); break;
    case V::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ", ";
        first = false;
        dump_into(out, e);
      }
      out.push_back(']');
      break;
    }
    case V::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        quote_into(out, it.key());
        out += ": ";
        dump_into(out, it.value());
      }
      out.push_back('}');
      break;
    }
    case V::binary: out += "null"; break;  // not representable in Python JSON; never produced
    case V::discarded: out += "null"; break;
  }
}

}  // namespace

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's repr layout (float_repr_style 'short').
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out.push_back('-');
    i = 1;
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t k = i; k < e; ++k)
    if (sci[k] != '.') digits.push_back(sci[k]);
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  const int nd = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {
    out.push_back(digits[0]);
    if (nd > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    out.push_back('e');
    out.push_back(exp10 < 0 ? '-' : '+');
    const int a = exp10 < 0 ? -exp10 : exp10;
    if (a < 10) out.push_back('0');
    out += std::to_string(a);
  } else if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-decpt), '0');
    out += digits;
  } else if (decpt >= nd) {
    out += digits;
    out.append(static_cast<size_t>(decpt - nd), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<size_t>(decpt));
    out.push_back('.');
    out.append(digits, static_cast<size_t>(decpt), std::string::npos);
  }
  return out;
}

std::string py_json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  quote_into(out, s);
  return out;
}

std::string py_json_dumps(const nlohmann::ordered_json& value) {
  std::string out;
  dump_into(out, value);
  return out;
}

}  // namespace dsv4::chat

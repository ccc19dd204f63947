// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it.
//
// The official DeepSeek-V4 encoder embeds tool schemas, non-string tool-call arguments and
// response formats in the prompt with Python's default JSON writer, so the bytes matter:
// separators ", " and ": ", keys in insertion order, non-ASCII characters kept raw, control
// characters escaped (\n \r \t \b \f short forms, others as lowercase \u00xx), and floats in
// Python repr form (1.0, 1e-05, 1e+16, Infinity, NaN).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsv4::chat {

// Python json.dumps(value, ensure_ascii=False).
std::string py_json_dumps(const nlohmann::ordered_json& value);

// Python json.dumps(s, ensure_ascii=False) for a string: the quoted, escaped text.
std::string py_json_quote(std::string_view s);

// Python repr(float) for a finite or non-finite double ("Infinity"/"-Infinity"/"NaN" as
// json.dumps writes them).
std::string py_float_repr(double d);

}  // namespace dsv4::chat

#include <gtest/gtest.h>

#include "tokenizer/chat_json.h"

using dsv4::chat::py_float_repr;
using dsv4::chat::py_json_dumps;
using dsv4::chat::py_json_quote;
using oj = nlohmann::ordered_json;

TEST(ChatJson, FloatReprMatchesPython) {
  EXPECT_EQ(py_float_repr(1.0), "1.0");
  EXPECT_EQ(py_float_repr(0.1), "0.1");
  EXPECT_EQ(py_float_repr(-2.5), "-2.5");
  EXPECT_EQ(py_float_repr(100.0), "100.0");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(0.00001), "1e-05");
  EXPECT_EQ(py_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(py_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(1.25e16), "1.25e+16");
  EXPECT_EQ(py_float_repr(1e100), "1e+100");
  EXPECT_EQ(py_float_repr(123456.789), "123456.789");
  EXPECT_EQ(py_float_repr(0.0), "0.0");
  EXPECT_EQ(py_float_repr(-0.0), "-0.0");
  EXPECT_EQ(py_float_repr(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(py_float_repr(5e-324), "5e-324");
  EXPECT_EQ(py_float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(py_float_repr(std::numeric_limits<double>::infinity()), "Infinity");
  EXPECT_EQ(py_float_repr(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(py_float_repr(std::nan("")), "NaN");
}

TEST(ChatJson, StringEscapesLikePythonEnsureAsciiFalse) {
  EXPECT_EQ(py_json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(py_json_quote("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(py_json_quote(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\x7f\"");
  EXPECT_EQ(py_json_quote("é中文😀/"), "\"é中文😀/\"");
  EXPECT_EQ(py_json_quote(std::string("a\0b", 3)), "\"a\\u0000b\"");
}

TEST(ChatJson, ContainersUsePythonSeparatorsAndKeepKeyOrder) {
  oj j = oj::parse(R"({"z": 1, "a": [1, 2.0, true, null, "x"], "m": {}, "e": [], "n": -3})");
  EXPECT_EQ(py_json_dumps(j),
            R"({"z": 1, "a": [1, 2.0, true, null, "x"], "m": {}, "e": [], "n": -3})");
  EXPECT_EQ(py_json_dumps(oj::parse(R"({"a":{"b":{"c":[{"d":1e-7}]}}})")),
            R"({"a": {"b": {"c": [{"d": 1e-07}]}}})");
  EXPECT_EQ(py_json_dumps(oj(18446744073709551615ull)), "18446744073709551615");
  EXPECT_EQ(py_json_dumps(oj(-9223372036854775807ll - 1)), "-9223372036854775808");
}

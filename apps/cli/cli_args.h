// A small command-line parser shared by every subcommand: declared options with help
// text, `--name value` or `--name=value`, boolean flags, and a generated --help page.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dsv4::cli {

class Args {
 public:
  Args(std::string command, std::string summary);

  // Declare options before parse(). `value_name` empty = boolean flag.
  Args& option(const std::string& name, const std::string& value_name, const std::string& help,
               std::optional<std::string> default_value = std::nullopt, bool required = false);
  Args& flag(const std::string& name, const std::string& help) { return option(name, "", help); }

  // Returns false if --help was given (help already printed to stdout).
  // Throws dsv4::Error on an unknown option, a missing value or a missing required option.
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // value or default; throws if neither
  int64_t get_int(const std::string& name) const;  // throws a clear error on non-integers
  double get_double(const std::string& name) const;
  bool get_flag(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;

 private:
  struct Opt { std::string value_name, help; std::optional<std::string> def; bool required; };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Opt> opts_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace dsv4::cli

#include "cli_args.h"

#include <cstdio>
#include <iostream>
#include <sstream>

#include "core/error.h"

namespace dsv4::cli {

Args::Args(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

Args& Args::option(const std::string& name, const std::string& value_name, const std::string& help,
                   std::optional<std::string> default_value, bool required) {
  order_.push_back(name);
  opts_[name] = Opt{value_name, help, std::move(default_value), required};
  return *this;
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << help();
      return false;
    }
    if (a == "-p" && opts_.count("prompt")) a = "--prompt";  // the one short alias: -p TEXT
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto it = opts_.find(name);
    check(it != opts_.end(), command_ + ": unknown option --" + name + " (see dsv4 " + command_ + " --help)");
    if (it->second.value_name.empty()) {
      check(!inline_value, command_ + ": --" + name + " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!inline_value) {
      check(i + 1 < argc, command_ + ": --" + name + " needs a value <" + it->second.value_name + ">");
      value = argv[++i];
    }
    values_[name] = value;
  }
  for (const auto& name : order_) {
    const Opt& o = opts_.at(name);
    check(!o.required || values_.count(name), command_ + ": missing required option --" + name +
                                                  " (see dsv4 " + command_ + " --help)");
  }
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  const Opt& o = opts_.at(name);
  check(o.def.has_value(), command_ + ": option --" + name + " is required");
  return *o.def;
}

int64_t Args::get_int(const std::string& name) const {
  const std::string v = get(name);
  size_t pos = 0;
  int64_t r = 0;
  try { r = std::stoll(v, &pos); } catch (...) { pos = 0; }
  check(pos == v.size() && !v.empty(), command_ + ": --" + name + " expects an integer, got '" + v + "'");
  return r;
}

double Args::get_double(const std::string& name) const {
  const std::string v = get(name);
  size_t pos = 0;
  double r = 0;
  try { r = std::stod(v, &pos); } catch (...) { pos = 0; }
  check(pos == v.size() && !v.empty(), command_ + ": --" + name + " expects a number, got '" + v + "'");
  return r;
}

bool Args::get_flag(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::help() const {
  std::ostringstream os;
  os << "usage: dsv4 " << command_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Opt& o = opts_.at(name);
    std::string left = "  --" + name + (o.value_name.empty() ? "" : " <" + o.value_name + ">");
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    os << left << o.help;
    if (o.def && !o.value_name.empty()) os << " (default: " << *o.def << ")";
    if (o.required) os << " (required)";
    os << "\n";
  }
  os << "  --help                    show this help\n";
  return os.str();
}

}  // namespace dsv4::cli

#include "backend/ops.h"

#include "backend/cpu/cpu_ops.h"
#include "backend/ref/ref_ops.h"
#include "core/error.h"

namespace dsv4::backend {

std::optional<Numerics> parse_numerics(const std::string& name) {
  if (name == "exact") return Numerics::kExact;
  if (name == "fast") return Numerics::kFast;
  if (name == "int8") return Numerics::kInt8;
  return std::nullopt;
}

const char* numerics_name(Numerics n) {
  switch (n) {
    case Numerics::kExact: return "exact";
    case Numerics::kFast: return "fast";
    case Numerics::kInt8: return "int8";
  }
  return "?";
}

const char* numerics_choices() { return "exact, fast or int8"; }

std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics) {
  return make_ops(name, numerics, 0);
}

std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics, int threads) {
  if (name == "ref") return std::make_unique<RefOps>(numerics);
  if (name == "cpu") return std::make_unique<CpuOps>(threads, numerics);
  throw Error("unknown backend '" + name + "' (expected ref or cpu)");
}

}  // namespace dsv4::backend

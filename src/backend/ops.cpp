#include "backend/ops.h"

#include "backend/cpu/cpu_ops.h"
#include "backend/ref/ref_ops.h"
#include "core/error.h"

namespace dsv4::backend {

std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics) {
  return make_ops(name, numerics, 0);
}

std::unique_ptr<Ops> make_ops(const std::string& name, Numerics numerics, int threads) {
  if (name == "ref") return std::make_unique<RefOps>();
  if (name == "cpu") return std::make_unique<CpuOps>(threads, numerics);
  throw Error("unknown backend '" + name + "' (expected ref or cpu)");
}

}  // namespace dsv4::backend

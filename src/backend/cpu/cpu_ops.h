// The fast CPU backend. For now it inherits the reference implementation; the CPU-speed
// issue replaces each op with Highway SIMD kernels on native weight formats, tested
// against RefOps.
#pragma once

#include "backend/ref/ref_ops.h"

namespace dsv4::backend {

class CpuOps : public RefOps {
 public:
  std::string name() const override { return "cpu"; }
};

}  // namespace dsv4::backend

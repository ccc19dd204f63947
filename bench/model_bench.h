// `dsv4 bench decode|prefill`: K full-width V4-Flash layers (exact shapes and native
// formats, random weights, real routing over 256 experts top-6 plus the shared expert, LM
// head included), timed against the machine's own limits measured in the same run:
// read bandwidth for decode, peak fp32 FMA rate for prefill.
#pragma once

#include <cstdint>
#include <string>

#include "backend/ops.h"
#include "io/safetensors.h"

namespace dsv4::bench {

struct ModelBenchOptions {
  std::string mode = "decode";   // decode | prefill
  int64_t layers = 2;            // K full-width layers
  int64_t ctx = 1024;            // decode: context already in the KV state
  int64_t steps = 8;             // decode: timed steps (best of 3 rounds)
  int64_t prompt = 512;          // prefill: prompt length
  int threads = 0;               // 0 = physical cores
  std::string isa = "best";      // best | avx512 | avx2 | ...
  std::string model_dir;         // where the generated checkpoint is kept (reused if present)
  io::Residency residency = io::Residency::kAuto;         // where the weights live
  backend::Numerics numerics = backend::Numerics::kExact;  // weight-product arithmetic
};

// Runs the benchmark, printing its report; the last line is `roofline_fraction=...`
// (decode) or `flops_fraction=...` (prefill). Returns 0.
int run_model_bench(const ModelBenchOptions& opt);

}  // namespace dsv4::bench

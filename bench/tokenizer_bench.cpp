// Tokenizer throughput, one thread: encodes every text of a JSONL corpus ({"text": ...} per
// line) repeatedly and prints MB/s of UTF-8 input, with a cold piece cache (cleared before
// every pass) and a warm one: the fastest pass (cpp_*_mb_per_s) and the mean over passes. bench/tokenizer_bench.sh runs it next to the node reference.
//
// usage: tokenizer_bench TOKENIZER_JSON CORPUS_JSONL [SECONDS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Result {
  double mb_per_s;       // mean over all passes
  double best_mb_per_s;  // fastest pass (robust against a busy machine)
  int passes;
  size_t tokens_per_pass;
};

Result run(const dsv4::tok::Tokenizer& t, const std::vector<std::string>& texts, size_t bytes,
           double seconds, bool cold) {
  std::vector<int32_t> ids;
  int passes = 0;
  size_t tokens = 0;
  double busy = 0, best = 1e30;
  const double start = now_s();
  while (passes < 2 || now_s() - start < seconds) {
    if (cold) t.clear_cache();
    const double t0 = now_s();
    tokens = 0;
    for (const auto& s : texts) {
      ids.clear();
      t.encode_into(s, /*allow_special=*/true, ids);
      tokens += ids.size();
    }
    const double dt = now_s() - t0;
    busy += dt;
    best = std::min(best, dt);
    ++passes;
  }
  return Result{double(bytes) * passes / busy / 1e6, double(bytes) / best / 1e6, passes, tokens};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON CORPUS_JSONL [SECONDS]\n", argv[0]);
    return 2;
  }
  const double seconds = argc > 3 ? std::atof(argv[3]) : 5.0;
  try {
    const double l0 = now_s();
    const auto t = dsv4::tok::Tokenizer::load(argv[1]);
    const double load_s = now_s() - l0;
    std::ifstream in(argv[2], std::ios::binary);
    dsv4::check(in.good(), std::string("cannot open ") + argv[2]);
    std::vector<std::string> texts;
    size_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      texts.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
      bytes += texts.back().size();
    }
    const Result cold = run(t, texts, bytes, seconds / 2, true);
    const Result warm = run(t, texts, bytes, seconds / 2, false);
    std::printf("cpp_load_seconds %.3f\n", load_s);
    std::printf("cpp_texts %zu bytes_per_pass %zu tokens_per_pass %zu\n", texts.size(), bytes,
                warm.tokens_per_pass);
    std::printf("cpp_cold_passes %d cpp_warm_passes %d\n", cold.passes, warm.passes);
    std::printf("cpp_cold_mean_mb_per_s %.3f\n", cold.mb_per_s);
    std::printf("cpp_warm_mean_mb_per_s %.3f\n", warm.mb_per_s);
    std::printf("cpp_cold_mb_per_s %.3f\n", cold.best_mb_per_s);
    std::printf("cpp_warm_mb_per_s %.3f\n", warm.best_mb_per_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

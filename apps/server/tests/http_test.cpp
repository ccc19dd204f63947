// The HTTP layer in process: Server + ScriptedBackend (scripted model output) + the V4 test
// tokenizer, driven with cpp-httplib's client. Skipped when the test tokenizer is missing
// (scripts/deps.d/20-tokenizer-npm.sh makes it).
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "server.h"

using namespace dsv4::server;

namespace {

const std::string kTokenizer = std::string(DSV4_SOURCE_DIR) + "/third_party/npm/dsv4-tokenizer/tokenizer.json";

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kTokenizer)) GTEST_SKIP() << "no test tokenizer at " << kTokenizer;
    static dsv4::tok::Tokenizer* shared = new dsv4::tok::Tokenizer(dsv4::tok::Tokenizer::load(kTokenizer));
    tok_ = shared;  // loaded once for the suite
    script_ = std::filesystem::temp_directory_path() / ("dsv4-http-test-" + std::to_string(::getpid()) + ".json");
    std::ofstream(script_) << R"([{"match": "weather", "output": "hmm</think>Checking.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"}])";
    backend_ = std::make_unique<ScriptedBackend>(*tok_, script_.string(), 4096, 0);
    ServerOptions o;
    o.port = 0;
    o.api_key = "k";
    o.max_body_bytes = 4096;
    o.parse.model_names = {"tiny"};
    o.log_requests = false;
    server_ = std::make_unique<Server>(*backend_, *tok_, o);
    ASSERT_TRUE(server_->bind());
    thread_ = std::thread([this] { server_->run(); });
    cli_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    cli_->set_default_headers({{"Authorization", "Bearer k"}});
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    std::filesystem::remove(script_);
  }
  dsv4::tok::Tokenizer* tok_ = nullptr;
  std::filesystem::path script_;
  std::unique_ptr<ScriptedBackend> backend_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> cli_;
};

const char* kTools = R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])";

}  // namespace

TEST_F(Http, ChatToolCall) {
  auto res = cli_->Post("/v1/chat/completions",
                        std::string(R"({"model":"tiny","messages":[{"role":"user","content":"weather?"}],)") + kTools + "}",
                        "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Checking.");
  EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "hmm");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
}

TEST_F(Http, StreamNeverLeaksMarkup) {
  auto res = cli_->Post("/v1/chat/completions",
                        std::string(R"({"model":"tiny","stream":true,"messages":[{"role":"user","content":"weather?"}],)") +
                            kTools + "}",
                        "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->body.find("DSML"), std::string::npos);
  EXPECT_EQ(res->body.find("think>"), std::string::npos);
  EXPECT_NE(res->body.find("\"tool_calls\""), std::string::npos);
  EXPECT_NE(res->body.find("data: [DONE]"), std::string::npos);
}

TEST_F(Http, StatusCodes) {
  httplib::Client anon("127.0.0.1", server_->port());
  auto r401 = anon.Post("/v1/chat/completions", "{}", "application/json");
  ASSERT_TRUE(r401);
  EXPECT_EQ(r401->status, 401);
  auto health = anon.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto r404 = cli_->Post("/v1/nothing", "{}", "application/json");
  ASSERT_TRUE(r404);
  EXPECT_EQ(r404->status, 404);
  auto r413 = cli_->Post("/v1/chat/completions", std::string(10000, ' '), "application/json");
  ASSERT_TRUE(r413);
  EXPECT_EQ(r413->status, 413);
  auto r400 = cli_->Post("/api/chat", "{", "application/json");
  ASSERT_TRUE(r400);
  EXPECT_EQ(r400->status, 400);
  EXPECT_TRUE(json::parse(r400->body)["error"].is_string());
  auto page = anon.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>dsv4 chat</title>"), std::string::npos);
  auto m = cli_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("dsv4_requests_active 0"), std::string::npos);
}

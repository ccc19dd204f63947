// dsv4 serve: the HTTP server (cpp-httplib). Routes the OpenAI, Anthropic and Ollama
// endpoints through api.h (parse) -> Backend (tokens) -> output.h (responses), plus
// /health, /metrics (Prometheus text) and the chat page at /.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api.h"
#include "backend.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0 = any free port
  std::string api_key;                 // empty = no auth
  size_t max_body_bytes = 8u << 20;
  int64_t max_prompt_tokens = 0;       // 0 = the context size
  int64_t max_tokens_cap = 0;          // 0 = the context size
  int threads = 0;                     // HTTP worker threads; 0 = from the queue limits
  ParseContext parse;                  // model names, dialect, defaults
  std::string model_dir;               // for /api/show etc.
  int64_t model_bytes = 0;             // checkpoint size (/api/tags)
  bool log_requests = true;
  std::vector<std::string> cors_origins;  // origins allowed to read responses ("*" = any)
};

class Server {
 public:
  Server(Backend& backend, const tok::Tokenizer& tok, ServerOptions opt);
  ~Server();
  // Binds the listening socket (port 0 picks a free one); returns false on failure.
  bool bind();
  int port() const;
  // Serves until stop() (blocking).
  void run();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The chat page served at "/".
const std::string& chat_page_html();

}  // namespace dsv4::server

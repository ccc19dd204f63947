#include "server.h"

namespace dsv4::server {
const std::string& chat_page_html() {
  static const std::string page = "<!doctype html><title>dsv4</title>";
  return page;
}
}  // namespace dsv4::server

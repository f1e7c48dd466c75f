// `bedrock-meter serve --config FILE [--ready-file PATH]`: run the proxy (app/application.hpp).
#include <iostream>

#include "app/application.hpp"
#include "app/commands.hpp"

namespace bedrock_meter::app {

int serve_command(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "serve: --config FILE is required\n";
    return 2;
  }
  auto app = application::start(std::string(path), std::string(a.get("ready-file")));
  if (!app) {
    // The loggers went with the application; the operator reads this on stderr all the same.
    std::cerr << "bedrock-meter: startup failed: " << app.error().message << '\n';
    return 1;
  }
  return (*app)->run();
}

}  // namespace bedrock_meter::app

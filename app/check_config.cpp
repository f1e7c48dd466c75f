// `bedrock-meter check-config --config FILE`: validate a config and the rate table it names.
#include <iostream>

#include "app/commands.hpp"

namespace bedrock_meter::app {

int check_config_command(const args& a) {
  const auto path = a.get("config");
  if (path.empty()) {
    std::cerr << "check-config: --config FILE is required\n";
    return 2;
  }
  const auto cfg = load_or_report(path);
  if (!cfg) return 1;
  std::cout << path << ": OK (" << cfg->listeners.size() << " listener(s), "
            << cfg->auth.access_keys.size() << " access key(s), " << cfg->auth.bearer_keys.size()
            << " bearer key(s), upstream region " << cfg->upstream.region << ")\n";
  return 0;
}

}  // namespace bedrock_meter::app

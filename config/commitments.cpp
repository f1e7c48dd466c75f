// The rules of the `commitments` section that other modules apply: which models are
// Marketplace-billed and what discount a day's spend gets (config/config.hpp).
#include <algorithm>

#include "config/config.hpp"

namespace bedrock_meter::config {

bool is_marketplace(const commitment_config& c, std::string_view model_base) {
  const auto provider = model_base.substr(0, model_base.find('.'));
  return std::find(c.marketplace_providers.begin(), c.marketplace_providers.end(), provider) !=
         c.marketplace_providers.end();
}

std::int64_t discount_ppm_on(const std::vector<commitment_config>& commitments,
                             std::string_view model_base, std::chrono::sys_days day) {
  for (const auto& c : commitments) {
    if (day < std::chrono::sys_days(c.start) || day >= std::chrono::sys_days(c.end)) continue;
    if (c.marketplace_discounted || !is_marketplace(c, model_base)) return c.discount_ppm;
    return 0;
  }
  return 0;
}

}  // namespace bedrock_meter::config

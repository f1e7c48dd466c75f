#pragma once
/// Enterprise Discount Program commitments seen from the ledger (`bedrock-meter commitment`):
/// per contract year the Bedrock spend at list and net prices, what counts toward the commitment,
/// the run-rate forecast to the year's end and the shortfall or surplus it implies, the net
/// effective price per model; and a plan that projects spend forward to size a commitment before
/// signing. Pure code over day-by-model spend sums; EDP terms are private contracts, so every
/// rule comes from the configuration (config::commitment_config, docs/finops.md "Commitments").
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::billing {

/// List-price spend of one model on one UTC day (the ledger's total_cost, summed).
struct day_model_spend {
  std::chrono::sys_days day;
  std::string model;  ///< base model id
  metering::money_total list = 0;
};

struct commitment_year {
  int index = 0;  ///< 1 for the first contract year
  std::chrono::sys_days start, end;
  int days = 0;
  int days_elapsed = 0;
  metering::money_total list_aws = 0, list_marketplace = 0;
  metering::money_total net_aws = 0, net_marketplace = 0;
  metering::money_total counted_bedrock = 0;  ///< net AWS + the counted share of net Marketplace
  metering::money_total counted_other = 0;    ///< configured other spend, pro rata so far
  metering::money_total forecast = 0;  ///< counted at the year's run rate to its end, + other
  metering::money_total commitment = 0;
  metering::money_total shortfall = 0;  ///< commitment - forecast when positive
  metering::money_total surplus = 0;    ///< forecast - commitment when positive
};

struct model_net_price {
  std::string model;
  bool marketplace = false;
  metering::money_total list = 0, net = 0;  ///< in the current (or last) contract year
  std::int64_t discount_ppm = 0;            ///< what the model's spend actually gets
};

struct commitment_report {
  std::string name;
  std::vector<commitment_year> years;  ///< the years begun by `today`
  std::vector<model_net_price> models;
};

/// `spend` may hold any days; those outside the term are ignored. `today` is the current UTC day
/// (it counts as elapsed).
commitment_report evaluate_commitment(const config::commitment_config& c,
                                      const std::vector<day_model_spend>& spend,
                                      std::chrono::sys_days today);

struct plan_options {
  double growth_per_month = 0.0;  ///< 0.05 = 5% a month, compounded
  int years = 3;
  std::int64_t discount_ppm = 0;
  bool marketplace_discounted = false;
  std::int64_t marketplace_counts_ppm = 250'000;
};

struct plan_year {
  int index = 0;
  metering::money_total list = 0, net = 0, counted = 0;
};

/// Projects the trailing 30 days' list spend (AWS-billed and Marketplace apart) forward, month by
/// month with compounding growth, into contract years.
std::vector<plan_year> plan_commitment(metering::money_total trailing_30d_aws,
                                       metering::money_total trailing_30d_marketplace,
                                       const plan_options& o);

}  // namespace bedrock_meter::billing

#pragma once
// The AWS Price List Query API client behind `bedrock-meter rates fetch`
// (app/price_list_fetch.cpp).
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <boost/system/result.hpp>

#include "aws/credentials.hpp"
#include "billing/price_list.hpp"

namespace bedrock_meter::app {

struct fetch_settings {
  /// The Query API lives in us-east-1 (and ap-south-1); tests point this at a local stand-in.
  std::string endpoint = "https://api.pricing.us-east-1.amazonaws.com/";
  std::string signing_region = "us-east-1";
  std::string ca_file;               ///< extra trust anchor (a stand-in's CA); system store too
  std::vector<std::string> regions;  ///< regionCode filters; empty: every region
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< per call
  std::chrono::milliseconds min_interval{100};  ///< between calls (about 10 a second)
  std::chrono::milliseconds backoff{200};       ///< first wait after a throttle, doubling
  unsigned attempts = 6;                        ///< per call, throttles and 5xx included
};

using progress_fn = std::function<void(const std::string&)>;

/// Every GetProducts page of AmazonBedrock and AmazonBedrockFoundationModels (per region when
/// `regions` is given), as offer texts for billing::import_price_list. An error names the call.
boost::system::result<std::vector<billing::offer_text>, std::string> fetch_price_list(
    const fetch_settings& s, const aws::aws_credentials& creds, const progress_fn& progress);

}  // namespace bedrock_meter::app

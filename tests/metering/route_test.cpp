#include "metering/route.hpp"

#include <gtest/gtest.h>

#include <array>
#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace bedrock_meter::metering {
namespace {

constexpr std::string_view sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";

route_result ok_route(std::string_view method, std::string_view target) {
  const route_result r = parse_route(method, target);
  EXPECT_TRUE(r) << method << " " << target << " -> " << to_string(r.error);
  return r;
}

TEST(Route, EveryModelOperationInBothEncodings) {
  struct row {
    std::string_view action;
    operation op;
    std::string_view name;
    bool streaming;
  };
  const std::array<row, 6> rows{{
      {"invoke", operation::invoke_model, "InvokeModel", false},
      {"invoke-with-response-stream", operation::invoke_model_with_response_stream,
       "InvokeModelWithResponseStream", true},
      {"converse", operation::converse, "Converse", false},
      {"converse-stream", operation::converse_stream, "ConverseStream", true},
      {"count-tokens", operation::count_tokens, "CountTokens", false},
      {"invoke-with-bidirectional-stream", operation::invoke_model_with_bidirectional_stream,
       "InvokeModelWithBidirectionalStream", true},
  }};
  for (const row& r : rows) {
    SCOPED_TRACE(std::string(r.action));
    // AWS SDKs percent-encode the ':'; the Anthropic SDK sends it raw. Both are the same model.
    for (const std::string_view id :
         {std::string_view("anthropic.claude-3-5-sonnet-20240620-v1%3A0"),
          std::string_view("anthropic.claude-3-5-sonnet-20240620-v1%3a0"), sonnet}) {
      const route_result got =
          ok_route("POST", "/model/" + std::string(id) + "/" + std::string(r.action));
      EXPECT_EQ(got.value.op, r.op);
      EXPECT_EQ(got.value.model_id, sonnet);
      EXPECT_EQ(got.value.resource, "");
    }
    EXPECT_EQ(operation_name(r.op), r.name);
    EXPECT_EQ(is_streaming(r.op), r.streaming);
  }
}

TEST(Route, InferenceProfileArnsKeepEncodedSlashInsideTheModelId) {
  const route_result aws = ok_route(
      "POST",
      "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic."
      "claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
  EXPECT_EQ(aws.value.op, operation::converse_stream);
  EXPECT_EQ(aws.value.model_id,
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0");

  // Anthropic SDK style: raw ':' but '/' still encoded (a raw '/' would be a path separator).
  const route_result anthropic =
      ok_route("POST",
               "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic."
               "claude-3-5-sonnet-20240620-v1:0/invoke-with-response-stream");
  EXPECT_EQ(anthropic.value.op, operation::invoke_model_with_response_stream);
  EXPECT_EQ(anthropic.value.model_id, aws.value.model_id);

  const route_result app = ok_route(
      "POST",
      "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2F"
      "abc123/invoke");
  EXPECT_EQ(app.value.model_id,
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123");

  // A raw '/' inside an ARN splits the path: not a route.
  EXPECT_EQ(parse_route("POST",
                        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                        "us.anthropic.claude-3-5-sonnet-20240620-v1:0/converse")
                .error,
            route_error::unknown_route);
}

TEST(Route, GeographicAndGlobalProfileIds) {
  for (const std::string_view id :
       {"us.anthropic.claude-3-5-sonnet-20240620-v1:0", "eu.amazon.nova-pro-v1:0",
        "global.anthropic.claude-sonnet-4-20250514-v1:0", "us-gov.meta.llama3-8b-instruct-v1:0"}) {
    const route_result r = ok_route("POST", "/model/" + std::string(id) + "/converse");
    EXPECT_EQ(r.value.model_id, id);
  }
}

TEST(Route, QueryStringIsIgnored) {
  const route_result r = ok_route("POST", "/model/amazon.titan-text-express-v1/invoke?x=1&y=%zz");
  EXPECT_EQ(r.value.op, operation::invoke_model);
  EXPECT_EQ(r.value.model_id, "amazon.titan-text-express-v1");
  EXPECT_EQ(ok_route("POST", "/model/m/converse?").value.op, operation::converse);
  // A '?' ends the path even when what follows looks like more path.
  EXPECT_EQ(ok_route("POST", "/model/m/converse?/extra/segments").value.model_id, "m");
}

TEST(Route, ApplyGuardrail) {
  const route_result r = ok_route("POST", "/guardrail/gr-abc123/version/DRAFT/apply");
  EXPECT_EQ(r.value.op, operation::apply_guardrail);
  EXPECT_EQ(r.value.model_id, "gr-abc123");
  EXPECT_EQ(r.value.resource, "DRAFT");
  EXPECT_FALSE(is_streaming(r.value.op));
  EXPECT_EQ(operation_name(r.value.op), "ApplyGuardrail");

  const route_result arn =
      ok_route("POST",
               "/guardrail/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aguardrail%2Fgr1/"
               "version/3/apply");
  EXPECT_EQ(arn.value.model_id, "arn:aws:bedrock:us-east-1:123456789012:guardrail/gr1");
  EXPECT_EQ(arn.value.resource, "3");

  EXPECT_EQ(parse_route("GET", "/guardrail/g/version/1/apply").error,
            route_error::method_not_allowed);
  EXPECT_EQ(parse_route("POST", "/guardrail//version/1/apply").error, route_error::empty_model_id);
  EXPECT_EQ(parse_route("POST", "/guardrail/g/version//apply").error, route_error::empty_model_id);
  EXPECT_EQ(parse_route("POST", "/guardrail/g/version/1").error, route_error::unknown_route);
  EXPECT_EQ(parse_route("POST", "/guardrail/g/versions/1/apply").error, route_error::unknown_route);
  EXPECT_EQ(parse_route("POST", "/guardrail/g/version/1/apply/").error, route_error::unknown_route);
  EXPECT_EQ(parse_route("POST", "/guardrail/g%zz/version/1/apply").error,
            route_error::bad_encoding);
}

TEST(Route, AsyncInvokeRoutes) {
  const route_result start = ok_route("POST", "/async-invoke");
  EXPECT_EQ(start.value.op, operation::start_async_invoke);
  EXPECT_EQ(start.value.model_id, "");
  EXPECT_EQ(operation_name(start.value.op), "StartAsyncInvoke");

  const route_result list =
      ok_route("GET", "/async-invoke?maxResults=10&statusEquals=Completed&sortOrder=Descending");
  EXPECT_EQ(list.value.op, operation::list_async_invokes);
  EXPECT_EQ(operation_name(list.value.op), "ListAsyncInvokes");
  EXPECT_EQ(ok_route("GET", "/async-invoke").value.op, operation::list_async_invokes);

  const route_result get = ok_route(
      "GET",
      "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aasync-invoke%2Fabc123def");
  EXPECT_EQ(get.value.op, operation::get_async_invoke);
  EXPECT_EQ(get.value.resource, "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def");
  EXPECT_EQ(get.value.model_id, "");
  EXPECT_EQ(operation_name(get.value.op), "GetAsyncInvoke");
  for (const operation op : {start.value.op, list.value.op, get.value.op}) {
    EXPECT_FALSE(is_streaming(op));
  }

  EXPECT_EQ(parse_route("DELETE", "/async-invoke").error, route_error::method_not_allowed);
  EXPECT_EQ(parse_route("PUT", "/async-invoke").error, route_error::method_not_allowed);
  EXPECT_EQ(parse_route("POST", "/async-invoke/arn%3Ax").error, route_error::method_not_allowed);
  EXPECT_EQ(parse_route("GET", "/async-invoke/").error, route_error::empty_model_id);
  EXPECT_EQ(parse_route("GET", "/async-invoke/a%4").error, route_error::bad_encoding);
  EXPECT_EQ(parse_route("GET", "/async-invoke/a/b").error, route_error::unknown_route);
}

TEST(Route, UnknownPaths) {
  for (const std::string_view target : {"",
                                        "/",
                                        "//",
                                        "/foo",
                                        "/model",
                                        "/model/",
                                        "/model/x",
                                        "/model/x/",
                                        "/model/x/foo",
                                        "/model/x/invoke/",
                                        "/model/x/invoke/extra",
                                        "/model/x/Invoke",
                                        "/model/x/converse-streamx",
                                        "//model/x/invoke",
                                        "model/x/invoke",
                                        "*",
                                        "http://bedrock/model/x/invoke",
                                        "/models/x/invoke",
                                        "/async-invokes",
                                        "/a/b/c/d/e/f/g/h/i/j/k",
                                        "/guardrail-checks/invoke",
                                        "/model/x/%69nvoke"}) {
    SCOPED_TRACE(std::string(target));
    EXPECT_EQ(parse_route("POST", target).error, route_error::unknown_route);
    EXPECT_EQ(parse_route("GET", target).error, route_error::unknown_route);
  }
}

TEST(Route, WrongMethodOnKnownPath) {
  for (const std::string_view method :
       {"GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "post", ""}) {
    SCOPED_TRACE(std::string(method));
    EXPECT_EQ(parse_route(method, "/model/m/invoke").error, route_error::method_not_allowed);
    EXPECT_EQ(parse_route(method, "/model/m/converse-stream").error,
              route_error::method_not_allowed);
  }
  EXPECT_EQ(parse_route("GET", "/model//invoke").error, route_error::method_not_allowed);
}

TEST(Route, EmptyModelId) {
  EXPECT_EQ(parse_route("POST", "/model//converse").error, route_error::empty_model_id);
  EXPECT_EQ(parse_route("POST", "/model//invoke?x=1").error, route_error::empty_model_id);
}

TEST(Route, BadEscapes) {
  for (const std::string_view target :
       {"/model/x%zz/invoke", "/model/x%4/invoke", "/model/%/invoke", "/model/x%/invoke",
        "/model/%g0/invoke", "/model/%0g/invoke", "/model/abc%3/converse"}) {
    SCOPED_TRACE(std::string(target));
    EXPECT_EQ(parse_route("POST", target).error, route_error::bad_encoding);
  }
}

TEST(Route, UnicodeAndOddBytesPassThroughDecoded) {
  // Raw UTF-8 and its percent-encoded form decode to the same id; Bedrock, not us, validates it.
  const route_result raw = ok_route("POST", "/model/mod\xc3\xa9le/invoke");
  const route_result enc = ok_route("POST", "/model/mod%C3%A9le/invoke");
  EXPECT_EQ(raw.value.model_id, "mod\xc3\xa9le");
  EXPECT_EQ(enc.value.model_id, raw.value.model_id);
  EXPECT_EQ(ok_route("POST", "/model/%E2%98%83/converse").value.model_id, "\xe2\x98\x83");
  // '+' is literal in a path; "%25" is a literal percent.
  EXPECT_EQ(ok_route("POST", "/model/a+b%2520/invoke").value.model_id, "a+b%20");
}

TEST(PercentDecode, Basics) {
  EXPECT_EQ(percent_decode(""), std::string());
  EXPECT_EQ(percent_decode("abc"), std::string("abc"));
  EXPECT_EQ(percent_decode("%41%62%2f%2F"), std::string("Ab//"));
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode("%ff"), std::string(1, '\xff'));
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("a%zz"));
  EXPECT_FALSE(percent_decode("%-1"));
}

TEST(Route, ToStringNamesEveryError) {
  std::set<std::string_view> names;
  for (const route_error e :
       {route_error::none, route_error::unknown_route, route_error::method_not_allowed,
        route_error::bad_encoding, route_error::empty_model_id}) {
    names.insert(to_string(e));
  }
  EXPECT_EQ(names.size(), 5u);
  EXPECT_EQ(to_string(route_error::unknown_route), "unknown_route");
}

// Every operation in the service model either routes to the operation of the same name, or is
// InvokeGuardrailChecks (deliberately unknown: see route.cpp). A new operation in a future model
// fails this test instead of silently 404ing.
TEST(Route, CoversEveryOperationInTheServiceModel) {
  const std::string path = std::string(BM_TEST_DATA_DIR) +
                           "/bedrock/botocore-data/bedrock-runtime/2023-09-30/service-2.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  const boost::json::value model = boost::json::parse(ss.str());
  int checked = 0;
  for (const auto& [name, op] : model.at("operations").as_object()) {
    SCOPED_TRACE(std::string(name));
    const std::string method(op.at("http").at("method").as_string());
    std::string uri(op.at("http").at("requestUri").as_string());
    // Fill every {label} with a percent-encoded ARN-ish value.
    for (std::size_t open = uri.find('{'); open != std::string::npos; open = uri.find('{')) {
      uri.replace(open, uri.find('}', open) - open + 1, "arn%3Aaws%3Ax%2Fy");
    }
    const route_result r = parse_route(method, uri);
    if (name == "InvokeGuardrailChecks") {
      EXPECT_EQ(r.error, route_error::unknown_route);
      continue;
    }
    ASSERT_TRUE(r) << uri << " -> " << to_string(r.error);
    EXPECT_EQ(operation_name(r.value.op), std::string_view(name));
    if (uri.starts_with("/model/")) {
      EXPECT_EQ(r.value.model_id, "arn:aws:x/y");
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

}  // namespace
}  // namespace bedrock_meter::metering

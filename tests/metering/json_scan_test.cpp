// The scanner agrees with Boost.JSON on what is a JSON document, and finds members and elements
// as exact views of the text.
#include "metering/json_scan.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <random>
#include <string>
#include <vector>

namespace bedrock_meter::metering::json_scan {
namespace {

bool valid(std::string_view s) {
  const std::size_t end = skip_value(s, 0);
  return end != npos && skip_ws(s, end) == s.size();
}

bool boost_valid(std::string_view s) {
  boost::system::error_code ec;
  boost::json::parse(s, ec);
  return !ec;
}

TEST(JsonScan, AgreesWithADocumentParserOnValidity) {
  const std::vector<std::string> cases = {R"({})",
                                          R"([])",
                                          R"({"a":1})",
                                          R"({"a":[1,2,{"b":"c\"d"}],"e":null})",
                                          R"(  [true,false]  )",
                                          R"("x\\")",
                                          R"(-0.5e+3)",
                                          R"({"a":1,})",
                                          R"([1,])",
                                          R"({"a" 1})",
                                          R"({"a":tru})",
                                          R"([01])",
                                          R"({"a":"line
break"})",
                                          R"([1 2])",
                                          R"({"a":{"b":[}]})",
                                          R"("unterminated)",
                                          R"(1.)",
                                          R"(-)",
                                          R"({"\u00e9":"\ud83d\ude00"})",
                                          R"([[[[[]]]]])",
                                          R"({"a":1}})",
                                          ""};
  for (const auto& c : cases) EXPECT_EQ(valid(c), boost_valid(c)) << c;
}

TEST(JsonScan, RandomMutationsNeverDisagreeOrCrash) {
  const std::string seed =
      R"({"system":[{"text":"be \"brief\""}],"messages":[{"role":"user","content":[{"text":"hi"}]}],)"
      R"("inferenceConfig":{"maxTokens":512,"temperature":0.5},"x":[true,false,null,-1.5e3]})";
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\",:\\ 0123456789.eE+-truefalsnl";
  for (int i = 0; i < 20000; ++i) {
    std::string s = seed;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.erase(at, 1); break;
        default: s.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    ASSERT_EQ(valid(s), boost_valid(s)) << s;
  }
}

TEST(JsonScan, MembersAndElementsAreExactViews) {
  std::vector<std::pair<std::string, std::string>> seen;
  EXPECT_TRUE(
      for_each_member(R"( { "a" : [1, 2] , "b":{"c":"}"} } )",
                      [&](std::string_view k, std::string_view v) { seen.emplace_back(k, v); }));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::pair<std::string, std::string>{"a", "[1, 2]"}));
  EXPECT_EQ(seen[1], (std::pair<std::string, std::string>{"b", R"({"c":"}"})"}));
  std::vector<std::string> elems;
  EXPECT_TRUE(for_each_element(R"([ "x", {"y":1} ,3 ])",
                               [&](std::string_view e) { elems.emplace_back(e); }));
  EXPECT_EQ(elems, (std::vector<std::string>{R"("x")", R"({"y":1})", "3"}));
  EXPECT_FALSE(for_each_member(R"({"a":1,})", [](auto, auto) {}));
  EXPECT_FALSE(for_each_element("[1,2", [](auto) {}));
}

TEST(JsonScan, DeepNestingIsRefusedNotRecursedInto) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_FALSE(valid(deep));
  const std::string ok = std::string(100, '[') + std::string(100, ']');
  EXPECT_TRUE(valid(ok));
}

TEST(JsonScan, KeysWithEscapesAreDecodedForComparison) {
  EXPECT_TRUE(key_equals("max_tokens", "max_tokens"));
  EXPECT_TRUE(key_equals(R"(max\u005ftokens)", "max_tokens"));
  EXPECT_TRUE(key_equals(R"(a\"b)", "a\"b"));
  EXPECT_FALSE(key_equals(R"(max\u005)", "max_"));
  EXPECT_FALSE(key_equals("max_token", "max_tokens"));
}

}  // namespace
}  // namespace bedrock_meter::metering::json_scan

// The spend console as compiled in: every file is there, and the page keeps to what its
// Content-Security-Policy allows (no inline script or style, nothing fetched from elsewhere) and
// never turns data into markup. The browser test (tests/integration/test_console.py) shows the
// same in a real Chromium; these catch a regression at build time, line by line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "console/assets.hpp"

namespace bedrock_meter::console {
namespace {

std::string_view body_of(std::string_view path) {
  for (const auto& a : assets()) {
    if (a.path == path) return a.body;
  }
  ADD_FAILURE() << path << " is not compiled in";
  return {};
}

TEST(ConsoleAssets, EveryFileIsCompiledInWithItsType) {
  ASSERT_GE(assets().size(), 4U);
  EXPECT_EQ(assets().front().path, "/");
  for (const auto& a : assets()) {
    EXPECT_FALSE(a.body.empty()) << a.path;
    EXPECT_FALSE(a.content_type.empty()) << a.path;
  }
  EXPECT_NE(body_of("/").find("<!doctype html>"), std::string_view::npos);
  EXPECT_NE(body_of("/").find("src=\"/console.js\""), std::string_view::npos);
  EXPECT_NE(body_of("/").find("href=\"/console.css\""), std::string_view::npos);
}

// The text lower-cased (ASCII), for case-insensitive searches.
std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Every tag of `html` (the text between '<' and the next '>'), lower-cased.
std::vector<std::string> tags(std::string_view html) {
  std::vector<std::string> out;
  const auto text = lower(html);
  for (std::size_t at = text.find('<'); at != std::string::npos; at = text.find('<', at + 1)) {
    const auto end = text.find('>', at);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at, end - at + 1));
  }
  return out;
}

bool is_attribute_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }

// The names of the attributes in one tag (whatever precedes '=' after whitespace).
std::vector<std::string> attribute_names(const std::string& tag) {
  std::vector<std::string> out;
  for (std::size_t eq = tag.find('='); eq != std::string::npos; eq = tag.find('=', eq + 1)) {
    std::size_t b = eq;
    while (b > 0 && is_attribute_char(tag[b - 1])) --b;
    if (b > 0 && std::isspace(static_cast<unsigned char>(tag[b - 1])))
      out.push_back(tag.substr(b, eq - b));
  }
  return out;
}

TEST(ConsoleAssets, PageHasNoInlineScriptOrStyle) {
  // Every <script> loads a file; there is no <style> block, style="" or on...="" handler.
  int scripts = 0;
  for (const auto& tag : tags(body_of("/"))) {
    if (tag.starts_with("<script")) {
      ++scripts;
      EXPECT_NE(tag.find(" src="), std::string::npos) << tag;
    }
    EXPECT_FALSE(tag.starts_with("<style")) << tag;
    for (const auto& name : attribute_names(tag)) {
      EXPECT_NE(name, "style") << tag;
      EXPECT_FALSE(name.starts_with("on")) << tag;
    }
  }
  EXPECT_GE(scripts, 1);
  // Not a script with text inside it either.
  const auto html = lower(body_of("/"));
  for (std::size_t at = html.find("<script"); at != std::string::npos;
       at = html.find("<script", at + 1)) {
    const auto open_end = html.find('>', at);
    ASSERT_NE(open_end, std::string::npos);
    EXPECT_EQ(html.compare(open_end + 1, 9, "</script>"), 0) << html.substr(at, 80);
  }
}

TEST(ConsoleAssets, ScriptNeverBuildsMarkupFromStrings) {
  const std::string_view js = body_of("/console.js");
  for (std::string_view sink :
       {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
        "setAttribute('style'", "setAttribute(\"style\""}) {
    EXPECT_EQ(js.find(sink), std::string_view::npos) << sink;
  }
}

TEST(ConsoleAssets, NothingIsFetchedFromElsewhere) {
  // The only absolute URL allowed is the SVG namespace name, which is an identifier, not a fetch.
  for (const auto& a : assets()) {
    const auto text = lower(a.body);
    for (std::string_view scheme : {"http://", "https://"}) {
      for (auto at = text.find(scheme); at != std::string::npos; at = text.find(scheme, at + 1))
        EXPECT_EQ(text.compare(at, 26, "http://www.w3.org/2000/svg"), 0)
            << a.path << ": " << text.substr(at, 60);
    }
    EXPECT_EQ(text.find("src=\"//"), std::string::npos) << a.path;
    EXPECT_EQ(text.find("href=\"//"), std::string::npos) << a.path;
    EXPECT_EQ(text.find("url(//"), std::string::npos) << a.path;
  }
}

TEST(ConsoleAssets, PolicyForbidsInlineScriptAndOtherOrigins) {
  const std::string_view csp = content_security_policy;
  EXPECT_NE(csp.find("default-src 'none'"), std::string_view::npos);
  EXPECT_NE(csp.find("script-src 'self'"), std::string_view::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string_view::npos);
  EXPECT_EQ(csp.find("unsafe-eval"), std::string_view::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string_view::npos);
}

}  // namespace
}  // namespace bedrock_meter::console

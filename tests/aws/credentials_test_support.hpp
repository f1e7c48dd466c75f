#pragma once
// Test doubles the credential tests share: an injected environment, a wall clock moved by hand
// and a temporary directory. No sockets here: the local HTTP stand-ins for the metadata endpoints
// live in credentials_http_test.cpp, the one test file that compiles Beast.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "aws/credentials.hpp"

namespace bedrock_meter::aws::test_support {

// An injected environment: only what the test puts in it exists.
struct fake_env {
  std::map<std::string, std::string> vars;
  env_fn fn() const {
    return [vars = vars](const std::string& name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
};

// A wall clock the test moves by hand. Atomic: the refresh thread reads it too.
struct fake_clock {
  std::atomic<clock_time::rep> ticks{
      clock_time{std::chrono::sys_days{std::chrono::year{2026} / 11 / 26}}
          .time_since_epoch()
          .count()};
  clock_time now() const { return clock_time{clock_time::duration{ticks.load()}}; }
  void advance(clock_time::duration d) { ticks += d.count(); }
  clock_fn fn() {
    return [this] { return now(); };
  }
};

// A temporary directory, removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bm-creds-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& rel, std::string_view content) const {
    const auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace bedrock_meter::aws::test_support

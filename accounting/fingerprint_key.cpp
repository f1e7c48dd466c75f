#include "accounting/fingerprint_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bedrock_meter::accounting {

namespace {

using key_result = boost::system::result<metering::siphash_key, std::string>;

std::string why(const std::string& path, const std::string& what) {
  return "fingerprint key " + path + ": " + what;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

key_result parse_key(const std::string& path, const std::string& text) {
  std::string hex;
  for (char c : text)
    if (c != '\n' && c != '\r' && c != ' ') hex.push_back(c);
  metering::siphash_key key{};
  if (hex.size() != 2 * key.size())
    return why(path, "expected 32 hexadecimal digits, found " + std::to_string(hex.size()) +
                         " characters (delete the file to create a new key)");
  for (std::size_t i = 0; i < key.size(); ++i) {
    const int hi = hex_digit(hex[2 * i]);
    const int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return why(path, "not a hexadecimal key");
    key[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return key;
}

key_result random_key(const std::string& path) {
  metering::siphash_key key{};
  std::ifstream random("/dev/urandom", std::ios::binary);
  if (!random.read(reinterpret_cast<char*>(key.data()), static_cast<std::streamsize>(key.size())))
    return why(path, "cannot read /dev/urandom to create a key");
  return key;
}

key_result create_key(const std::string& path) {
  auto key = random_key(path);
  if (!key) return key;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return why(path, std::string("cannot create: ") + std::strerror(errno));
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  for (auto b : *key) {
    text.push_back(digits[b >> 4]);
    text.push_back(digits[b & 15]);
  }
  text.push_back('\n');
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return why(path, std::string("cannot write: ") + std::strerror(errno));
  return key;
}

}  // namespace

key_result load_or_create_fingerprint_key(const std::string& path, std::string& warning) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return why(path, std::strerror(errno));
    auto created = create_key(path);
    // Another replica may have created it between our stat and open: read theirs.
    if (created || errno != EEXIST) return created;
    if (::stat(path.c_str(), &st) != 0) return why(path, std::strerror(errno));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    warning = "fingerprint key " + path + " is readable by other users; chmod 600 it";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return why(path, "cannot read");
  return parse_key(path, text.str());
}

}  // namespace bedrock_meter::accounting

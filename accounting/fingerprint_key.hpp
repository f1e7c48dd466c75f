#pragma once
/// The installation's secret prompt-fingerprint key: 16 random bytes kept in a file beside the
/// ledger (`ledger.fingerprint_key_file`), created on first start with mode 0600. Without the key
/// a fingerprint cannot be matched against a guessed prompt; with it, fingerprints from every
/// run (and every replica given the same file) can be compared. Losing the file only means that
/// new fingerprints no longer match old ones.
#include <string>

#include <boost/system/result.hpp>

#include "metering/siphash.hpp"

namespace bedrock_meter::accounting {

/// Reads the key in `path` (32 hexadecimal digits), or creates the file with a new random key
/// when it does not exist. An error names the file and what is wrong; `warning` is set when the
/// file is readable by group or others.
boost::system::result<metering::siphash_key, std::string> load_or_create_fingerprint_key(
    const std::string& path, std::string& warning);

}  // namespace bedrock_meter::accounting

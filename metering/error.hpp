#pragma once
/// The error value of metering's fallible functions off the request path (today: loading a time
/// zone). Pure code reports failures as values; the request path never sees these.
#include <cstdint>
#include <string>

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

namespace bedrock_meter::metering {

/// Why a metering function produced no value. `message` is one line meant for an operator: it
/// names the input (zone name, file) and what is wrong with it.
struct error {
  enum class kind : std::uint8_t {
    invalid_argument,  ///< refused before anything is read (e.g. a zone name with "..")
    not_found,         ///< nothing by that name (e.g. no such zone file)
    bad_data,          ///< the data was read but is malformed or unsupported (e.g. a bad TZif file)
  };
  kind what = kind::bad_data;
  std::string message;
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

}  // namespace bedrock_meter::metering

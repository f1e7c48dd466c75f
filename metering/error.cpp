#include "metering/error.hpp"

#include <stdexcept>

namespace bedrock_meter::metering {

void throw_exception_from_error(const error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

}  // namespace bedrock_meter::metering

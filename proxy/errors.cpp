#include "proxy/errors.hpp"

#include <stdexcept>

namespace bedrock_meter::proxy {

void throw_exception_from_error(const startup_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

void throw_exception_from_error(const reload_error& e, const boost::source_location&) {
  throw std::runtime_error(e.problems.empty() ? "reload refused" : e.problems.front());
}

}  // namespace bedrock_meter::proxy

#pragma once
/// Base64 decoding (RFC 4648, standard alphabet, padded), for the `bytes` of
/// InvokeModelWithResponseStream `chunk` events. Table-driven, four input bytes per step, no
/// allocation beyond growing the caller's reused output buffer. Pure code.
#include <string>
#include <string_view>

namespace bedrock_meter::metering {

/// Decodes `in` into `out` (replacing its contents). False on a character outside the alphabet
/// or an impossible length; `out` then holds no meaningful bytes.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace bedrock_meter::metering

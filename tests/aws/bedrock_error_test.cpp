// The Bedrock error shape: what SDKs need to raise their typed exceptions.
#include "aws/bedrock_error.hpp"

#include <gtest/gtest.h>

namespace bedrock_meter::aws {
namespace {

TEST(BedrockError, ShapeMatchesBedrock) {
  EXPECT_EQ(error_type_header("ThrottlingException"),
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/");
  EXPECT_EQ(error_body("say \"hi\"\n"), R"({"message":"say \"hi\"\n"})");
  auto e = unknown_operation("POST", "/v1/chat/completions?key=secret");
  EXPECT_EQ(e.status, 404u);
  EXPECT_EQ(e.type, "UnknownOperationException");
  EXPECT_EQ(e.message.find("secret"), std::string::npos);  // the query is never echoed
  EXPECT_EQ(payload_too_large(1024).status, 413u);
}

}  // namespace
}  // namespace bedrock_meter::aws

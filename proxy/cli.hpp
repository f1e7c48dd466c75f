#pragma once
// The `bedrock-meter` command line: serve, check-config, keys create. Lives in the library so
// main.cpp only wires (STYLE.md 3) and tests can drive the commands.
namespace bedrock_meter::proxy {

/// Runs the command line; returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace bedrock_meter::proxy

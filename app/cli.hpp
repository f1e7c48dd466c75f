#pragma once
// The `bedrock-meter` command line. Lives in the library so main.cpp only calls it and tests can
// drive the commands.
namespace bedrock_meter::app {

/// Runs the command line; returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace bedrock_meter::app

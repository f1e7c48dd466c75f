#include "app/cli.hpp"

int main(int argc, char** argv) { return bedrock_meter::app::run_cli(argc, argv); }

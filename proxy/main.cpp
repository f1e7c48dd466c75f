#include "proxy/cli.hpp"

int main(int argc, char** argv) { return bedrock_meter::proxy::run_cli(argc, argv); }

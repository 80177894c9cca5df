#include "tools/vfiokit/cli.h"

int main(int argc, char** argv) { return vfiokit::cli::run(argc, argv); }

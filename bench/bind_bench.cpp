// Runs inside the rig: what vfiokit's checks, journal and verification cost on top of the
// kernel's own driver work. One round moves the nvme to vfio-pci and back twice: once with
// `vfiokit bind` + `vfiokit unbind`, once with a plain shell doing the three sysfs writes each
// way; the order alternates between rounds. Prints the median round trip of each and the ratio.
//   bind_bench [ROUNDS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string find_nvme() {
  for (const auto& name : vfiokit::list_dir("/sys/bus/pci/devices")) {
    const auto id = vfiokit::read_line_if_exists("/sys/bus/pci/devices/" + name + "/device");
    const auto vendor = vfiokit::read_line_if_exists("/sys/bus/pci/devices/" + name + "/vendor");
    if (vendor == "0x1b36" && id == "0x0010") return name;
  }
  return {};
}

std::string driver(const std::string& bdf) {
  return vfiokit::read_link_name("/sys/bus/pci/devices/" + bdf + "/driver").value_or("(none)");
}

// Runs a command and checks where the device ended up; returns the wall time in ms.
double timed(const std::vector<std::string>& argv, const std::string& bdf, const char* expect) {
  const auto start = Clock::now();
  const auto result = vfiokit::run_command(argv);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (result.exit_status != 0 || driver(bdf) != expect) {
    std::fprintf(stderr, "bind_bench: %s failed (status %d, driver %s): %s\n", argv[0].c_str(),
                 result.exit_status, driver(bdf).c_str(), result.output.c_str());
    std::exit(1);
  }
  return ms;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 15;
  const std::string bdf = find_nvme();
  if (bdf.empty() || driver(bdf) != "nvme") {
    std::fprintf(stderr, "bind_bench: needs the rig's nvme on the nvme driver\n");
    return 1;
  }
  const std::string dev = "/sys/bus/pci/devices/" + bdf;
  const std::string shell_bind = "echo vfio-pci > " + dev + "/driver_override && echo " + bdf +
                                 " > " + dev + "/driver/unbind && echo " + bdf +
                                 " > /sys/bus/pci/drivers_probe";
  const std::string shell_unbind = "echo > " + dev + "/driver_override && echo " + bdf + " > " +
                                   dev + "/driver/unbind && echo " + bdf +
                                   " > /sys/bus/pci/drivers_probe";
  std::vector<double> with_vfiokit, with_shell;
  auto run_vfiokit = [&] {
    with_vfiokit.push_back(timed({"vfiokit", "bind", bdf}, bdf, "vfio-pci") +
                           timed({"vfiokit", "unbind", bdf}, bdf, "nvme"));
  };
  auto run_shell = [&] {
    with_shell.push_back(timed({"sh", "-c", shell_bind}, bdf, "vfio-pci") +
                         timed({"sh", "-c", shell_unbind}, bdf, "nvme"));
  };
  run_shell();  // warm-up: first probes load caches; not counted
  with_shell.clear();
  for (int round = 0; round < rounds; ++round) {
    if (round % 2 == 0) {
      run_vfiokit();
      run_shell();
    } else {
      run_shell();
      run_vfiokit();
    }
  }
  const double v = median(with_vfiokit), s = median(with_shell);
  std::printf("bind+unbind round trip, median of %d rounds (emulated time: compare the ratio)\n",
              rounds);
  std::printf("  vfiokit bind + unbind         %8.1f ms\n", v);
  std::printf("  shell, three sysfs writes x2  %8.1f ms\n", s);
  std::printf("  ratio vfiokit / shell         %8.2f\n", v / s);
  return 0;
}

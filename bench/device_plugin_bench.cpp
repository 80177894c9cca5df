// Runs inside the rig: what the device plugin costs beside the work it cannot avoid.
//  1. Start-up: from spawning `vfiokit device-plugin` (config: the rig's nvme and edu, one
//     resource each) until kubelet (the stand-in, in this process) has both registrations, vs
//     `vfiokit bind` of the same two devices, the floor: the plugin binds them the same way. The
//     plugin is stopped with SIGTERM (the groups go home) and the bind undone with `unbind`
//     between rounds; the order alternates.
//  2. Allocate latency over the plugin's socket vs GetDevicePluginOptions, a call that does no
//     work: what answering Allocate (the board, /dev/vfio checks, the environment) adds to a
//     gRPC round trip on a unix socket.
//   device_plugin_bench [ROUNDS] [CALLS]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/kubelet_standin.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/k8s/plugin_server.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string find_function(const char* vendor, const char* device) {
  for (const auto& name : vfiokit::list_dir("/sys/bus/pci/devices")) {
    const auto v = vfiokit::read_line_if_exists("/sys/bus/pci/devices/" + name + "/vendor");
    const auto d = vfiokit::read_line_if_exists("/sys/bus/pci/devices/" + name + "/device");
    if (v == vendor && d == device) return name;
  }
  return {};
}

std::string driver(const std::string& bdf) {
  return vfiokit::read_link_name("/sys/bus/pci/devices/" + bdf + "/driver").value_or("(none)");
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "device_plugin_bench: %s\n", what.c_str());
  std::exit(1);
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void run_checked(const std::vector<std::string>& argv) {
  const auto result = vfiokit::run_command(argv);
  if (result.exit_status != 0) fail(argv[1] + " failed: " + result.output);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int calls = argc > 2 ? std::atoi(argv[2]) : 200;
  const std::string nvme = find_function("0x1b36", "0x0010");
  const std::string edu = find_function("0x1234", "0x11e8");
  if (nvme.empty() || edu.empty() || driver(nvme) != "nvme") {
    fail("needs the rig's nvme (on the nvme driver) and edu");
  }
  const fs::path dir = fs::temp_directory_path() / "device_plugin_bench";
  fs::remove_all(dir);
  fs::create_directories(dir / "plugins");
  const fs::path config = dir / "config.json";
  vfiokit::write_file_durable(config, R"({"resources": [{"name": "vfiokit.io/nvme", "bdfs": [")" +
                                          nvme + R"("]}, {"name": "vfiokit.io/edu", "bdfs": [")" +
                                          edu + R"("]}]})");
  vfiokit::test::KubeletStandIn kubelet(dir / "plugins");
  const std::vector<std::string> plugin_argv{"vfiokit",      "device-plugin",
                                             "--config",     config.string(),
                                             "--plugin-dir", (dir / "plugins").string()};

  // The plugin's event lines would bury the results.
  vfiokit::ChildOptions plugin_options;
  plugin_options.output = vfiokit::ChildOutput::file;
  plugin_options.output_file = dir / "plugin.log";
  std::vector<double> plugin_ms;
  std::vector<double> bind_ms;
  std::vector<double> allocate_us;
  std::vector<double> options_us;
  std::size_t registrations = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int way = 0; way < 2; ++way) {
      if ((way == 0) == (round % 2 == 0)) {
        const auto start = Clock::now();
        run_checked({"vfiokit", "bind", nvme, edu});
        bind_ms.push_back(ms_since(start));
        if (driver(nvme) != "vfio-pci") fail("bind left the nvme on " + driver(nvme));
        run_checked({"vfiokit", "unbind", nvme, edu});
        continue;
      }
      const auto start = Clock::now();
      auto plugin = vfiokit::ChildProcess::spawn(plugin_argv, plugin_options);
      registrations += 2;
      if (!kubelet.wait_for_registration(registrations, std::chrono::seconds(60))) {
        fail("the plugin did not register both resources within 60 s");
      }
      plugin_ms.push_back(ms_since(start));
      if (round == 0) {
        // Allocate against a call that does nothing, interleaved, on one channel.
        vfiokit::test::PluginClient client(dir / "plugins" /
                                           vfiokit::k8s::plugin_socket_name("vfiokit.io/nvme"));
        for (int call = 0; call < calls; ++call) {
          auto t = Clock::now();
          if (!client.options().status.ok()) fail("GetDevicePluginOptions failed");
          options_us.push_back(ms_since(t) * 1000);
          t = Clock::now();
          const auto answer = client.allocate({{nvme}});
          if (!answer.status.ok()) fail("Allocate failed: " + answer.status.error_message());
          allocate_us.push_back(ms_since(t) * 1000);
        }
      }
      plugin.kill(SIGTERM);
      const auto status = plugin.wait();
      if (!status.success() || driver(nvme) != "nvme") {
        fail("the plugin did not stop cleanly (nvme on " + driver(nvme) + ")");
      }
    }
  }
  std::printf(
      "start to both resources registered: plugin %.1f ms, bind of the same devices %.1f ms "
      "(medians of %d, emulated): plugin/bind %.2f\n",
      median(plugin_ms), median(bind_ms), rounds, median(plugin_ms) / median(bind_ms));
  std::printf(
      "Allocate %.1f us vs GetDevicePluginOptions %.1f us (medians of %d, emulated): "
      "allocate/options %.2f\n",
      median(allocate_us), median(options_us), calls, median(allocate_us) / median(options_us));
  fs::remove_all(dir);
  return 0;
}

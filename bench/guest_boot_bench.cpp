// Runs inside the rig (tools/rig/run --with-qemu): how long from starting vfiokit until a guest
// shows its first sign of life, four ways, interleaved in one run, all timed from the fork()
// that starts them (CLOCK_MONOTONIC):
//   payload    `vfiokit launch BDF --payload faulty --json`: the built-in VMM; its JSON says when
//              the guest ran its first instruction
//   qemu       `vfiokit launch BDF --qemu -- ...`: the rig's inner Linux guest (tools/rig/
//              guest-init), until its first `inner-guest:` console line
//   hugepages  the same with guest RAM from preallocated 2 MiB hugepages (`--hugepages 2M`):
//              what prefaulting 256 MiB costs at start
//   pinned     the same with `--cpus 1 --pin 1`: QEMU paused, its vCPU found and pinned over
//              QMP, read back, then `cont`
// Prints medians over N rounds and their ratios: emulated time, so only ratios mean anything.
//   guest_boot_bench VENDOR:DEVICE [N]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_support.h"

using namespace vfiokit;

namespace {

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double ms(std::int64_t from, std::int64_t to) { return static_cast<double>(to - from) / 1e6; }

double payload_round(const std::string& bdf) {
  const std::int64_t start = now_ns();
  ChildOptions options;
  options.output = ChildOutput::capture_stdout;
  ChildProcess child =
      ChildProcess::spawn({"vfiokit", "launch", bdf, "--payload", "faulty", "--json"}, options);
  const std::string out = child.read_output();
  child.wait();  // faulty fails on purpose (exit 1); its timing is what counts
  const auto json = nlohmann::json::parse(out);
  return ms(start, json.at("timing").at("first_instruction_monotonic_ns").get<std::int64_t>());
}

// vfiokit launch --qemu with the inner guest, until its first `inner-guest:` line (the log is
// polled every 10 ms: far finer than a boot of tens of seconds). Waits for the guest to power
// off, so the next round finds the device home.
double qemu_round(const std::string& bdf, const std::vector<std::string>& launch_options,
                  const std::vector<std::string>& qemu_extra) {
  std::vector<std::string> argv{"vfiokit", "launch", bdf, "--qemu"};
  argv.insert(argv.end(), launch_options.begin(), launch_options.end());
  argv.insert(argv.end(), {"--",
                           "-M",
                           "q35,kernel-irqchip=off",
                           "-accel",
                           "kvm",
                           "-cpu",
                           "host,kvm=off",
                           "-m",
                           "256M",
                           "-display",
                           "none",
                           "-vga",
                           "none",
                           "-monitor",
                           "none",
                           "-serial",
                           "stdio",
                           "-no-reboot",
                           "-nic",
                           "none",
                           "-kernel",
                           "/opt/vfiokit/guest/vmlinuz",
                           "-initrd",
                           "/opt/vfiokit/guest/initrd.gz",
                           "-append",
                           "console=ttyS0 quiet panic=-1 no_timer_check"});
  argv.insert(argv.end(), qemu_extra.begin(), qemu_extra.end());
  const std::string log = "/tmp/guest-boot-bench.log";
  ChildOptions options;
  options.output = ChildOutput::file;
  options.output_file = log;
  const std::int64_t start = now_ns();
  ChildProcess child = ChildProcess::spawn(argv, options);
  std::int64_t first_line = 0;
  const std::int64_t deadline = start + std::int64_t{120} * 1000000000;
  while (now_ns() < deadline) {
    if (first_line == 0 &&
        read_file_if_exists(log).value_or("").find("inner-guest:") != std::string::npos)
      first_line = now_ns();
    if (child.wait_for(std::chrono::milliseconds(10))) break;
  }
  if (first_line == 0 || !child.wait().success())
    throw Error("bench", "the inner guest did not boot within 120 s:\n" + read_file(log));
  return ms(start, first_line);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: guest_boot_bench VENDOR:DEVICE [N]\n");
    return 2;
  }
  try {
    const std::string bdf = bench::find_function(argv[1]).to_string();
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    // 256 MiB of 2 MiB pages and a margin, reserved at run time (the rig has 2 GiB).
    write_attribute("/proc/sys/vm/nr_hugepages", "160");
    // --pin over QMP: QEMU starts paused, vfiokit pins and reads back, then lets it run.
    const std::vector<std::string> pin_options{"--cpus", "1", "--pin", "1"};
    std::vector<double> payload, qemu, hugepages, pinned;
    for (int round = 0; round < rounds; ++round) {
      payload.push_back(payload_round(bdf));
      qemu.push_back(qemu_round(bdf, {}, {}));
      hugepages.push_back(qemu_round(bdf, {"--hugepages", "2M"}, {}));
      pinned.push_back(qemu_round(bdf, pin_options, {}));
      std::fprintf(stderr,
                   "round %d/%d: payload %.1f ms, qemu %.1f ms, qemu+hugepages %.1f ms, "
                   "qemu+pin %.1f ms\n",
                   round + 1, rounds, payload.back(), qemu.back(), hugepages.back(), pinned.back());
    }
    write_attribute("/proc/sys/vm/nr_hugepages", "0");
    const double p = median(payload), q = median(qemu), h = median(hugepages), n = median(pinned);
    std::printf("device %s, %d rounds, medians in emulated ms (compare ratios only)\n", bdf.c_str(),
                rounds);
    std::printf("%-46s %12s\n", "from fork() to", "first sign");
    std::printf("%-46s %12.1f\n", "launch --payload (first instruction)", p);
    std::printf("%-46s %12.1f\n", "launch --qemu (inner guest's first line)", q);
    std::printf("%-46s %12.1f\n", "launch --qemu --hugepages 2M", h);
    std::printf("%-46s %12.1f\n", "launch --qemu --cpus 1 --pin 1", n);
    std::printf("ratio qemu / payload: %.1f\n", q / p);
    std::printf("ratio qemu with hugepages / without: %.2f\n", h / q);
    std::printf("ratio qemu pinned over QMP / not: %.2f\n", n / q);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "guest_boot_bench: %s\n", e.what());
    return 1;
  }
}

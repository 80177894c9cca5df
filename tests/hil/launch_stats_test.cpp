// launch --stats, --metrics-file and --json's statistics on the rig's real kernel: KVM's binary
// statistics of the payload's VM and vCPU, the interrupts the device raised on the host, the
// guest's trapped BAR accesses, and the Prometheus file agreeing with the JSON to the count.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::hil {
namespace {

using LaunchStats = RigDeviceTest;

std::uint64_t sum_of(const cli::Json& counts) {
  std::uint64_t sum = 0;
  for (const auto& [name, count] : counts.items()) sum += count.get<std::uint64_t>();
  return sum;
}

// The value of the one sample line starting with `prefix` (name and labels), or -1.
double sample_value(const std::string& text, const std::string& prefix) {
  for (const auto line : split_lines(text)) {
    if (line.starts_with(prefix)) return std::stod(std::string(line.substr(prefix.size())));
  }
  return -1;
}

TEST_F(LaunchStats, EduDmaCountsItsInterruptsExitsAndTrappedAccesses) {
  const std::string metrics = "/tmp/vfiokit-launch-stats.prom";
  std::remove(metrics.c_str());
  const auto run = vfiokit({"launch", edu_, "--payload", "edu-dma", "--json", "--timeout", "15",
                            "--metrics-file", metrics, "--interval", "0.05"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto document = conforming_json(run, "launch.json");
  const auto& stats = document["statistics"];
  // The rig's kernels have KVM's binary statistics (Linux 5.14 and later).
  ASSERT_TRUE(stats["kvm"]["missing"].is_null()) << stats.dump(2);
  ASSERT_EQ(stats["kvm"]["vcpus"].size(), 1u);
  const auto& vcpu = stats["kvm"]["vcpus"][0];
  // Every mailbox write is a port I/O exit: at least STARTED, a log line, VALUE and DONE.
  EXPECT_GE(vcpu["io_exits"].get<std::uint64_t>(), 4u) << vcpu.dump();
  EXPECT_GE(vcpu["exits"].get<std::uint64_t>(), vcpu["io_exits"].get<std::uint64_t>());
  // The payload took 4 MSIs, one per DMA transfer; the host saw edu raise exactly those, and
  // KVM injected at least those (the timer tick adds its own).
  ASSERT_EQ(document["values"].size(), 1u);
  EXPECT_EQ(document["values"][0], 4);
  EXPECT_EQ(sum_of(stats["device_interrupts"]), 4u) << stats["device_interrupts"].dump();
  EXPECT_GE(vcpu["irq_injections"].get<std::uint64_t>(), 4u);
  EXPECT_FALSE(stats["kvm"]["vm"].empty());
  EXPECT_EQ(stats["dma_mapped_bytes"], 16u << 20);
  EXPECT_GT(stats["elapsed_s"].get<double>(), 0);

  // The file was last written after the guest stopped, from the same numbers as the JSON.
  const auto text = read_file_if_exists(metrics);
  ASSERT_TRUE(text) << metrics << " was not written";
  const std::string labels = "{bdf=\"" + edu_ + "\",payload=\"edu-dma\"";
  EXPECT_EQ(sample_value(*text, "vfiokit_guest_running" + labels + "} "), 0) << *text;
  EXPECT_EQ(sample_value(*text, "vfiokit_kvm_vcpu_exits_total" + labels + ",vcpu=\"0\"} "),
            vcpu["exits"].get<double>())
      << *text;
  EXPECT_EQ(sample_value(*text, "vfiokit_dma_mapped_bytes" + labels + "} "), 16u << 20);
  EXPECT_NE(text->find("# TYPE vfiokit_kvm_vcpu_exits_total counter\n"), std::string::npos);
  std::remove(metrics.c_str());
}

TEST_F(LaunchStats, NvmeIdentifyTrapsItsMsixTableAndPrintsStatistics) {
  const auto run = vfiokit({"launch", nvme_, "--payload", "nvme-identify", "--expect-serial",
                            "vfiokit-nvme-0", "--timeout", "15", "--stats"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("statistics:\n  guest ran "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("DMA-mapped guest RAM: 16 MiB"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("KVM vCPU 0: "), std::string::npos) << run.output;
  // The MSI-X table lives in BAR0 and always traps: the payload programs a vector there.
  const auto traps = run.output.find("trapped BAR accesses: BAR0 ");
  ASSERT_NE(traps, std::string::npos) << run.output;
  EXPECT_NE(run.output.find("vfio-msix[0]", 0), std::string::npos) << run.output;
}

}  // namespace
}  // namespace vfiokit::hil

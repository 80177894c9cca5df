// A launched guest's statistics as people read them (--stats) and as Prometheus reads them
// (--metrics-file): KVM's counters named and scaled by their descriptors, vfiokit's own counters.
#include <gtest/gtest.h>

#include <linux/kvm.h>

#include "vfiokit/vmm/guest_statistics.h"

namespace vfiokit::vmm {
namespace {

kvm::StatSample sample(std::string name, std::uint32_t flags, std::int16_t exponent,
                       std::vector<std::uint64_t> values) {
  kvm::StatDescriptor d;
  d.name = std::move(name);
  d.flags = flags;
  d.exponent = exponent;
  d.size = static_cast<std::uint16_t>(values.size());
  return {d, std::move(values)};
}

const kvm::StatSample kExits =
    sample("exits", KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE, 0, {1234});
const kvm::StatSample kHaltPollNs = sample(
    "halt_poll_success_ns", KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_SECONDS, -9, {2500000000});
const kvm::StatSample kPagesPeak =
    sample("max_mmu_page_hash_collisions", KVM_STATS_TYPE_PEAK | KVM_STATS_UNIT_NONE, 0, {7});
const kvm::StatSample kHistogram = sample(
    "halt_poll_success_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, -9, {1, 2, 3});
const kvm::StatSample kPages4k = sample(
    "pages_4k", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BYTES | KVM_STATS_BASE_POW2, 12, {3});

TEST(GuestStatistics, ScalesByTheDescriptorsUnitAndBase) {
  EXPECT_DOUBLE_EQ(*scaled_value(kExits), 1234);
  EXPECT_DOUBLE_EQ(*scaled_value(kHaltPollNs), 2.5);
  EXPECT_DOUBLE_EQ(*scaled_value(kPages4k), 3 * 4096);
  EXPECT_FALSE(scaled_value(kHistogram));
}

TEST(GuestStatistics, NamesKvmMetricsByScopeUnitAndType) {
  EXPECT_EQ(kvm_metric_name("vcpu", kExits.descriptor), "vfiokit_kvm_vcpu_exits_total");
  EXPECT_EQ(kvm_metric_name("vcpu", kHaltPollNs.descriptor),
            "vfiokit_kvm_vcpu_halt_poll_success_seconds_total");
  EXPECT_EQ(kvm_metric_name("vm", kPagesPeak.descriptor),
            "vfiokit_kvm_vm_max_mmu_page_hash_collisions");
  EXPECT_EQ(kvm_metric_name("vm", kPages4k.descriptor), "vfiokit_kvm_vm_pages_4k_bytes");
}

GuestStatistics example() {
  GuestStatistics s;
  s.vm = {kPagesPeak};
  s.vcpus = {{kExits, kHaltPollNs, kHistogram}, {kExits}};
  s.device_interrupts = {{"vfio-msi[0](0000:00:03.0)", 5}};
  s.trapped[0] = {10, 4};
  s.trapped[2] = {0, 1};
  s.dma_mapped_bytes = 16u << 20;
  s.first_instruction_ms = 52.5;
  s.elapsed_seconds = 1.25;
  s.running = true;
  return s;
}

const MetricFamily& family(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return f;
  }
  throw std::runtime_error("no family " + name);
}

TEST(GuestStatistics, MetricFamiliesCarryEveryCounterWithItsLabels) {
  const auto families = metric_families(example(), {{"bdf", "0000:00:03.0"}});
  const std::string text = prometheus_text(families);
  EXPECT_NE(text.find("vfiokit_guest_running{bdf=\"0000:00:03.0\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("vfiokit_guest_first_instruction_seconds{bdf=\"0000:00:03.0\"} 0.0525"),
            std::string::npos);
  EXPECT_NE(text.find("vfiokit_dma_mapped_bytes{bdf=\"0000:00:03.0\"} 16777216\n"),
            std::string::npos);
  EXPECT_NE(text.find("vfiokit_device_interrupts_total{bdf=\"0000:00:03.0\",vector=\"vfio-msi[0]"
                      "(0000:00:03.0)\"} 5\n"),
            std::string::npos);
  EXPECT_NE(text.find("vfiokit_trapped_accesses_total{bdf=\"0000:00:03.0\",bar=\"0\",access="
                      "\"write\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("bar=\"2\",access=\"write\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("bar=\"1\""), std::string::npos);  // no traffic, no samples
  // Both vCPUs in one family, told apart by their label; the exact integer, not a double.
  const MetricFamily& exits = family(families, "vfiokit_kvm_vcpu_exits_total");
  EXPECT_EQ(exits.type, MetricType::counter);
  ASSERT_EQ(exits.samples.size(), 2u);
  EXPECT_NE(text.find("vfiokit_kvm_vcpu_exits_total{bdf=\"0000:00:03.0\",vcpu=\"1\"} 1234\n"),
            std::string::npos);
  EXPECT_NE(text.find("vfiokit_kvm_vcpu_halt_poll_success_seconds_total{bdf=\"0000:00:03.0\","
                      "vcpu=\"0\"} 2.5\n"),
            std::string::npos);
  EXPECT_EQ(family(families, "vfiokit_kvm_vm_max_mmu_page_hash_collisions").type,
            MetricType::gauge);
  EXPECT_EQ(text.find("hist"), std::string::npos);  // histograms stay out of the file
}

TEST(GuestStatistics, AStoppedGuestSaysSo) {
  GuestStatistics s = example();
  s.running = false;
  s.first_instruction_ms.reset();
  const std::string text = prometheus_text(metric_families(s, {}));
  EXPECT_NE(text.find("vfiokit_guest_running 0\n"), std::string::npos);
  EXPECT_EQ(text.find("first_instruction"), std::string::npos);
}

TEST(GuestStatistics, DescribesForPeople) {
  const auto lines = describe_statistics(example());
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], "guest ran 1.25 s, first instruction 52.5 ms after vfiokit started");
  EXPECT_EQ(lines[1], "DMA-mapped guest RAM: 16 MiB");
  EXPECT_EQ(lines[2], "device interrupts raised on the host: vfio-msi[0](0000:00:03.0) 5");
  EXPECT_EQ(lines[3], "trapped BAR accesses: BAR0 10 reads, 4 writes; BAR2 0 reads, 1 writes");
  EXPECT_EQ(lines[4], "KVM VM: max_mmu_page_hash_collisions 7");
  EXPECT_EQ(lines[5], "KVM vCPU 0: exits 1234, halt_poll_success_ns 2500000000");
  EXPECT_EQ(lines[6], "KVM vCPU 1: exits 1234");
}

TEST(GuestStatistics, SaysWhyKvmStatisticsAreMissing) {
  GuestStatistics s;
  s.kvm_missing = "this kernel gives no binary statistics";
  const auto lines = describe_statistics(s);
  EXPECT_EQ(lines.back(), "KVM statistics: this kernel gives no binary statistics");
  EXPECT_EQ(lines[2], "device interrupts raised on the host: none");
  EXPECT_EQ(lines[3], "trapped BAR accesses: none");
}

}  // namespace
}  // namespace vfiokit::vmm

// Where an interrupt stopped: KVM's binary statistics parsed from the bytes the kernel hands
// out (and refused when damaged), and the host's per-vector VFIO counts in /proc/interrupts.
#include <gtest/gtest.h>

#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/kvm/stats.h"
#include "vfiokit/msix/host_counts.h"

namespace vfiokit {
namespace {

// A stats file as the kernel lays it out: header, id, descriptors, data.
class StatsFile {
 public:
  explicit StatsFile(std::uint32_t name_size = 48) : name_size_(name_size) {}
  StatsFile& stat(const std::string& name, std::vector<std::uint64_t> values) {
    stats_.push_back({name, std::move(values)});
    return *this;
  }
  std::vector<std::uint8_t> bytes(const std::string& id = "kvm-1234/vcpu-0") const {
    const std::uint32_t id_offset = 24;
    const std::uint32_t desc_offset = id_offset + name_size_;
    const std::uint32_t stride = 16 + name_size_;
    const std::uint32_t data_offset =
        desc_offset + stride * static_cast<std::uint32_t>(stats_.size());
    std::vector<std::uint8_t> out(data_offset);
    put32(out, 4, name_size_);
    put32(out, 8, static_cast<std::uint32_t>(stats_.size()));
    put32(out, 12, id_offset);
    put32(out, 16, desc_offset);
    put32(out, 20, data_offset);
    std::memcpy(out.data() + id_offset, id.data(), std::min<std::size_t>(id.size(), name_size_));
    std::uint32_t value_offset = 0;
    for (std::size_t i = 0; i < stats_.size(); ++i) {
      const std::size_t at = desc_offset + i * stride;
      const auto& [name, values] = stats_[i];
      out[at + 6] = static_cast<std::uint8_t>(values.size());
      put32(out, at + 8, value_offset);
      std::memcpy(out.data() + at + 16, name.data(),
                  std::min<std::size_t>(name.size(), name_size_));
      for (std::uint64_t v : values) {
        out.resize(out.size() + 8);
        std::memcpy(out.data() + out.size() - 8, &v, 8);
      }
      value_offset += static_cast<std::uint32_t>(values.size() * 8);
    }
    return out;
  }
  static void put32(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t v) {
    std::memcpy(out.data() + at, &v, 4);
  }

 private:
  std::uint32_t name_size_;
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> stats_;
};

TEST(KvmStats, ParsesTheLayoutAndReadsValuesByName) {
  const auto file =
      StatsFile().stat("exits", {120}).stat("irq_injections", {7}).stat("halt_wakeup", {3}).bytes();
  const kvm::StatsHeader header = kvm::parse_stats_header(file);
  EXPECT_EQ(header.num_desc, 3u);
  const kvm::StatsLayout layout = kvm::parse_stats_layout(file);
  EXPECT_EQ(layout.id, "kvm-1234/vcpu-0");
  ASSERT_EQ(layout.descriptors.size(), 3u);
  EXPECT_EQ(layout.descriptors[1].name, "irq_injections");
  EXPECT_EQ(layout.data_size, 24u);
  const auto values = kvm::stats_values(layout, std::span(file).subspan(layout.data_offset));
  EXPECT_EQ(values.at("exits"), 120u);
  EXPECT_EQ(values.at("irq_injections"), 7u);
  EXPECT_EQ(values.at("halt_wakeup"), 3u);
}

TEST(KvmStats, SamplesCarryTheirDescriptorAndEveryBucket) {
  const auto file = StatsFile().stat("exits", {120}).stat("halt_poll_hist", {1, 2, 3, 4}).bytes();
  const kvm::StatsLayout layout = kvm::parse_stats_layout(file);
  const auto data = std::span(file).subspan(layout.data_offset);
  const auto samples = kvm::stats_samples(layout, data);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].descriptor.name, "exits");
  EXPECT_EQ(samples[0].values, std::vector<std::uint64_t>{120});
  EXPECT_EQ(samples[1].descriptor.name, "halt_poll_hist");
  EXPECT_EQ(samples[1].values, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  // The last bucket past the data: an error, not a read past it.
  EXPECT_THROW(kvm::stats_samples(layout, data.first(data.size() - 1)), Error);
}

TEST(KvmStats, DamagedFilesAreErrorsNotReadsPastTheEnd) {
  const auto good = StatsFile().stat("exits", {1}).bytes();
  // Truncated anywhere before the data: an error.
  for (std::size_t size = 0; size < kvm::parse_stats_header(good).layout_end(); size += 7) {
    EXPECT_THROW(kvm::parse_stats_layout(std::span(good).first(size)), Error) << size;
  }
  auto no_nul = StatsFile(8).stat("exits_01234567", {1}).bytes();  // name fills its field
  EXPECT_THROW(kvm::parse_stats_layout(no_nul), Error);
  auto many = good;
  StatsFile::put32(many, 8, 1u << 20);  // a million descriptors
  EXPECT_THROW(kvm::parse_stats_header(many), Error);
  auto overlapping = good;
  StatsFile::put32(overlapping, 20, 24);  // data inside the descriptors
  EXPECT_THROW(kvm::parse_stats_header(overlapping), Error);
  auto unaligned = good;
  StatsFile::put32(unaligned, 24 + 48 + 8, 3);  // the first value at byte 3
  EXPECT_THROW(kvm::parse_stats_layout(unaligned), Error);
  // Data shorter than the layout says: an error, not a read past it.
  const kvm::StatsLayout layout = kvm::parse_stats_layout(good);
  EXPECT_THROW(kvm::stats_values(layout, std::span(good).subspan(layout.data_offset, 4)), Error);
}

TEST(HostInterruptCounts, SumsEveryCpuForTheDevicesVfioHandlersOnly) {
  const std::string interrupts =
      "           CPU0       CPU1       \n"
      "  0:         38          0   IO-APIC   2-edge      timer\n"
      " 24:          5          2   PCI-MSIX-0000:00:04.0    0-edge      "
      "vfio-msix[0](0000:00:04.0)\n"
      " 25:          0          1   PCI-MSIX-0000:00:04.0    1-edge      "
      "vfio-msix[1](0000:00:04.0)\n"
      " 26:          9          9   PCI-MSI-0000:00:03.0    0-edge      vfio-msi[0](0000:00:03.0)\n"
      " 27:          1          1   PCI-MSIX-0000:00:04.0    2-edge      nvme0q1\n"
      "NMI:          0          0   Non-maskable interrupts\n"
      "ERR:          0\n";
  const auto nvme = msix::parse_vfio_interrupt_counts(interrupts, {0, 0, 4, 0});
  ASSERT_EQ(nvme.size(), 2u);
  EXPECT_EQ(nvme.at("vfio-msix[0](0000:00:04.0)"), 7u);
  EXPECT_EQ(nvme.at("vfio-msix[1](0000:00:04.0)"), 1u);
  const auto edu = msix::parse_vfio_interrupt_counts(interrupts, {0, 0, 3, 0});
  EXPECT_EQ(edu.at("vfio-msi[0](0000:00:03.0)"), 18u);
  EXPECT_TRUE(msix::parse_vfio_interrupt_counts("", {0, 0, 3, 0}).empty());
  EXPECT_TRUE(msix::parse_vfio_interrupt_counts("CPU0\n 24: x y z vfio-msi[0](0000:00:03.0)\n",
                                                {0, 0, 3, 0})
                  .empty());
}

}  // namespace
}  // namespace vfiokit

// A VM's route table under a fuzzed change set: stage, unstage and commit, with or without the
// in-kernel irqchip's routes, including runs of thousands of GSIs.
//
// Invariants: what stage() refuses (GSIs beyond KVM's limit, the irqchip's pins, a table that
// would outgrow KVM_MAX_IRQ_ROUTES) changes nothing; a commit reaches KVM exactly when something
// changed since the last one, as one KVM_SET_GSI_ROUTING; a committed table is sorted by GSI,
// holds no MSI GSI twice nor on an irqchip GSI, has at most kMaxRoutes entries (KVM refuses
// more), and says exactly what was staged; route() agrees with it.
#include <map>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/msix/routing.h"

namespace vfiokit::msix {
namespace {

class RecordingVm final : public IrqRouting {
 public:
  void set_gsi_routing(std::span<const RouteEntry> entries) override {
    tables.emplace_back(entries.begin(), entries.end());
  }
  void assign_irqfd(int, std::uint32_t) override {}
  void deassign_irqfd(int, std::uint32_t) override {}
  void signal_msi(const MsiMessage&) override {}
  std::vector<std::vector<RouteEntry>> tables;
};

// Linear: the table is sorted by GSI, so a GSI held twice shows as two neighbours.
void check_committed(const std::vector<RouteEntry>& table, bool irqchip,
                     const std::map<std::uint32_t, MsiMessage>& staged) {
  FUZZ_CHECK(table.size() <= kMaxRoutes);
  auto expected = staged.begin();
  for (std::size_t i = 0; i < table.size(); ++i) {
    const RouteEntry& entry = table[i];
    FUZZ_CHECK(entry.gsi < kMaxRoutes);
    if (i > 0) FUZZ_CHECK(table[i - 1].gsi <= entry.gsi);
    const auto* message = std::get_if<MsiMessage>(&entry.target);
    if (!message) {
      FUZZ_CHECK(irqchip);
      continue;
    }
    // An MSI route shares its GSI with no other route.
    if (i > 0) FUZZ_CHECK(table[i - 1].gsi != entry.gsi);
    if (i + 1 < table.size()) FUZZ_CHECK(table[i + 1].gsi != entry.gsi);
    FUZZ_CHECK(expected != staged.end() && expected->first == entry.gsi &&
               expected->second == *message);
    ++expected;
  }
  FUZZ_CHECK(expected == staged.end());
  if (irqchip) FUZZ_CHECK(table.size() == default_irqchip_routes().size() + staged.size());
}

MsiMessage some_message(FuzzedDataProvider& data) {
  return {kMsiAddressBase | std::uint64_t{data.ConsumeIntegral<std::uint8_t>()} << 12,
          data.ConsumeIntegralInRange<std::uint32_t>(0x20, 0xff)};
}

}  // namespace
}  // namespace vfiokit::msix

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::msix;
  FuzzedDataProvider data(bytes, size);
  RecordingVm vm;
  const bool irqchip = data.ConsumeBool();
  RouteTable table(vm, irqchip);
  std::map<std::uint32_t, MsiMessage> staged;  // what the table should hold
  bool changed = false;                        // since the last commit

  auto stage = [&](std::uint32_t gsi, const MsiMessage& message) {
    const auto before = table.route(gsi);
    const bool was_dirty = table.dirty();
    try {
      table.stage(gsi, message);
    } catch (const vfiokit::Error&) {
      FUZZ_CHECK(table.route(gsi) == before && table.dirty() == was_dirty);
      return false;
    }
    FUZZ_CHECK(gsi < kMaxRoutes && (!irqchip || gsi >= kFirstMsiGsi));
    const auto it = staged.find(gsi);
    if (it == staged.end() || it->second != message) changed = true;
    staged[gsi] = message;
    FUZZ_CHECK(table.route(gsi) == message);
    return true;
  };

  while (data.remaining_bytes() > 0) {
    switch (data.ConsumeIntegralInRange<int>(0, 4)) {
      case 0:
        stage(data.ConsumeIntegralInRange<std::uint32_t>(0, kMaxRoutes + 8), some_message(data));
        break;
      case 1: {
        // A run of consecutive GSIs, as a device with thousands of MSI-X vectors would need.
        const auto first = data.ConsumeIntegralInRange<std::uint32_t>(0, kMaxRoutes);
        const auto count = data.ConsumeBool()
                               ? data.ConsumeIntegralInRange<std::uint32_t>(0, 64)
                               : data.ConsumeIntegralInRange<std::uint32_t>(0, kMaxRoutes + 8);
        const MsiMessage message = some_message(data);
        for (std::uint32_t i = 0; i < count; ++i) {
          if (!stage(first + i, message)) break;
        }
        break;
      }
      case 2: {
        const std::uint32_t gsi = staged.empty() || data.ConsumeBool()
                                      ? data.ConsumeIntegral<std::uint32_t>()
                                      : staged.begin()->first;
        table.unstage(gsi);
        if (staged.erase(gsi) != 0) changed = true;
        FUZZ_CHECK(!table.route(gsi));
        break;
      }
      default: {
        const std::size_t calls = vm.tables.size();
        table.commit();
        FUZZ_CHECK(!table.dirty());
        if (!changed) {
          FUZZ_CHECK(vm.tables.size() == calls);
          break;
        }
        FUZZ_CHECK(vm.tables.size() == calls + 1);
        check_committed(vm.tables.back(), irqchip, staged);
        changed = false;
        break;
      }
    }
    FUZZ_CHECK(table.commits() == vm.tables.size());
  }
  // route() for every GSI once, at the end: after each step it would dominate the run time.
  for (const auto& [gsi, message] : staged) FUZZ_CHECK(table.route(gsi) == message);
  table.commit();
  if (!vm.tables.empty()) check_committed(vm.tables.back(), irqchip, staged);
  return 0;
}

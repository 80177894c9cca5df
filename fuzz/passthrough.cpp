// The VMM's passed-through device (vmm/passthrough.h) as a guest sees it: config space through
// the overlay, trapped MMIO and port accesses to its BARs, and the device raising interrupts,
// against a fake vfio-pci device and a fake VM (tests/unit/fake_device.h). The device itself
// is fuzzed too: its config space (BAR registers, MSI and MSI-X capabilities, raw bytes
// anywhere), its regions and its interrupt counts.
//
// Invariants: config accesses that mechanism #1 cannot express read all ones and change
// nothing; every byte a guest reads is the device's, except the BAR registers (the guest's
// virtual layout), the ROM BAR and the interrupt pin (zero) and the interrupt registers (the
// emulation's); a guest write reaches the device's config space in exactly the device's bytes
// of the access and nowhere else (never the host's BAR registers); while Memory Space is off a
// trapped read floats high; an access outside every BAR is not claimed; the VM holds exactly
// the memory slots the model says; a guest action fails, if at all, with vfiokit::Error; and
// when the model goes, it leaves no memory slot, no irqfd and no device vector behind, with bus
// mastering off.
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "fuzz/fuzz.h"
#include "tests/unit/config_builder.h"
#include "tests/unit/fake_device.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/vmm/passthrough.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint32_t kMsi = 0x40;
constexpr std::uint32_t kMsix = 0x60;

// A device as the fuzzer makes it: well-formed enough to reach the model most of the time
// (BARs, MSI at 0x40, MSI-X at 0x60), with raw bytes written over it where the fuzzer likes.
std::unique_ptr<test::FakeDevice> make_device(FuzzedDataProvider& data) {
  test::ConfigBuilder c(pci::kLegacyConfigSize);
  const bool msi = data.ConsumeBool(), msix = data.ConsumeBool();
  c.endpoint(0x1b36, 0x0010, msi ? kMsi : (msix ? kMsix : 0));
  c.u16(PCI_COMMAND, data.ConsumeIntegral<std::uint16_t>());
  struct Region {
    std::uint64_t size = 0;
    bool io = false;
  };
  std::array<Region, 6> regions{};
  for (unsigned index = 0; index < 6; ++index) {
    const auto kind = data.ConsumeIntegralInRange<unsigned>(0, 3);  // none, mem32, mem64, io
    if (kind == 0) continue;
    const std::uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * index;
    if (kind == 2 && index < 5) {
      c.u32(reg, PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     (data.ConsumeBool() ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0u));
      regions[index].size = std::uint64_t{1} << data.ConsumeIntegralInRange<unsigned>(4, 20);
      ++index;  // the upper half has no region of its own
      continue;
    }
    if (kind == 3) {
      c.u32(reg, PCI_BASE_ADDRESS_SPACE_IO);
      regions[index] = {std::uint64_t{1} << data.ConsumeIntegralInRange<unsigned>(2, 8), true};
    } else {
      regions[index].size = std::uint64_t{1} << data.ConsumeIntegralInRange<unsigned>(4, 20);
    }
  }
  c.u32(PCI_ROM_ADDRESS, data.ConsumeIntegral<std::uint32_t>());
  c.u8(PCI_INTERRUPT_PIN, data.ConsumeIntegral<std::uint8_t>());
  if (msi) {
    c.cap(kMsi, PCI_CAP_ID_MSI, msix ? kMsix : 0)
        .u16(kMsi + PCI_MSI_FLAGS,
             data.ConsumeIntegral<std::uint16_t>() &
                 (PCI_MSI_FLAGS_QMASK | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT));
  }
  const auto msix_size = data.ConsumeIntegralInRange<std::uint16_t>(0, 63);
  if (msix) {
    c.cap(kMsix, PCI_CAP_ID_MSIX, 0).u16(kMsix + PCI_MSIX_FLAGS, msix_size);
    c.u32(kMsix + PCI_MSIX_TABLE, data.ConsumeIntegral<std::uint32_t>() & 0xffff);
    c.u32(kMsix + PCI_MSIX_PBA, data.ConsumeIntegral<std::uint32_t>() & 0xffff);
  }
  std::vector<std::uint8_t> config = c.bytes();
  const auto raw_writes = data.ConsumeIntegralInRange<unsigned>(0, 4);
  for (unsigned i = 0; i < raw_writes; ++i) {
    config[data.ConsumeIntegral<std::uint8_t>()] = data.ConsumeIntegral<std::uint8_t>();
  }

  auto device = std::make_unique<test::FakeDevice>(std::move(config));
  for (unsigned index = 0; index < 6; ++index) {
    if (regions[index].size == 0) continue;
    if (regions[index].io) {
      device->add_io_bar(index, regions[index].size);
    } else if (data.ConsumeBool()) {
      device->add_bar(index, regions[index].size);
    } else {  // vfio-pci lets only part of it be mmap()ed
      const std::uint64_t page = 4096;
      const std::uint64_t pages = std::max<std::uint64_t>(regions[index].size / page, 1);
      const std::uint64_t first = data.ConsumeIntegralInRange<std::uint64_t>(0, pages - 1);
      const std::uint64_t count = data.ConsumeIntegralInRange<std::uint64_t>(0, pages - first);
      std::vector<vfio::SparseArea> areas;
      if (count > 0 && regions[index].size >= page) areas.push_back({first * page, count * page});
      device->add_bar(index, regions[index].size, areas);
    }
  }
  const std::uint32_t flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
  if (data.ConsumeBool()) {
    device->add_irq(VFIO_PCI_MSI_IRQ_INDEX, 1u << data.ConsumeIntegralInRange<unsigned>(0, 5),
                    flags);
  }
  if (data.ConsumeBool()) {
    device->add_irq(VFIO_PCI_MSIX_IRQ_INDEX, data.ConsumeIntegralInRange<std::uint32_t>(1, 64),
                    flags);
  }
  return device;
}

bool hidden(std::uint32_t offset) {
  return (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4) || offset == PCI_INTERRUPT_PIN;
}

bool bar_register(std::uint32_t offset) {
  return offset >= PCI_BASE_ADDRESS_0 && offset <= PCI_BASE_ADDRESS_5 + 3;
}

bool valid_config_access(std::uint32_t offset, std::uint32_t size) {
  return (size == 1 || size == 2 || size == 4) && offset % 4 + size <= 4 &&
         offset + size <= pci::kLegacyConfigSize;
}

class Guest {
 public:
  Guest(test::FakeDevice& device, test::FakeVm& vm, PassthroughDevice& model)
      : device_(device), vm_(vm), model_(model) {}

  void config_read(FuzzedDataProvider& data) {
    const auto [offset, size] = config_access(data);
    const std::uint32_t value = model_.config_read(offset, size);
    if (!valid_config_access(offset, size)) {
      FUZZ_CHECK(value == 0xffffffffu);
      return;
    }
    for (std::uint32_t i = 0; i < size; ++i) {
      const std::uint32_t at = offset + i;
      const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
      if (bar_register(at)) {
        FUZZ_CHECK(byte == model_.bars().read_byte(at));
      } else if (hidden(at)) {
        FUZZ_CHECK(byte == 0);
      } else if (!model_.interrupts().owns_config(at)) {
        FUZZ_CHECK(byte == device_.config()[at]);
      }
    }
  }

  void config_write(FuzzedDataProvider& data) {
    const auto [offset, size] = config_access(data);
    const auto value = data.ConsumeIntegral<std::uint32_t>();
    std::vector<std::uint8_t> expected(device_.config().begin(), device_.config().end());
    if (valid_config_access(offset, size)) {
      for (std::uint32_t i = 0; i < size; ++i) {
        const std::uint32_t at = offset + i;
        if (!bar_register(at) && !hidden(at) && !model_.interrupts().owns_config(at)) {
          expected[at] = static_cast<std::uint8_t>(value >> (8 * i));
        }
      }
    }
    model_.config_write(offset, size, value);
    FUZZ_CHECK(std::equal(expected.begin(), expected.end(), device_.config().begin()));
  }

  void mmio(FuzzedDataProvider& data) {
    const auto& bars = model_.bars().bars();
    std::uint64_t address = data.ConsumeIntegral<std::uint64_t>();
    if (!bars.empty() && data.ConsumeBool()) {  // mostly inside or near a BAR
      const GuestBar& bar = bars[data.ConsumeIntegralInRange<std::size_t>(0, bars.size() - 1)];
      address = bar.address + data.ConsumeIntegralInRange<std::uint64_t>(0, bar.spec.size + 8);
    }
    static constexpr std::array<std::uint32_t, 4> kWidths{1, 2, 4, 8};
    const std::uint32_t width = data.PickValueInArray(kWidths);
    const bool write = data.ConsumeBool();
    std::array<std::uint8_t, 8> bytes{};
    for (auto& b : bytes) b = data.ConsumeIntegral<std::uint8_t>();
    const bool in_bar = model_.bars().memory_at(address).has_value();
    const bool claimed = model_.mmio({address, width, write}, std::span(bytes.data(), width));
    FUZZ_CHECK(claimed == in_bar);
    const bool decoding = device_.config()[PCI_COMMAND] & PCI_COMMAND_MEMORY;
    if (claimed && !write && !decoding) {
      FUZZ_CHECK(std::all_of(bytes.begin(), bytes.begin() + width,
                             [](std::uint8_t b) { return b == 0xff; }));
    }
  }

  void io(FuzzedDataProvider& data) {
    const auto& bars = model_.bars().bars();
    std::uint64_t port = data.ConsumeIntegral<std::uint16_t>();
    if (!bars.empty() && data.ConsumeBool()) {
      const GuestBar& bar = bars[data.ConsumeIntegralInRange<std::size_t>(0, bars.size() - 1)];
      port =
          (bar.address + data.ConsumeIntegralInRange<std::uint64_t>(0, bar.spec.size + 4)) & 0xffff;
    }
    static constexpr std::array<std::uint8_t, 3> kWidths{1, 2, 4};
    kvm::IoExit exit;
    exit.port = static_cast<std::uint16_t>(port);
    exit.size = data.PickValueInArray(kWidths);
    exit.out = data.ConsumeBool();
    exit.count = data.ConsumeIntegralInRange<std::uint32_t>(1, 4);
    std::array<std::uint8_t, 16> bytes{};
    for (auto& b : bytes) b = data.ConsumeIntegral<std::uint8_t>();
    const bool in_bar = model_.bars().io_at(exit.port).has_value();
    FUZZ_CHECK(model_.io(exit, bytes) == in_bar);
  }

  void device_interrupt(FuzzedDataProvider& data) const {
    const std::uint32_t index =
        data.ConsumeBool() ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_MSIX_IRQ_INDEX;
    device_.fire(index, data.ConsumeIntegralInRange<std::uint32_t>(0, 63));
  }

  void check_slots() const { FUZZ_CHECK(vm_.slots().size() == model_.memory_slots()); }

 private:
  static std::pair<std::uint32_t, std::uint32_t> config_access(FuzzedDataProvider& data) {
    static constexpr std::array<std::uint32_t, 5> kSizes{1, 2, 4, 3, 8};
    // Mostly what a guest can do; now and then what it cannot.
    const std::uint32_t size = data.ConsumeIntegralInRange<unsigned>(0, 15) == 0
                                   ? data.PickValueInArray(kSizes)
                                   : data.PickValueInArray({1u, 2u, 4u});
    std::uint32_t offset = data.ConsumeIntegralInRange<std::uint32_t>(0, 0x103);
    if (data.ConsumeIntegralInRange<unsigned>(0, 15) != 0) offset &= ~(size - 1) & 0xff;
    return {offset, size};
  }

  test::FakeDevice& device_;
  test::FakeVm& vm_;
  PassthroughDevice& model_;
};

}  // namespace
}  // namespace vfiokit::vmm

// The model logs what it refuses a guest (a BAR moved over another stays trapped): useful in a
// run, noise at thousands of inputs a second.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  vfiokit::log::set_level(vfiokit::LogLevel::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit;
  using namespace vfiokit::vmm;
  FuzzedDataProvider data(bytes, size);
  const auto device = make_device(data);
  test::FakeVm vm;
  msix::RouteTable routes(vm);
  {
    std::optional<PassthroughDevice> model;
    try {
      model.emplace(*device, vm, routes);
    } catch (const Error&) {
      // A device the model refuses (a BAR that does not fit, an MSI-X table outside its BAR)
      // leaves nothing behind either.
      FUZZ_CHECK(vm.slots().size() == 0);
      return 0;
    }
    Guest guest(*device, vm, *model);
    try {
      for (unsigned step = 0; step < 512 && data.remaining_bytes() > 0; ++step) {
        switch (data.ConsumeIntegralInRange<unsigned>(0, 4)) {
          case 0:
            guest.config_read(data);
            break;
          case 1:
            guest.config_write(data);
            break;
          case 2:
            guest.mmio(data);
            break;
          case 3:
            guest.io(data);
            break;
          default:
            guest.device_interrupt(data);
            break;
        }
        guest.check_slots();
      }
    } catch (const Error&) {
      // The run ends with a named error (the launch reports it); teardown must still be clean.
    }
  }
  FUZZ_CHECK(vm.slots().size() == 0);
  FUZZ_CHECK(vm.irqfds.empty());
  for (const std::uint32_t index : {VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX}) {
    const auto fds = device->eventfds(index);
    FUZZ_CHECK(std::all_of(fds.begin(), fds.end(), [](int fd) { return fd < 0; }));
  }
  FUZZ_CHECK((device->config()[PCI_COMMAND] & PCI_COMMAND_MASTER) == 0);
  return 0;
}

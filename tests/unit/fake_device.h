// In-memory stand-ins for what the VMM's device model talks to, so it runs without VFIO or
// /dev/kvm: a vfio-pci device (vfio::DeviceAccess) and a VM's memory slots and interrupt routing
// (kvm::GuestMemoryMap, msix::IrqRouting). Each does what the kernel would with what it is
// asked, checks what the kernel checks, and writes every call into one journal they can share,
// so a test can check the order of things. A fuzz target can build them too.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/vfio/device.h"

namespace vfiokit::test {

using Journal = std::vector<std::string>;

class FakeDevice final : public vfio::DeviceAccess {
 public:
  // `config` is config space as vfio-pci shows it (at least 256 bytes); every byte is writable.
  explicit FakeDevice(std::vector<std::uint8_t> config, Journal* journal = nullptr);

  // A BAR region of `size` bytes, backed by memory that its mmaps and pread/pwrite share.
  // `mappable`: the areas the kernel lets the process mmap (nullopt: the whole region).
  void add_bar(std::uint32_t index, std::uint64_t size,
               std::optional<std::vector<vfio::SparseArea>> mappable = std::nullopt);
  // An I/O BAR: never mappable.
  void add_io_bar(std::uint32_t index, std::uint64_t size);
  void add_irq(std::uint32_t index, std::uint32_t count, std::uint32_t flags);

  [[nodiscard]] std::span<std::uint8_t> config() noexcept { return config_; }
  // The device's memory behind BAR `index`.
  [[nodiscard]] std::span<std::uint8_t> bar_memory(std::uint32_t index) const;

  // The device raises `vector` of IRQ index `index`: vfio-pci signals its eventfd. False when
  // no eventfd is set for it.
  bool fire(std::uint32_t index, std::uint32_t vector) const;
  // The eventfds set for `index` now (-1 where none).
  [[nodiscard]] std::vector<int> eventfds(std::uint32_t index) const;

  [[nodiscard]] const pci::Bdf& bdf() const noexcept override { return bdf_; }
  [[nodiscard]] vfio::RegionInfo region_info(std::uint32_t index) const override;
  [[nodiscard]] vfio::IrqInfo irq_info(std::uint32_t index) const override;
  void config_read(std::uint64_t offset, std::span<std::uint8_t> out) const override;
  void config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const override;
  void region_read(const vfio::RegionInfo& region, std::uint64_t offset,
                   std::span<std::uint8_t> out) const override;
  void region_write(const vfio::RegionInfo& region, std::uint64_t offset,
                    std::span<const std::uint8_t> in) const override;
  [[nodiscard]] MappedMemory map_region(const vfio::RegionInfo& region, std::uint64_t offset,
                                        std::uint64_t size) const override;
  // Enforces what vfio-pci does (EINVAL otherwise): vectors within the index's count; on an
  // index that is on, with NORESIZE, none past the ones enabled; MSI and MSI-X never on at once.
  void set_irqs(std::span<const std::uint8_t> irq_set) const override;
  // VFIO_DEVICE_RESET: journalled and counted; config space and IRQs stay as they are (vfio-pci
  // restores the saved config state and leaves its IRQ state to the user).
  void reset() const override;
  mutable unsigned resets = 0;

  struct Access {
    std::uint32_t region = 0;  // VFIO_PCI_CONFIG_REGION_INDEX for config space
    std::uint64_t offset = 0;
    std::size_t size = 0;
    bool write = false;
    std::uint64_t value = 0;
    bool operator==(const Access&) const = default;
    friend void PrintTo(const Access& a, std::ostream* out) {
      *out << (a.write ? "write " : "read ") << "region " << a.region << " +0x" << std::hex
           << a.offset << "/" << std::dec << a.size << " 0x" << std::hex << a.value << std::dec;
    }
  };
  // Config writes and region reads and writes, in order (config reads are left out: the model
  // reads config space freely).
  mutable std::vector<Access> accesses;
  struct IrqSet {
    std::uint32_t index = 0, flags = 0, start = 0, count = 0;
    std::vector<int> eventfds;
  };
  mutable std::vector<IrqSet> irq_sets;
  bool refuse_mmap = false;

 private:
  struct Bar {
    vfio::RegionInfo info;
    UniqueFd memory;  // a memfd
    MappedMemory view;
  };
  struct Irq {
    vfio::IrqInfo info;
    std::vector<int> eventfds;
    std::uint32_t enabled = 0;  // vectors the kernel allocated (0: the index is off)
  };
  void note(std::string line) const;
  const Bar& bar(std::uint32_t index) const;

  pci::Bdf bdf_{0, 1, 0, 0};
  mutable std::vector<std::uint8_t> config_;  // written by config_write, which is const
  std::map<std::uint32_t, Bar> bars_;
  mutable std::map<std::uint32_t, Irq> irqs_;
  Journal* journal_;
};

class FakeVm final : public kvm::GuestMemoryMap, public msix::IrqRouting {
 public:
  explicit FakeVm(Journal* journal = nullptr, std::uint32_t slot_limit = 32);

  // Slots go through a kvm::MemorySlotTable (alignment, overlap, free slot numbers) and are
  // refused in `refused` ranges, as KVM refuses a place.
  std::uint32_t map_memory(std::uint64_t guest_address, std::span<std::uint8_t> host) override;
  void unmap_memory(std::uint32_t slot) override;
  // The host memory behind guest-physical [address, address + size), through a slot; empty
  // when no slot holds it all.
  [[nodiscard]] std::span<std::uint8_t> guest_memory(std::uint64_t address, std::size_t size) const;
  [[nodiscard]] const kvm::MemorySlotTable& slots() const noexcept { return slots_; }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> refused;  // guest-physical [start, end)

  void set_gsi_routing(std::span<const msix::RouteEntry> entries) override;
  void assign_irqfd(int eventfd, std::uint32_t gsi) override;    // EBUSY if assigned
  void deassign_irqfd(int eventfd, std::uint32_t gsi) override;  // ENOENT if not
  // EINVAL for a GSI that is no irqchip pin (KVM: no level-triggered route to resample).
  void assign_resample_irqfd(int eventfd, int resamplefd, std::uint32_t gsi) override;
  void signal_msi(const msix::MsiMessage& message) override;
  // What an assigned eventfd delivers: its GSI's MSI route; nullopt when it reaches nothing.
  [[nodiscard]] std::optional<msix::MsiMessage> delivers(int eventfd) const;

  std::vector<msix::RouteEntry> routes;  // the table last committed
  std::map<int, std::uint32_t> irqfds;   // eventfd -> GSI, as assigned now
  std::map<int, int> resamplefds;        // eventfd -> resamplefd, for the resampling ones
  std::size_t routing_commits = 0;

 private:
  void note(std::string line) const;
  kvm::MemorySlotTable slots_;
  std::map<std::uint32_t, std::span<std::uint8_t>> hosts_;
  Journal* journal_;
};

// Whether a signal waits in the eventfd (without consuming it).
bool signalled(int eventfd);

}  // namespace vfiokit::test

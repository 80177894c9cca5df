#include "vfiokit/drivers/selftest.h"

#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <random>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/drivers/edu.h"
#include "vfiokit/drivers/nvme.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/iommu/dma_sync.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/msix/vectors.h"
#include "vfiokit/msix/wiring.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"
#include "vfiokit/pci/config_space.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vfio/region.h"

namespace vfiokit::drivers {
namespace {

constexpr std::uint16_t kNvmeVendor = 0x1b36;
// irq-kvm: device vector n becomes guest vector 0x30 + n, for at most 200 vectors (up to 0xf7).
constexpr std::uint8_t kFirstGuestVector = 0x30;
constexpr std::uint32_t kMaxGuestVectors = 200;
constexpr std::uint16_t kNvmeDevice = 0x0010;
constexpr std::uint32_t kNvmeClass = 0x010802;

struct Context {
  const HostPaths& paths;
  const SelftestOptions& options;
  vfio::OpenedDevice& opened;
  std::uint16_t vendor = 0;
  std::uint16_t device = 0;
  std::uint32_t class_code = 0;
  [[nodiscard]] bool is_edu() const { return vendor == Edu::kVendor && device == Edu::kDevice; }
  [[nodiscard]] bool is_nvme() const {
    return (vendor == kNvmeVendor && device == kNvmeDevice) || class_code == kNvmeClass;
  }
};

StageResult skipped(std::string name, std::string why) {
  return {std::move(name), StageStatus::skipped, std::move(why)};
}

StageResult stage_config(Context& ctx) {
  const auto& device = ctx.opened.device;
  std::vector<std::uint8_t> config(pci::kLegacyConfigSize);
  device.config_read(0, config);
  const pci::ConfigHeader header = pci::parse_config_header(config);
  const pci::PciDevice sysfs =
      pci::read_pci_device(ctx.paths, device.bdf(), pci::ConfigDepth::header);
  if (header.vendor_id != sysfs.vendor_id || header.device_id != sysfs.device_id) {
    return {"config", StageStatus::failed,
            "VFIO config space says " + pci::id_hex(header.vendor_id) + ":" +
                pci::id_hex(header.device_id) + ", sysfs says " + pci::id_hex(sysfs.vendor_id) +
                ":" + pci::id_hex(sysfs.device_id)};
  }
  std::vector<std::string> caps;
  for (const auto& cap : pci::walk_capabilities(config)) {
    const auto name = pci::capability_name(cap.id);
    caps.push_back(name.empty() ? hex(cap.id) : std::string(name));
  }
  return {"config", StageStatus::passed,
          pci::id_hex(header.vendor_id) + ":" + pci::id_hex(header.device_id) + " class " +
              pci::class_hex(header.class_code) + ", capabilities " +
              (caps.empty() ? std::string("none") : join(caps, ", "))};
}

// Reads `offset` of `index` through mmap and through pread; they must agree.
std::string compare_paths(const vfio::VfioDevice& device, std::uint32_t index, std::uint64_t offset,
                          std::uint32_t* value_out) {
  const vfio::Region mapped(device, index);
  const vfio::Region trapped(device, index, vfio::RegionMapping::never);
  const std::uint32_t via_map = mapped.read32(offset);
  const std::uint32_t via_pread = trapped.read32(offset);
  if (value_out) *value_out = via_map;
  if (via_map != via_pread) {
    throw Error("bar", vfio::region_name(index) + "+" + hex(offset) + " reads " + hex(via_map) +
                           " through " + std::string(mapped.path_for(offset, 4)) + " but " +
                           hex(via_pread) + " through pread");
  }
  return vfio::region_name(index) + "+" + hex(offset) + " = " + hex(via_map) + " (" +
         std::string(mapped.path_for(offset, 4)) + " and pread agree)";
}

StageResult stage_bar(Context& ctx) {
  const auto& device = ctx.opened.device;
  if (ctx.is_edu()) {
    std::uint32_t ident = 0;
    const std::string agreed = compare_paths(device, VFIO_PCI_BAR0_REGION_INDEX, 0, &ident);
    if (ident != Edu::kIdentification) {
      return {"bar", StageStatus::failed,
              "edu identification is " + hex(ident) + ", expected " + hex(Edu::kIdentification)};
    }
    const Edu edu(device);
    if (!edu.liveness(0x5a5aa5a5u) || !edu.liveness(0x12345678u)) {
      return {"bar", StageStatus::failed, "edu liveness register did not invert what was written"};
    }
    return {"bar", StageStatus::passed, agreed + "; liveness register inverts writes"};
  }
  if (ctx.is_nvme()) {
    std::uint32_t version = 0;
    const std::string agreed =
        compare_paths(device, VFIO_PCI_BAR0_REGION_INDEX, nvme::kRegVersion, &version);
    if ((version >> 16) == 0) {
      return {"bar", StageStatus::failed, "NVMe version register reads " + hex(version)};
    }
    return {"bar", StageStatus::passed,
            agreed + " (NVMe " + std::to_string(version >> 16) + "." +
                std::to_string((version >> 8) & 0xff) + ")"};
  }
  for (std::uint32_t index = VFIO_PCI_BAR0_REGION_INDEX; index <= VFIO_PCI_BAR5_REGION_INDEX;
       ++index) {
    const auto info = device.region_info(index);
    if (info.size >= 4 && info.readable() && info.mappable()) {
      return {"bar", StageStatus::passed, compare_paths(device, index, 0, nullptr)};
    }
  }
  return skipped("bar", "no mmap-able memory BAR");
}

std::string describe_translation(const iommu::DmaRegion& region) {
  const auto physical = iommu::physical_address(region.bytes().data());
  std::string text = "IOVA " + hex(region.iova());
  if (physical) text += " (host physical " + hex(*physical) + ")";
  return text;
}

StageResult stage_dma_edu(Context& ctx) {
  const auto& device = ctx.opened.device;
  device.enable_bus_master();
  iommu::DmaSpace dma(*ctx.opened.backend, Edu::kDmaMask);
  auto in =
      dma.allocate(Edu::kBufferSize, iommu::DmaDirection::to_device, {.allow_huge_pages = false});
  auto out =
      dma.allocate(Edu::kBufferSize, iommu::DmaDirection::from_device, {.allow_huge_pages = false});
  std::mt19937 rng(std::random_device{}());
  for (auto& byte : in.bytes().first(Edu::kBufferSize)) byte = static_cast<std::uint8_t>(rng());
  std::memset(out.bytes().data(), 0, out.size());
  msix::InterruptVectors msi(device, VFIO_PCI_MSI_IRQ_INDEX);
  msi.enable(1);
  const Edu edu(device);
  auto transfer = [&](Edu::Direction direction, std::uint64_t iova) {
    edu.start_dma(direction, iova, 0, Edu::kMaxTransfer, true);
    const bool interrupted = msi.wait_for(0, ctx.options.timeout);
    if (!edu.wait_dma_idle(ctx.options.timeout)) throw Error("edu DMA", "the DMA never finished");
    edu.acknowledge_interrupt(Edu::kDmaInterrupt);
    if (!interrupted) throw Error("edu DMA", "the DMA finished but its MSI never arrived");
  };
  iommu::sync_for_device({reinterpret_cast<const std::byte*>(in.bytes().data()), in.size()});
  // The 4 KiB go through the device in halves (Edu::kMaxTransfer): in, then back out.
  for (std::uint32_t half = 0; half < Edu::kBufferSize; half += Edu::kMaxTransfer) {
    transfer(Edu::Direction::to_device, in.iova() + half);
    transfer(Edu::Direction::from_device, out.iova() + half);
  }
  iommu::sync_for_cpu({reinterpret_cast<const std::byte*>(out.bytes().data()), out.size()});
  const auto mismatch =
      std::mismatch(in.bytes().begin(), in.bytes().begin() + Edu::kBufferSize, out.bytes().begin());
  if (mismatch.first != in.bytes().begin() + Edu::kBufferSize) {
    return {"dma", StageStatus::failed,
            "byte " + std::to_string(mismatch.first - in.bytes().begin()) + " came back as " +
                hex(*mismatch.second) + ", sent " + hex(*mismatch.first)};
  }
  return {"dma", StageStatus::passed,
          "4 KiB random pattern in from " + describe_translation(in) + " and back out to " +
              describe_translation(out) +
              ", in two 2 KiB halves; identical; an MSI on each of "
              "the 4 completions"};
}

StageResult stage_dma_nvme(Context& ctx) {
  iommu::DmaSpace dma(*ctx.opened.backend, ~std::uint64_t{0});
  msix::InterruptVectors msix(ctx.opened.device, VFIO_PCI_MSIX_IRQ_INDEX);
  msix.enable(1);
  NvmeController controller(ctx.opened.device, dma, msix);
  controller.enable();
  const auto result = controller.identify_controller(ctx.options.timeout);
  if (!result.interrupt_seen) {
    return {"dma", StageStatus::failed, "Identify completed but MSI-X vector 0 never fired"};
  }
  std::string detail = "Identify Controller: serial '" + result.identity.serial + "', model '" +
                       result.identity.model + "', firmware '" + result.identity.firmware +
                       "'; data by DMA to IOVA " + hex(result.data_iova) +
                       ", completion on MSI-X vector 0";
  if (ctx.options.expected_serial && *ctx.options.expected_serial != result.identity.serial) {
    return {"dma", StageStatus::failed,
            detail + "; expected serial '" + *ctx.options.expected_serial + "'"};
  }
  return {"dma", StageStatus::passed, detail};
}

StageResult stage_dma(Context& ctx) {
  if (ctx.is_edu()) return stage_dma_edu(ctx);
  if (ctx.is_nvme()) return stage_dma_nvme(ctx);
  return skipped("dma", "no DMA engine vfiokit knows for " + pci::id_hex(ctx.vendor) + ":" +
                            pci::id_hex(ctx.device));
}

// Fires each vector with the loopback trigger; each must arrive once, on its own eventfd.
std::string loopback_every_vector(msix::InterruptVectors& vectors,
                                  std::chrono::milliseconds timeout) {
  for (std::uint32_t v = 0; v < vectors.count(); ++v) {
    vectors.trigger(v);
    const auto fired = vectors.wait(timeout);
    if (fired.size() != 1 || fired[0].vector != v || fired[0].count != 1) {
      std::vector<std::string> seen;
      for (const auto& f : fired)
        seen.push_back(std::to_string(f.vector) + "x" + std::to_string(f.count));
      throw Error("irq-eventfd", "triggered vector " + std::to_string(v) + ", saw " +
                                     (seen.empty() ? std::string("nothing") : join(seen, ", ")));
    }
  }
  return std::to_string(vectors.count()) + "/" + std::to_string(vectors.count()) + " " +
         vfio::irq_index_name(vectors.info().index) +
         " vectors arrived on their own eventfd via the loopback trigger";
}

// The device's vectors wired into a fresh VM running irq-probe: vector v on GSI g_v, routed as
// an MSI that reaches guest vector 0x30 + v (x86: to APIC 0; arm64: through the ITS, as event v
// of the guest's device, which irq-probe maps to LPI 8192 + 0x30 + v). Each vector fired with the
// loopback must reach the guest once; a real device interrupt (edu's raise register, nvme's
// Identify completion) must reach it too, as a second arrival of vector 0x30; and nothing else may
// arrive.
StageResult stage_irq_kvm(Context& ctx) {
  const auto& device = ctx.opened.device;
  std::uint32_t index = VFIO_PCI_MSIX_IRQ_INDEX;
  std::uint32_t count = device.irq_info(index).count;
  if (count == 0) {
    index = VFIO_PCI_MSI_IRQ_INDEX;
    count = device.irq_info(index).count;
  }
  if (count == 0) return skipped("irq-kvm", "the device has no MSI or MSI-X vectors");
#if !defined(__x86_64__) && !defined(__aarch64__)
  // Before /dev/kvm is opened: what is missing is the guest, whether or not KVM is there.
  return skipped("irq-kvm",
                 "not on this architecture: its guest, the irq-probe payload, is built for x86_64 "
                 "and arm64 only");
#endif
  count = std::min<std::uint32_t>(count, kMaxGuestVectors);
  const kvm::KvmSystem kvm = kvm::KvmSystem::open(ctx.paths);
  std::vector<msix::MsiMessage> messages;
  for (std::uint32_t v = 0; v < count; ++v) {
    messages.push_back(payloads::irq_probe_message(v, kFirstGuestVector));
  }
  const payloads::GuestOptions options = payloads::irq_probe_options(count, kFirstGuestVector);
  const auto payload = payloads::find("irq-probe");
  std::optional<payloads::PayloadGuest> made;
  try {
    made.emplace(kvm, payload->image, options);
  } catch (const Error& e) {
    // A host KVM without the in-kernel interrupt controller vfiokit makes (arm64: a GICv2-only
    // host has no vGICv3 or ITS) cannot take the routes: nothing to test, not a failure.
    if (e.errno_value() != ENODEV) throw;
    return skipped("irq-kvm", std::string("this host's KVM cannot give a VM the interrupt "
                                          "controller MSIs need: ") +
                                  e.what());
  }
  payloads::PayloadGuest& guest = *made;
  msix::MsixWiring wiring(device, index, guest.routes());
  wiring.wire(messages);
  guest.start();
  if (!guest.wait_for(VFIOKIT_MAILBOX_READY, ctx.options.timeout)) {
    return {"irq-kvm", StageStatus::failed,
            "the guest payload never reported ready; log: " + guest.log()};
  }
  auto expect_vector = [&](std::uint32_t vector, std::uint32_t arrival) {
    const auto event = guest.wait_for(VFIOKIT_MAILBOX_VECTOR, ctx.options.timeout);
    if (!event) {
      throw Error("irq-kvm", "guest vector " + hex(vector) + " never arrived");
    }
    if (event->value != (vector | arrival << 8)) {
      throw Error("irq-kvm", "expected guest vector " + hex(vector) + " (arrival " +
                                 std::to_string(arrival) + "), the guest saw " +
                                 hex(event->value & 0xff) + " (arrival " +
                                 std::to_string(event->value >> 8) + ")");
    }
  };
  for (std::uint32_t v = 0; v < count; ++v) {
    wiring.vectors().trigger(v);
    expect_vector(kFirstGuestVector + v, 1);
  }
  if (!guest.wait_for(VFIOKIT_MAILBOX_VALUE, ctx.options.timeout)) {
    throw Error("irq-kvm", "the guest never said it had seen every expected vector");
  }
  std::string real;
  if (ctx.is_edu()) {
    device.enable_bus_master();
    const Edu edu(device);
    edu.raise_interrupt(0x1);
    expect_vector(kFirstGuestVector, 2);
    edu.acknowledge_interrupt(0x1);
    real = "; edu's own MSI reached guest vector 0x30 too";
  } else if (ctx.is_nvme()) {
    iommu::DmaSpace dma(*ctx.opened.backend, ~std::uint64_t{0});
    NvmeController controller(device, dma, wiring.vectors());
    controller.enable();
    controller.identify_controller(ctx.options.timeout, NvmeController::CompletionWait::poll);
    expect_vector(kFirstGuestVector, 2);
    real = "; the Identify completion's MSI-X reached guest vector 0x30 too";
  }
  // Anything more would be an interrupt the guest should not have seen.
  if (const auto extra = guest.wait_for(VFIOKIT_MAILBOX_VECTOR, std::chrono::milliseconds(200))) {
    throw Error("irq-kvm", "the guest also saw vector " + hex(extra->value & 0xff));
  }
  // Shown, not hidden: an emulator's repeated delivery, which the guest ignored (docs/hil.md).
  if (const std::uint64_t repeated = guest.repeated_deliveries()) {
    real += "; the guest ignored " + std::to_string(repeated) +
            " repeated delivery(ies) that came with its interrupts off (an emulator artefact)";
  }
  return {"irq-kvm", StageStatus::passed,
          std::to_string(count) + " " + vfio::irq_index_name(index) + " vectors wired through " +
              "KVM_IRQFD and " + std::to_string(guest.routes().commits()) +
              " KVM_SET_GSI_ROUTING; each reached guest vector 0x30 + n exactly once" + real};
}

StageResult stage_irq(Context& ctx) {
  const auto& device = ctx.opened.device;
  for (std::uint32_t index :
       {VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX}) {
    const auto info = device.irq_info(index);
    if (info.count == 0 || !info.eventfd()) continue;
    msix::InterruptVectors vectors(device, index);
    vectors.enable(info.count);
    std::string detail = loopback_every_vector(vectors, ctx.options.timeout);
    if (ctx.is_edu() && index == VFIO_PCI_MSI_IRQ_INDEX) {
      device.enable_bus_master();  // MSI is a memory write: the device must be a bus master
      const Edu edu(device);
      edu.raise_interrupt(0x1);
      const bool fired = vectors.wait_for(0, ctx.options.timeout);
      edu.acknowledge_interrupt(0x1);
      if (!fired)
        return {"irq-eventfd", StageStatus::failed, detail + "; edu's raised MSI never arrived"};
      detail += "; an MSI raised by edu itself arrived too";
    }
    return {"irq-eventfd", StageStatus::passed, detail};
  }
  return skipped("irq-eventfd", "the device has no eventfd-capable interrupts");
}

}  // namespace

std::string_view to_string(StageStatus status) noexcept {
  switch (status) {
    case StageStatus::passed:
      return "ok";
    case StageStatus::failed:
      return "failed";
    case StageStatus::skipped:
      return "skipped";
  }
  return "?";
}

std::vector<StageResult> run_selftest(const HostPaths& paths, const pci::Bdf& bdf,
                                      const SelftestOptions& options) {
  vfio::OpenedDevice opened = vfio::open_vfio_device(paths, bdf);
  Context ctx{paths, options, opened};
  // Which device-specific steps apply, from the identity VFIO presents.
  std::vector<std::uint8_t> header(pci::kConfigHeaderSize);
  opened.device.config_read(0, header);
  const pci::ConfigHeader identity = pci::parse_config_header(header);
  ctx.vendor = identity.vendor_id;
  ctx.device = identity.device_id;
  ctx.class_code = identity.class_code;
  const std::vector<std::pair<std::string, std::function<StageResult(Context&)>>> stages = {
      {"config", stage_config},
      {"bar", stage_bar},
      {"dma", stage_dma},
      {"irq-eventfd", stage_irq},
      {"irq-kvm", stage_irq_kvm}};
  for (const auto& wanted : options.stages) {
    if (std::none_of(stages.begin(), stages.end(),
                     [&](const auto& s) { return s.first == wanted; })) {
      throw Error("selftest", "no stage '" + wanted + "'")
          .kind(ErrorKind::usage)
          .hint("stages are config, bar, dma, irq-eventfd, irq-kvm");
    }
  }
  std::vector<StageResult> results;
  for (const auto& [name, run] : stages) {
    if (!options.stages.empty() &&
        std::find(options.stages.begin(), options.stages.end(), name) == options.stages.end()) {
      continue;
    }
    try {
      results.push_back(run(ctx));
    } catch (const Error& e) {
      results.push_back({name, StageStatus::failed, e.what()});
    }
  }
  return results;
}

}  // namespace vfiokit::drivers

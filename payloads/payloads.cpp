#include "vfiokit/payloads/payloads.h"

#include <filesystem>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/payloads/mailbox.h"

// The images, built by payloads/CMakeLists.txt, are pulled into .rodata as they are.
#define VFIOKIT_EMBED(symbol, file)                                           \
  __asm__(".section .rodata\n.balign 16\n.global " #symbol "_start\n" #symbol \
          "_start:\n.incbin \"" file "\"\n.global " #symbol "_end\n" #symbol "_end:\n.previous\n")

VFIOKIT_EMBED(vfiokit_payload_irq_probe, VFIOKIT_PAYLOAD_DIR "/irq-probe.bin");
VFIOKIT_EMBED(vfiokit_payload_edu_dma, VFIOKIT_PAYLOAD_DIR "/edu-dma.bin");
VFIOKIT_EMBED(vfiokit_payload_dirty_pages, VFIOKIT_PAYLOAD_DIR "/dirty-pages.bin");
VFIOKIT_EMBED(vfiokit_payload_edu_intx, VFIOKIT_PAYLOAD_DIR "/edu-intx.bin");
VFIOKIT_EMBED(vfiokit_payload_nvme_identify, VFIOKIT_PAYLOAD_DIR "/nvme-identify.bin");
VFIOKIT_EMBED(vfiokit_payload_faulty, VFIOKIT_PAYLOAD_DIR "/faulty.bin");
VFIOKIT_EMBED(vfiokit_payload_silent, VFIOKIT_PAYLOAD_DIR "/silent.bin");
#if defined(__aarch64__)
VFIOKIT_EMBED(vfiokit_payload_irq_probe_arm64, VFIOKIT_PAYLOAD_DIR "/irq-probe-arm64.bin");
#endif

#define VFIOKIT_IMAGE(symbol)                     \
  extern "C" const std::uint8_t symbol##_start[]; \
  extern "C" const std::uint8_t symbol##_end[]

VFIOKIT_IMAGE(vfiokit_payload_irq_probe);
VFIOKIT_IMAGE(vfiokit_payload_edu_dma);
VFIOKIT_IMAGE(vfiokit_payload_dirty_pages);
VFIOKIT_IMAGE(vfiokit_payload_edu_intx);
VFIOKIT_IMAGE(vfiokit_payload_nvme_identify);
VFIOKIT_IMAGE(vfiokit_payload_faulty);
VFIOKIT_IMAGE(vfiokit_payload_silent);
#if defined(__aarch64__)
VFIOKIT_IMAGE(vfiokit_payload_irq_probe_arm64);
#endif

namespace vfiokit::payloads {

namespace {

// irq-probe's image for this build's architecture: the one payload built for arm64 too (through
// the GICv3 ITS); the others are x86's.
std::span<const std::uint8_t> irq_probe_image() {
#if defined(__aarch64__)
  return {vfiokit_payload_irq_probe_arm64_start, vfiokit_payload_irq_probe_arm64_end};
#else
  return {vfiokit_payload_irq_probe_start, vfiokit_payload_irq_probe_end};
#endif
}

}  // namespace

std::vector<Payload> all() {
  return {
      {"irq-probe", "reports every interrupt vector it receives through the mailbox",
       irq_probe_image()},
      {"edu-dma",
       "finds edu on the PCI bus, enables MSI, DMAs 4 KiB in and back out, compares",
       {vfiokit_payload_edu_dma_start, vfiokit_payload_edu_dma_end}},
      {"dirty-pages",
       "writes known guest pages with the CPU and has edu write others by DMA "
       "(for launch --dirty-log)",
       {vfiokit_payload_dirty_pages_start, vfiokit_payload_dirty_pages_end},
       VFIOKIT_DIRTY_DEVICE_WINDOW + VFIOKIT_DIRTY_WINDOW_PAGES * 4096},
      {"edu-intx",
       "finds edu on the PCI bus, raises its interrupt on the INTx pin, checks each arrives "
       "once and that Interrupt Disable holds it back",
       {vfiokit_payload_edu_intx_start, vfiokit_payload_edu_intx_end}},
      {"nvme-identify",
       "finds an NVMe controller, enables MSI-X, runs Identify Controller, "
       "checks the serial",
       {vfiokit_payload_nvme_identify_start, vfiokit_payload_nvme_identify_end}},
      {"faulty",
       "divides by zero: proves a faulting payload ends launch with a clear error",
       {vfiokit_payload_faulty_start, vfiokit_payload_faulty_end}},
      {"silent",
       "never reports a result: proves launch ends it at the timeout",
       {vfiokit_payload_silent_start, vfiokit_payload_silent_end}},
  };
}

LaunchablePayload load_for_launch(const std::string& name_or_path) {
  // Before the CLI binds anything: the guest cannot run on this host's architecture.
  kvm::require_x86_guests("launch --payload");
  if (name_or_path == "irq-probe") {
    throw Error("launch",
                "irq-probe is the guest of `vfiokit selftest --stage irq-kvm`, which "
                "tells it which vectors to expect; it cannot run on its own")
        .kind(ErrorKind::usage)
        .hint("run `vfiokit selftest BDF --stage irq-kvm`");
  }
  if (const auto payload = find(name_or_path)) {
    return {std::string(payload->name),
            {payload->image.begin(), payload->image.end()},
            payload->memory_used};
  }
  const std::filesystem::path path(name_or_path);
  if (name_or_path.find('/') != std::string::npos || std::filesystem::exists(path)) {
    if (!std::filesystem::is_regular_file(path)) {
      throw Error("launch", "payload file '" + name_or_path + "' does not exist")
          .kind(ErrorKind::usage)
          .hint("give a flat binary built as docs/payloads.md describes");
    }
    // One byte more than the limit tells a file at the limit from a larger one.
    std::vector<std::uint8_t> image = read_bytes(path, kMaxImageSize + 1);
    if (image.empty() || image.size() > kMaxImageSize) {
      throw Error("launch", "payload file '" + name_or_path + "' is " +
                                (image.empty() ? std::string("empty")
                                               : "larger than " + human_size(kMaxImageSize)))
          .kind(ErrorKind::usage)
          .hint("a payload is a flat binary of at most " + human_size(kMaxImageSize) +
                " (docs/payloads.md)");
    }
    return {name_or_path, std::move(image)};
  }
  std::vector<std::string> names;
  for (const auto& p : all()) {
    if (p.name != "irq-probe") names.emplace_back(p.name);
  }
  throw Error("launch", "no payload '" + name_or_path + "'")
      .kind(ErrorKind::usage)
      .hint("vfiokit carries " + join(names, ", ") +
            "; or give the path of your own flat binary (docs/payloads.md)");
}

std::size_t required_memory(std::size_t image_size) noexcept {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return (VFIOKIT_PAYLOAD_ADDRESS + image_size + kMiB - 1) / kMiB * kMiB;
}

void require_fits(const LaunchablePayload& payload, std::size_t memory) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  const std::size_t used = (payload.memory_used + kMiB - 1) / kMiB * kMiB;
  if (used > memory) {
    throw Error("launch", "payload " + payload.name + " uses guest RAM up to " +
                              hex(payload.memory_used) + ", more than " + human_size(memory))
        .kind(ErrorKind::usage)
        .hint("give it --memory " + std::to_string(used >> 20) + " or more");
  }
  const std::size_t needed = required_memory(payload.image.size());
  if (needed <= memory) return;
  throw Error("launch", "payload " + payload.name + " (" + human_size(payload.image.size()) +
                            ", loaded at " + hex(VFIOKIT_PAYLOAD_ADDRESS) + ") does not fit in " +
                            human_size(memory) + " of guest RAM")
      .kind(ErrorKind::usage)
      .hint("give it --memory " + std::to_string(needed >> 20) + " or more");
}

std::optional<Payload> find(std::string_view name) {
  for (const auto& payload : all()) {
    if (payload.name == name) return payload;
  }
  return std::nullopt;
}

}  // namespace vfiokit::payloads

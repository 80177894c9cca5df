#include "payloads/payloads.h"

// The images, built by payloads/CMakeLists.txt, are pulled into .rodata as they are.
#define VFIOKIT_EMBED(symbol, file)                                           \
  __asm__(".section .rodata\n.balign 16\n.global " #symbol "_start\n" #symbol \
          "_start:\n.incbin \"" file "\"\n.global " #symbol "_end\n" #symbol "_end:\n.previous\n")

VFIOKIT_EMBED(vfiokit_payload_irq_probe, VFIOKIT_PAYLOAD_DIR "/irq-probe.bin");
VFIOKIT_EMBED(vfiokit_payload_edu_dma, VFIOKIT_PAYLOAD_DIR "/edu-dma.bin");
VFIOKIT_EMBED(vfiokit_payload_nvme_identify, VFIOKIT_PAYLOAD_DIR "/nvme-identify.bin");
VFIOKIT_EMBED(vfiokit_payload_faulty, VFIOKIT_PAYLOAD_DIR "/faulty.bin");
VFIOKIT_EMBED(vfiokit_payload_silent, VFIOKIT_PAYLOAD_DIR "/silent.bin");

#define VFIOKIT_IMAGE(symbol)                     \
  extern "C" const std::uint8_t symbol##_start[]; \
  extern "C" const std::uint8_t symbol##_end[]

VFIOKIT_IMAGE(vfiokit_payload_irq_probe);
VFIOKIT_IMAGE(vfiokit_payload_edu_dma);
VFIOKIT_IMAGE(vfiokit_payload_nvme_identify);
VFIOKIT_IMAGE(vfiokit_payload_faulty);
VFIOKIT_IMAGE(vfiokit_payload_silent);

namespace vfiokit::payloads {

std::vector<Payload> all() {
  return {
      {"irq-probe",
       "reports every interrupt vector it receives through the mailbox",
       {vfiokit_payload_irq_probe_start, vfiokit_payload_irq_probe_end}},
      {"edu-dma",
       "finds edu on the PCI bus, enables MSI, DMAs 4 KiB in and back out, compares",
       {vfiokit_payload_edu_dma_start, vfiokit_payload_edu_dma_end}},
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

std::optional<Payload> find(std::string_view name) {
  for (const auto& payload : all()) {
    if (payload.name == name) return payload;
  }
  return std::nullopt;
}

}  // namespace vfiokit::payloads

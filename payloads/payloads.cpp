#include "payloads/payloads.h"

// The images, built by payloads/CMakeLists.txt, are pulled into .rodata as they are.
#define VFIOKIT_EMBED(symbol, file)                                              \
  __asm__(".section .rodata\n.balign 16\n.global " #symbol "_start\n" #symbol   \
          "_start:\n.incbin \"" file "\"\n.global " #symbol "_end\n" #symbol   \
          "_end:\n.previous\n")

VFIOKIT_EMBED(vfiokit_payload_irq_probe, VFIOKIT_PAYLOAD_DIR "/irq-probe.bin");

extern "C" const std::uint8_t vfiokit_payload_irq_probe_start[];
extern "C" const std::uint8_t vfiokit_payload_irq_probe_end[];

namespace vfiokit::payloads {

std::vector<Payload> all() {
  return {
      {"irq-probe", "reports every interrupt vector it receives through the mailbox",
       {vfiokit_payload_irq_probe_start, vfiokit_payload_irq_probe_end}},
  };
}

std::optional<Payload> find(std::string_view name) {
  for (const auto& payload : all()) {
    if (payload.name == name) return payload;
  }
  return std::nullopt;
}

}  // namespace vfiokit::payloads

// The guest payloads vfiokit builds from source and carries inside its binaries.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace vfiokit::payloads {

struct Payload {
  std::string_view name;
  std::string_view description;
  std::span<const std::uint8_t> image;  // flat, loaded and entered at VFIOKIT_PAYLOAD_ADDRESS
};

// nullopt for a name vfiokit does not carry.
std::optional<Payload> find(std::string_view name);
std::vector<Payload> all();

// The value irq-probe reports on VFIOKIT_MAILBOX_VALUE once every expected vector arrived.
inline constexpr std::uint32_t kIrqProbeAllSeen = 0xa11;

}  // namespace vfiokit::payloads

// The guest payloads vfiokit builds from source and carries inside its binaries.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit::payloads {

struct Payload {
  std::string_view name;
  std::string_view description;
  std::span<const std::uint8_t> image;  // flat, loaded and entered at VFIOKIT_PAYLOAD_ADDRESS
  // Guest RAM it uses beyond its image (dirty-pages writes up to VFIOKIT_DIRTY_DEVICE_WINDOW's
  // end); 0 when the image is all it needs.
  std::size_t memory_used = 0;
};

// nullopt for a name vfiokit does not carry.
std::optional<Payload> find(std::string_view name);
std::vector<Payload> all();

// The largest image a guest loads: payloads are small flat binaries, and guest RAM is pinned.
inline constexpr std::size_t kMaxImageSize = std::size_t{8} << 20;

// A payload to launch: one vfiokit carries, by name, or a flat binary file, by path.
struct LaunchablePayload {
  std::string name;  // the payload's name, or the path it came from
  std::vector<std::uint8_t> image;
  std::size_t memory_used = 0;  // Payload::memory_used; 0 for a path
};
// Throws a usage Error (exit 2, before anything moves) naming the problem: an unknown name (with
// the ones there are), a missing file, an empty one or one above kMaxImageSize, or irq-probe
// (the selftest's guest, which cannot run on its own).
LaunchablePayload load_for_launch(const std::string& name_or_path);

// The guest RAM (bytes, whole MiB) an image needs: it is loaded at VFIOKIT_PAYLOAD_ADDRESS.
std::size_t required_memory(std::size_t image_size) noexcept;
// Throws a usage Error naming the --memory the image needs when `memory` is too small.
void require_fits(const LaunchablePayload& payload, std::size_t memory);

// The value irq-probe reports on VFIOKIT_MAILBOX_VALUE once every expected vector arrived.
inline constexpr std::uint32_t kIrqProbeAllSeen = 0xa11;

}  // namespace vfiokit::payloads

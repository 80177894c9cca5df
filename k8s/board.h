// The device plugin's one picture of every resource's devices, shared by the health monitor that
// writes it and the ListAndWatch streams and Allocate calls that read it. Each resource has a
// generation that moves only when its devices really changed, so a stream sends kubelet a new
// list exactly when there is something new to say.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/k8s/model.h"

namespace vfiokit::k8s {

// A resource as it was at one generation. Generation 0: never published (no devices).
struct BoardSnapshot {
  Resource resource;
  std::uint64_t generation = 0;

  bool operator==(const BoardSnapshot&) const = default;
};

class DeviceBoard {
 public:
  // The resources' current devices; a resource not named keeps what it had. A resource whose
  // devices differ from what the board holds (or that is new) gets the next generation and wakes
  // its waiters; one that is equal changes nothing.
  void publish(std::vector<Resource> resources);

  // The resource now: its devices as last published, or none at generation 0.
  [[nodiscard]] BoardSnapshot current(std::string_view name) const;

  // Blocks until the resource's generation differs from `seen_generation` and returns it then
  // (at once if it already differs); nullopt when `timeout` passes first or the board is closed.
  [[nodiscard]] std::optional<BoardSnapshot> wait_for_change(
      std::string_view name, std::uint64_t seen_generation,
      std::chrono::milliseconds timeout) const;

  // Ends every wait, now and later: the plugin is stopping. publish() still works.
  void close();
  [[nodiscard]] bool closed() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, BoardSnapshot, std::less<>> resources_;
  bool closed_ = false;
};

}  // namespace vfiokit::k8s

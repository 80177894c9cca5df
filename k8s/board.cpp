#include "vfiokit/k8s/board.h"

#include <utility>

namespace vfiokit::k8s {

void DeviceBoard::publish(std::vector<Resource> resources) {
  bool any_changed = false;
  {
    const std::scoped_lock lock(mutex_);
    for (Resource& resource : resources) {
      auto it = resources_.find(resource.name);
      if (it == resources_.end()) {
        // A resource seen for the first time is news even when it has no devices: its streams
        // learn that the board now speaks for it.
        std::string name = resource.name;
        resources_.emplace(std::move(name), BoardSnapshot{std::move(resource), 1});
        any_changed = true;
      } else if (it->second.resource != resource) {
        it->second.resource = std::move(resource);
        ++it->second.generation;
        any_changed = true;
      }
    }
  }
  if (any_changed) changed_.notify_all();
}

BoardSnapshot DeviceBoard::current(std::string_view name) const {
  const std::scoped_lock lock(mutex_);
  const auto it = resources_.find(name);
  if (it == resources_.end()) return BoardSnapshot{Resource{std::string(name), {}}, 0};
  return it->second;
}

std::optional<BoardSnapshot> DeviceBoard::wait_for_change(std::string_view name,
                                                          std::uint64_t seen_generation,
                                                          std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  const auto snapshot = [&] {
    const auto it = resources_.find(name);
    return it == resources_.end() ? BoardSnapshot{Resource{std::string(name), {}}, 0} : it->second;
  };
  const auto generation = [&] {
    const auto it = resources_.find(name);
    return it == resources_.end() ? std::uint64_t{0} : it->second.generation;
  };
  const bool changed =
      changed_.wait_for(lock, timeout, [&] { return closed_ || generation() != seen_generation; });
  if (!changed || closed_) return std::nullopt;
  return snapshot();
}

void DeviceBoard::close() {
  {
    const std::scoped_lock lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

bool DeviceBoard::closed() const {
  const std::scoped_lock lock(mutex_);
  return closed_;
}

}  // namespace vfiokit::k8s

// A move-only owner of one mmap()ed range.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace vfiokit {

class MappedMemory {
 public:
  MappedMemory() noexcept = default;
  MappedMemory(void* address, std::size_t size) noexcept : address_(address), size_(size) {}
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  MappedMemory(MappedMemory&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedMemory& operator=(MappedMemory&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedMemory() { reset(); }

  [[nodiscard]] void* data() const noexcept { return address_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::uintptr_t address() const noexcept {
    return reinterpret_cast<std::uintptr_t>(address_);
  }
  [[nodiscard]] std::span<std::uint8_t> bytes() const noexcept {
    return {static_cast<std::uint8_t*>(address_), size_};
  }
  explicit operator bool() const noexcept { return address_ != nullptr; }

  // Forgets the range without unmapping it (the caller unmaps or re-wraps its pieces).
  [[nodiscard]] std::pair<void*, std::size_t> release_without_unmap() noexcept {
    return {std::exchange(address_, nullptr), std::exchange(size_, 0)};
  }

  void reset() noexcept {
    if (address_ != nullptr) ::munmap(address_, size_);
    address_ = nullptr;
    size_ = 0;
  }

 private:
  void* address_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace vfiokit

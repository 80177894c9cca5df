// Builds VFIO info buffers (region info, type1 info) with capability chains, for tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace vfiokit::test {

class InfoBuilder {
 public:
  explicit InfoBuilder(std::size_t size) : bytes_(size, 0) {}
  InfoBuilder& u16(std::size_t offset, std::uint16_t v) { return put(offset, &v, 2); }
  InfoBuilder& u32(std::size_t offset, std::uint32_t v) { return put(offset, &v, 4); }
  InfoBuilder& u64(std::size_t offset, std::uint64_t v) { return put(offset, &v, 8); }
  // A capability header {id, version 1, next}.
  InfoBuilder& cap(std::size_t offset, std::uint16_t id, std::uint32_t next) {
    return u16(offset, id).u16(offset + 2, 1).u32(offset + 4, next);
  }
  [[nodiscard]] const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  [[nodiscard]] std::vector<std::uint8_t> truncated(std::size_t size) const {
    return {bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(size)};
  }

 private:
  InfoBuilder& put(std::size_t offset, const void* value, std::size_t size) {
    std::memcpy(bytes_.data() + offset, value, size);  // little-endian host, as the kernel
    return *this;
  }
  std::vector<std::uint8_t> bytes_;
};

}  // namespace vfiokit::test

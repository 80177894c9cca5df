#include "vfiokit/kvm/stats.h"

#include <linux/kvm.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/uapi.h"

namespace vfiokit::kvm {
namespace {

// The kernel's layout, by offset (Documentation/virt/kvm/api.rst, KVM_GET_STATS_FD). struct
// kvm_stats_desc ends in a flexible name[]; with the 6.1 UAPI headers C++ gives that one byte
// (as with kvm_irq_routing, kvm/uapi.h), so sizeof() is not the kernel's 16 and is never used.
constexpr std::size_t kHeaderSize = 24;
constexpr std::size_t kDescriptorFixedSize = 16;
// Far above what any kernel has (about 100 statistics per vCPU, names under 64 bytes); a
// header beyond these is damage, not data.
constexpr std::uint32_t kMaxDescriptors = 4096;
constexpr std::uint32_t kMaxNameSize = 1024;

Error stats_error(std::string message) { return Error("parse KVM stats", std::move(message)); }

std::uint32_t read32(std::span<const std::uint8_t> bytes, std::size_t offset) {
  std::uint32_t value = 0;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

std::uint16_t read16(std::span<const std::uint8_t> bytes, std::size_t offset) {
  std::uint16_t value = 0;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

// A NUL-terminated name within `size` bytes; the terminator must be there.
std::string read_name(std::span<const std::uint8_t> bytes, std::size_t offset, std::size_t size) {
  const auto* begin = reinterpret_cast<const char*>(bytes.data() + offset);
  const std::size_t length = ::strnlen(begin, size);
  if (length == size) throw stats_error("a name at " + hex(offset) + " has no terminating NUL");
  return std::string(begin, length);
}

void require(std::span<const std::uint8_t> bytes, std::uint64_t offset, std::uint64_t length,
             const char* what) {
  if (offset <= bytes.size() && length <= bytes.size() - offset) return;
  throw stats_error(std::string(what) + " at " + hex(offset) + " needs " + std::to_string(length) +
                    " bytes, but there are " + std::to_string(bytes.size()));
}

}  // namespace

std::uint64_t StatsHeader::layout_end() const noexcept {
  const std::uint64_t descriptors =
      desc_offset + std::uint64_t{num_desc} * (kDescriptorFixedSize + name_size);
  return std::max({std::uint64_t{kHeaderSize}, std::uint64_t{id_offset} + name_size, descriptors});
}

StatsHeader parse_stats_header(std::span<const std::uint8_t> bytes) {
  require(bytes, 0, kHeaderSize, "the header");
  StatsHeader header;
  header.name_size = read32(bytes, 4);
  header.num_desc = read32(bytes, 8);
  header.id_offset = read32(bytes, 12);
  header.desc_offset = read32(bytes, 16);
  header.data_offset = read32(bytes, 20);
  if (header.name_size == 0 || header.name_size > kMaxNameSize) {
    throw stats_error("name size " + std::to_string(header.name_size) + " is out of range");
  }
  if (header.num_desc > kMaxDescriptors) {
    throw stats_error(std::to_string(header.num_desc) + " descriptors is more than any kernel has");
  }
  if (header.data_offset < header.layout_end()) {
    throw stats_error("the data block at " + hex(header.data_offset) +
                      " overlaps the descriptors, which end at " + hex(header.layout_end()));
  }
  return header;
}

StatsLayout parse_stats_layout(std::span<const std::uint8_t> bytes) {
  const StatsHeader header = parse_stats_header(bytes);
  require(bytes, 0, header.layout_end(), "the id and descriptors");
  StatsLayout layout;
  layout.id = read_name(bytes, header.id_offset, header.name_size);
  layout.data_offset = header.data_offset;
  const std::size_t stride = kDescriptorFixedSize + header.name_size;
  std::uint64_t data_end = 0;
  for (std::uint32_t i = 0; i < header.num_desc; ++i) {
    const std::size_t at = header.desc_offset + std::size_t{i} * stride;
    StatDescriptor d;
    d.flags = read32(bytes, at);
    d.exponent = static_cast<std::int16_t>(read16(bytes, at + 4));
    d.size = read16(bytes, at + 6);
    d.offset = read32(bytes, at + 8);
    d.bucket_size = read32(bytes, at + 12);
    d.name = read_name(bytes, at + kDescriptorFixedSize, header.name_size);
    if (d.offset % 8 != 0) {
      throw stats_error("statistic " + d.name + " is at an unaligned data offset " + hex(d.offset));
    }
    data_end = std::max(data_end, std::uint64_t{d.offset} + std::uint64_t{d.size} * 8);
    layout.descriptors.push_back(std::move(d));
  }
  // The kernel's data block is a few KiB; far more is damage.
  if (data_end > (std::uint64_t{1} << 20)) throw stats_error("the data block exceeds 1 MiB");
  layout.data_size = static_cast<std::uint32_t>(data_end);
  return layout;
}

std::map<std::string, std::uint64_t> stats_values(const StatsLayout& layout,
                                                  std::span<const std::uint8_t> data) {
  std::map<std::string, std::uint64_t> values;
  for (const StatDescriptor& d : layout.descriptors) {
    if (d.size == 0) continue;
    require(data, d.offset, 8, "a statistic's value");
    std::uint64_t value = 0;
    std::memcpy(&value, data.data() + d.offset, sizeof value);
    values[d.name] = value;
  }
  return values;
}

std::vector<StatSample> stats_samples(const StatsLayout& layout,
                                      std::span<const std::uint8_t> data) {
  std::vector<StatSample> samples;
  samples.reserve(layout.descriptors.size());
  for (const StatDescriptor& d : layout.descriptors) {
    require(data, d.offset, std::size_t{d.size} * 8, "a statistic's values");
    StatSample sample{d, std::vector<std::uint64_t>(d.size)};
    std::memcpy(sample.values.data(), data.data() + d.offset, std::size_t{d.size} * 8);
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<StatsReader> StatsReader::open(int vm_or_vcpu_fd) {
  const int rc = try_ioctl(vm_or_vcpu_fd, uapi::kGetStatsFd);
  if (rc < 0) return std::nullopt;
  UniqueFd fd(rc);
  std::vector<std::uint8_t> bytes(kHeaderSize);
  auto read_at = [&](std::size_t size) {
    bytes.assign(size, 0);
    // Kernel contract: the stats fd answers pread at any offset within the file.
    const ssize_t n = ::pread(fd.get(), bytes.data(), size, 0);
    if (n < 0) throw Error::from_last_errno("read KVM stats");
    bytes.resize(static_cast<std::size_t>(n));
  };
  read_at(kHeaderSize);
  const StatsHeader header = parse_stats_header(bytes);
  read_at(static_cast<std::size_t>(header.layout_end()));
  return StatsReader(std::move(fd), parse_stats_layout(bytes));
}

std::vector<std::uint8_t> StatsReader::read_data() const {
  std::vector<std::uint8_t> data(layout_.data_size);
  const ssize_t n = ::pread(fd_.get(), data.data(), data.size(), layout_.data_offset);
  if (n < 0) throw Error::from_last_errno("read KVM stats").with("id", layout_.id);
  data.resize(static_cast<std::size_t>(n));
  return data;
}

std::map<std::string, std::uint64_t> StatsReader::read() const {
  return stats_values(layout_, read_data());
}

std::vector<StatSample> StatsReader::read_samples() const {
  return stats_samples(layout_, read_data());
}

}  // namespace vfiokit::kvm

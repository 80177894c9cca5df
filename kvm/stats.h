// KVM's binary statistics (KVM_GET_STATS_FD, Linux 5.14 and later): the counters KVM keeps per
// VM and per vCPU (exits, halts and wake-ups, interrupt injections), read by name. The file is
// self-describing: a header, one descriptor per statistic with its name, and the data. The
// layout is parsed from bytes without trusting them (a damaged or hostile reply is an Error,
// never a read past the buffer).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/unique_fd.h"

namespace vfiokit::kvm {

struct StatDescriptor {
  std::string name;         // "irq_injections", "halt_wakeup", ...
  std::uint32_t flags = 0;  // KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*
  std::int16_t exponent = 0;
  std::uint16_t size = 0;    // how many u64 values (1 unless a histogram)
  std::uint32_t offset = 0;  // of the values in the data block, in bytes
  std::uint32_t bucket_size = 0;
};

struct StatsLayout {
  std::string id;  // "kvm-PID" for a VM, "kvm-PID/vcpu-N" for a vCPU
  std::vector<StatDescriptor> descriptors;
  std::uint32_t data_offset = 0;
  std::uint32_t data_size = 0;  // bytes, enough for every descriptor's values
};

// What the file holds from offset 0 up to the end of the descriptor block (the header says
// where that is: parse_stats_header first). Throws Error ("parse KVM stats") on a layout that
// does not fit the bytes or the kernel's limits.
struct StatsHeader {
  std::uint32_t name_size = 0;
  std::uint32_t num_desc = 0;
  std::uint32_t id_offset = 0;
  std::uint32_t desc_offset = 0;
  std::uint32_t data_offset = 0;
  // Where the header, id and descriptors end: read this much to parse the layout.
  [[nodiscard]] std::uint64_t layout_end() const noexcept;
};
StatsHeader parse_stats_header(std::span<const std::uint8_t> bytes);
StatsLayout parse_stats_layout(std::span<const std::uint8_t> bytes);

// The first value of every statistic, by name, from the data block (`data` starts at
// data_offset). Histograms give their first bucket; callers that need all buckets are not here
// yet.
std::map<std::string, std::uint64_t> stats_values(const StatsLayout& layout,
                                                  std::span<const std::uint8_t> data);

// Every statistic with all its values (a histogram's buckets too), in the layout's order, for
// callers that need to know what a number is (its type, unit and scale: the descriptor's flags
// and exponent). Throws Error where a value lies outside `data`.
struct StatSample {
  StatDescriptor descriptor;
  std::vector<std::uint64_t> values;  // descriptor.size of them
};
std::vector<StatSample> stats_samples(const StatsLayout& layout,
                                      std::span<const std::uint8_t> data);

// A stats fd of a VM or vCPU fd, with its layout read once.
class StatsReader {
 public:
  // nullopt where the kernel has no binary statistics (before 5.14: ENOTTY), or refuses them.
  static std::optional<StatsReader> open(int vm_or_vcpu_fd);
  [[nodiscard]] const StatsLayout& layout() const noexcept { return layout_; }
  // Every statistic's current value. Throws Error on a read the kernel refuses.
  [[nodiscard]] std::map<std::string, std::uint64_t> read() const;
  // The same, with every descriptor and all of a histogram's buckets (stats_samples).
  [[nodiscard]] std::vector<StatSample> read_samples() const;

 private:
  StatsReader(UniqueFd fd, StatsLayout layout) : fd_(std::move(fd)), layout_(std::move(layout)) {}
  [[nodiscard]] std::vector<std::uint8_t> read_data() const;
  UniqueFd fd_;
  StatsLayout layout_;
};

}  // namespace vfiokit::kvm

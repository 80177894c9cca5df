// Hugepages for `launch --qemu --hugepages`: guest RAM from a hugetlb memfd, preallocated, so
// the IOMMU maps it with large pages and no guest page is faulted in while a device DMAs. The
// pages come from the kernel's pools (sys/kernel/mm/hugepages/hugepages-<N>kB), which must hold
// enough free pages before anything is bound: a QEMU that runs out while preallocating dies
// after the devices moved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::vmm {

// A page size as a person writes it: decimal digits (no sign, no leading zero) and one binary
// unit, K, M or G (either case, 1024-based), optionally followed by "B" or "iB": "2M", "1G",
// "2048k", "2048kB" (the kernel's spelling), "1GiB". The size must be a power of two of at
// least 4 KiB. A bare number is refused (bytes or KiB? QEMU and the kernel disagree). Throws a
// usage Error (operation "parse hugepage size") saying what is accepted. Pure.
std::uint64_t parse_hugepage_size(std::string_view text);

// "2M", "1G", "64K": the shortest form parse_hugepage_size reads back. Pure.
std::string format_hugepage_size(std::uint64_t bytes);

// One pool, from its folder's files (counts of pages).
struct HugepagePool {
  std::uint64_t page_bytes = 0;
  std::uint64_t total = 0;     // nr_hugepages: the pool's persistent size
  std::uint64_t free = 0;      // free_hugepages, reserved ones included
  std::uint64_t reserved = 0;  // resv_hugepages: promised to a mapping, not yet faulted in
  std::uint64_t surplus = 0;   // surplus_hugepages: allocated beyond total by overcommit
  // Pages a new mapping can count on: free minus reserved. Overcommit (surplus) pages are not
  // counted: the kernel finds them at fault time, or not.
  [[nodiscard]] std::uint64_t available() const noexcept {
    return free > reserved ? free - reserved : 0;
  }
  bool operator==(const HugepagePool&) const = default;
};

// "hugepages-2048kB" -> 2 MiB; nullopt for any other name. Pure.
std::optional<std::uint64_t> parse_pool_folder_name(std::string_view name);

// Every pool below paths.sys/kernel/mm/hugepages, smallest page first; empty when the kernel
// has no hugetlbfs. Throws Error when a pool's file is missing or not a number.
std::vector<HugepagePool> read_hugepage_pools(const HostPaths& paths);

// The decision of require_hugepages() over pools already read. Pure; throws:
// - usage (operation "check hugepages"): guest_bytes is zero or not a multiple of page_bytes;
//   no pool of page_bytes (the message lists the sizes the host has);
// - refused: fewer available pages than guest_bytes needs; the message has needed, free,
//   reserved, and the hint the fix with N = the pool size that would be enough: for 1 GiB (and
//   larger) pages the boot options hugepagesz=1G hugepages=N (runtime allocation of gigantic
//   pages usually fails on fragmented memory), else `echo N > .../nr_hugepages` or
//   `sysctl vm.nr_hugepages=N` (which sets the default size's pool).
// Returns the pool it checked.
HugepagePool check_hugepages(const std::vector<HugepagePool>& pools, std::uint64_t page_bytes,
                             std::uint64_t guest_bytes);

// read_hugepage_pools() then check_hugepages().
HugepagePool require_hugepages(const HostPaths& paths, std::uint64_t page_bytes,
                               std::uint64_t guest_bytes);

}  // namespace vfiokit::vmm

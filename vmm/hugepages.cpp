#include "vfiokit/vmm/hugepages.h"

#include <algorithm>
#include <charconv>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kGiB = kKiB * kKiB * kKiB;
constexpr std::string_view kPoolPrefix = "hugepages-";
constexpr std::string_view kPoolSuffix = "kB";

Error bad_size(std::string_view text, std::string_view why) {
  return Error("parse hugepage size", "'" + std::string(text) + "' " + std::string(why))
      .with("size", std::string(text))
      .hint(
          "write a power of two of at least 4 KiB with a unit: 2M or 1G (x86's hugepage sizes), "
          "also 2048k, 2048kB, 1GiB")
      .kind(ErrorKind::usage);
}

// Digits only, no sign, no leading zero; nullopt on anything else or overflow.
std::optional<std::uint64_t> strict_number(std::string_view digits) {
  if (digits.empty() || (digits.size() > 1 && digits.front() == '0')) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

std::string pool_folder(std::uint64_t page_bytes) {
  return std::string(kPoolPrefix) + std::to_string(page_bytes / kKiB) + std::string(kPoolSuffix);
}

std::uint64_t read_count(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  const auto value = parse_uint(text);
  if (!value) {
    throw Error("read hugepages", "not a page count: '" + std::string(trim(text)) + "'")
        .with("path", file.string());
  }
  return *value;
}

}  // namespace

std::uint64_t parse_hugepage_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view number = text.substr(0, digits);
  std::string_view unit = text.substr(digits);
  if (number.empty()) throw bad_size(text, "does not start with a number");
  if (unit.empty()) throw bad_size(text, "has no unit (K, M or G)");
  std::uint64_t multiplier = 0;
  switch (unit.front()) {
    case 'k':
    case 'K':
      multiplier = kKiB;
      break;
    case 'm':
    case 'M':
      multiplier = kKiB * kKiB;
      break;
    case 'g':
    case 'G':
      multiplier = kGiB;
      break;
    default:
      throw bad_size(text, "has an unknown unit '" + std::string(unit) + "'");
  }
  const std::string_view rest = unit.substr(1);
  if (!rest.empty() && rest != "B" && rest != "iB") {
    throw bad_size(text, "has an unknown unit '" + std::string(unit) + "'");
  }
  const auto value = strict_number(number);
  if (!value) throw bad_size(text, "is not a plain decimal number with a unit");
  if (*value == 0) throw bad_size(text, "is zero");
  if (*value > UINT64_MAX / multiplier) throw bad_size(text, "is too large");
  const std::uint64_t bytes = *value * multiplier;
  if ((bytes & (bytes - 1)) != 0) throw bad_size(text, "is not a power of two");
  if (bytes < 4 * kKiB) throw bad_size(text, "is smaller than a 4 KiB page");
  return bytes;
}

std::string format_hugepage_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "G";
  if (bytes != 0 && bytes % (kKiB * kKiB) == 0) return std::to_string(bytes / kKiB / kKiB) + "M";
  if (bytes != 0 && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "K";
  return std::to_string(bytes) + "B";
}

std::optional<std::uint64_t> parse_pool_folder_name(std::string_view name) {
  if (!name.starts_with(kPoolPrefix) || !name.ends_with(kPoolSuffix)) return std::nullopt;
  name.remove_prefix(kPoolPrefix.size());
  name.remove_suffix(kPoolSuffix.size());
  const auto kib = strict_number(name);
  if (!kib || *kib == 0 || *kib > UINT64_MAX / kKiB) return std::nullopt;
  return *kib * kKiB;
}

std::vector<HugepagePool> read_hugepage_pools(const HostPaths& paths) {
  const std::filesystem::path root = paths.sys / "kernel/mm/hugepages";
  std::vector<HugepagePool> pools;
  for (const std::string& name : list_dir(root)) {
    const auto page_bytes = parse_pool_folder_name(name);
    if (!page_bytes) continue;
    const std::filesystem::path folder = root / name;
    pools.push_back({*page_bytes, read_count(folder / "nr_hugepages"),
                     read_count(folder / "free_hugepages"), read_count(folder / "resv_hugepages"),
                     read_count(folder / "surplus_hugepages")});
  }
  std::sort(pools.begin(), pools.end(), [](const HugepagePool& a, const HugepagePool& b) {
    return a.page_bytes < b.page_bytes;
  });
  return pools;
}

HugepagePool check_hugepages(const std::vector<HugepagePool>& pools, std::uint64_t page_bytes,
                             std::uint64_t guest_bytes) {
  const std::string size = format_hugepage_size(page_bytes);
  if (guest_bytes == 0 || page_bytes == 0 || guest_bytes % page_bytes != 0) {
    throw Error("check hugepages", "guest memory of " + human_size(guest_bytes) +
                                       " is not a whole number of " + size + " pages")
        .with("memory", std::to_string(guest_bytes))
        .with("page_size", size)
        .hint("give QEMU a -m that is a multiple of " + human_size(page_bytes))
        .kind(ErrorKind::usage);
  }
  const auto pool = std::find_if(pools.begin(), pools.end(),
                                 [&](const HugepagePool& p) { return p.page_bytes == page_bytes; });
  if (pool == pools.end()) {
    std::vector<std::string> sizes;
    for (const HugepagePool& p : pools) sizes.push_back(format_hugepage_size(p.page_bytes));
    Error error("check hugepages",
                pools.empty()
                    ? "this kernel has no hugepages (no sys/kernel/mm/hugepages)"
                    : "this host has no " + size + " hugepages; it has " + join(sizes, ", "));
    error.with("page_size", size).kind(ErrorKind::usage);
    if (pools.empty()) {
      error.hint("use a kernel built with CONFIG_HUGETLBFS (Debian's are), or drop --hugepages");
    } else {
      error.hint("use --hugepages " + sizes.front() +
                 (page_bytes == kGiB ? ", or a CPU with the pdpe1gb flag for 1G pages" : ""));
    }
    throw error;
  }
  const std::uint64_t needed = guest_bytes / page_bytes;
  if (needed <= pool->available()) return *pool;
  const std::uint64_t enough = pool->total + (needed - pool->available());
  const std::string count = std::to_string(enough);
  Error error("check hugepages", "the guest needs " + std::to_string(needed) + " " + size +
                                     " pages but only " + std::to_string(pool->available()) +
                                     " are free (" + std::to_string(pool->free) + " free, " +
                                     std::to_string(pool->reserved) + " reserved, " +
                                     std::to_string(pool->total) + " in the pool)");
  error.with("page_size", size)
      .with("needed", std::to_string(needed))
      .with("free", std::to_string(pool->free))
      .with("reserved", std::to_string(pool->reserved))
      .with("total", std::to_string(pool->total))
      .kind(ErrorKind::refused);
  if (page_bytes >= kGiB) {
    error.hint("reserve them at boot, where memory is not yet fragmented: add hugepagesz=" + size +
               " hugepages=" + count +
               " to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then "
               "update-grub) and reboot");
  } else {
    error.hint("grow the pool: echo " + count + " > /sys/kernel/mm/hugepages/" +
               pool_folder(page_bytes) + "/nr_hugepages (or sysctl vm.nr_hugepages=" + count +
               " when " + size +
               " is the default size; vm.nr_hugepages in /etc/sysctl.d/ keeps "
               "it across reboots); check the pool grew, memory may be too fragmented");
  }
  throw error;
}

HugepagePool require_hugepages(const HostPaths& paths, std::uint64_t page_bytes,
                               std::uint64_t guest_bytes) {
  return check_hugepages(read_hugepage_pools(paths), page_bytes, guest_bytes);
}

}  // namespace vfiokit::vmm

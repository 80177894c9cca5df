#include "vfiokit/msix/host_counts.h"

#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::msix {

std::map<std::string, std::uint64_t> parse_vfio_interrupt_counts(std::string_view interrupts,
                                                                 const pci::Bdf& bdf) {
  std::map<std::string, std::uint64_t> counts;
  const std::string suffix = "(" + bdf.to_string() + ")";
  const auto lines = split_lines(interrupts);
  if (lines.empty()) return counts;
  // The header names one column per CPU: "CPU0 CPU1 ...".
  const std::size_t cpus = split_words(lines.front()).size();
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto words = split_words(lines[i]);
    // "IRQ:" then a count per CPU, the chip, the hardware IRQ and trigger, the handlers.
    if (words.size() < cpus + 2 || !words[0].ends_with(':')) continue;
    std::uint64_t total = 0;
    bool numeric = true;
    for (std::size_t cpu = 0; cpu < cpus && numeric; ++cpu) {
      const auto count = parse_uint(words[1 + cpu]);
      numeric = count.has_value();
      if (count) total += *count;
    }
    if (!numeric) continue;
    for (std::size_t w = 1 + cpus; w < words.size(); ++w) {
      // Several handlers on one IRQ are separated by ", ".
      std::string_view name = words[w];
      if (name.ends_with(',')) name.remove_suffix(1);
      if (name.starts_with("vfio-") && name.ends_with(suffix)) counts[std::string(name)] += total;
    }
  }
  return counts;
}

std::map<std::string, std::uint64_t> vfio_interrupt_counts(const HostPaths& paths,
                                                           const pci::Bdf& bdf) {
  const std::string text = read_file_if_exists(paths.proc / "interrupts").value_or("");
  return parse_vfio_interrupt_counts(text, bdf);
}

}  // namespace vfiokit::msix

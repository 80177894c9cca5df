#include "vfiokit/vmm/guest_statistics.h"

#include <linux/kvm.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

std::uint32_t stat_type(const kvm::StatDescriptor& d) { return d.flags & KVM_STATS_TYPE_MASK; }
std::uint32_t stat_unit(const kvm::StatDescriptor& d) { return d.flags & KVM_STATS_UNIT_MASK; }

bool histogram(const kvm::StatDescriptor& d) {
  return stat_type(d) == KVM_STATS_TYPE_LINEAR_HIST || stat_type(d) == KVM_STATS_TYPE_LOG_HIST;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

Labels with(const Labels& base, std::initializer_list<std::pair<std::string, std::string>> more) {
  Labels out = base;
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

// KVM's statistics of one scope ("vm" or "vcpu") as families; each vCPU adds its samples to the
// same families, labelled vcpu="N".
void add_kvm_families(std::vector<MetricFamily>& families, std::string_view scope,
                      const std::vector<kvm::StatSample>& samples, const Labels& labels) {
  for (const kvm::StatSample& sample : samples) {
    const std::optional<double> value = scaled_value(sample);
    if (!value) continue;
    const std::string name = kvm_metric_name(scope, sample.descriptor);
    auto family = std::find_if(families.begin(), families.end(),
                               [&](const MetricFamily& f) { return f.name == name; });
    if (family == families.end()) {
      MetricFamily created;
      created.name = name;
      created.help = "KVM's " + std::string(scope) + " statistic " + sample.descriptor.name;
      created.type = stat_type(sample.descriptor) == KVM_STATS_TYPE_CUMULATIVE ? MetricType::counter
                                                                               : MetricType::gauge;
      families.push_back(std::move(created));
      family = families.end() - 1;
    }
    // Integers stay integers: a counter of exits must not be rounded.
    const bool exact = sample.descriptor.exponent == 0 && !sample.values.empty();
    family->samples.push_back(
        {labels, exact ? std::variant<std::uint64_t, double>(sample.values.front())
                       : std::variant<std::uint64_t, double>(*value)});
  }
}

std::string milliseconds(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", ms);
  return text;
}

}  // namespace

std::optional<double> scaled_value(const kvm::StatSample& sample) {
  if (histogram(sample.descriptor) || sample.values.empty()) return std::nullopt;
  const double base =
      (sample.descriptor.flags & KVM_STATS_BASE_MASK) == KVM_STATS_BASE_POW2 ? 2 : 10;
  return static_cast<double>(sample.values.front()) *
         std::pow(base, static_cast<double>(sample.descriptor.exponent));
}

std::string kvm_metric_name(std::string_view scope, const kvm::StatDescriptor& descriptor) {
  std::string name = metric_name(descriptor.name);
  std::string suffix;
  switch (stat_unit(descriptor)) {
    case KVM_STATS_UNIT_SECONDS:
      if (name.ends_with("_ns") || name.ends_with("_us") || name.ends_with("_ms")) {
        name.resize(name.size() - 3);
      }
      suffix = "_seconds";
      break;
    case KVM_STATS_UNIT_BYTES:
      suffix = name.ends_with("_bytes") ? "" : "_bytes";
      break;
    case KVM_STATS_UNIT_CYCLES:
      suffix = name.ends_with("_cycles") ? "" : "_cycles";
      break;
    default:
      break;
  }
  if (stat_type(descriptor) == KVM_STATS_TYPE_CUMULATIVE) suffix += "_total";
  return "vfiokit_kvm_" + std::string(scope) + "_" + name + suffix;
}

std::vector<MetricFamily> metric_families(const GuestStatistics& statistics, const Labels& labels) {
  std::vector<MetricFamily> families;
  families.push_back({"vfiokit_guest_running",
                      "1 while the guest runs; 0 in the report written after it stopped",
                      MetricType::gauge,
                      {{labels, std::uint64_t{statistics.running ? 1u : 0u}}}});
  families.push_back({"vfiokit_guest_elapsed_seconds",
                      "Time since the guest was started",
                      MetricType::gauge,
                      {{labels, statistics.elapsed_seconds}}});
  if (statistics.first_instruction_ms) {
    families.push_back({"vfiokit_guest_first_instruction_seconds",
                        "From vfiokit's start to the guest's first instruction",
                        MetricType::gauge,
                        {{labels, *statistics.first_instruction_ms / 1000.0}}});
  }
  families.push_back({"vfiokit_dma_mapped_bytes",
                      "Guest RAM mapped for the device's DMA through the IOMMU (pinned)",
                      MetricType::gauge,
                      {{labels, statistics.dma_mapped_bytes}}});
  MetricFamily interrupts{"vfiokit_device_interrupts_total",
                          "Interrupts the device raised on the host, per vector "
                          "(/proc/interrupts)",
                          MetricType::counter,
                          {}};
  for (const auto& [vector, count] : statistics.device_interrupts) {
    interrupts.samples.push_back({with(labels, {{"vector", vector}}), count});
  }
  families.push_back(std::move(interrupts));
  MetricFamily trapped{"vfiokit_trapped_accesses_total",
                       "Guest accesses to the device's BARs that trapped to the VMM",
                       MetricType::counter,
                       {}};
  for (std::size_t bar = 0; bar < kBarCount; ++bar) {
    const BarTraps& traps = statistics.trapped[bar];
    if (traps.reads == 0 && traps.writes == 0) continue;
    trapped.samples.push_back(
        {with(labels, {{"bar", std::to_string(bar)}, {"access", "read"}}), traps.reads});
    trapped.samples.push_back(
        {with(labels, {{"bar", std::to_string(bar)}, {"access", "write"}}), traps.writes});
  }
  families.push_back(std::move(trapped));
  add_kvm_families(families, "vm", statistics.vm, labels);
  for (std::size_t vcpu = 0; vcpu < statistics.vcpus.size(); ++vcpu) {
    add_kvm_families(families, "vcpu", statistics.vcpus[vcpu],
                     with(labels, {{"vcpu", std::to_string(vcpu)}}));
  }
  return families;
}

std::vector<std::string> describe_statistics(const GuestStatistics& statistics) {
  std::vector<std::string> lines;
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.2f s", statistics.elapsed_seconds);
  lines.push_back(std::string("guest ran ") + elapsed +
                  (statistics.first_instruction_ms
                       ? ", first instruction " + milliseconds(*statistics.first_instruction_ms) +
                             " after vfiokit started"
                       : std::string()));
  lines.push_back("DMA-mapped guest RAM: " + human_size(statistics.dma_mapped_bytes));
  std::vector<std::string> raised;
  for (const auto& [vector, count] : statistics.device_interrupts) {
    raised.push_back(vector + " " + std::to_string(count));
  }
  lines.push_back("device interrupts raised on the host: " +
                  (raised.empty() ? std::string("none") : join(raised, ", ")));
  std::vector<std::string> traps;
  for (std::size_t bar = 0; bar < kBarCount; ++bar) {
    const BarTraps& t = statistics.trapped[bar];
    if (t.reads == 0 && t.writes == 0) continue;
    traps.push_back("BAR" + std::to_string(bar) + " " + std::to_string(t.reads) + " reads, " +
                    std::to_string(t.writes) + " writes");
  }
  lines.push_back("trapped BAR accesses: " +
                  (traps.empty() ? std::string("none") : join(traps, "; ")));
  if (!statistics.kvm_missing.empty()) {
    lines.push_back("KVM statistics: " + statistics.kvm_missing);
    return lines;
  }
  auto kvm_line = [](const std::string& what, const std::vector<kvm::StatSample>& samples) {
    std::vector<std::string> parts;
    for (const kvm::StatSample& sample : samples) {
      if (histogram(sample.descriptor) || sample.values.empty() || sample.values.front() == 0) {
        continue;
      }
      parts.push_back(sample.descriptor.name + " " + std::to_string(sample.values.front()));
    }
    return "KVM " + what + ": " + (parts.empty() ? std::string("all zero") : join(parts, ", "));
  };
  lines.push_back(kvm_line("VM", statistics.vm));
  for (std::size_t vcpu = 0; vcpu < statistics.vcpus.size(); ++vcpu) {
    lines.push_back(kvm_line("vCPU " + std::to_string(vcpu), statistics.vcpus[vcpu]));
  }
  return lines;
}

}  // namespace vfiokit::vmm

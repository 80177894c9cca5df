// What a running guest and its passed-through device are doing, for `launch --stats`,
// `--metrics-file` (Prometheus) and `--json`: KVM's own counters (its binary statistics, per VM
// and per vCPU: exits by reason, halt polling, interrupt injections), and vfiokit's (interrupts
// the device raised on the host per vector, the guest's trapped BAR accesses, guest RAM
// DMA-mapped, time to the guest's first instruction). Gathered by vmm/launch.cpp; turned into
// text and metrics here, purely.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vfiokit/base/prometheus.h"
#include "vfiokit/kvm/stats.h"

namespace vfiokit::vmm {

struct BarTraps {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
};

// The six BAR registers of a type-0 header: trapped accesses are counted by the guest's BAR.
inline constexpr std::size_t kBarCount = 6;

struct GuestStatistics {
  // KVM's binary statistics; both empty, and `kvm_missing` saying why, where the kernel has
  // none (before Linux 5.14) or refused them.
  std::vector<kvm::StatSample> vm;
  std::vector<std::vector<kvm::StatSample>> vcpus;  // by vCPU index
  std::string kvm_missing;
  // /proc/interrupts' lines for the device ("vfio-msix[0]" -> raised on the host so far).
  std::map<std::string, std::uint64_t> device_interrupts;
  std::array<BarTraps, kBarCount> trapped{};  // by the guest's BAR index
  std::uint64_t dma_mapped_bytes = 0;
  std::optional<double> first_instruction_ms;
  double elapsed_seconds = 0;  // since the guest was started
  bool running = false;        // false in the last report, after the guest stopped
};

// A statistic's value in the unit Prometheus and people expect: nanoseconds as seconds, a
// power-of-two exponent applied. A histogram's (KVM_STATS_TYPE_*_HIST) is nullopt: only the
// JSON carries its buckets.
std::optional<double> scaled_value(const kvm::StatSample& sample);
// The metric name a KVM statistic gets: vfiokit_kvm_{vm|vcpu}_NAME with its unit as a suffix
// (_seconds replacing a trailing _ns, _bytes, _cycles) and _total for a cumulative one.
std::string kvm_metric_name(std::string_view scope, const kvm::StatDescriptor& descriptor);

// Every statistic as Prometheus metric families, each sample labelled with `labels` first
// (e.g. bdf and payload). Pure.
std::vector<MetricFamily> metric_families(
    const GuestStatistics& statistics,
    const std::vector<std::pair<std::string, std::string>>& labels);

// For people: a few lines, vfiokit's counters first, then KVM's non-zero ones by name.
std::vector<std::string> describe_statistics(const GuestStatistics& statistics);

}  // namespace vfiokit::vmm

// What this kernel's KVM offers, asked, never assumed: the capabilities that decide how vfiokit
// tracks dirty memory, reads statistics and wires level-triggered interrupts, by
// KVM_CHECK_EXTENSION on /dev/kvm. They differ between Debian 12's 6.1 and 6.12 kernels and on
// other distributions' kernels (docs/hil.md, "Two kernels").
//
// Pure core, thin shell: probe_kvm_features() takes any check_extension function, so the unit
// tests feed it a table; probe_kvm_features(system) asks the kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit::kvm {

class KvmSystem;

struct KvmFeatures {
  // KVM_CAP_DIRTY_LOG_RING (Linux 5.11): per-vCPU dirty rings; the value is the largest ring in
  // bytes KVM accepts (0: none).
  std::uint32_t dirty_ring_max_bytes = 0;
  // KVM_CAP_DIRTY_LOG_RING_ACQ_REL (Linux 6.1): the ring with acquire/release ordering on each
  // entry's flags, which weakly ordered architectures need; its largest ring in bytes.
  std::uint32_t dirty_ring_acq_rel_max_bytes = 0;
  // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (Linux 5.8): the flags KVM_ENABLE_CAP accepts
  // (KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_DIRTY_LOG_INITIALLY_SET); 0: KVM_GET_DIRTY_LOG
  // clears as it reads, and KVM_CLEAR_DIRTY_LOG is not there.
  std::uint32_t manual_dirty_log_protect_flags = 0;
  // KVM_CAP_BINARY_STATS_FD (Linux 5.14): KVM_GET_STATS_FD on VM and vCPU fds (kvm/stats.h).
  bool binary_stats = false;
  // KVM_CAP_IRQFD_RESAMPLE: KVM_IRQFD_FLAG_RESAMPLE, a resamplefd for level-triggered INTx.
  bool irqfd_resample = false;

  [[nodiscard]] bool dirty_ring() const noexcept { return dirty_ring_max_bytes != 0; }
  [[nodiscard]] bool dirty_ring_acq_rel() const noexcept {
    return dirty_ring_acq_rel_max_bytes != 0;
  }
  [[nodiscard]] bool manual_dirty_log_protect() const noexcept {
    return manual_dirty_log_protect_flags != 0;
  }
};

// One feature as reported: its stable name ("dirty-ring-acq-rel"), the KVM_CAP_* it comes from,
// and whether this kernel has it.
struct KvmFeatureReport {
  std::string_view name;
  std::string_view capability;
  bool present = false;
};

// Every feature, in a fixed order, present or not.
std::vector<KvmFeatureReport> report_kvm_features(const KvmFeatures& features);

// check_extension(KVM_CAP_*) answers 0 for absent, else the capability's value.
using CheckExtension = std::function<int(unsigned long capability)>;
KvmFeatures probe_kvm_features(const CheckExtension& check_extension);
KvmFeatures probe_kvm_features(const KvmSystem& system);

}  // namespace vfiokit::kvm

#include "vfiokit/kvm/features.h"

#include <linux/kvm.h>

#include "vfiokit/kvm/system.h"

namespace vfiokit::kvm {
namespace {

std::uint32_t non_negative(int value) { return value > 0 ? static_cast<std::uint32_t>(value) : 0; }

}  // namespace

KvmFeatures probe_kvm_features(const CheckExtension& check_extension) {
  KvmFeatures features;
  // The ring capabilities answer on /dev/kvm as on a VM fd: KVM's generic check_extension sees
  // no VM and gives the compiled-in maximum (KVM_DIRTY_RING_MAX_ENTRIES entries).
  features.dirty_ring_max_bytes = non_negative(check_extension(KVM_CAP_DIRTY_LOG_RING));
  features.dirty_ring_acq_rel_max_bytes =
      non_negative(check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL));
  features.manual_dirty_log_protect_flags =
      non_negative(check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
  features.binary_stats = check_extension(KVM_CAP_BINARY_STATS_FD) > 0;
  features.irqfd_resample = check_extension(KVM_CAP_IRQFD_RESAMPLE) > 0;
  return features;
}

KvmFeatures probe_kvm_features(const KvmSystem& system) {
  return probe_kvm_features(
      [&system](unsigned long capability) { return system.check_extension(capability); });
}

std::vector<KvmFeatureReport> report_kvm_features(const KvmFeatures& features) {
  return {
      {"dirty-ring", "KVM_CAP_DIRTY_LOG_RING", features.dirty_ring()},
      {"dirty-ring-acq-rel", "KVM_CAP_DIRTY_LOG_RING_ACQ_REL", features.dirty_ring_acq_rel()},
      {"manual-dirty-log-protect", "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2",
       features.manual_dirty_log_protect()},
      {"binary-stats", "KVM_CAP_BINARY_STATS_FD", features.binary_stats},
      {"irqfd-resample", "KVM_CAP_IRQFD_RESAMPLE", features.irqfd_resample},
  };
}

}  // namespace vfiokit::kvm

#include "vfiokit/kvm/features.h"

#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <map>
#include <vector>

namespace vfiokit::kvm {
namespace {

// A kernel as a table of KVM_CHECK_EXTENSION answers; anything not in it answers 0, as KVM does
// for a capability it does not know. Every question asked is recorded.
struct FakeKvm {
  std::map<unsigned long, int> answers;
  std::vector<unsigned long> asked;
  CheckExtension check() {
    return [this](unsigned long capability) {
      asked.push_back(capability);
      const auto it = answers.find(capability);
      return it == answers.end() ? 0 : it->second;
    };
  }
};

bool present(const KvmFeatures& features, std::string_view name) {
  for (const auto& feature : report_kvm_features(features)) {
    if (feature.name == name) return feature.present;
  }
  ADD_FAILURE() << "no feature " << name;
  return false;
}

TEST(KvmFeatures, EveryCapabilityIsAskedAndItsValueKept) {
  // What x86 KVM of Linux 6.1 and 6.12 answers (65536 entries of 16 bytes; both manual-protect
  // flags).
  FakeKvm kvm{{{KVM_CAP_DIRTY_LOG_RING, 1 << 20},
               {KVM_CAP_DIRTY_LOG_RING_ACQ_REL, 1 << 20},
               {KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, 3},
               {KVM_CAP_BINARY_STATS_FD, 1},
               {KVM_CAP_IRQFD_RESAMPLE, 1}},
              {}};
  const KvmFeatures features = probe_kvm_features(kvm.check());
  EXPECT_EQ(features.dirty_ring_max_bytes, 1u << 20);
  EXPECT_EQ(features.dirty_ring_acq_rel_max_bytes, 1u << 20);
  EXPECT_EQ(features.manual_dirty_log_protect_flags, 3u);
  EXPECT_TRUE(features.binary_stats);
  EXPECT_TRUE(features.irqfd_resample);
  EXPECT_EQ(kvm.asked.size(), 5u);
  for (const auto& feature : report_kvm_features(features)) EXPECT_TRUE(feature.present);
}

TEST(KvmFeatures, AbsentCapabilitiesAreReportedAbsent) {
  // A 5.11-to-6.0 kernel: the ring, but not its acquire/release variant; no binary statistics
  // before 5.14.
  FakeKvm kvm{{{KVM_CAP_DIRTY_LOG_RING, 4096 * 16}, {KVM_CAP_IRQFD_RESAMPLE, 1}}, {}};
  const KvmFeatures features = probe_kvm_features(kvm.check());
  EXPECT_TRUE(present(features, "dirty-ring"));
  EXPECT_FALSE(present(features, "dirty-ring-acq-rel"));
  EXPECT_FALSE(present(features, "manual-dirty-log-protect"));
  EXPECT_FALSE(present(features, "binary-stats"));
  EXPECT_TRUE(present(features, "irqfd-resample"));
  EXPECT_FALSE(features.dirty_ring_acq_rel());
  EXPECT_EQ(features.dirty_ring_max_bytes, 4096u * 16);
}

TEST(KvmFeatures, AFailedCheckCountsAsAbsentNeverAsPresent) {
  // KvmSystem::check_extension gives 0 for a refused ioctl; a negative value from any other
  // CheckExtension must not turn into a huge size.
  FakeKvm kvm{{{KVM_CAP_DIRTY_LOG_RING, -22}, {KVM_CAP_BINARY_STATS_FD, -1}}, {}};
  const KvmFeatures features = probe_kvm_features(kvm.check());
  EXPECT_EQ(features.dirty_ring_max_bytes, 0u);
  EXPECT_FALSE(features.dirty_ring());
  EXPECT_FALSE(features.binary_stats);
}

TEST(KvmFeatures, TheReportNamesEachCapabilityOnceInAFixedOrder) {
  const auto report = report_kvm_features(KvmFeatures{});
  ASSERT_EQ(report.size(), 5u);
  EXPECT_EQ(report[0].name, "dirty-ring");
  EXPECT_EQ(report[0].capability, "KVM_CAP_DIRTY_LOG_RING");
  EXPECT_EQ(report[1].capability, "KVM_CAP_DIRTY_LOG_RING_ACQ_REL");
  EXPECT_EQ(report[2].capability, "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
  EXPECT_EQ(report[3].capability, "KVM_CAP_BINARY_STATS_FD");
  EXPECT_EQ(report[4].capability, "KVM_CAP_IRQFD_RESAMPLE");
  for (const auto& feature : report) EXPECT_FALSE(feature.present);
}

}  // namespace
}  // namespace vfiokit::kvm

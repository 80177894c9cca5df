// A guest that waits in vain: the counts from its last mailbox write to the timeout say where
// its interrupt stopped.
#include <gtest/gtest.h>

#include "vmm/hang_report.h"

namespace vfiokit::vmm {
namespace {

const std::string kVector0 = "vfio-msix[0](0000:00:04.0)";

InterruptCounts counts(std::uint64_t host, std::uint64_t injections, std::uint64_t wakeups) {
  return {{{kVector0, host}}, injections, wakeups};
}

kvm::VcpuState halted(bool interrupts = true) { return {true, true, interrupts, 0x101234}; }

TEST(HangReport, TellsEachStopOfTheInterruptsPathApart) {
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(5, 12, 6), halted()).cause,
            HangCause::device_silent);
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(6, 10, 4), halted()).cause,
            HangCause::not_injected);
  const HangReport lost = diagnose_hang(counts(5, 10, 4), counts(6, 11, 4), halted());
  EXPECT_EQ(lost.cause, HangCause::lost_wakeup);
  EXPECT_EQ(lost.host_raised.at(kVector0), 1u);
  EXPECT_EQ(lost.injected, 1u);
  EXPECT_EQ(lost.woke, 0u);
  EXPECT_EQ(lost.describe(),
            "the vCPU halted at 0x101234 with interrupts enabled; while it waited the device "
            "raised 1 interrupt on the host (vfio-msix[0](0000:00:04.0) 1), KVM injected 1 and "
            "the vCPU woke 0 times: the wake-up was lost in the host's KVM");
  // Woken, and still no result: not a lost wake-up.
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(6, 11, 5), halted()).cause, HangCause::unknown);
}

TEST(HangReport, TheVcpusStateComesFirst) {
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(0, 0, 0), {true, false, true, 0x1000}).cause,
            HangCause::running);
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(1, 1, 0), halted(false)).cause,
            HangCause::halted_for_good);
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(1, 1, 0), kvm::VcpuState{}).cause,
            HangCause::unknown);
}

TEST(HangReport, WithoutKvmStatisticsOnlyTheHostSideIsKnown) {
  const InterruptCounts before{{{kVector0, 1}}, std::nullopt, std::nullopt};
  const InterruptCounts after{{{kVector0, 2}}, std::nullopt, std::nullopt};
  const HangReport report = diagnose_hang(before, after, halted());
  EXPECT_EQ(report.cause, HangCause::unknown);
  EXPECT_FALSE(report.injected.has_value());
  EXPECT_NE(report.describe().find("raised 1 interrupt"), std::string::npos);
  // A handler that first appears after the last mailbox write counts from zero.
  const HangReport fresh = diagnose_hang({}, counts(2, 0, 0), halted());
  EXPECT_EQ(fresh.host_raised.at(kVector0), 2u);
}

}  // namespace
}  // namespace vfiokit::vmm

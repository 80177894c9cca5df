// A guest that waits in vain: the counts from its last mailbox write to the timeout, and what
// its local APIC holds, say where its interrupt stopped.
#include <gtest/gtest.h>

#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/vmm/hang_report.h"

namespace vfiokit::vmm {
namespace {

const std::string kVector0 = "vfio-msix[0](0000:00:04.0)";

InterruptCounts counts(std::uint64_t host, std::uint64_t injections, std::uint64_t wakeups) {
  return {{{kVector0, host}}, injections, wakeups};
}

kvm::VcpuState halted(bool interrupts = true, std::vector<std::uint8_t> pending = {},
                      std::uint8_t priority = 0) {
  return {true, true, interrupts, 0x101234, kvm::LapicState{std::move(pending), {}, priority}};
}

TEST(HangReport, TellsEachStopOfTheInterruptsPathApart) {
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(5, 12, 6), halted()).cause,
            HangCause::device_silent);
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(6, 10, 4), halted()).cause,
            HangCause::not_injected);
  // The APIC holds vector 0x41 and nothing keeps it from the vCPU: KVM lost the wake-up.
  const HangReport lost = diagnose_hang(counts(5, 10, 4), counts(6, 12, 5), halted(true, {0x41}));
  EXPECT_EQ(lost.cause, HangCause::lost_wakeup);
  EXPECT_EQ(lost.host_raised.at(kVector0), 1u);
  EXPECT_EQ(lost.injected, 2u);
  EXPECT_EQ(lost.woke, 1u);
  EXPECT_EQ(lost.describe(),
            "the vCPU halted at 0x101234 with interrupts enabled; while it waited the device "
            "raised 1 interrupt on the host (vfio-msix[0](0000:00:04.0) 1), KVM injected 2 and "
            "the vCPU woke 1 time; its local APIC holds pending 0x41, in service none, priority "
            "0x0, its timer off: vector 0x41 could be taken, yet the halted vCPU was not woken: "
            "the wake-up was "
            "lost in the host's KVM");
  // Pending, but below the processor's priority (a handler of its class in service): it must
  // wait, so nothing was lost.
  EXPECT_NE(diagnose_hang(counts(5, 10, 4), counts(6, 12, 5), halted(true, {0x41}, 0x40)).cause,
            HangCause::lost_wakeup);
  // Woken, nothing pending, and still no result: not a lost wake-up.
  EXPECT_EQ(diagnose_hang(counts(5, 10, 4), counts(6, 11, 5), halted()).cause, HangCause::unknown);
}

TEST(HangReport, TheVcpusStateComesFirst) {
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(0, 0, 0), {true, false, true, 0x1000, {}}).cause,
            HangCause::running);
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(1, 1, 0), halted(false, {0x41})).cause,
            HangCause::halted_for_good);
  EXPECT_EQ(diagnose_hang(counts(0, 0, 0), counts(1, 1, 0), kvm::VcpuState{}).cause,
            HangCause::unknown);
}

TEST(HangReport, WithoutKvmStatisticsOnlyTheHostSideIsKnown) {
  const InterruptCounts before{{{kVector0, 1}}, std::nullopt, std::nullopt};
  const InterruptCounts after{{{kVector0, 2}}, std::nullopt, std::nullopt};
  const HangReport report = diagnose_hang(before, after, {true, true, true, 0x1000, {}});
  EXPECT_EQ(report.cause, HangCause::unknown);
  EXPECT_FALSE(report.injected.has_value());
  EXPECT_NE(report.describe().find("raised 1 interrupt"), std::string::npos);
  // A handler that first appears after the last mailbox write counts from zero.
  const HangReport fresh = diagnose_hang({}, counts(2, 0, 0), halted());
  EXPECT_EQ(fresh.host_raised.at(kVector0), 2u);
}

TEST(Lapic, PendingAndInServiceVectorsFromTheRegisterPage) {
  std::vector<std::uint8_t> page(1024, 0);
  page[0x200 + 2 * 16] = 0x02;      // IRR bit 65: vector 0x41
  page[0x200 + 7 * 16 + 3] = 0x80;  // IRR bit 255
  page[0x100 + 1 * 16] = 0x01;      // ISR bit 32: vector 0x20
  page[0xa0] = 0x20;                // PPR class 2
  const kvm::LapicState lapic = kvm::parse_lapic(page);
  EXPECT_EQ(lapic.pending, (std::vector<std::uint8_t>{0x41, 0xff}));
  EXPECT_EQ(lapic.in_service, (std::vector<std::uint8_t>{0x20}));
  EXPECT_EQ(lapic.processor_priority, 0x20);
  EXPECT_EQ(lapic.deliverable(), 0xff);  // the highest class goes first
  EXPECT_FALSE(kvm::LapicState({0x25}, {}, 0x20).deliverable());
  EXPECT_TRUE(kvm::parse_lapic(std::span(page).first(100)).pending.empty());  // too short
  EXPECT_EQ(lapic.timer_text(), "off");
  page[0x320] = 0x30;
  page[0x320 + 2] = 0x02;  // periodic
  page[0x380] = 0x80;
  page[0x390] = 0x10;
  EXPECT_EQ(kvm::parse_lapic(page).timer_text(), "periodic (vector 0x30), counting 16 of 128");
  page[0x320 + 2] = 0x01;  // masked
  EXPECT_EQ(kvm::parse_lapic(page).timer_text(), "masked");
}

}  // namespace
}  // namespace vfiokit::vmm

// What is x86-only says so before it touches KVM (kvm::require_x86_guests): vfiokit's guests are
// 32-bit x86 programs. On x86_64 nothing is refused; built for another architecture (the arm64
// cross-build), launch --payload is refused before anything is bound.
#include <gtest/gtest.h>

#include <string>

#include "vfiokit/base/error.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/payloads/payloads.h"

namespace vfiokit {
namespace {

#if defined(__x86_64__)
TEST(Architecture, X86GuestsRunOnX86) {
  EXPECT_NO_THROW(kvm::require_x86_guests("launch --payload"));
  EXPECT_EQ(payloads::load_for_launch("edu-dma").name, "edu-dma");
}
#else
TEST(Architecture, X86GuestsAreRefusedElsewhereWithTheReason) {
  for (const auto& refuse : {+[] { kvm::require_x86_guests("run a payload guest"); },
                             +[] { static_cast<void>(payloads::load_for_launch("edu-dma")); }}) {
    try {
      refuse();
      ADD_FAILURE() << "not refused";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("not on this architecture"), std::string::npos) << e.what();
    }
  }
}
#endif

}  // namespace
}  // namespace vfiokit

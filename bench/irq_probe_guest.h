// The guest both interrupt benchmarks drive: the irq-probe payload, which reports every vector
// it takes through the mailbox, expecting device vector 0 as guest vector 0x30, routed on one GSI
// (payloads::irq_probe_message: to APIC 0 on x86).
#pragma once

#include <cstdint>

#include "vfiokit/kvm/system.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/payloads.h"

namespace vfiokit::bench {

struct IrqProbeGuest {
  explicit IrqProbeGuest(const kvm::KvmSystem& system)
      : guest(system, payloads::find("irq-probe")->image, payloads::irq_probe_options(1)),
        message(payloads::irq_probe_message(0)),
        gsi(guest.routes().gsis().allocate(1)[0]) {
    guest.routes().stage(gsi, message);
    guest.routes().commit();
  }

  payloads::PayloadGuest guest;
  msix::MsiMessage message;
  std::uint32_t gsi;
};

}  // namespace vfiokit::bench

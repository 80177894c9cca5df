// The guest both interrupt benchmarks drive: the irq-probe payload, which reports every vector
// it takes through the mailbox, with vector 0x30 for APIC 0 routed on one GSI.
#pragma once

#include <cstdint>
#include <cstring>

#include "vfiokit/kvm/system.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"

namespace vfiokit::bench {

inline payloads::GuestOptions irq_probe_options() {
  vfiokit_irq_params params{};
  params.magic = VFIOKIT_IRQ_PARAMS_MAGIC;
  payloads::GuestOptions options;
  options.parameters.resize(sizeof params);
  std::memcpy(options.parameters.data(), &params, sizeof params);
  return options;
}

struct IrqProbeGuest {
  explicit IrqProbeGuest(const kvm::KvmSystem& system)
      : guest(system, payloads::find("irq-probe")->image, irq_probe_options()),
        message(msix::encode_msi({0, 0x30})),
        gsi(guest.routes().gsis().allocate(1)[0]) {
    guest.routes().stage(gsi, message);
    guest.routes().commit();
  }

  payloads::PayloadGuest guest;
  msix::MsiMessage message;
  std::uint32_t gsi;
};

}  // namespace vfiokit::bench

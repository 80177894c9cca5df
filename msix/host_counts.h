// How often a device's interrupts have reached the host through VFIO, from /proc/interrupts,
// where vfio-pci names its handlers "vfio-msix[N](BDF)", "vfio-msi[N](BDF)" and "vfio-intx(BDF)".
// A vector whose count moved did fire on the host side; whether it then reached a guest is
// KVM's part (kvm/stats.h). Used to say where an interrupt stopped when a guest waits in vain.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::msix {

// Handler name ("vfio-msix[0](0000:00:04.0)") -> its count summed over every CPU, for the
// handlers of `bdf`. Pure; lines it cannot read are skipped.
std::map<std::string, std::uint64_t> parse_vfio_interrupt_counts(std::string_view interrupts,
                                                                 const pci::Bdf& bdf);

// The same from paths.proc/interrupts (empty when it cannot be read).
std::map<std::string, std::uint64_t> vfio_interrupt_counts(const HostPaths& paths,
                                                           const pci::Bdf& bdf);

}  // namespace vfiokit::msix

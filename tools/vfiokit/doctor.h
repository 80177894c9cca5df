// `vfiokit doctor`: is this host ready for VFIO passthrough, and if not, what to do.
//
// Pure core, thin shell: gather_doctor_facts() reads the host (or a fixture tree);
// assess_doctor_facts() turns facts into checks without touching the system.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vfiokit/base/check.h"
#include "vfiokit/base/device_node.h"
#include "vfiokit/base/host_paths.h"
#include "vfiokit/base/kmod.h"
#include "vfiokit/iommu/host_iommu.h"
#include "vfiokit/kvm/features.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/vmm/firmware.h"
#include "vfiokit/vmm/hugepages.h"

namespace vfiokit::cli {

struct ModuleFact {
  std::string name;
  ModuleState state = ModuleState::missing;
};

struct MemlockFact {
  rlim_t soft = 0;
  bool cap_ipc_lock = false;  // exempts the process from RLIMIT_MEMLOCK for VFIO pinning
};

struct DoctorFacts {
  iommu::HostIommu iommu;
  std::string kernel_release;
  std::vector<ModuleFact> modules;  // vfio, vfio_iommu_type1, vfio_pci
  DeviceNodeStatus vfio_container;  // /dev/vfio/vfio
  DeviceNodeStatus kvm;             // /dev/kvm
  kvm::KvmHostFacts kvm_host;       // for diagnosing a failure
  int kvm_create_vm_errno = 0;      // KVM_CREATE_VM's error, when /dev/kvm opened fine
  // What this kernel's KVM offers (KVM_CHECK_EXTENSION); nullopt when /dev/kvm could not be
  // opened, so nothing could be asked.
  std::optional<kvm::KvmFeatures> kvm_features;
  MemlockFact memlock;
  std::vector<vmm::HugepagePool> hugepages;  // for launch --qemu --hugepages
  std::string hugepages_error;               // why the pools could not be read, if so
  vmm::OvmfLookup ovmf;                      // for launch --qemu --firmware uefi
};

// Reads everything below `paths`; the memlock facts are always this process's own.
DoctorFacts gather_doctor_facts(const HostPaths& paths);

std::vector<CheckResult> assess_doctor_facts(const DoctorFacts& facts);

}  // namespace vfiokit::cli

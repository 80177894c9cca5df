#include "tools/vfiokit/doctor.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/vfio_uapi.h"
#include "vfiokit/kvm/uapi.h"
#include "vfiokit/kvm/vm.h"

namespace vfiokit::cli {
namespace {

constexpr int kCapIpcLock = 14;  // <linux/capability.h> CAP_IPC_LOCK
constexpr rlim_t kComfortableMemlock = rlim_t{1} << 30;

std::string mib(rlim_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

bool has_capability(std::string_view proc_status, int capability) {
  const auto effective = find_key_value(proc_status, "CapEff");
  if (!effective) return false;
  const auto bits = parse_uint(*effective, 16);
  return bits && ((*bits >> capability) & 1u) != 0;
}

bool prefers_amd(const iommu::HostIommu& host) {
  return host.firmware_ivrs || host.cpu_vendor == "AuthenticAMD";
}

// An Arm host: its /proc/cpuinfo has "CPU implementer" lines, or its IOMMU is an SMMU.
bool is_arm(const iommu::HostIommu& host) {
  return !host.cpu_implementer.empty() ||
         std::any_of(host.units.begin(), host.units.end(), [](const auto& unit) {
           return unit.vendor == iommu::IommuVendor::arm_smmu_v3 ||
                  unit.vendor == iommu::IommuVendor::arm_smmu;
         });
}

CheckResult assess_iommu(const iommu::HostIommu& host) {
  CheckResult check{"iommu", CheckStatus::pass, {}, {}};
  if (!host.units.empty() && !host.groups.empty()) {
    std::vector<std::string> names;
    for (const auto& unit : host.units) names.push_back(unit.name);
    check.summary = std::string(iommu::to_string(host.units.front().vendor)) + " active (" +
                    join(names, ", ") + "), " + std::to_string(host.groups.size()) +
                    " IOMMU groups";
    for (const char* passthrough : {"iommu=pt", "iommu.passthrough=1"}) {
      if (iommu::cmdline_has(host.kernel_cmdline, passthrough)) {
        check.summary += std::string("; ") + passthrough +
                         ": host drivers' DMA is identity-mapped, VFIO groups still get "
                         "their own translated domains";
      }
    }
    return check;
  }
  check.status = CheckStatus::fail;
  if (host.firmware_dmar && !prefers_amd(host)) {
    check.summary =
        "Intel VT-d is described by firmware (ACPI DMAR) but the kernel did not enable it";
    check.fix = iommu::cmdline_has(host.kernel_cmdline, "intel_iommu=off")
                    ? "remove intel_iommu=off from the kernel command line and reboot"
                    : "add intel_iommu=on to the kernel command line (GRUB_CMDLINE_LINUX in "
                      "/etc/default/grub, then update-grub) and reboot";
  } else if (host.firmware_ivrs) {
    check.summary = "AMD-Vi is described by firmware (ACPI IVRS) but the kernel did not enable it";
    check.fix = iommu::cmdline_has(host.kernel_cmdline, "amd_iommu=off")
                    ? "remove amd_iommu=off from the kernel command line and reboot"
                    : "make sure the kernel has CONFIG_AMD_IOMMU and that iommu=off is not on "
                      "its command line, then reboot";
  } else if (!host.units.empty()) {
    check.summary = "IOMMU units exist but no device is in an IOMMU group";
    check.fix = "check dmesg for IOMMU errors; the IOMMU may be in a disabled or bypass mode";
  } else if (is_arm(host)) {
    check.summary = "no IOMMU found: no /sys/class/iommu units (an Arm SMMU registers smmu3.ADDR)";
    check.fix =
        "enable the SMMU in the firmware setup and use a kernel with CONFIG_ARM_SMMU_V3 "
        "(Debian's arm64 kernels have it); in a virtual machine, give it a virtual SMMU "
        "(QEMU: -M virt,iommu=smmuv3)";
  } else {
    check.summary = "no IOMMU found: no /sys/class/iommu units and no ACPI DMAR or IVRS table";
    check.fix = std::string("enable ") +
                (prefers_amd(host) ? "AMD-Vi (often called IOMMU or SVM/IOMMU)" : "VT-d") +
                " in the firmware setup; in a virtual machine, give it a virtual IOMMU (QEMU: -M "
                "q35,kernel-irqchip=split -device intel-iommu,intremap=on)";
  }
  return check;
}

CheckResult assess_interrupt_remapping(const iommu::HostIommu& host) {
  CheckResult check{"interrupt-remapping", CheckStatus::pass, {}, {}};
  if (host.remapped_interrupts_seen) {
    check.summary = "active (remapped IR- interrupt chips in /proc/interrupts)";
    return check;
  }
  // On arm64 the GICv3 ITS isolates MSIs (per-device translation by DeviceID); there is no
  // VT-d or AMD-Vi interrupt remapping to look for.
  if (host.its_msi_seen) {
    check.summary =
        "MSIs isolated by the GICv3 ITS (ITS- interrupt chips): each device can raise only its "
        "own interrupts; arm64 needs no VT-d or AMD-Vi interrupt remapping";
    return check;
  }
  const bool capable = std::any_of(host.units.begin(), host.units.end(), [](const auto& unit) {
    return unit.remapping_capable.value_or(false);
  });
  if (host.allow_unsafe_interrupts.value_or(false)) {
    check.status = CheckStatus::warn;
    check.summary =
        "not active; vfio_iommu_type1 allow_unsafe_interrupts=Y lets VFIO go on, but a "
        "device can then forge interrupts to the host";
    check.fix =
        "enable interrupt remapping (do not boot with intremap=off) and drop "
        "allow_unsafe_interrupts";
    return check;
  }
  if (is_arm(host) && !host.units.empty()) {
    // The ITS shows only through interrupts someone allocated: with no MSI in use yet, doctor
    // cannot tell an ITS (isolating) from a GICv2m (not isolating).
    check.status = CheckStatus::warn;
    check.summary =
        "no MSI goes through a GICv3 ITS (no ITS- interrupt chip): without one (GICv2m and "
        "others do not isolate MSIs) VFIO refuses to enable MSI/MSI-X";
    check.fix =
        "if no device uses MSIs yet, this is not known: look for 'ITS@' in dmesg; a GICv3 "
        "with an ITS isolates them (QEMU: -M virt,gic-version=3,its=on)";
    return check;
  }
  check.status = CheckStatus::fail;
  if (host.units.empty()) {
    check.summary = "not active: there is no active IOMMU to remap interrupts";
    check.fix = "enable the IOMMU first (see the iommu check)";
  } else if (capable) {
    check.summary = "the IOMMU supports remapping but no remapped interrupts are in use";
    check.fix = iommu::cmdline_has(host.kernel_cmdline, "intremap=off")
                    ? "remove intremap=off from the kernel command line and reboot"
                    : "check dmesg for 'DMAR-IR' messages; firmware may have disabled x2APIC or "
                      "interrupt remapping";
  } else {
    check.summary = "not active: VFIO will refuse to enable MSI/MSI-X without it";
    check.fix =
        "enable interrupt remapping in firmware; only if you trust the device, load "
        "vfio_iommu_type1 with allow_unsafe_interrupts=1";
  }
  return check;
}

CheckResult assess_modules(const DoctorFacts& facts) {
  CheckResult check{"vfio-modules", CheckStatus::pass, {}, {}};
  std::vector<std::string> states;
  std::vector<std::string> to_load;
  std::vector<std::string> missing;
  for (const auto& module : facts.modules) {
    states.push_back(module.name + " " + std::string(to_string(module.state)));
    if (module.state == ModuleState::available) to_load.push_back(module.name);
    if (module.state == ModuleState::missing) missing.push_back(module.name);
  }
  check.summary = join(states, ", ");
  if (!missing.empty()) {
    check.status = CheckStatus::fail;
    check.fix = "the running kernel (" + facts.kernel_release + ") has no " + join(missing, ", ") +
                ": install a kernel built with CONFIG_VFIO_PCI (Debian's stock kernels are)";
  } else if (!to_load.empty()) {
    check.status = CheckStatus::warn;
    check.fix = "modprobe " + join(to_load, " ") + " (vfiokit bind loads vfio-pci itself)";
  }
  return check;
}

CheckResult assess_vfio_container(const DoctorFacts& facts) {
  const auto& node = facts.vfio_container;
  CheckResult check{"vfio-container", CheckStatus::fail, {}, {}};
  if (!node.exists) {
    // The advice follows the vfio module's state, so doctor never says "modprobe vfio" on a
    // kernel that has no vfio module to load.
    const auto vfio = std::find_if(facts.modules.begin(), facts.modules.end(),
                                   [](const ModuleFact& m) { return m.name == "vfio"; });
    const ModuleState state = vfio == facts.modules.end() ? ModuleState::missing : vfio->state;
    check.summary = "/dev/vfio/vfio does not exist";
    switch (state) {
      case ModuleState::missing:
        check.fix = "the running kernel has no VFIO (see the vfio-modules check)";
        break;
      case ModuleState::available:
        check.fix = "modprobe vfio (it creates /dev/vfio/vfio)";
        break;
      default:  // loaded or built in, yet no node: devtmpfs or udev did not make it
        check.fix = "vfio is " + std::string(to_string(state)) +
                    " but the node is missing: check that /dev is devtmpfs and udev is running";
        break;
    }
  } else if (!node.is_char_device) {
    check.summary = "/dev/vfio/vfio is not a character device";
    check.fix = "remove it and reload the vfio module";
  } else if (node.open_errno != 0) {
    check.summary =
        "/dev/vfio/vfio cannot be opened: " + std::string(std::strerror(node.open_errno));
    check.fix = node.open_errno == EACCES ? "run as root, or grant access to /dev/vfio/vfio"
                                          : "check dmesg for vfio errors";
  } else if (node.api_version != VFIO_API_VERSION) {
    check.summary = "/dev/vfio/vfio answers API version " +
                    (node.api_version ? std::to_string(*node.api_version) : "(none)") +
                    ", expected " + std::to_string(VFIO_API_VERSION);
    check.fix = "this is not the VFIO container interface vfiokit knows";
  } else {
    check.status = CheckStatus::pass;
    check.summary = "/dev/vfio/vfio opens, API version " + std::to_string(VFIO_API_VERSION);
  }
  return check;
}

CheckResult assess_kvm(const DoctorFacts& facts) {
  // KVM matters only for launching guests, so its problems are warnings, not failures.
  const auto& node = facts.kvm;
  CheckResult check{"kvm", CheckStatus::warn, {}, {}};
  auto diagnosed = [&](int error, const char* operation) {
    kvm::KvmHostFacts host = facts.kvm_host;
    host.error = error;
    const Error e = kvm::diagnose_kvm_failure(host, operation);
    check.summary = std::string(e.what()) +
                    ": guests cannot be launched (user-space drivers can "
                    "still use VFIO)";
    check.fix = e.hint();
    return check;
  };
  if (!node.exists) return diagnosed(ENOENT, "/dev/kvm");
  if (node.open_errno != 0) return diagnosed(node.open_errno, "open /dev/kvm");
  if (node.api_version && *node.api_version != kvm::uapi::kExpectedApiVersion) {
    check.summary = "/dev/kvm answers API version " + std::to_string(*node.api_version) +
                    ", expected " + std::to_string(kvm::uapi::kExpectedApiVersion);
    check.fix = "this kernel's KVM is not one vfiokit can drive";
    return check;
  }
  if (facts.kvm_create_vm_errno != 0) return diagnosed(facts.kvm_create_vm_errno, "KVM_CREATE_VM");
  check.status = CheckStatus::pass;
  check.summary = "/dev/kvm opens, API version " +
                  (node.api_version ? std::to_string(*node.api_version) : "unknown") +
                  (node.api_version ? ", a VM can be created" : "");
  return check;
}

// What vfiokit does on a kernel without the feature.
std::string_view fallback_without(std::string_view feature) {
  if (feature == "dirty-ring") return "dirty pages from the KVM_GET_DIRTY_LOG bitmap";
  if (feature == "dirty-ring-acq-rel") return "the ring with full barriers";
  if (feature == "manual-dirty-log-protect") return "KVM_GET_DIRTY_LOG clears as it reads";
  if (feature == "binary-stats") return "no KVM statistics";
  if (feature == "irqfd-resample") return "no INTx through an irqfd";
  return "";
}

// Optional KVM features only change how vfiokit does something (each has a fallback), so a
// feature this kernel lacks is listed, not a failure; a KVM that could not be asked is a warning.
CheckResult assess_kvm_features(const DoctorFacts& facts) {
  CheckResult check{"kvm-features", CheckStatus::pass, {}, {}};
  if (!facts.kvm_features) {
    check.status = CheckStatus::warn;
    check.summary = "not known: /dev/kvm could not be opened to ask KVM_CHECK_EXTENSION";
    check.fix = "see the kvm check";
    return check;
  }
  std::vector<std::string> has;
  std::vector<std::string> lacks;
  for (const auto& feature : kvm::report_kvm_features(*facts.kvm_features)) {
    if (feature.present) {
      has.emplace_back(feature.name);
    } else {
      lacks.push_back(std::string(feature.name) + " (" +
                      std::string(fallback_without(feature.name)) + ")");
    }
  }
  check.summary = "has " + (has.empty() ? std::string("none") : join(has, ", "));
  if (!lacks.empty()) check.summary += "; lacks " + join(lacks, ", ");
  return check;
}

CheckResult assess_memlock(const MemlockFact& memlock) {
  CheckResult check{"memlock", CheckStatus::pass, {}, {}};
  if (memlock.cap_ipc_lock) {
    check.summary = "CAP_IPC_LOCK held: VFIO's page pinning is not limited by RLIMIT_MEMLOCK";
  } else if (memlock.soft == RLIM_INFINITY) {
    check.summary = "RLIMIT_MEMLOCK unlimited";
  } else if (memlock.soft >= kComfortableMemlock) {
    check.summary = "RLIMIT_MEMLOCK " + mib(memlock.soft);
  } else {
    check.status = CheckStatus::warn;
    check.summary = "RLIMIT_MEMLOCK " + mib(memlock.soft) +
                    ": every DMA-mapped page is pinned and counted against it";
    check.fix =
        "raise it to at least the DMA memory (a guest's RAM): ulimit -l unlimited, "
        "LimitMEMLOCK=infinity in a systemd unit, or memlock in "
        "/etc/security/limits.conf";
  }
  return check;
}

std::string pool_summary(const vmm::HugepagePool& pool) {
  std::string text = vmm::format_hugepage_size(pool.page_bytes) + ": " + std::to_string(pool.free) +
                     " of " + std::to_string(pool.total) + " free";
  if (pool.reserved != 0) text += " (" + std::to_string(pool.reserved) + " reserved)";
  return text;
}

// Hugepages matter only for launch --qemu --hugepages, so nothing here fails.
CheckResult assess_hugepages(const DoctorFacts& facts) {
  CheckResult check{"hugepages", CheckStatus::warn, {}, {}};
  if (!facts.hugepages_error.empty()) {
    check.summary = "the hugepage pools cannot be read: " + facts.hugepages_error;
    check.fix = "check /sys/kernel/mm/hugepages (only launch --qemu --hugepages needs it)";
    return check;
  }
  if (facts.hugepages.empty()) {
    check.summary = "this kernel has no hugepages (no /sys/kernel/mm/hugepages)";
    check.fix =
        "only launch --qemu --hugepages needs them: use a kernel built with CONFIG_HUGETLBFS "
        "(Debian's are)";
    return check;
  }
  std::vector<std::string> pools;
  std::uint64_t reserved_pages = 0;
  for (const auto& pool : facts.hugepages) {
    pools.push_back(pool_summary(pool));
    reserved_pages += pool.total;
  }
  check.summary = join(pools, ", ");
  if (reserved_pages != 0) {
    check.status = CheckStatus::pass;
    return check;
  }
  check.summary += ": none reserved for launch --qemu --hugepages";
  check.fix =
      "reserve the guest's RAM in 2M pages: echo N > "
      "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages (N = RAM / 2 MiB; "
      "vm.nr_hugepages=N in /etc/sysctl.d/ keeps it across reboots); for 1G pages add "
      "hugepagesz=1G hugepages=N to the kernel command line";
  return check;
}

// UEFI matters only for launch --qemu --firmware uefi, so nothing here fails.
CheckResult assess_ovmf(const vmm::OvmfLookup& ovmf) {
  CheckResult check{"ovmf", CheckStatus::pass, {}, {}};
  if (ovmf.firmware) {
    check.summary = "OVMF " + ovmf.firmware->layout + ": " + ovmf.firmware->code.string() + " + " +
                    ovmf.firmware->vars_template.filename().string();
    if (!ovmf.problems.empty()) {
      check.status = CheckStatus::warn;
      check.summary += "; but " + join(ovmf.problems, "; ");
      check.fix = "apt-get install --reinstall ovmf";
    }
    return check;
  }
  check.status = CheckStatus::warn;
  if (ovmf.problems.empty()) {
    check.summary = "not installed: needed only for launch --qemu --firmware uefi";
    check.fix = "apt-get install ovmf";
  } else {
    check.summary = "no usable OVMF pair: " + join(ovmf.problems, "; ");
    check.fix = "apt-get install --reinstall ovmf";
  }
  return check;
}

}  // namespace

DoctorFacts gather_doctor_facts(const HostPaths& paths) {
  DoctorFacts facts;
  facts.iommu = iommu::probe_host_iommu(paths);
  facts.kernel_release = kernel_release(paths);
  for (const char* name : {"vfio", "vfio_iommu_type1", "vfio_pci"}) {
    facts.modules.push_back({name, module_state(paths, name)});
  }
  facts.vfio_container = probe_device_node(paths.dev / "vfio/vfio", iommu::uapi::kGetApiVersion);
  facts.kvm = probe_device_node(paths.dev / "kvm", kvm::uapi::kGetApiVersion);
  facts.kvm_host = kvm::gather_kvm_facts(paths, 0);
  if (facts.kvm.api_version == kvm::uapi::kExpectedApiVersion) {
    try {
      const kvm::KvmSystem system = kvm::KvmSystem::open(paths);
      facts.kvm_features = kvm::probe_kvm_features(system);
      const kvm::Vm vm = system.create_vm();
    } catch (const Error& e) {
      facts.kvm_create_vm_errno = e.errno_value() != 0 ? e.errno_value() : EINVAL;
    }
  }
  struct rlimit limit {};
  ::getrlimit(RLIMIT_MEMLOCK, &limit);
  facts.memlock.soft = limit.rlim_cur;
  facts.memlock.cap_ipc_lock =
      has_capability(read_file_if_exists(paths.proc / "self/status").value_or(""), kCapIpcLock);
  try {
    facts.hugepages = vmm::read_hugepage_pools(paths);
  } catch (const Error& e) {
    facts.hugepages_error = e.what();
  }
  try {
    facts.ovmf = vmm::find_ovmf(paths);
  } catch (const Error& e) {
    facts.ovmf.problems.emplace_back(e.what());
  }
  return facts;
}

std::vector<CheckResult> assess_doctor_facts(const DoctorFacts& facts) {
  return {assess_iommu(facts.iommu),
          assess_interrupt_remapping(facts.iommu),
          assess_modules(facts),
          assess_vfio_container(facts),
          assess_kvm(facts),
          assess_kvm_features(facts),
          assess_memlock(facts.memlock),
          assess_hugepages(facts),
          assess_ovmf(facts.ovmf)};
}

}  // namespace vfiokit::cli

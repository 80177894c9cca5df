// /dev/kvm: opening it, what it supports, and why it cannot be opened when it cannot.
#pragma once

#include <linux/kvm.h>

#include <optional>
#include <string>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/host_paths.h"
#include "vfiokit/base/unique_fd.h"

namespace vfiokit::kvm {

// What is known about the host when opening /dev/kvm or creating a VM failed.
struct KvmHostFacts {
  int error = 0;  // errno of the failing open() or KVM_CREATE_VM
  bool node_exists = false;
  bool kvm_module = false;              // /sys/module/kvm
  bool vendor_module = false;           // kvm_intel or kvm_amd loaded
  std::string cpu_vendor;               // "GenuineIntel", "AuthenticAMD"
  bool cpu_has_virtualization = false;  // vmx or svm in /proc/cpuinfo flags
  int seccomp_mode = 0;                 // /proc/self/status Seccomp: 0 none, 1 strict, 2 filter
  std::string node_group;               // group owning /dev/kvm, e.g. "kvm"
  bool in_node_group = false;           // this process has that group
};

KvmHostFacts gather_kvm_facts(const HostPaths& paths, int error);
// Why it failed and what to do, as an Error for `operation` ("open /dev/kvm", "KVM_CREATE_VM").
Error diagnose_kvm_failure(const KvmHostFacts& facts, std::string operation);

class Vm;

class KvmSystem {
 public:
  // Throws the diagnosed Error when /dev/kvm cannot be opened or is not API version 12.
  static KvmSystem open(const HostPaths& paths = {});

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // KVM_CHECK_EXTENSION: 0 when absent, else the capability's value (often a count).
  [[nodiscard]] int check_extension(unsigned long capability) const;
  [[nodiscard]] std::size_t vcpu_mmap_size() const noexcept { return vcpu_mmap_size_; }
#if defined(__x86_64__)
  // KVM_GET_SUPPORTED_CPUID: every CPUID leaf KVM can give a guest, as KVM fills them in (x86).
  [[nodiscard]] std::vector<kvm_cpuid_entry2> supported_cpuid() const;
#endif
  // KVM_CREATE_VM (type 0); failures are diagnosed.
  [[nodiscard]] Vm create_vm() const;

 private:
  KvmSystem(UniqueFd fd, HostPaths paths, std::size_t mmap_size)
      : fd_(std::move(fd)), paths_(std::move(paths)), vcpu_mmap_size_(mmap_size) {}
  UniqueFd fd_;
  HostPaths paths_;
  std::size_t vcpu_mmap_size_;
};

}  // namespace vfiokit::kvm

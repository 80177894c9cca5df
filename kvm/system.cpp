#include "vfiokit/kvm/system.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/uapi.h"
#include "vfiokit/kvm/vm.h"

namespace vfiokit::kvm {

KvmHostFacts gather_kvm_facts(const HostPaths& paths, int error) {
  KvmHostFacts facts;
  facts.error = error;
  struct stat st {};
  facts.node_exists = ::stat((paths.dev / "kvm").c_str(), &st) == 0;
  facts.kvm_module = std::filesystem::exists(paths.sys / "module/kvm");
  facts.vendor_module = std::filesystem::exists(paths.sys / "module/kvm_intel") ||
                        std::filesystem::exists(paths.sys / "module/kvm_amd");
  const std::string cpuinfo = read_file_if_exists(paths.proc / "cpuinfo").value_or("");
  facts.cpu_vendor = find_key_value(cpuinfo, "vendor_id").value_or("");
  // split_words returns views into its argument, which must outlive the loop.
  const std::string flags = find_key_value(cpuinfo, "flags").value_or("");
  for (const auto word : split_words(flags)) {
    if (word == "vmx" || word == "svm") facts.cpu_has_virtualization = true;
  }
  const std::string status = read_file_if_exists(paths.proc / "self/status").value_or("");
  facts.seccomp_mode =
      static_cast<int>(parse_uint(find_key_value(status, "Seccomp").value_or("0")).value_or(0));
  if (facts.node_exists) {
    if (const group* gr = ::getgrgid(st.st_gid)) facts.node_group = gr->gr_name;
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(0, ::getgroups(0, nullptr))));
    const int n = ::getgroups(static_cast<int>(groups.size()), groups.data());
    groups.resize(static_cast<std::size_t>(std::max(0, n)));
    facts.in_node_group = ::getegid() == st.st_gid ||
                          std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
  }
  return facts;
}

Error diagnose_kvm_failure(const KvmHostFacts& f, std::string operation) {
  Error e =
      f.error ? Error::from_errno(f.error, std::move(operation)) : Error(std::move(operation), "");
  const bool intel = f.cpu_vendor == "GenuineIntel";
  const std::string vendor_module = intel ? "kvm_intel" : "kvm_amd";
  switch (f.error) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
      if (!f.cpu_has_virtualization) {
        return e.hint("the CPU shows no vmx/svm flag: enable " +
                      std::string(intel ? "VT-x" : "AMD-V (SVM)") +
                      " in the firmware setup; in a VM, give it nested virtualization");
      }
      if (!f.kvm_module || !f.vendor_module) {
        return e.hint("no KVM module is loaded: modprobe " + vendor_module);
      }
      return e.hint("/dev/kvm is missing although KVM is loaded: is devtmpfs mounted on /dev?");
    case EACCES:
      return e.hint("/dev/kvm is not open to this user" +
                    (f.node_group.empty()
                         ? std::string()
                         : ": add it to the " + f.node_group + " group (usermod -aG " +
                               f.node_group + " USER) and log in again"));
    case EPERM:
      if (f.seccomp_mode == 2) {
        return e.hint(
            "this process runs under a seccomp filter that refuses it (a container "
            "runtime's default profile?): allow the KVM ioctls or run unconfined");
      }
      return e.hint("a cgroup device policy denies /dev/kvm (containers: pass --device /dev/kvm)");
    case EBUSY:
      return e.hint(
          "another hypervisor (VirtualBox, VMware) holds the CPU's virtualization "
          "extensions: stop it");
    case EINVAL:
      return e.hint("the kernel does not support this VM type; x86 uses type 0");
    case ENOSPC:
    case ENOMEM:
      return e.hint("the host is out of memory or of VM slots");
    default:
      if (f.seccomp_mode == 2) {
        return e.hint(
            "a seccomp filter may be refusing KVM ioctls (Seccomp: 2 in /proc/self/status)");
      }
      return e.hint("see dmesg for kvm errors");
  }
}

KvmSystem KvmSystem::open(const HostPaths& paths) {
  const auto node = paths.dev / "kvm";
  UniqueFd fd(::open(node.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    throw diagnose_kvm_failure(gather_kvm_facts(paths, err), "open /dev/kvm")
        .with("path", node.string());
  }
  const int version = try_ioctl(fd.get(), uapi::kGetApiVersion);
  if (version != uapi::kExpectedApiVersion) {
    throw Error("open /dev/kvm", "KVM API version " + std::to_string(version) + ", expected " +
                                     std::to_string(uapi::kExpectedApiVersion))
        .with("path", node.string());
  }
  const int mmap_size = do_ioctl(fd.get(), uapi::kGetVcpuMmapSize);
  return KvmSystem(std::move(fd), paths, static_cast<std::size_t>(mmap_size));
}

int KvmSystem::check_extension(unsigned long capability) const {
  const int rc = try_ioctl(fd_.get(), uapi::kCheckExtension, capability);
  return rc < 0 ? 0 : rc;
}

#if defined(__x86_64__)
std::vector<kvm_cpuid_entry2> KvmSystem::supported_cpuid() const {
  // KVM has about 60 leaves today; the buffer grows until they fit.
  for (std::uint32_t capacity = 128; capacity <= 4096; capacity *= 2) {
    std::vector<kvm_cpuid_entry2> buffer(1 + capacity);  // [0] holds the 8-byte header
    auto* header = reinterpret_cast<kvm_cpuid2*>(buffer.data());
    header->nent = capacity;
    const int rc = try_ioctl(fd_.get(), uapi::kGetSupportedCpuid, header);
    if (rc == -E2BIG) continue;
    if (rc < 0) throw ioctl_error(rc, uapi::kGetSupportedCpuid.name);
    // The entries start right after the header, 8 bytes into buffer[0].
    std::vector<kvm_cpuid_entry2> entries(header->nent);
    std::memcpy(entries.data(),
                reinterpret_cast<const std::uint8_t*>(header) + uapi::kCpuidEntriesOffset,
                entries.size() * sizeof(kvm_cpuid_entry2));
    return entries;
  }
  throw Error("KVM_GET_SUPPORTED_CPUID", "KVM reports more than 4096 CPUID leaves");
}
#endif

Vm KvmSystem::create_vm() const {
  const int rc = try_ioctl(fd_.get(), uapi::kCreateVm, 0ul);
  if (rc < 0) throw diagnose_kvm_failure(gather_kvm_facts(paths_, -rc), "KVM_CREATE_VM");
  return Vm(UniqueFd(rc), *this);
}

}  // namespace vfiokit::kvm

// Helpers for tests that run inside the hardware-in-loop rig (tools/rig/run sets VFIOKIT_RIG=1).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/vfiokit/json.h"
#include "vfiokit/base/process.h"

namespace vfiokit::hil {

inline bool in_rig() {
  const char* flag = std::getenv("VFIOKIT_RIG");
  return flag != nullptr && std::string_view(flag) == "1";
}

// A rig test outside the rig skips and says why; inside the rig it always runs.
#define VFIOKIT_REQUIRE_RIG()                                                   \
  do {                                                                          \
    if (!::vfiokit::hil::in_rig())                                              \
      GTEST_SKIP() << "not inside the rig (VFIOKIT_RIG is not 1): run it with " \
                      "`ctest -L hil` or `tools/rig/run -- vfiokit_hil_tests`"; \
  } while (false)

// The BDF of the first PCI function with this vendor:device (e.g. 0x1234, 0x11e8), found by ID
// because slots move when the rig's device list changes.
std::optional<std::string> find_pci_function(unsigned vendor, unsigned device);

inline constexpr unsigned kEduVendor = 0x1234, kEduDevice = 0x11e8;
inline constexpr unsigned kNvmeVendor = 0x1b36, kNvmeDevice = 0x0010;
inline constexpr unsigned kE1000eVendor = 0x8086, kE1000eDevice = 0x10d3;

// Tests that move the rig's nvme and edu: both are found, nvme starts on its driver, and
// whatever a test did, `vfiokit restore --all` brings every journalled device home after it.
class RigDeviceTest : public testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::string nvme_, edu_;
};

// Runs the vfiokit CLI (on PATH in the rig) and returns its status and output.
CommandResult vfiokit(std::vector<std::string> args);

// The --json document `result` printed, after checking it against docs/schema/`schema` (or
// error.json when it is an error): each mismatch, with its JSON pointer, fails the test.
cli::Json conforming_json(const CommandResult& result, std::string_view schema);

// Starts argv in the background with extra "NAME=VALUE" environment entries, output to `log`.
// A test that fails an assertion leaves nothing running: the child dies with its handle.
ChildProcess spawn_background(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env, const std::string& log);
// Polls /proc/PID/stat until the process is stopped (state T); false after `timeout_ms`.
bool wait_until_stopped(pid_t pid, int timeout_ms);
// Polls until `path` exists (or stops existing); false after `timeout_ms`.
bool wait_for_path(const std::string& path, bool exists, int timeout_ms);

std::string driver_of(const std::string& bdf);

// A run that hung for a cause shown to be the emulated rig's (docs/hil.md, Limits) may be tried
// once more. Each retry is recorded with its cause and listed when the test binary ends, so a
// retry can never hide a failure silently.
void record_rig_retry(const std::string& what);
const std::vector<std::string>& rig_retries();

// What KVM is doing for the running QEMU's VM, summed over its vCPUs (debugfs:
// /sys/kernel/debug/kvm/PID-FD/), to tell an inner guest the rig's nested KVM stalled from one
// that is merely slow.
struct QemuKvmStats {
  bool known = false;
  std::uint64_t exits = 0;
  std::uint64_t injections = 0;  // irq_injections
};
QemuKvmStats qemu_kvm_stats();

// The inner Linux guest that tools/rig/run --with-qemu carries (/opt/vfiokit/guest), booted by
// `vfiokit launch BDF --qemu LAUNCH-OPTIONS -- ...` with QEMU's own irqchip and no KVM
// paravirtual features (the rig's nested KVM stalls the in-kernel LAPIC: docs/hil.md, Limits).
struct InnerGuestOptions {
  std::vector<std::string> launch_options;  // vfiokit's, between the BDF and `--`
  std::vector<std::string> qemu_arguments;  // appended to the guest's QEMU arguments
  // A BIOS boot takes about 15 s on an idle machine, 25-50 s beside other work.
  std::chrono::seconds boot_limit{90};
  std::function<void()> while_running;  // called about every 200 ms until launch ends
};
// A boot that has not finished within boot_limit is looked at before it is stopped (SIGTERM,
// which vfiokit passes on to QEMU before it restores the devices): only the rig's known stall
// (KVM exits still rising, interrupt injections frozen) earns another try, up to three in all,
// each recorded; anything else returns with what was seen appended to the output.
CommandResult launch_inner_guest(const std::string& bdf, const InnerGuestOptions& options = {});

// The rig's nvme back on its driver with its disk, edu driverless as it started, no
// driver_override left, nothing in vfiokit's journal.
void expect_devices_home(const std::string& nvme, const std::string& edu);

// The first line of /proc/PID/FILE that starts with `key` for the one QEMU running (e.g.
// "status", "SigCgt:"); empty while there is none.
std::string qemu_proc_line(const std::string& file, const std::string& key);
// The pid of the running qemu-system-x86_64, if one runs.
std::optional<pid_t> qemu_pid();
// Waits until the running QEMU has a handler for `signal` (bit signal-1 of SigCgt in
// /proc/PID/status), up to `limit`: only then does SIGTERM mean "shut down cleanly".
bool wait_until_qemu_catches(int signal, std::chrono::seconds limit);
// Polls until the file at `path` contains `text`; false after `timeout_ms`.
bool wait_for_text(const std::string& path, const std::string& text, int timeout_ms);

// This process's locked (pinned) memory in KiB, VmLck of /proc/self/status: DMA mappings pin.
std::uint64_t locked_memory_kib();

}  // namespace vfiokit::hil

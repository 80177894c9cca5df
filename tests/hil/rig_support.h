// Helpers for tests that run inside the hardware-in-loop rig (tools/rig/run sets VFIOKIT_RIG=1).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <cstdlib>
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

// This process's locked (pinned) memory in KiB, VmLck of /proc/self/status: DMA mappings pin.
std::uint64_t locked_memory_kib();

}  // namespace vfiokit::hil

#include "tests/hil/rig_support.h"

#include "base/fs.h"

#include <fcntl.h>

namespace vfiokit::hil {

std::optional<std::string> find_pci_function(unsigned vendor, unsigned device) {
  const std::filesystem::path devices = "/sys/bus/pci/devices";
  for (const auto& name : list_dir(devices)) {
    const auto v = parse_uint(read_line_if_exists(devices / name / "vendor").value_or(""), 16);
    const auto d = parse_uint(read_line_if_exists(devices / name / "device").value_or(""), 16);
    if (v == vendor && d == device) return name;
  }
  return std::nullopt;
}

}  // namespace vfiokit::hil

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

extern char** environ;

namespace vfiokit::hil {

CommandResult vfiokit(std::vector<std::string> args) {
  args.insert(args.begin(), "vfiokit");
  return run_command(args);
}

pid_t spawn_background(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::string& log) {
  std::vector<std::string> environment(env);
  for (char** e = environ; *e; ++e) environment.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int wait_for_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool wait_until_stopped(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    const std::string stat =
        read_file_if_exists("/proc/" + std::to_string(pid) + "/stat").value_or("");
    const std::size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'T')
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool wait_for_path(const std::string& path, bool exists, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (std::filesystem::exists(path) == exists) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string driver_of(const std::string& bdf) {
  return read_link_name("/sys/bus/pci/devices/" + bdf + "/driver").value_or("(none)");
}

}  // namespace vfiokit::hil

namespace vfiokit::hil {

void RigDeviceTest::SetUp() {
  VFIOKIT_REQUIRE_RIG();
  nvme_ = find_pci_function(kNvmeVendor, kNvmeDevice).value_or("");
  edu_ = find_pci_function(kEduVendor, kEduDevice).value_or("");
  ASSERT_FALSE(nvme_.empty());
  ASSERT_FALSE(edu_.empty());
  ASSERT_EQ(driver_of(nvme_), "nvme") << "a previous test left nvme off its driver";
}

void RigDeviceTest::TearDown() {
  if (!in_rig()) return;
  const auto restore = vfiokit({"restore", "--all"});
  EXPECT_EQ(restore.exit_status, 0) << restore.output;
  if (!nvme_.empty()) {
    EXPECT_EQ(driver_of(nvme_), "nvme");
  }
}

}  // namespace vfiokit::hil

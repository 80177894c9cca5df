// vfiokit device-plugin's options, and the run of the program that serves them
// (device_plugin_command.h).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "tools/vfiokit/binding_report.h"
#include "tools/vfiokit/device_plugin_command.h"
#include "tools/vfiokit/options.h"
#include "vfiokit/base/error.h"

namespace vfiokit::cli {
namespace {

DevicePluginRunner g_runner = nullptr;

constexpr std::string_view kProgramName = "vfiokit-device-plugin";

// Set in the environment of the exec: a program at the device plugin's path that is really vfiokit
// (a copy, a wrong link) would otherwise exec itself for ever.
constexpr const char* kExecMarker = "VFIOKIT_DEVICE_PLUGIN_EXEC";

// Runs vfiokit-device-plugin with this process's command line; returns only if it cannot.
int run_device_plugin_program(const GlobalOptions& options, const DevicePluginArgs&) {
  const std::filesystem::path program = device_plugin_program();
  if (std::getenv(kExecMarker) != nullptr) {
    throw Error("run the device plugin program",
                "it is not the device plugin: it ran vfiokit's own device-plugin command again")
        .with("program", program.string())
        .hint("reinstall vfiokit: " + program.string() + " must be vfiokit-device-plugin");
  }
  std::vector<std::string> words = options.command_line;
  if (words.empty()) words.emplace_back();
  words.front() = program.string();
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  ::setenv(kExecMarker, "1", 1);
  // Kernel contract: a NUL-terminated path and a null-terminated argv of NUL-terminated words,
  // alive until execv returns (it returns only on failure). The environment goes as it is.
  ::execv(program.c_str(), argv.data());
  const int err = errno;
  ::unsetenv(kExecMarker);
  throw Error::from_errno(err, "run the device plugin program").with("program", program.string());
}

// Whether `path` may be run by this process, which is usually root: a regular, executable file
// that, like the folder it is in, belongs to root or to this user and that nobody else may
// write. A vfiokit copied into /tmp must not run whatever another user put beside it.
bool trusted_program(const std::filesystem::path& path) {
  const auto trusted = [](const std::filesystem::path& p, bool file) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return false;
    if (file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)) return false;
    if (st.st_uid != 0 && st.st_uid != ::geteuid()) return false;
    return (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
  };
  return trusted(path, true) && trusted(path.parent_path(), false) &&
         ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

void set_device_plugin_runner(DevicePluginRunner runner) noexcept { g_runner = runner; }

std::filesystem::path device_plugin_program() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path beside = self.parent_path() / kProgramName;
  if (!error && trusted_program(beside)) return beside;
  const std::filesystem::path installed = std::filesystem::path(VFIOKIT_LIBEXEC_DIR) / kProgramName;
  if (trusted_program(installed)) return installed;
  throw Error("run the device plugin program",
              "vfiokit-device-plugin is not installed (or not root's, or writable by others)")
      .with("looked_in", beside.parent_path().string() + ", " + installed.parent_path().string())
      .hint("install the vfiokit package whole (it ships " + installed.string() +
            "), or build the target vfiokit-device-plugin beside vfiokit; neither it nor its "
            "folder may be writable by others");
}

Command add_device_plugin_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<DevicePluginArgs>();
  CLI::App* sub = app.add_subcommand(
      "device-plugin",
      "Serve kubelet's device plugin API: move the configured devices' IOMMU groups to "
      "vfio-pci as bind does, advertise one device per group with its health, and give the "
      "groups back when stopped (SIGTERM)");
  sub->add_option("--config", args->config, "The plugin's JSON config (docs/kubernetes.md)")
      ->required();
  sub->add_option("--plugin-dir", args->plugin_dir,
                  "kubelet's device-plugin directory, where kubelet.sock is")
      ->capture_default_str();
  add_seconds_option(sub, "--health-interval", args->health_interval, 0.01, 3600,
                     "How often health is read again when no PCI uevent came (default 5)");
  sub->add_flag("--keep-bound", args->keep_bound,
                "Leave the groups on vfio-pci when stopped (as \"keepBound\": true)");
  sub->add_flag("--dry-run", args->dry_run,
                "Print what each resource selects and what would be refused; bind nothing");
  auto* json = sub->add_flag("--json", options.json, "Print JSON (with --dry-run)");
  add_wait_option(sub, args->wait);
  sub->callback([args, json] {
    if (json->count() > 0 && !args->dry_run) {
      throw CLI::ValidationError("--json", "device-plugin prints JSON only with --dry-run");
    }
  });
  return {sub, [&options, args] {
            return (g_runner != nullptr ? g_runner : run_device_plugin_program)(options, *args);
          }};
}

}  // namespace vfiokit::cli

// `vfiokit device-plugin`: the node's VFIO device plugin for kubelet. It moves the configured
// devices' IOMMU groups to vfio-pci (GroupBinder: the checks, journal and lock of `vfiokit
// bind`), advertises one device per group for each resource (PluginServer, one socket and one
// registration per resource), keeps their health current (sysfs read again on every PCI uevent
// and every interval), registers again when kubelet restarts, and on stop gives the groups back.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/sysfs_ops.h"
#include "vfiokit/k8s/board.h"
#include "vfiokit/k8s/config.h"
#include "vfiokit/k8s/group_binder.h"
#include "vfiokit/k8s/inventory.h"
#include "vfiokit/k8s/model.h"
#include "vfiokit/k8s/plugin_server.h"

namespace vfiokit::k8s {

// What the plugin tells whoever runs it, as it happens (the CLI prints one line per event).
struct PluginEvent {
  enum class Kind {
    group,       // a group taken (bound, adopted), refused or failed: see detail and fix
    advertised,  // a resource registered with kubelet, with its devices
    health,      // a device's health changed
    kubelet,     // kubelet restarted or could not be reached; registered again
    given_back,  // a device went home (or failed to) when the plugin stopped
  };
  Kind kind = Kind::group;
  std::string resource;  // empty for events that are not about one resource
  std::string subject;   // the device ID or BDF it is about
  std::string detail;
  std::string fix;
  bool ok = true;
};

std::string_view to_string(PluginEvent::Kind kind) noexcept;

struct PluginOptions {
  std::filesystem::path plugin_dir = "/var/lib/kubelet/device-plugins";
  std::chrono::milliseconds health_interval{5000};
  std::chrono::milliseconds lock_wait{30000};
  // How long to wait between attempts to reach kubelet (it may start after the plugin).
  std::chrono::milliseconds registration_retry{2000};
  bool watch_uevents = true;         // off in unit tests: fixture trees have no uevents
  bind::SysfsOps* ops = nullptr;     // nullptr: the live kernel
  std::function<int()> interrupted;  // the signal that asks to stop (SignalGuard::received)
  std::function<void(const PluginEvent&)> on_event;
};

// What each resource of `config` selects on this host, read from sysfs, changing nothing: what
// the plugin would try to take and advertise (--dry-run).
std::vector<ResourceGroups> select_host_groups(const HostPaths& paths, const PluginConfig& config);

class DevicePlugin {
 public:
  // Takes the groups and serves every resource; registration with kubelet happens in run().
  // Throws Error only for what stops the plugin as a whole (its socket directory missing, the
  // state lock); a group that cannot be taken is an event, and is not advertised.
  DevicePlugin(const HostPaths& paths, PluginConfig config, PluginOptions options);
  // stop(), if it was not called: outcomes are logged instead of returned.
  ~DevicePlugin();
  DevicePlugin(const DevicePlugin&) = delete;
  DevicePlugin& operator=(const DevicePlugin&) = delete;

  // Registers with kubelet and watches health and kubelet until `interrupted` says stop.
  void run();
  // One round of the loop's work: health read again and published, kubelet restarts handled.
  // run() calls it on every wake-up; tests call it to step the plugin.
  void check_now();

  // Stops serving (open ListAndWatch streams end, no Allocate is answered any more), then gives
  // the groups back unless they are kept bound: each device's homecoming, also sent as events.
  // Once; later calls return nothing.
  std::vector<bind::DeviceOutcome> stop();

  // How each selected group was taken, in the config's order.
  [[nodiscard]] const std::vector<GroupOutcome>& outcomes() const noexcept { return outcomes_; }
  // The groups being advertised, per resource (refusals included).
  [[nodiscard]] const std::vector<ResourceGroups>& advertised() const noexcept {
    return advertised_;
  }
  [[nodiscard]] const DeviceBoard& board() const noexcept { return board_; }

 private:
  void emit(PluginEvent event) const;
  void publish_health();
  void look_after_kubelet(bool retry_due);
  void report_journal_strays() const;

  struct Registration {
    bool registered = false;
    bool failure_reported = false;  // one event per outage, not one per retry
    bool serve_again = false;       // a restart failed: the socket must be served anew
  };

  HostPaths paths_;
  PluginConfig config_;
  PluginOptions options_;
  std::vector<GroupOutcome> outcomes_;
  std::vector<ResourceGroups> advertised_;
  std::vector<Resource> last_published_;
  std::vector<Registration> registrations_;  // per server
  bool stopped_ = false;
  // Teardown runs bottom-up: the servers stop first (no Allocate may hand out a group that is
  // about to go home), then the board ends every ListAndWatch wait, and only then does the
  // binder give the groups back to their drivers.
  GroupBinder binder_;
  DeviceBoard board_;
  std::vector<std::unique_ptr<PluginServer>> servers_;
};

}  // namespace vfiokit::k8s

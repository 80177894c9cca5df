#include "vfiokit/k8s/device_plugin.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "vfiokit/base/epoll.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/base/uevent.h"
#include "vfiokit/bind/journal.h"

namespace vfiokit::k8s {

namespace {

// How often kubelet's socket is looked at: kubelet restarts are noticed within this.
constexpr std::chrono::milliseconds kKubeletCheckInterval{1000};

std::string device_list(const Resource& resource) {
  std::vector<std::string> ids;
  for (const auto& device : resource.devices) ids.push_back(device.id);
  return std::to_string(ids.size()) + (ids.size() == 1 ? " device" : " devices") +
         (ids.empty() ? "" : " (" + join(ids, ", ") + ")");
}

const GroupDevice* find_device(const std::vector<Resource>& resources, std::string_view resource,
                               std::string_view id) {
  for (const auto& r : resources) {
    if (r.name != resource) continue;
    for (const auto& device : r.devices) {
      if (device.id == id) return &device;
    }
  }
  return nullptr;
}

std::string group_subject(const GroupOutcome& outcome) {
  std::vector<std::string> members;
  for (const auto& bdf : outcome.members) members.push_back(bdf.to_string());
  return "group " + std::to_string(outcome.group) + " (" + join(members, ", ") + ")";
}

}  // namespace

std::string_view to_string(PluginEvent::Kind kind) noexcept {
  switch (kind) {
    case PluginEvent::Kind::group:
      return "group";
    case PluginEvent::Kind::advertised:
      return "advertised";
    case PluginEvent::Kind::health:
      return "health";
    case PluginEvent::Kind::kubelet:
      return "kubelet";
    case PluginEvent::Kind::given_back:
      return "given-back";
  }
  return "unknown";
}

std::vector<ResourceGroups> select_host_groups(const HostPaths& paths, const PluginConfig& config) {
  return select_groups(config, read_functions(paths), !list_dir(paths.sys / "class/iommu").empty());
}

DevicePlugin::DevicePlugin(const HostPaths& paths, PluginConfig config, PluginOptions options)
    : paths_(paths),
      config_(std::move(config)),
      options_(std::move(options)),
      binder_(paths, BinderOptions{.lock_wait = options_.lock_wait,
                                   .interrupted = options_.interrupted,
                                   .ops = options_.ops,
                                   .keep_bound = config_.keep_bound}) {
  // The directory first: without it nothing can be served, and nothing should move.
  if (!std::filesystem::is_directory(options_.plugin_dir)) {
    throw Error("start device plugin", "kubelet's device-plugin directory is not there")
        .with("directory", options_.plugin_dir.string())
        .hint(
            "give kubelet's directory with --plugin-dir (kubelet's default is "
            "/var/lib/kubelet/device-plugins; in a pod, mount it from the host)");
  }
  const std::vector<ResourceGroups> selected = select_host_groups(paths_, config_);
  for (const auto& resource : selected) {
    for (const auto& refusal : resource.refused) {
      emit({.kind = PluginEvent::Kind::group,
            .resource = resource.name,
            .subject = refusal.bdf.to_string(),
            .detail = "refused: " + refusal.problem,
            .fix = refusal.fix,
            .ok = false});
    }
  }
  outcomes_ = binder_.take(selected);
  for (const auto& outcome : outcomes_) {
    emit({.kind = PluginEvent::Kind::group,
          .resource = {},
          .subject = group_subject(outcome),
          .detail = std::string(to_string(outcome.state)) + ": " + outcome.detail,
          .fix = outcome.fix,
          .ok = outcome.held()});
  }
  advertised_ = held_groups(selected, outcomes_);
  report_journal_strays();
  publish_health();
  for (const auto& resource : advertised_) {
    servers_.push_back(
        std::make_unique<PluginServer>(paths_, options_.plugin_dir, resource.name, board_));
  }
  registrations_.resize(servers_.size());
}

DevicePlugin::~DevicePlugin() {
  try {
    stop();
  } catch (const std::exception& e) {
    log::error("device plugin: stopping: {}", e.what());
  }
}

std::vector<bind::DeviceOutcome> DevicePlugin::stop() {
  if (stopped_) return {};
  stopped_ = true;
  // Serving ends before anything goes home: kubelet must not hand out a group on its way back.
  servers_.clear();
  board_.close();
  std::vector<bind::DeviceOutcome> outcomes = binder_.give_back();
  for (const auto& outcome : outcomes) {
    emit({.kind = PluginEvent::Kind::given_back,
          .resource = {},
          .subject = outcome.bdf.to_string(),
          .detail = outcome.detail,
          .fix = outcome.ok ? "" : "vfiokit restore " + outcome.bdf.to_string(),
          .ok = outcome.ok});
  }
  return outcomes;
}

void DevicePlugin::report_journal_strays() const {
  // The binder reconciles only the groups this config selects. An entry for anything else (a
  // config that changed since a plugin was killed, a group now refused, `vfiokit bind` by
  // hand) is left alone: taking it home could pull a device from under whoever bound it. It is
  // said, with the command that takes it home.
  std::vector<pci::Bdf> ours;
  for (const auto& resource : advertised_) {
    for (const auto& group : resource.groups) {
      ours.insert(ours.end(), group.members.begin(), group.members.end());
    }
  }
  try {
    const bind::JournalScan scan = bind::Journal(paths_.run / "vfiokit").scan();
    for (const auto& entry : scan.entries) {
      if (std::find(ours.begin(), ours.end(), entry.bdf) != ours.end()) continue;
      emit({.kind = PluginEvent::Kind::group,
            .resource = {},
            .subject = entry.bdf.to_string(),
            .detail = "in the binding journal (" + std::string(bind::to_string(entry.state)) +
                      ", written by pid " + std::to_string(entry.pid) +
                      ") but not one of this plugin's groups: left as it is",
            .fix = "vfiokit restore " + entry.bdf.to_string() +
                   " takes it home, if nothing else uses it",
            .ok = false});
    }
  } catch (const Error& e) {
    log::warn("device plugin: the binding journal could not be read: {}", e.what());
  }
}

void DevicePlugin::emit(PluginEvent event) const {
  if (event.ok) {
    log::info("device plugin: {} {} {}: {}", to_string(event.kind), event.resource, event.subject,
              event.detail);
  } else {
    log::warn("device plugin: {} {} {}: {}", to_string(event.kind), event.resource, event.subject,
              event.detail);
  }
  if (options_.on_event) options_.on_event(event);
}

void DevicePlugin::publish_health() {
  std::vector<Resource> now = assess(paths_, advertised_);
  const bool first = last_published_.empty();
  for (const auto& resource : now) {
    for (const auto& device : resource.devices) {
      const GroupDevice* before = find_device(last_published_, resource.name, device.id);
      const bool changed =
          before == nullptr ? (first && device.health != Health::healthy)
                            : (before->health != device.health || before->reason != device.reason);
      if (!changed) continue;
      emit({.kind = PluginEvent::Kind::health,
            .resource = resource.name,
            .subject = device.id,
            .detail = std::string(to_string(device.health)) +
                      (device.reason.empty() ? "" : ": " + device.reason),
            .fix = {},
            .ok = device.health == Health::healthy});
    }
  }
  board_.publish(now);
  last_published_ = std::move(now);
}

void DevicePlugin::look_after_kubelet(bool retry_due) {
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    PluginServer& server = *servers_[i];
    Registration& registration = registrations_[i];
    try {
      if (registration.registered && server.kubelet_restarted()) {
        // kubelet deleted our socket with every other one: serve anew, then register.
        registration.registered = false;
        registration.serve_again = true;
        server.restart();
        registration.serve_again = false;
        registration.registered = true;
        emit({.kind = PluginEvent::Kind::kubelet,
              .resource = server.resource_name(),
              .subject = {},
              .detail = "kubelet restarted: serving again and registered",
              .fix = {},
              .ok = true});
      } else if (!registration.registered && retry_due) {
        // After a restart that failed half-way the socket may be gone: serve it again first,
        // or kubelet would be told about a socket nobody answers on.
        if (registration.serve_again) {
          server.restart();
          registration.serve_again = false;
        } else {
          server.register_with_kubelet();
        }
        registration.registered = true;
        registration.failure_reported = false;
        emit({.kind = PluginEvent::Kind::advertised,
              .resource = server.resource_name(),
              .subject = {},
              .detail = "registered with kubelet: " +
                        device_list(board_.current(server.resource_name()).resource),
              .fix = {},
              .ok = true});
      }
    } catch (const Error& e) {
      // kubelet may come later than the plugin (or be restarting): retried, reported once.
      if (!registration.failure_reported) {
        registration.failure_reported = true;
        emit({.kind = PluginEvent::Kind::kubelet,
              .resource = server.resource_name(),
              .subject = {},
              .detail = std::string(e.what()) + " (retrying every " +
                        std::to_string(options_.registration_retry.count()) + " ms)",
              .fix = e.hint(),
              .ok = false});
      }
    }
  }
}

void DevicePlugin::check_now() {
  publish_health();
  look_after_kubelet(true);
}

void DevicePlugin::run() {
  using Clock = std::chrono::steady_clock;
  const auto stopping = [this] { return options_.interrupted && options_.interrupted() != 0; };
  EpollWaiter waiter;
  std::optional<UeventMonitor> uevents;
  if (options_.watch_uevents) {
    try {
      uevents = UeventMonitor::open();
      waiter.add(uevents->fd(), 0);
    } catch (const Error& e) {
      log::warn("device plugin: no PCI uevents ({}); health is read every {} ms", e.what(),
                options_.health_interval.count());
    }
  }
  check_now();
  auto next_health = Clock::now() + options_.health_interval;
  auto next_retry = Clock::now() + options_.registration_retry;
  while (!stopping()) {
    // Short waits, so that a signal (recorded, with SA_RESTART) is seen within a second.
    const bool woken = !waiter.wait(kKubeletCheckInterval).empty();
    if (stopping()) break;
    const auto now = Clock::now();
    if ((woken && uevents->drain_pci_events()) || now >= next_health) {
      publish_health();
      next_health = now + options_.health_interval;
    }
    const bool retry_due = now >= next_retry;
    if (retry_due) next_retry = now + options_.registration_retry;
    look_after_kubelet(retry_due);
  }
}

}  // namespace vfiokit::k8s

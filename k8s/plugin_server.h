// One resource's device plugin as kubelet sees it: a gRPC server for kubelet's Device Plugin API
// (v1beta1, k8s/api/deviceplugin.proto) on a unix socket in kubelet's device-plugins directory,
// answering from the DeviceBoard, and its registration with kubelet. The gRPC types stay inside
// plugin_server.cpp, so including this header costs nothing of gRPC.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/k8s/board.h"
#include "vfiokit/k8s/names.h"

namespace vfiokit::k8s {

// kubelet's socket in its device-plugins directory: where plugins register.
inline constexpr std::string_view kKubeletSocketName = "kubelet.sock";

class PluginServer {
 public:
  static constexpr std::chrono::milliseconds kRegisterTimeout{5000};

  // Serves `resource_name` from `board` on plugin_dir/plugin_socket_name(resource_name) at once,
  // after removing a stale socket of that name (only a socket: any other file there is an
  // Error). `paths` is where Allocate finds /dev/vfio; `board` must outlive the server.
  PluginServer(HostPaths paths, std::filesystem::path plugin_dir, std::string resource_name,
               const DeviceBoard& board);
  // Stops serving (every open ListAndWatch stream ends) and removes the socket.
  ~PluginServer();
  PluginServer(const PluginServer&) = delete;
  PluginServer& operator=(const PluginServer&) = delete;
  PluginServer(PluginServer&&) = delete;
  PluginServer& operator=(PluginServer&&) = delete;

  [[nodiscard]] const std::string& resource_name() const noexcept;
  [[nodiscard]] const std::filesystem::path& socket_path() const noexcept;

  // Tells kubelet (plugin_dir/kubelet.sock) about this socket and resource. Throws Error naming
  // the socket, kubelet's answer and the fix when kubelet is not there or refuses.
  void register_with_kubelet(std::chrono::milliseconds timeout = kRegisterTimeout);

  // Whether kubelet is there and does not know this plugin's current socket: kubelet restarted
  // since the last successful registration (it deletes every socket in its directory, ours too,
  // and makes a new kubelet.sock), or there was none yet. Checked when asked, with no thread of
  // its own: our socket gone or replaced (lstat), and kubelet.sock created again since the
  // registration (an inotify watch on the directory, read without blocking) or a different file
  // than then (lstat). The supervising loop asks every second or so, soon enough for kubelet.
  // False while kubelet.sock is missing: there is nobody to register with until kubelet is back.
  [[nodiscard]] bool kubelet_restarted() const;

  // Serves again on a fresh socket (streams on the old one end) and registers again: what
  // kubelet_restarted() asks for. Throws Error as the constructor and register_with_kubelet do;
  // a later kubelet_restarted() stays true until a registration succeeds.
  void restart(std::chrono::milliseconds timeout = kRegisterTimeout);

  // kubelet_restarted(), restart() and register_with_kubelet() are for one thread (the plugin's
  // supervising loop); the gRPC calls are served on gRPC's threads meanwhile.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vfiokit::k8s

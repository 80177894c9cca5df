#include "vfiokit/k8s/plugin_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "k8s/api/deviceplugin.grpc.pb.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/k8s/allocation.h"

namespace vfiokit::k8s {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kApiVersion = "v1beta1";
// How often a ListAndWatch stream looks up from the board to see whether its server is stopping
// or kubelet hung up: the bound on how long a stop waits for streams.
constexpr std::chrono::milliseconds kStreamPollSlice{100};
// Shutdown lets calls in flight finish for this long, then cancels them.
constexpr std::chrono::milliseconds kShutdownGrace{1000};

const char* const kPluginDirHint =
    "is kubelet running, and is --plugin-dir its device-plugins directory "
    "(/var/lib/kubelet/device-plugins)?";

// Which file a path is now: a deleted and re-created socket is a new inode, or, when the file
// system hands the same inode number out again, one with a new change time.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t ctime_s = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

std::optional<FileIdentity> identity_of(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return FileIdentity{st.st_dev, st.st_ino, st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
}

std::string unix_target(const fs::path& socket) { return "unix:" + socket.string(); }

// The gRPC status text for an Error: what failed and what to do about it.
std::string status_text(const Error& error) {
  std::string text = error.what();
  if (!error.hint().empty()) text += " (" + error.hint() + ")";
  return text;
}

v1beta1::ListAndWatchResponse device_list(const Resource& resource) {
  v1beta1::ListAndWatchResponse response;
  for (const GroupDevice& device : resource.devices) {
    v1beta1::Device* out = response.add_devices();
    out->set_id(device.id);
    out->set_health(std::string(to_string(device.health)));
    // No node at all when the platform does not say: kubelet then treats the device as usable
    // from any NUMA node, which is the truth.
    if (device.numa_node >= 0) out->mutable_topology()->add_nodes()->set_id(device.numa_node);
  }
  return response;
}

std::vector<std::string> strings_of(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

class DevicePluginService final : public v1beta1::DevicePlugin::Service {
 public:
  DevicePluginService(const HostPaths& paths, const std::string& resource_name,
                      const DeviceBoard& board, const std::atomic<bool>& stopping)
      : paths_(paths), resource_name_(resource_name), board_(board), stopping_(stopping) {}

  grpc::Status GetDevicePluginOptions(grpc::ServerContext* /*context*/,
                                      const v1beta1::Empty* /*request*/,
                                      v1beta1::DevicePluginOptions* response) override {
    response->set_pre_start_required(false);
    response->set_get_preferred_allocation_available(true);
    return grpc::Status::OK;
  }

  grpc::Status ListAndWatch(grpc::ServerContext* context, const v1beta1::Empty* /*request*/,
                            grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override {
    BoardSnapshot snapshot = board_.current(resource_name_);
    for (;;) {
      // A failed write means kubelet hung up: nobody is left to tell.
      if (!writer->Write(device_list(snapshot.resource))) return grpc::Status::OK;
      std::optional<BoardSnapshot> next;
      while (!next) {
        if (stopping_ || context->IsCancelled() || board_.closed()) return grpc::Status::OK;
        next = board_.wait_for_change(resource_name_, snapshot.generation, kStreamPollSlice);
      }
      snapshot = std::move(*next);
    }
  }

  grpc::Status GetPreferredAllocation(grpc::ServerContext* /*context*/,
                                      const v1beta1::PreferredAllocationRequest* request,
                                      v1beta1::PreferredAllocationResponse* response) override {
    return answer([&] {
      const Resource resource = board_.current(resource_name_).resource;
      for (const auto& container : request->container_requests()) {
        if (container.allocation_size() < 0) {
          throw Error("preferred allocation",
                      "a negative allocation size: " + std::to_string(container.allocation_size()))
              .with("resource", resource_name_)
              .kind(ErrorKind::usage);
        }
        const std::vector<std::string> available = strings_of(container.available_deviceids());
        const std::vector<std::string> must_include =
            strings_of(container.must_include_deviceids());
        const std::vector<std::string> chosen =
            preferred_allocation(resource, available, must_include,
                                 static_cast<std::size_t>(container.allocation_size()));
        auto* out = response->add_container_responses();
        for (const std::string& id : chosen) out->add_deviceids(id);
      }
    });
  }

  grpc::Status Allocate(grpc::ServerContext* /*context*/, const v1beta1::AllocateRequest* request,
                        v1beta1::AllocateResponse* response) override {
    return answer([&] {
      const Resource resource = board_.current(resource_name_).resource;
      for (const auto& container : request->container_requests()) {
        const std::vector<std::string> ids = strings_of(container.devices_ids());
        const ContainerAllocation allocation = allocate(paths_, resource, ids);
        auto* out = response->add_container_responses();
        for (const DeviceNode& node : allocation.devices) {
          v1beta1::DeviceSpec* spec = out->add_devices();
          spec->set_container_path(node.container_path);
          spec->set_host_path(node.host_path);
          spec->set_permissions(node.permissions);
        }
        for (const auto& [name, value] : allocation.envs) (*out->mutable_envs())[name] = value;
      }
      log::debug("device-plugin: {}: allocated {} container(s)", resource_name_,
                 request->container_requests_size());
    });
  }

  grpc::Status PreStartContainer(grpc::ServerContext* /*context*/,
                                 const v1beta1::PreStartContainerRequest* /*request*/,
                                 v1beta1::PreStartContainerResponse* /*response*/) override {
    return grpc::Status::OK;  // pre_start_required is false: kubelet never needs to ask
  }

 private:
  // kubelet shows the status text in the pod's events, so an Error's message and fix go there;
  // anything else is this plugin's fault.
  template <typename Body>
  grpc::Status answer(Body&& body) {
    try {
      body();
      return grpc::Status::OK;
    } catch (const Error& error) {
      log::warn("device-plugin: {}: {}", resource_name_, status_text(error));
      return {grpc::StatusCode::INVALID_ARGUMENT, status_text(error)};
    } catch (const std::exception& error) {
      log::error("device-plugin: {}: {}", resource_name_, error.what());
      return {grpc::StatusCode::INTERNAL, error.what()};
    }
  }

  const HostPaths& paths_;
  const std::string& resource_name_;
  const DeviceBoard& board_;
  const std::atomic<bool>& stopping_;
};

}  // namespace

struct PluginServer::Impl {
  Impl(HostPaths host_paths, fs::path plugin_dir, std::string resource,
       const DeviceBoard& device_board)
      : board(device_board),
        paths(std::move(host_paths)),
        dir(std::move(plugin_dir)),
        resource_name(std::move(resource)),
        socket(dir / plugin_socket_name(resource_name)),
        kubelet_socket(dir / kKubeletSocketName) {}

  void serve();
  void stop_serving();
  void watch_kubelet_socket();
  // Reads the directory's pending events; true if kubelet.sock was created among them.
  [[nodiscard]] bool kubelet_socket_created() const;

  const DeviceBoard& board;
  HostPaths paths;
  fs::path dir;
  std::string resource_name;
  fs::path socket;
  fs::path kubelet_socket;
  std::optional<FileIdentity> own_socket;          // the socket this server listens on
  std::optional<FileIdentity> registered_kubelet;  // kubelet.sock at the last registration
  // inotify on the directory for kubelet.sock's creation: a restarted kubelet's new socket may
  // get the old one's inode number (ext4 hands freed inodes out again) within one tick of the
  // change time, so the lstat facts alone could miss a quick restart.
  UniqueFd kubelet_watch;
  mutable bool kubelet_recreated = false;  // kubelet.sock created since the last registration
  std::atomic<bool> stopping{false};
  // The service outlives the server that dispatches to it: declared first, destroyed last.
  std::unique_ptr<DevicePluginService> service;
  std::unique_ptr<grpc::Server> server;
};

void PluginServer::Impl::serve() {
  // Kernel contract: sun_path holds the path and its terminating NUL.
  if (socket.native().size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw Error("serve device plugin", "the socket path is too long for a unix socket")
        .with("socket", socket.string())
        .hint("use a shorter --plugin-dir")
        .kind(ErrorKind::usage);
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("serve device plugin", "the device-plugins directory does not exist")
        .with("plugin dir", dir.string())
        .hint(kPluginDirHint)
        .kind(ErrorKind::usage);
  }
  // A socket left by an earlier run (kill -9) would make the bind fail; anything that is not a
  // socket is somebody else's file and stays.
  struct stat st {};
  if (::lstat(socket.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw Error("serve device plugin", "a file that is not a socket is in the way")
          .with("path", socket.string())
          .hint("remove it, or point --plugin-dir at kubelet's device-plugins directory");
    }
    if (::unlink(socket.c_str()) != 0) {
      throw Error::from_last_errno("serve device plugin", "cannot remove a stale socket")
          .with("socket", socket.string());
    }
  }

  stopping = false;
  service = std::make_unique<DevicePluginService>(paths, resource_name, board, stopping);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(unix_target(socket), grpc::InsecureServerCredentials());
  builder.RegisterService(service.get());
  server = builder.BuildAndStart();
  if (!server) {
    throw Error("serve device plugin", "gRPC could not listen on the socket")
        .with("socket", socket.string())
        .hint(kPluginDirHint);
  }
  own_socket = identity_of(socket);
  log::debug("device-plugin: {}: serving on {}", resource_name, socket.string());
}

void PluginServer::Impl::watch_kubelet_socket() {
  kubelet_watch = UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!kubelet_watch) {
    throw Error::from_last_errno("watch kubelet's directory", "inotify_init1 failed")
        .with("plugin dir", dir.string());
  }
  if (::inotify_add_watch(kubelet_watch.get(), dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
    throw Error::from_last_errno("watch kubelet's directory", "inotify_add_watch failed")
        .with("plugin dir", dir.string())
        .hint("raise fs.inotify.max_user_watches if it is exhausted");
  }
}

bool PluginServer::Impl::kubelet_socket_created() const {
  bool created = false;
  alignas(inotify_event) std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t length = ::read(kubelet_watch.get(), buffer.data(), buffer.size());
    if (length <= 0) break;  // EAGAIN: nothing more pending
    // Kernel contract: the buffer holds whole records, each an inotify_event followed by `len`
    // bytes of NUL-padded name.
    std::size_t offset = 0;
    while (offset + sizeof(inotify_event) <= static_cast<std::size_t>(length)) {
      inotify_event event{};
      std::memcpy(&event, buffer.data() + offset, sizeof(event));
      const char* name = buffer.data() + offset + sizeof(event);
      if (std::string_view(name, ::strnlen(name, event.len)) == kKubeletSocketName) created = true;
      offset += sizeof(event) + event.len;
    }
  }
  return created;
}

void PluginServer::Impl::stop_serving() {
  if (!server) return;
  // Streams notice within a poll slice and return; Shutdown waits for them (cancelling what is
  // still running after the grace), so no handler outlives the service.
  stopping = true;
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  server.reset();
  service.reset();
  // Only our own socket: after a kubelet restart the name may already be gone, or be another's.
  if (own_socket && identity_of(socket) == own_socket) ::unlink(socket.c_str());
  own_socket.reset();
}

PluginServer::PluginServer(HostPaths paths, fs::path plugin_dir, std::string resource_name,
                           const DeviceBoard& board)
    : impl_(std::make_unique<Impl>(std::move(paths), std::move(plugin_dir),
                                   std::move(resource_name), board)) {
  impl_->serve();
  impl_->watch_kubelet_socket();
}

PluginServer::~PluginServer() { impl_->stop_serving(); }

const std::string& PluginServer::resource_name() const noexcept { return impl_->resource_name; }

const fs::path& PluginServer::socket_path() const noexcept { return impl_->socket; }

void PluginServer::register_with_kubelet(std::chrono::milliseconds timeout) {
  // kubelet.sock as it is before the call: if kubelet restarts during it, the next
  // kubelet_restarted() sees a newer one and we register again rather than miss it.
  (void)impl_->kubelet_socket_created();
  impl_->kubelet_recreated = false;
  const std::optional<FileIdentity> kubelet = identity_of(impl_->kubelet_socket);
  const auto channel =
      grpc::CreateChannel(unix_target(impl_->kubelet_socket), grpc::InsecureChannelCredentials());
  const auto stub = v1beta1::Registration::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1beta1::RegisterRequest request;
  request.set_version(std::string(kApiVersion));
  // kubelet joins the endpoint to its own directory, so it wants the bare file name.
  request.set_endpoint(impl_->socket.filename().string());
  request.set_resource_name(impl_->resource_name);
  request.mutable_options()->set_get_preferred_allocation_available(true);
  v1beta1::Empty reply;
  const grpc::Status status = stub->Register(&context, request, &reply);
  if (!status.ok()) {
    throw Error("register with kubelet",
                "kubelet did not accept the registration: " + status.error_message())
        .with("socket", impl_->kubelet_socket.string())
        .with("resource", impl_->resource_name)
        .with("grpc status", std::to_string(static_cast<int>(status.error_code())))
        .hint(kPluginDirHint);
  }
  impl_->registered_kubelet = kubelet;
  log::info("device-plugin: {}: registered with kubelet at {}", impl_->resource_name,
            impl_->kubelet_socket.string());
}

bool PluginServer::kubelet_restarted() const {
  if (impl_->kubelet_socket_created()) impl_->kubelet_recreated = true;
  const std::optional<FileIdentity> kubelet = identity_of(impl_->kubelet_socket);
  if (!kubelet) return false;
  return !impl_->registered_kubelet || impl_->kubelet_recreated ||
         kubelet != impl_->registered_kubelet || identity_of(impl_->socket) != impl_->own_socket;
}

void PluginServer::restart(std::chrono::milliseconds timeout) {
  log::info("device-plugin: {}: kubelet restarted; serving and registering again",
            impl_->resource_name);
  impl_->registered_kubelet.reset();
  impl_->stop_serving();
  impl_->serve();
  register_with_kubelet(timeout);
}

}  // namespace vfiokit::k8s

// kubelet's side of the Device Plugin API over real gRPC on unix sockets, for tests of
// k8s/plugin_server: the Registration service on DIR/kubelet.sock, kubelet's restart (every
// socket in DIR deleted, a new kubelet.sock), and a client of a plugin's socket. Free of gtest:
// the unit tests and the rig's tests both use it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "k8s/api/deviceplugin.grpc.pb.h"

namespace vfiokit::test {

inline constexpr std::chrono::milliseconds kRpcTimeout{5000};

class KubeletStandIn {
 public:
  // Serves Registration on dir/kubelet.sock (dir must exist).
  explicit KubeletStandIn(std::filesystem::path dir);
  ~KubeletStandIn();
  KubeletStandIn(const KubeletStandIn&) = delete;
  KubeletStandIn& operator=(const KubeletStandIn&) = delete;

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  [[nodiscard]] std::filesystem::path socket_path() const { return dir_ / "kubelet.sock"; }

  // Every RegisterRequest received, in order, across restarts.
  [[nodiscard]] std::vector<v1beta1::RegisterRequest> registrations() const;
  // Whether `count` registrations have arrived within `timeout`.
  [[nodiscard]] bool wait_for_registration(std::size_t count,
                                           std::chrono::milliseconds timeout) const;
  // What Register answers from now on (OK at first): kubelet refusing, for instance a resource
  // name another plugin holds.
  void answer_registrations_with(grpc::Status status);

  // What kubelet does when it restarts: stops serving, deletes every socket in dir (the
  // plugins' too) and serves Registration on a new kubelet.sock.
  void restart();

 private:
  struct State;
  class RegistrationService;

  void serve();
  void stop();

  std::filesystem::path dir_;
  std::shared_ptr<State> state_;
  // The service outlives the server that dispatches to it.
  std::unique_ptr<RegistrationService> service_;
  std::unique_ptr<grpc::Server> server_;
};

// An RPC's status and, when it is OK, its answer.
template <typename Response>
struct RpcResult {
  grpc::Status status;
  Response response;
};

// A ListAndWatch stream being read on its own thread, so a test pulls device lists with a
// timeout instead of blocking on the stream.
class DeviceListStream {
 public:
  explicit DeviceListStream(v1beta1::DevicePlugin::Stub& stub);
  ~DeviceListStream();  // cancels the call and joins the reader
  DeviceListStream(const DeviceListStream&) = delete;
  DeviceListStream& operator=(const DeviceListStream&) = delete;

  // The next device list the plugin sent, or nullopt when none came within `timeout` (or the
  // stream ended).
  [[nodiscard]] std::optional<v1beta1::ListAndWatchResponse> next(
      std::chrono::milliseconds timeout);
  // The stream's final status once the plugin ended it, or nullopt if it is still open after
  // `timeout`.
  [[nodiscard]] std::optional<grpc::Status> wait_for_end(std::chrono::milliseconds timeout);

 private:
  void read_all();

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1beta1::ListAndWatchResponse>> reader_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<v1beta1::ListAndWatchResponse> lists_;
  std::optional<grpc::Status> end_;
  std::thread thread_;  // last: started once everything it uses exists
};

// The device with `id` in a list the plugin sent, or nullptr.
const v1beta1::Device* find_device(const v1beta1::ListAndWatchResponse& list, std::string_view id);

// kubelet as a client of a plugin's socket.
class PluginClient {
 public:
  explicit PluginClient(const std::filesystem::path& socket);

  [[nodiscard]] RpcResult<v1beta1::DevicePluginOptions> options();
  [[nodiscard]] std::unique_ptr<DeviceListStream> list_and_watch();
  // One container's request.
  [[nodiscard]] RpcResult<v1beta1::PreferredAllocationResponse> preferred(
      const std::vector<std::string>& available, const std::vector<std::string>& must_include,
      int size);
  // One list of device IDs per container.
  [[nodiscard]] RpcResult<v1beta1::AllocateResponse> allocate(
      const std::vector<std::vector<std::string>>& containers);
  [[nodiscard]] RpcResult<v1beta1::PreStartContainerResponse> pre_start(
      const std::vector<std::string>& ids);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub_;
};

}  // namespace vfiokit::test

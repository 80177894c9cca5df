#include "tests/unit/kubelet_standin.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace vfiokit::test {
namespace {

namespace fs = std::filesystem;

std::string unix_target(const fs::path& socket) { return "unix:" + socket.string(); }

template <typename Context>
void set_deadline(Context& context) {
  context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
}

}  // namespace

// Shared with the service objects, which are made anew at every (re)start.
struct KubeletStandIn::State {
  mutable std::mutex mutex;
  mutable std::condition_variable registered;
  std::vector<v1beta1::RegisterRequest> registrations;
  grpc::Status answer = grpc::Status::OK;
};

class KubeletStandIn::RegistrationService final : public v1beta1::Registration::Service {
 public:
  explicit RegistrationService(std::shared_ptr<State> state) : state_(std::move(state)) {}

  grpc::Status Register(grpc::ServerContext* /*context*/, const v1beta1::RegisterRequest* request,
                        v1beta1::Empty* /*response*/) override {
    grpc::Status answer;
    {
      const std::scoped_lock lock(state_->mutex);
      state_->registrations.push_back(*request);
      answer = state_->answer;
    }
    state_->registered.notify_all();
    return answer;
  }

 private:
  std::shared_ptr<State> state_;
};

KubeletStandIn::KubeletStandIn(fs::path dir)
    : dir_(std::move(dir)), state_(std::make_shared<State>()) {
  serve();
}

KubeletStandIn::~KubeletStandIn() {
  stop();
  std::error_code ec;
  fs::remove(socket_path(), ec);
}

void KubeletStandIn::serve() {
  service_ = std::make_unique<RegistrationService>(state_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(unix_target(socket_path()), grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_)
    throw std::runtime_error("kubelet stand-in: cannot serve " + socket_path().string());
}

void KubeletStandIn::stop() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + kRpcTimeout);
  server_->Wait();
  server_.reset();
  service_.reset();
}

std::vector<v1beta1::RegisterRequest> KubeletStandIn::registrations() const {
  const std::scoped_lock lock(state_->mutex);
  return state_->registrations;
}

bool KubeletStandIn::wait_for_registration(std::size_t count,
                                           std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->registered.wait_for(lock, timeout,
                                     [&] { return state_->registrations.size() >= count; });
}

void KubeletStandIn::answer_registrations_with(grpc::Status status) {
  const std::scoped_lock lock(state_->mutex);
  state_->answer = std::move(status);
}

void KubeletStandIn::restart() {
  stop();
  for (const auto& entry : fs::directory_iterator(dir_)) {
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(entry.path().c_str());
    }
  }
  serve();
}

DeviceListStream::DeviceListStream(v1beta1::DevicePlugin::Stub& stub) {
  // A stream lives as long as the test wants it (the destructor cancels it); the deadline only
  // keeps a forgotten one from hanging the test binary.
  context_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  reader_ = stub.ListAndWatch(&context_, v1beta1::Empty{});
  thread_ = std::thread([this] { read_all(); });
}

DeviceListStream::~DeviceListStream() {
  context_.TryCancel();
  thread_.join();
}

void DeviceListStream::read_all() {
  v1beta1::ListAndWatchResponse list;
  while (reader_->Read(&list)) {
    {
      const std::scoped_lock lock(mutex_);
      lists_.push_back(list);
    }
    arrived_.notify_all();
  }
  grpc::Status status = reader_->Finish();
  {
    const std::scoped_lock lock(mutex_);
    end_ = std::move(status);
  }
  arrived_.notify_all();
}

std::optional<v1beta1::ListAndWatchResponse> DeviceListStream::next(
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  arrived_.wait_for(lock, timeout, [&] { return !lists_.empty() || end_.has_value(); });
  if (lists_.empty()) return std::nullopt;
  v1beta1::ListAndWatchResponse list = std::move(lists_.front());
  lists_.pop_front();
  return list;
}

std::optional<grpc::Status> DeviceListStream::wait_for_end(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  arrived_.wait_for(lock, timeout, [&] { return end_.has_value(); });
  return end_;
}

PluginClient::PluginClient(const fs::path& socket)
    : channel_(grpc::CreateChannel(unix_target(socket), grpc::InsecureChannelCredentials())),
      stub_(v1beta1::DevicePlugin::NewStub(channel_)) {}

RpcResult<v1beta1::DevicePluginOptions> PluginClient::options() {
  grpc::ClientContext context;
  set_deadline(context);
  RpcResult<v1beta1::DevicePluginOptions> result;
  result.status = stub_->GetDevicePluginOptions(&context, v1beta1::Empty{}, &result.response);
  return result;
}

std::unique_ptr<DeviceListStream> PluginClient::list_and_watch() {
  return std::make_unique<DeviceListStream>(*stub_);
}

RpcResult<v1beta1::PreferredAllocationResponse> PluginClient::preferred(
    const std::vector<std::string>& available, const std::vector<std::string>& must_include,
    int size) {
  v1beta1::PreferredAllocationRequest request;
  auto* container = request.add_container_requests();
  for (const auto& id : available) container->add_available_deviceids(id);
  for (const auto& id : must_include) container->add_must_include_deviceids(id);
  container->set_allocation_size(size);
  grpc::ClientContext context;
  set_deadline(context);
  RpcResult<v1beta1::PreferredAllocationResponse> result;
  result.status = stub_->GetPreferredAllocation(&context, request, &result.response);
  return result;
}

RpcResult<v1beta1::AllocateResponse> PluginClient::allocate(
    const std::vector<std::vector<std::string>>& containers) {
  v1beta1::AllocateRequest request;
  for (const auto& ids : containers) {
    auto* container = request.add_container_requests();
    for (const auto& id : ids) container->add_devices_ids(id);
  }
  grpc::ClientContext context;
  set_deadline(context);
  RpcResult<v1beta1::AllocateResponse> result;
  result.status = stub_->Allocate(&context, request, &result.response);
  return result;
}

RpcResult<v1beta1::PreStartContainerResponse> PluginClient::pre_start(
    const std::vector<std::string>& ids) {
  v1beta1::PreStartContainerRequest request;
  for (const auto& id : ids) request.add_devices_ids(id);
  grpc::ClientContext context;
  set_deadline(context);
  RpcResult<v1beta1::PreStartContainerResponse> result;
  result.status = stub_->PreStartContainer(&context, request, &result.response);
  return result;
}

const v1beta1::Device* find_device(const v1beta1::ListAndWatchResponse& list, std::string_view id) {
  const auto it = std::find_if(list.devices().begin(), list.devices().end(),
                               [&](const v1beta1::Device& d) { return d.id() == id; });
  return it == list.devices().end() ? nullptr : &*it;
}

}  // namespace vfiokit::test

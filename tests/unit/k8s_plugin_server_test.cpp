// k8s/plugin_server against a kubelet stand-in over real gRPC on unix sockets in a temporary
// device-plugins directory: registration, ListAndWatch and its updates, allocation answers, bad
// requests, kubelet's restart and shutdown. The devices are values on the board; /dev is a
// fixture HostPaths, so Allocate's host paths are checked exactly.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "tests/unit/fixtures.h"
#include "tests/unit/kubelet_standin.h"
#include "vfiokit/base/error.h"
#include "vfiokit/k8s/board.h"
#include "vfiokit/k8s/plugin_server.h"

namespace vfiokit::k8s {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::find_device;
using test::KubeletStandIn;
using test::PluginClient;

// Bounded waits: generous enough for a loaded CI machine, and only ever the worst case.
constexpr auto kWait = 5s;
constexpr std::string_view kResource = "vfiokit.io/nvme";

GroupDevice device(std::string id, unsigned group, std::vector<pci::Bdf> members, int numa_node,
                   Health health = Health::healthy) {
  GroupDevice d;
  d.id = std::move(id);
  d.group = group;
  d.members = std::move(members);
  d.selected = {d.members.front()};  // what the resource's selectors matched: the first function
  d.numa_node = numa_node;
  d.health = health;
  if (health == Health::unhealthy) d.reason = d.id + " is bound to nvme, not vfio-pci";
  return d;
}

// Two healthy groups on node 1 (one of two functions), one on node 0, one unhealthy group of a
// platform that does not say its node.
Resource nvme() {
  return Resource{std::string(kResource),
                  {device("0000:01:00.0", 7, {{0, 1, 0, 0}}, 0),
                   device("0000:02:00.0", 8, {{0, 2, 0, 0}, {0, 2, 0, 1}}, 1),
                   device("0000:03:00.0", 9, {{0, 3, 0, 0}}, 1),
                   device("0000:04:00.0", 10, {{0, 4, 0, 0}}, -1, Health::unhealthy)}};
}

std::set<std::string> ids_of(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  return {ids.begin(), ids.end()};
}

class PluginServerTest : public ::testing::Test {
 protected:
  PluginServerTest() { board.publish({nvme()}); }

  [[nodiscard]] fs::path plugin_socket() const {
    return dir.path() / "vfiokit-vfiokit-io-nvme.sock";
  }

  test::TempDir dir;
  test::TempDir host;  // its dev/ is Allocate's /dev
  HostPaths paths = HostPaths::under(host.path());
  DeviceBoard board;
};

TEST(PluginSocketName, IsAPlainFileNamePerResource) {
  EXPECT_EQ(plugin_socket_name("vfiokit.io/nvme"), "vfiokit-vfiokit-io-nvme.sock");
  EXPECT_EQ(plugin_socket_name("example.com/edu-1"), "vfiokit-example-com-edu-1.sock");
}

TEST_F(PluginServerTest, RegistersItsSocketAndResourceWithKubelet) {
  KubeletStandIn kubelet(dir.path());
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  EXPECT_EQ(server.socket_path(), plugin_socket());
  server.register_with_kubelet();

  ASSERT_TRUE(kubelet.wait_for_registration(1, kWait));
  const auto registrations = kubelet.registrations();
  ASSERT_EQ(registrations.size(), 1U);
  const v1beta1::RegisterRequest& request = registrations[0];
  EXPECT_EQ(request.version(), "v1beta1");
  EXPECT_EQ(request.endpoint(), "vfiokit-vfiokit-io-nvme.sock");  // relative to kubelet's dir
  EXPECT_EQ(request.resource_name(), "vfiokit.io/nvme");
  EXPECT_TRUE(request.options().get_preferred_allocation_available());
  EXPECT_FALSE(request.options().pre_start_required());
  EXPECT_FALSE(server.kubelet_restarted());
}

TEST_F(PluginServerTest, RegistrationWithoutKubeletNamesTheSocketAndTheFix) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  try {
    server.register_with_kubelet(1s);
    FAIL() << "registered with no kubelet";
  } catch (const Error& error) {
    EXPECT_EQ(error.context_value("socket"), (dir.path() / "kubelet.sock").string());
    EXPECT_NE(error.hint().find("--plugin-dir"), std::string::npos) << error.hint();
  }
}

TEST_F(PluginServerTest, ARefusedRegistrationCarriesKubeletsReason) {
  KubeletStandIn kubelet(dir.path());
  kubelet.answer_registrations_with(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resource vfiokit.io/nvme is taken"));
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  try {
    server.register_with_kubelet();
    FAIL() << "a refused registration passed";
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("resource vfiokit.io/nvme is taken"), std::string::npos)
        << error.what();
  }
  // Not registered: the supervising loop is told to try again.
  EXPECT_TRUE(server.kubelet_restarted());
}

TEST_F(PluginServerTest, OptionsOfferPreferredAllocationAndNoPreStart) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto options = client.options();
  ASSERT_TRUE(options.status.ok()) << options.status.error_message();
  EXPECT_TRUE(options.response.get_preferred_allocation_available());
  EXPECT_FALSE(options.response.pre_start_required());
  EXPECT_TRUE(client.pre_start({"0000:01:00.0"}).status.ok());
}

TEST_F(PluginServerTest, ListAndWatchSendsEveryDeviceWithHealthAndNumaNode) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto stream = client.list_and_watch();
  const auto list = stream->next(kWait);
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->devices_size(), 4);
  const v1beta1::Device* first = find_device(*list, "0000:01:00.0");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->health(), "Healthy");
  ASSERT_EQ(first->topology().nodes_size(), 1);
  EXPECT_EQ(first->topology().nodes(0).id(), 0);
  const v1beta1::Device* second = find_device(*list, "0000:02:00.0");
  ASSERT_NE(second, nullptr);
  ASSERT_EQ(second->topology().nodes_size(), 1);
  EXPECT_EQ(second->topology().nodes(0).id(), 1);
  const v1beta1::Device* unknown_node = find_device(*list, "0000:04:00.0");
  ASSERT_NE(unknown_node, nullptr);
  EXPECT_EQ(unknown_node->health(), "Unhealthy");
  EXPECT_FALSE(unknown_node->has_topology());  // no node claimed the platform did not give
}

TEST_F(PluginServerTest, AHealthChangeOnTheBoardReachesAnOpenStream) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto stream = client.list_and_watch();
  ASSERT_TRUE(stream->next(kWait).has_value());

  // Republishing the same devices says nothing new: no second list.
  board.publish({nvme()});
  EXPECT_FALSE(stream->next(300ms).has_value());

  Resource failed = nvme();
  failed.devices[0].health = Health::unhealthy;
  failed.devices[0].reason = "0000:01:00.0 disappeared";
  board.publish({failed});
  const auto update = stream->next(kWait);
  ASSERT_TRUE(update.has_value());
  ASSERT_EQ(update->devices_size(), 4);
  EXPECT_EQ(find_device(*update, "0000:01:00.0")->health(), "Unhealthy");
  EXPECT_EQ(find_device(*update, "0000:02:00.0")->health(), "Healthy");
}

TEST_F(PluginServerTest, PreferredAllocationKeepsToOneNumaNode) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.preferred({"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"}, {}, 2);
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message();
  ASSERT_EQ(answer.response.container_responses_size(), 1);
  EXPECT_EQ(ids_of(answer.response.container_responses(0).deviceids()),
            (std::set<std::string>{"0000:02:00.0", "0000:03:00.0"}));
}

TEST_F(PluginServerTest, MustIncludeLargerThanTheSizeIsInvalid) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.preferred({"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"},
                                       {"0000:01:00.0", "0000:02:00.0"}, 1);
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(answer.status.error_message().empty());
}

// kubelet fails the pod's admission on an error here: an available ID the plugin does not know
// is only never preferred (this used to be INVALID_ARGUMENT).
TEST_F(PluginServerTest, PreferredAllocationLeavesAnUnknownAvailableIdAlone) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.preferred({"0000:09:00.0", "0000:01:00.0"}, {}, 1);
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message();
  ASSERT_EQ(answer.response.container_responses_size(), 1);
  EXPECT_EQ(ids_of(answer.response.container_responses(0).deviceids()),
            (std::set<std::string>{"0000:01:00.0"}));
}

TEST_F(PluginServerTest, AllocateAnswersDeviceNodesAndThePciResourceVariable) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.allocate({{"0000:02:00.0"}, {"0000:01:00.0", "0000:03:00.0"}});
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message();
  ASSERT_EQ(answer.response.container_responses_size(), 2);

  const auto& one = answer.response.container_responses(0);
  ASSERT_EQ(one.devices_size(), 2);
  EXPECT_EQ(one.devices(0).container_path(), "/dev/vfio/vfio");
  EXPECT_EQ(one.devices(0).host_path(), (paths.dev / "vfio/vfio").string());
  EXPECT_EQ(one.devices(0).permissions(), "rw");
  EXPECT_EQ(one.devices(1).container_path(), "/dev/vfio/8");
  EXPECT_EQ(one.devices(1).host_path(), (paths.dev / "vfio/8").string());
  EXPECT_EQ(one.devices(1).permissions(), "rw");
  ASSERT_EQ(one.envs_size(), 2);
  EXPECT_EQ(one.envs().at("PCI_RESOURCE_VFIOKIT_IO_NVME"), "0000:02:00.0");
  EXPECT_EQ(one.envs().at("VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME"), "0000:02:00.0,0000:02:00.1");
  EXPECT_EQ(one.mounts_size(), 0);

  const auto& two = answer.response.container_responses(1);
  ASSERT_EQ(two.devices_size(), 3);
  EXPECT_EQ(two.devices(1).container_path(), "/dev/vfio/7");
  EXPECT_EQ(two.devices(2).container_path(), "/dev/vfio/9");
  EXPECT_EQ(two.envs().at("PCI_RESOURCE_VFIOKIT_IO_NVME"), "0000:01:00.0,0000:03:00.0");
  EXPECT_EQ(two.envs().at("VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME"), "0000:01:00.0,0000:03:00.0");
}

TEST_F(PluginServerTest, AllocateRefusesAnIdItDoesNotOwnAndNamesIt) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.allocate({{"0000:01:00.0", "0000:99:00.0"}});
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(answer.status.error_message().find("0000:99:00.0"), std::string::npos)
      << answer.status.error_message();
}

TEST_F(PluginServerTest, AllocateRefusesAnUnhealthyIdAndNamesIt) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto answer = client.allocate({{"0000:04:00.0"}});
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(answer.status.error_message().find("0000:04:00.0"), std::string::npos)
      << answer.status.error_message();
}

TEST_F(PluginServerTest, AllocateFollowsTheBoardAsHealthChanges) {
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  ASSERT_TRUE(client.allocate({{"0000:01:00.0"}}).status.ok());
  Resource failed = nvme();
  failed.devices[0].health = Health::unhealthy;
  board.publish({failed});
  EXPECT_EQ(client.allocate({{"0000:01:00.0"}}).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(PluginServerTest, AfterKubeletRestartsThePluginServesAndRegistersAgain) {
  KubeletStandIn kubelet(dir.path());
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  server.register_with_kubelet();
  ASSERT_TRUE(kubelet.wait_for_registration(1, kWait));
  EXPECT_FALSE(server.kubelet_restarted());

  kubelet.restart();
  EXPECT_FALSE(fs::exists(plugin_socket()));  // kubelet deleted it
  EXPECT_TRUE(server.kubelet_restarted());
  server.restart();
  EXPECT_FALSE(server.kubelet_restarted());

  ASSERT_TRUE(kubelet.wait_for_registration(2, kWait));
  const auto registrations = kubelet.registrations();
  EXPECT_EQ(registrations[1].endpoint(), "vfiokit-vfiokit-io-nvme.sock");
  EXPECT_EQ(registrations[1].resource_name(), "vfiokit.io/nvme");
  // The new socket serves.
  PluginClient client(plugin_socket());
  const auto stream = client.list_and_watch();
  const auto list = stream->next(kWait);
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->devices_size(), 4);
}

TEST_F(PluginServerTest, KubeletGoneIsNotARestartUntilItIsBack) {
  auto kubelet = std::make_unique<KubeletStandIn>(dir.path());
  PluginServer server(paths, dir.path(), std::string(kResource), board);
  server.register_with_kubelet();
  kubelet.reset();  // kubelet.sock removed, our socket still there
  EXPECT_FALSE(server.kubelet_restarted());
  kubelet = std::make_unique<KubeletStandIn>(dir.path());
  EXPECT_TRUE(server.kubelet_restarted());
}

TEST_F(PluginServerTest, StoppingEndsAnOpenStreamAndRemovesTheSocket) {
  auto server = std::make_unique<PluginServer>(paths, dir.path(), std::string(kResource), board);
  PluginClient client(plugin_socket());
  const auto stream = client.list_and_watch();
  ASSERT_TRUE(stream->next(kWait).has_value());
  const auto start = std::chrono::steady_clock::now();
  server.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(stream->wait_for_end(kWait).has_value());
  EXPECT_FALSE(fs::exists(plugin_socket()));
}

TEST_F(PluginServerTest, AStaleSocketIsReplacedAndAnyOtherFileIsLeftAlone) {
  // A socket left by a killed plugin: bound, then abandoned.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = plugin_socket().string();
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    ::close(fd);
  }
  {
    PluginServer server(paths, dir.path(), std::string(kResource), board);
    PluginClient client(plugin_socket());
    EXPECT_TRUE(client.options().status.ok());
  }
  std::ofstream(plugin_socket()) << "not a socket";
  try {
    PluginServer server(paths, dir.path(), std::string(kResource), board);
    FAIL() << "served over a regular file";
  } catch (const Error& error) {
    EXPECT_EQ(error.context_value("path"), plugin_socket().string());
  }
  EXPECT_TRUE(fs::is_regular_file(plugin_socket()));
}

TEST_F(PluginServerTest, AMissingPluginDirectoryNamesTheFix) {
  try {
    PluginServer server(paths, dir.path() / "missing", std::string(kResource), board);
    FAIL() << "served in a missing directory";
  } catch (const Error& error) {
    EXPECT_EQ(error.context_value("plugin dir"), (dir.path() / "missing").string());
    EXPECT_NE(error.hint().find("--plugin-dir"), std::string::npos);
  }
}

}  // namespace
}  // namespace vfiokit::k8s

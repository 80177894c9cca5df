// k8s::DevicePlugin, the orchestrator, in process: the rig's fixture tree behind the fake kernel
// (tests/unit/fake_kernel.h) and a kubelet stand-in over real gRPC on unix sockets in a temporary
// device-plugins directory. The loop is stepped with check_now(). Also the command
// `vfiokit device-plugin` as a program (--dry-run, its usage errors) and the shipped configs.
#include "vfiokit/k8s/device_plugin.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/kubelet_standin.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::k8s {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::find_device;
using test::KubeletStandIn;
using test::PluginClient;
using Write = test::FakeKernel::Write;
using Drivers = std::map<std::string, std::optional<std::string>>;
using Kind = PluginEvent::Kind;

// Bounded waits: generous enough for a loaded CI machine, and only ever the worst case.
constexpr auto kWait = 5s;

// nvme and edu as in the rig, and a resource whose only group holds a platform bridge (the
// ICH9's SATA controller shares group 4 with its ISA bridge): refused, advertised empty.
constexpr std::string_view kConfig = R"({
  "resources": [
    {"name": "vfiokit.io/nvme", "devices": ["1b36:0010"]},
    {"name": "vfiokit.io/edu", "devices": ["1234:11e8"]},
    {"name": "vfiokit.io/sata", "classes": ["0106"]}
  ]
})";

constexpr const char* kNvme = "0000:00:02.0";
constexpr const char* kEdu = "0000:00:01.0";
constexpr const char* kSata = "0000:00:1f.2";

// The rig's devices as it boots: edu has no driver of its own.
const Drivers kRigHome{{kEdu, std::nullopt}, {kNvme, "nvme"}, {"0000:00:03.0", "e1000e"}};
const Drivers kOnVfio{{kEdu, "vfio-pci"}, {kNvme, "vfio-pci"}};

// What binding the rig's nvme and edu writes, in the config's order.
const std::vector<Write> kBindWrites{
    {"bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci"},
    {"bus/pci/drivers/nvme/unbind", "0000:00:02.0"},
    {"bus/pci/drivers_probe", "0000:00:02.0"},
    {"bus/pci/devices/0000:00:01.0/driver_override", "vfio-pci"},
    {"bus/pci/drivers_probe", "0000:00:01.0"},
};

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

fs::path source_dir() { return fs::path(VFIOKIT_FIXTURES).parent_path().parent_path(); }

class DevicePluginTest : public ::testing::Test {
 protected:
  PluginOptions options() {
    PluginOptions o;
    o.plugin_dir = dir.path();
    o.lock_wait = 0ms;
    o.watch_uevents = false;
    o.ops = &kernel;
    o.on_event = [this](const PluginEvent& event) { events.push_back(event); };
    return o;
  }
  std::unique_ptr<DevicePlugin> start(bool keep_bound = false) {
    PluginConfig config = parse_plugin_config(kConfig);
    config.keep_bound = keep_bound;
    return std::make_unique<DevicePlugin>(paths, config, options());
  }

  [[nodiscard]] fs::path socket(std::string_view resource) const {
    return dir.path() / plugin_socket_name(resource);
  }
  [[nodiscard]] std::vector<PluginEvent> events_of(Kind kind) const {
    std::vector<PluginEvent> out;
    std::copy_if(events.begin(), events.end(), std::back_inserter(out),
                 [&](const PluginEvent& e) { return e.kind == kind; });
    return out;
  }
  [[nodiscard]] bind::Journal journal() const { return bind::Journal(paths.run / "vfiokit"); }
  void expect_drivers(const Drivers& expected) const {
    for (const auto& [device, driver] : expected) {
      EXPECT_EQ(pci::read_driver(paths, bdf(device.c_str())), driver) << device;
    }
  }
  // The device lists the plugin sends on a fresh ListAndWatch of `resource`: the first one.
  std::optional<v1beta1::ListAndWatchResponse> first_list(std::string_view resource) {
    PluginClient client(socket(resource));
    const auto stream = client.list_and_watch();
    return stream->next(kWait);
  }

  test::FixtureCopy copy{test::fixture("sysfs") / "rig"};
  HostPaths paths = copy.paths();
  test::FakeKernel kernel{paths};
  test::TempDir dir;  // kubelet's device-plugins directory
  std::vector<PluginEvent> events;
};

TEST_F(DevicePluginTest, StartBindsTheGroupsAndServesOneSocketPerResource) {
  const auto plugin = start();
  EXPECT_EQ(kernel.writes, kBindWrites);
  expect_drivers(kOnVfio);
  EXPECT_EQ(journal().entries().size(), 2u);

  ASSERT_EQ(plugin->outcomes().size(), 2u);
  EXPECT_EQ(plugin->outcomes()[0].state, GroupState::bound) << plugin->outcomes()[0].detail;
  EXPECT_EQ(plugin->outcomes()[0].group, 2u);
  EXPECT_EQ(plugin->outcomes()[1].state, GroupState::bound) << plugin->outcomes()[1].detail;
  EXPECT_EQ(plugin->outcomes()[1].group, 1u);

  // The refused group is an event, not an exception, and is not advertised.
  const auto groups = events_of(Kind::group);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].resource, "vfiokit.io/sata");
  EXPECT_EQ(groups[0].subject, kSata);
  EXPECT_FALSE(groups[0].ok);
  EXPECT_NE(groups[0].detail.find("refused: "), std::string::npos) << groups[0].detail;
  EXPECT_NE(groups[0].detail.find("platform bridge"), std::string::npos) << groups[0].detail;
  EXPECT_FALSE(groups[0].fix.empty());
  EXPECT_EQ(groups[1].subject, "group 2 (0000:00:02.0)");
  EXPECT_TRUE(groups[1].ok);
  EXPECT_EQ(groups[1].detail.rfind("bound: ", 0), 0u) << groups[1].detail;
  EXPECT_EQ(groups[2].subject, "group 1 (0000:00:01.0)");
  EXPECT_TRUE(groups[2].ok);
  EXPECT_TRUE(events_of(Kind::health).empty());  // everything healthy from the start

  ASSERT_EQ(plugin->advertised().size(), 3u);
  EXPECT_EQ(plugin->advertised()[0].name, "vfiokit.io/nvme");
  EXPECT_EQ(plugin->advertised()[0].groups.size(), 1u);
  EXPECT_EQ(plugin->advertised()[1].groups.size(), 1u);
  EXPECT_TRUE(plugin->advertised()[2].groups.empty());
  EXPECT_EQ(plugin->advertised()[2].refused.size(), 1u);

  std::vector<std::string> sockets;
  for (const auto& name : list_dir(dir.path())) sockets.push_back(name);
  std::sort(sockets.begin(), sockets.end());
  EXPECT_EQ(sockets,
            (std::vector<std::string>{"vfiokit-vfiokit-io-edu.sock", "vfiokit-vfiokit-io-nvme.sock",
                                      "vfiokit-vfiokit-io-sata.sock"}));
  const auto sata = first_list("vfiokit.io/sata");
  ASSERT_TRUE(sata.has_value());
  EXPECT_EQ(sata->devices_size(), 0);
}

TEST_F(DevicePluginTest, ANonExistentPluginDirectoryStopsItBeforeAnythingMoves) {
  PluginOptions o = options();
  o.plugin_dir = dir.path() / "missing";
  try {
    DevicePlugin plugin(paths, parse_plugin_config(kConfig), o);
    FAIL() << "started without kubelet's directory";
  } catch (const Error& error) {
    EXPECT_EQ(error.context_value("directory"), o.plugin_dir.string());
    EXPECT_NE(error.hint().find("--plugin-dir"), std::string::npos) << error.hint();
  }
  EXPECT_TRUE(kernel.writes.empty());
  expect_drivers(kRigHome);
}

TEST_F(DevicePluginTest, RegistersEachResourceWithKubeletOnTheFirstCheck) {
  KubeletStandIn kubelet(dir.path());
  const auto plugin = start();
  EXPECT_TRUE(kubelet.registrations().empty());  // the constructor only serves
  plugin->check_now();
  ASSERT_TRUE(kubelet.wait_for_registration(3, kWait));
  const auto registrations = kubelet.registrations();
  ASSERT_EQ(registrations.size(), 3u);
  const std::vector<std::string> names{"nvme", "edu", "sata"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(registrations[i].version(), "v1beta1");
    EXPECT_EQ(registrations[i].endpoint(), "vfiokit-vfiokit-io-" + names[i] + ".sock");
    EXPECT_EQ(registrations[i].resource_name(), "vfiokit.io/" + names[i]);
    EXPECT_TRUE(registrations[i].options().get_preferred_allocation_available());
    EXPECT_FALSE(registrations[i].options().pre_start_required());
  }
  const auto advertised = events_of(Kind::advertised);
  ASSERT_EQ(advertised.size(), 3u);
  EXPECT_EQ(advertised[0].resource, "vfiokit.io/nvme");
  EXPECT_EQ(advertised[0].detail, "registered with kubelet: 1 device (0000:00:02.0)");
  EXPECT_EQ(advertised[2].detail, "registered with kubelet: 0 devices");

  // Registered once: further checks register nothing more.
  plugin->check_now();
  plugin->check_now();
  EXPECT_EQ(kubelet.registrations().size(), 3u);
  EXPECT_EQ(events_of(Kind::advertised).size(), 3u);
}

TEST_F(DevicePluginTest, AMissingKubeletIsReportedOnceAndRegisteredWithWhenItComes) {
  const auto plugin = start();
  plugin->check_now();
  plugin->check_now();
  plugin->check_now();
  const auto failures = events_of(Kind::kubelet);
  ASSERT_EQ(failures.size(), 3u);  // one per resource, not one per retry
  for (const auto& failure : failures) {
    EXPECT_FALSE(failure.ok);
    EXPECT_NE(failure.detail.find("retrying every 2000 ms"), std::string::npos) << failure.detail;
    EXPECT_NE(failure.fix.find("--plugin-dir"), std::string::npos) << failure.fix;
  }
  EXPECT_EQ(failures[0].resource, "vfiokit.io/nvme");
  EXPECT_TRUE(events_of(Kind::advertised).empty());

  KubeletStandIn kubelet(dir.path());
  plugin->check_now();
  ASSERT_TRUE(kubelet.wait_for_registration(3, kWait));
  EXPECT_EQ(events_of(Kind::advertised).size(), 3u);
  EXPECT_EQ(events_of(Kind::kubelet).size(), 3u);
}

TEST_F(DevicePluginTest, ARefusedRegistrationIsReportedWithKubeletsReasonAndTriedAgain) {
  KubeletStandIn kubelet(dir.path());
  kubelet.answer_registrations_with(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resource name is taken"));
  const auto plugin = start();
  plugin->check_now();
  plugin->check_now();
  const auto failures = events_of(Kind::kubelet);
  ASSERT_EQ(failures.size(), 3u);
  for (const auto& failure : failures) {
    EXPECT_FALSE(failure.ok);
    EXPECT_NE(failure.detail.find("resource name is taken"), std::string::npos) << failure.detail;
  }
  EXPECT_TRUE(events_of(Kind::advertised).empty());

  kubelet.answer_registrations_with(grpc::Status::OK);
  plugin->check_now();
  EXPECT_EQ(events_of(Kind::advertised).size(), 3u);
  EXPECT_EQ(events_of(Kind::kubelet).size(), 3u);
  // Six refused (two checks), then three accepted.
  ASSERT_TRUE(kubelet.wait_for_registration(9, kWait));
  EXPECT_EQ(kubelet.registrations().size(), 9u);
}

TEST_F(DevicePluginTest, ListAndWatchShowsTheDevicesAndADriverChangeMakesOneUnhealthy) {
  const auto plugin = start();
  PluginClient nvme_client(socket("vfiokit.io/nvme"));
  PluginClient edu_client(socket("vfiokit.io/edu"));
  const auto nvme = nvme_client.list_and_watch();
  const auto edu = edu_client.list_and_watch();
  const auto nvme_list = nvme->next(kWait);
  ASSERT_TRUE(nvme_list.has_value());
  ASSERT_EQ(nvme_list->devices_size(), 1);
  EXPECT_EQ(nvme_list->devices(0).id(), kNvme);
  EXPECT_EQ(nvme_list->devices(0).health(), "Healthy");
  const auto edu_list = edu->next(kWait);
  ASSERT_TRUE(edu_list.has_value());
  ASSERT_EQ(edu_list->devices_size(), 1);
  EXPECT_EQ(edu_list->devices(0).id(), kEdu);
  EXPECT_EQ(edu_list->devices(0).health(), "Healthy");

  // Someone unbinds edu from vfio-pci (vfiokit restore, driverctl): health is read again on the
  // next check and the change reaches the stream.
  kernel.write(paths.sys / "bus/pci/drivers/vfio-pci/unbind", kEdu, std::nullopt);
  EXPECT_FALSE(edu->next(100ms).has_value());  // not before the check
  plugin->check_now();
  const auto update = edu->next(kWait);
  ASSERT_TRUE(update.has_value());
  ASSERT_EQ(update->devices_size(), 1);
  EXPECT_EQ(update->devices(0).health(), "Unhealthy");
  EXPECT_FALSE(nvme->next(300ms).has_value());  // nvme did not change: nothing sent

  const auto health = events_of(Kind::health);
  ASSERT_EQ(health.size(), 1u);
  EXPECT_EQ(health[0].resource, "vfiokit.io/edu");
  EXPECT_EQ(health[0].subject, kEdu);
  EXPECT_FALSE(health[0].ok);
  EXPECT_EQ(health[0].detail.rfind("Unhealthy: 0000:00:01.0 has no driver, not vfio-pci", 0), 0u)
      << health[0].detail;
  EXPECT_NE(health[0].detail.find("/dev/vfio/1 is missing"), std::string::npos) << health[0].detail;

  // Another driver taking nvme (its function's driver link now names nvme).
  fs::remove(paths.sys / "bus/pci/devices" / kNvme / "driver");
  fs::create_directory_symlink(paths.sys / "bus/pci/drivers/nvme",
                               paths.sys / "bus/pci/devices" / kNvme / "driver");
  plugin->check_now();
  const auto nvme_update = nvme->next(kWait);
  ASSERT_TRUE(nvme_update.has_value());
  EXPECT_EQ(find_device(*nvme_update, kNvme)->health(), "Unhealthy");
  const auto later = events_of(Kind::health);
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(later[1].resource, "vfiokit.io/nvme");
  EXPECT_NE(later[1].detail.find("0000:00:02.0 is on nvme, not vfio-pci"), std::string::npos)
      << later[1].detail;

  // Gone from the bus.
  fs::remove_all(paths.sys / "bus/pci/devices" / kNvme);
  plugin->check_now();
  const auto gone = nvme->next(kWait);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(find_device(*gone, kNvme)->health(), "Unhealthy");
  ASSERT_EQ(events_of(Kind::health).size(), 3u);
  EXPECT_NE(events_of(Kind::health)[2].detail.find("0000:00:02.0 is gone from the bus"),
            std::string::npos)
      << events_of(Kind::health)[2].detail;
}

TEST_F(DevicePluginTest, AllocateAnswersTheGroupsNodesAndThePciResourceVariable) {
  const auto plugin = start();
  PluginClient client(socket("vfiokit.io/nvme"));
  const auto answer = client.allocate({{kNvme}});
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message();
  ASSERT_EQ(answer.response.container_responses_size(), 1);
  const auto& container = answer.response.container_responses(0);
  ASSERT_EQ(container.devices_size(), 2);
  EXPECT_EQ(container.devices(0).container_path(), "/dev/vfio/vfio");
  EXPECT_EQ(container.devices(0).host_path(), (paths.dev / "vfio/vfio").string());
  EXPECT_EQ(container.devices(1).container_path(), "/dev/vfio/2");
  EXPECT_EQ(container.devices(1).host_path(), (paths.dev / "vfio/2").string());
  EXPECT_TRUE(fs::exists(container.devices(1).host_path()));  // the fake kernel's node
  ASSERT_EQ(container.envs_size(), 2);
  EXPECT_EQ(container.envs().at("PCI_RESOURCE_VFIOKIT_IO_NVME"), kNvme);
  EXPECT_EQ(container.envs().at("VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME"), kNvme);

  PluginClient edu_client(socket("vfiokit.io/edu"));
  const auto edu = edu_client.allocate({{kEdu}});
  ASSERT_TRUE(edu.status.ok()) << edu.status.error_message();
  EXPECT_EQ(edu.response.container_responses(0).devices(1).container_path(), "/dev/vfio/1");
  EXPECT_EQ(edu.response.container_responses(0).envs().at("PCI_RESOURCE_VFIOKIT_IO_EDU"), kEdu);

  // An ID of another resource, and one of nobody.
  for (const char* id : {kEdu, "0000:00:09.0"}) {
    const auto refused = client.allocate({{id}});
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id;
    EXPECT_NE(refused.status.error_message().find(id), std::string::npos)
        << refused.status.error_message();
  }
}

TEST_F(DevicePluginTest, AfterKubeletRestartsItServesAndRegistersAgain) {
  KubeletStandIn kubelet(dir.path());
  const auto plugin = start();
  plugin->check_now();
  ASSERT_TRUE(kubelet.wait_for_registration(3, kWait));

  kubelet.restart();  // every socket in the directory deleted, a new kubelet.sock
  EXPECT_FALSE(fs::exists(socket("vfiokit.io/nvme")));
  plugin->check_now();
  ASSERT_TRUE(kubelet.wait_for_registration(6, kWait));
  const auto registrations = kubelet.registrations();
  ASSERT_EQ(registrations.size(), 6u);
  EXPECT_EQ(registrations[3].resource_name(), "vfiokit.io/nvme");
  EXPECT_EQ(registrations[3].endpoint(), "vfiokit-vfiokit-io-nvme.sock");
  const auto restarts = events_of(Kind::kubelet);
  ASSERT_EQ(restarts.size(), 3u);
  for (const auto& restart : restarts) {
    EXPECT_TRUE(restart.ok);
    EXPECT_EQ(restart.detail, "kubelet restarted: serving again and registered");
  }
  EXPECT_EQ(restarts[0].resource, "vfiokit.io/nvme");

  EXPECT_TRUE(fs::exists(socket("vfiokit.io/nvme")));
  const auto list = first_list("vfiokit.io/nvme");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->devices_size(), 1);
  EXPECT_EQ(list->devices(0).health(), "Healthy");

  plugin->check_now();  // once per restart
  EXPECT_EQ(kubelet.registrations().size(), 6u);
}

TEST_F(DevicePluginTest, StopEndsServingThenSendsEveryGroupHome) {
  const auto plugin = start();
  PluginClient client(socket("vfiokit.io/nvme"));
  const auto stream = client.list_and_watch();
  ASSERT_TRUE(stream->next(kWait).has_value());
  kernel.writes.clear();

  const auto outcomes = plugin->stop();
  const auto end = stream->wait_for_end(kWait);
  EXPECT_TRUE(end.has_value());
  for (const auto& name : {"vfiokit.io/nvme", "vfiokit.io/edu", "vfiokit.io/sata"}) {
    EXPECT_FALSE(fs::exists(socket(name))) << name;
  }
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) EXPECT_TRUE(outcome.ok) << outcome.detail;
  expect_drivers(kRigHome);
  EXPECT_TRUE(journal().entries().empty());
  EXPECT_FALSE(kernel.writes.empty());
  const auto given_back = events_of(Kind::given_back);
  ASSERT_EQ(given_back.size(), 2u);
  for (const auto& event : given_back) {
    EXPECT_TRUE(event.ok) << event.detail;
    EXPECT_TRUE(event.fix.empty());
  }
  EXPECT_EQ(given_back[0].subject, kNvme);

  // Once.
  kernel.writes.clear();
  EXPECT_TRUE(plugin->stop().empty());
  EXPECT_TRUE(kernel.writes.empty());
}

TEST_F(DevicePluginTest, TheDestructorStopsAndGivesBackToo) {
  start().reset();
  expect_drivers(kRigHome);
  EXPECT_TRUE(journal().entries().empty());
  EXPECT_EQ(events_of(Kind::given_back).size(), 2u);
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

TEST_F(DevicePluginTest, KeepBoundLeavesTheGroupsOnVfioWithTheirJournal) {
  const auto plugin = start(/*keep_bound=*/true);
  kernel.writes.clear();
  EXPECT_TRUE(plugin->stop().empty());
  EXPECT_TRUE(kernel.writes.empty());
  EXPECT_TRUE(events_of(Kind::given_back).empty());
  expect_drivers(kOnVfio);
  EXPECT_EQ(journal().entries().size(), 2u);
  EXPECT_FALSE(fs::exists(socket("vfiokit.io/nvme")));
}

// What `kill -9` leaves: the groups on vfio-pci and their journal entries (a plugin that kept
// them bound leaves the same). The next plugin adopts them, advertises them and sends them home.
TEST_F(DevicePluginTest, ANextPluginAdoptsWhatAKilledOneLeftAndSendsItHome) {
  start(/*keep_bound=*/true).reset();
  expect_drivers(kOnVfio);
  ASSERT_EQ(journal().entries().size(), 2u);
  kernel.writes.clear();
  events.clear();

  const auto plugin = start();
  EXPECT_TRUE(kernel.writes.empty());
  ASSERT_EQ(plugin->outcomes().size(), 2u);
  for (const auto& outcome : plugin->outcomes()) {
    EXPECT_EQ(outcome.state, GroupState::adopted) << outcome.detail;
  }
  const auto groups = events_of(Kind::group);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[1].detail.rfind("adopted: ", 0), 0u) << groups[1].detail;
  const auto list = first_list("vfiokit.io/nvme");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->devices_size(), 1);
  EXPECT_EQ(list->devices(0).health(), "Healthy");

  const auto outcomes = plugin->stop();
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) EXPECT_TRUE(outcome.ok) << outcome.detail;
  expect_drivers(kRigHome);
  EXPECT_TRUE(journal().entries().empty());
}

TEST_F(DevicePluginTest, ABindCutShortIsTakenHomeFirstThenBoundAgain) {
  // A plugin killed between nvme's unbind and its probe: the entry says `binding`, nvme has no
  // driver and vfio-pci's override.
  journal().record(
      {bdf(kNvme), 2, "nvme", std::nullopt, "vfio-pci", bind::JournalState::binding, 4242});
  kernel.write(paths.sys / "bus/pci/devices" / kNvme / "driver_override", "vfio-pci", std::nullopt);
  kernel.write(paths.sys / "bus/pci/drivers/nvme/unbind", kNvme, std::nullopt);
  kernel.writes.clear();
  ASSERT_EQ(pci::read_driver(paths, bdf(kNvme)), std::nullopt);

  const auto plugin = start();
  std::vector<Write> expected{
      {"bus/pci/devices/0000:00:02.0/driver_override", "\n"},
      {"bus/pci/drivers/nvme/bind", "0000:00:02.0"},
  };
  expected.insert(expected.end(), kBindWrites.begin(), kBindWrites.end());
  EXPECT_EQ(kernel.writes, expected);
  ASSERT_EQ(plugin->outcomes().size(), 2u);
  EXPECT_EQ(plugin->outcomes()[0].state, GroupState::bound) << plugin->outcomes()[0].detail;
  EXPECT_NE(plugin->outcomes()[0].detail.find("home first"), std::string::npos)
      << plugin->outcomes()[0].detail;
  const auto entry = journal().find(bdf(kNvme));
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->state, bind::JournalState::bound);
  expect_drivers(kOnVfio);

  plugin->stop();
  expect_drivers(kRigHome);
  EXPECT_TRUE(journal().entries().empty());
}

TEST(DevicePluginHostGroups, SelectsWhatTheConfigSaysAndChangesNothing) {
  const HostPaths paths = test::fixture_sysfs("rig");
  const auto resources = select_host_groups(paths, parse_plugin_config(kConfig));
  ASSERT_EQ(resources.size(), 3u);
  ASSERT_EQ(resources[0].groups.size(), 1u);
  EXPECT_EQ(resources[0].groups[0].group, 2u);
  EXPECT_EQ(resources[0].groups[0].members, std::vector<pci::Bdf>{bdf(kNvme)});
  ASSERT_EQ(resources[1].groups.size(), 1u);
  EXPECT_EQ(resources[1].groups[0].group, 1u);
  EXPECT_TRUE(resources[2].groups.empty());
  ASSERT_EQ(resources[2].refused.size(), 1u);
  EXPECT_EQ(resources[2].refused[0].bdf, bdf(kSata));
}

TEST(PluginEventKind, Names) {
  EXPECT_EQ(to_string(Kind::group), "group");
  EXPECT_EQ(to_string(Kind::advertised), "advertised");
  EXPECT_EQ(to_string(Kind::health), "health");
  EXPECT_EQ(to_string(Kind::kubelet), "kubelet");
  EXPECT_EQ(to_string(Kind::given_back), "given-back");
}

// The command as a program.

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

std::string rig_root() { return test::fixture("sysfs").append("rig").string(); }
std::string deploy_config() { return (source_dir() / "deploy/config.json").string(); }

TEST(DevicePluginCli, DryRunShowsWhatEachResourceSelectsAndBindsNothing) {
  const auto result = vfiokit_cli(
      {"--host-root", rig_root(), "device-plugin", "--config", deploy_config(), "--dry-run"});
  EXPECT_EQ(result.exit_status, 0) << result.output;
  EXPECT_NE(result.output.find("nothing was bound or served"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("vfiokit.io/nvme: 1 device (one per IOMMU group), "
                               "PCI_RESOURCE_VFIOKIT_IO_NVME, socket vfiokit-vfiokit-io-nvme.sock"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find(
                "  0000:00:02.0  group 2  members 0000:00:02.0  selected 0000:00:02.0  numa -"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("vfiokit.io/gpu: 0 devices"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("vfiokit.io/edu: 1 device"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("  0000:00:01.0  group 1"), std::string::npos) << result.output;
  EXPECT_EQ(pci::read_driver(test::fixture_sysfs("rig"), bdf(kNvme)), "nvme");
}

TEST(DevicePluginCli, DryRunJson) {
  const auto result = vfiokit_cli({"--host-root", rig_root(), "device-plugin", "--config",
                                   deploy_config(), "--dry-run", "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = nlohmann::json::parse(result.output);
  EXPECT_EQ(json["config"], deploy_config());
  EXPECT_EQ(json["plugin_dir"], "/var/lib/kubelet/device-plugins");
  EXPECT_EQ(json["keep_bound"], false);
  ASSERT_EQ(json["resources"].size(), 3u);
  const auto& nvme = json["resources"][0];
  EXPECT_EQ(nvme["name"], "vfiokit.io/nvme");
  EXPECT_EQ(nvme["environment_variable"], "PCI_RESOURCE_VFIOKIT_IO_NVME");
  EXPECT_EQ(nvme["socket"], "vfiokit-vfiokit-io-nvme.sock");
  ASSERT_EQ(nvme["devices"].size(), 1u);
  EXPECT_EQ(nvme["devices"][0]["id"], kNvme);
  EXPECT_EQ(nvme["devices"][0]["iommu_group"], 2);
  EXPECT_EQ(nvme["devices"][0]["members"], nlohmann::json::array({kNvme}));
  EXPECT_TRUE(nvme["devices"][0]["numa_node"].is_null());
  EXPECT_TRUE(nvme["refused"].empty());
  EXPECT_TRUE(json["resources"][1]["devices"].empty());  // gpu: the rig has none
  EXPECT_EQ(json["resources"][2]["devices"][0]["id"], kEdu);
}

TEST(DevicePluginCli, ABadConfigIsAUsageErrorNamingTheKey) {
  test::TempDir dir;
  const fs::path config = dir.path() / "config.json";
  {
    std::ofstream out(config);
    out << R"({"resources": [{"name": "vfiokit.io/nvme", "devics": ["1b36:0010"]}]})";
  }
  const auto result = vfiokit_cli(
      {"--host-root", rig_root(), "device-plugin", "--config", config.string(), "--dry-run"});
  EXPECT_EQ(result.exit_status, 2) << result.output;
  EXPECT_NE(result.output.find("devics"), std::string::npos) << result.output;

  const auto missing = vfiokit_cli({"--host-root", rig_root(), "device-plugin", "--config",
                                    (dir.path() / "none.json").string(), "--dry-run"});
  EXPECT_EQ(missing.exit_status, 2) << missing.output;
  EXPECT_NE(missing.output.find("none.json"), std::string::npos) << missing.output;
}

TEST(DevicePluginCli, JsonWithoutDryRunIsAUsageError) {
  const auto result = vfiokit_cli(
      {"--host-root", rig_root(), "device-plugin", "--config", deploy_config(), "--json"});
  EXPECT_EQ(result.exit_status, 2) << result.output;
  EXPECT_NE(result.output.find("--dry-run"), std::string::npos) << result.output;
}

// The block of a YAML literal scalar (`KEY: |`) with its indentation taken off.
std::string yaml_literal(const std::string& yaml, std::string_view key) {
  std::istringstream in(yaml);
  std::string line;
  const std::string header = std::string(key) + ": |";
  std::optional<std::size_t> key_indent;
  std::optional<std::size_t> indent;
  std::string block;
  while (std::getline(in, line)) {
    const std::size_t first = line.find_first_not_of(' ');
    if (!key_indent) {
      if (first != std::string::npos && line.compare(first, std::string::npos, header) == 0) {
        key_indent = first;
      }
      continue;
    }
    if (first == std::string::npos) {
      block += "\n";
      continue;
    }
    if (first <= *key_indent) break;
    if (!indent) indent = first;
    block += line.substr(std::min(*indent, first)) + "\n";
  }
  return block;
}

TEST(DevicePluginDeploy, TheShippedConfigsParse) {
  const PluginConfig config = parse_plugin_config(read_file(source_dir() / "deploy/config.json"));
  ASSERT_EQ(config.resources.size(), 3u);
  EXPECT_EQ(config.resources[0].name, "vfiokit.io/nvme");
  EXPECT_FALSE(config.keep_bound);

  const std::string embedded =
      yaml_literal(read_file(source_dir() / "deploy/device-plugin.yaml"), "config.json");
  ASSERT_FALSE(embedded.empty());
  const PluginConfig in_yaml = parse_plugin_config(embedded);
  ASSERT_FALSE(in_yaml.resources.empty());
  EXPECT_EQ(in_yaml.resources[0].name, "vfiokit.io/nvme");
}

}  // namespace
}  // namespace vfiokit::k8s

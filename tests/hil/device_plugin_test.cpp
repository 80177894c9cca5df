// `vfiokit device-plugin` on the rig's real kernel, with a kubelet stand-in over real gRPC in
// this process: nvme and edu move to vfio-pci and are registered, advertised Healthy and
// allocated with their real /dev/vfio/N; edu unbound behind the plugin's back turns Unhealthy on
// the PCI uevent; a plugin killed with -9 leaves nvme bound and journalled, the next one adopts
// it, and SIGTERM sends everything home.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tests/hil/rig_support.h"
#include "tests/unit/kubelet_standin.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::hil {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kConfig = R"({
  "resources": [
    {"name": "vfiokit.io/nvme", "devices": ["1b36:0010"]},
    {"name": "vfiokit.io/edu", "devices": ["1234:11e8"]}
  ]
})";

// The rig runs under TCG: binding nvme alone takes seconds there.
constexpr auto kStartLimit = 60s;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class DevicePlugin : public RigDeviceTest {
 protected:
  void SetUp() override {
    RigDeviceTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    nvme_group_ = read_link_name("/sys/bus/pci/devices/" + nvme_ + "/iommu_group").value_or("?");
    edu_group_ = read_link_name("/sys/bus/pci/devices/" + edu_ + "/iommu_group").value_or("?");
    fs::remove_all(work_);
    fs::create_directories(plugin_dir_);
    std::ofstream(config_) << kConfig;
  }
  void TearDown() override {
    // RigDeviceTest's `vfiokit restore --all` runs whatever the test body left: every
    // ChildProcess (a plugin) is gone by now, killed by its handle.
    RigDeviceTest::TearDown();
    fs::remove_all(work_);
  }

  // The plugin as kubelet's DaemonSet runs it, with its output in `log`. The health interval is
  // long on purpose: a health change seen within seconds came by the PCI uevent.
  ChildProcess start_plugin(const std::string& log) {
    return spawn_background({"vfiokit", "device-plugin", "--config", config_.string(),
                             "--plugin-dir", plugin_dir_.string(), "--health-interval", "60"},
                            {}, log);
  }
  [[nodiscard]] fs::path socket(const std::string& name) const {
    return plugin_dir_ / ("vfiokit-vfiokit-io-" + name + ".sock");
  }

  std::string nvme_group_, edu_group_;
  fs::path work_ = "/tmp/vfiokit-device-plugin-test";
  fs::path plugin_dir_ = work_ / "device-plugins";
  fs::path config_ = work_ / "config.json";
};

TEST_F(DevicePlugin, ServesBindsReportsHealthSurvivesAKillAndGivesBack) {
  const std::string e1000e = find_pci_function(kE1000eVendor, kE1000eDevice).value_or("");
  const std::string e1000e_driver = e1000e.empty() ? "" : driver_of(e1000e);
  test::KubeletStandIn kubelet(plugin_dir_);
  const std::string log1 = (work_ / "first.log").string();

  auto start = Clock::now();
  ChildProcess first = start_plugin(log1);
  ASSERT_TRUE(kubelet.wait_for_registration(2, kStartLimit))
      << read_file_if_exists(log1).value_or("");
  std::cout << "[ timing ] first plugin registered both resources after " << seconds_since(start)
            << " s\n";
  {
    const auto registrations = kubelet.registrations();
    ASSERT_EQ(registrations.size(), 2u);
    EXPECT_EQ(registrations[0].resource_name(), "vfiokit.io/nvme");
    EXPECT_EQ(registrations[0].endpoint(), "vfiokit-vfiokit-io-nvme.sock");
    EXPECT_EQ(registrations[1].resource_name(), "vfiokit.io/edu");
  }
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  EXPECT_EQ(driver_of(edu_), "vfio-pci");
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", false, 2000)) << "the disk outlived its driver";

  test::PluginClient nvme_client(socket("nvme"));
  test::PluginClient edu_client(socket("edu"));
  const auto nvme_stream = nvme_client.list_and_watch();
  const auto edu_stream = edu_client.list_and_watch();
  for (auto* stream : {nvme_stream.get(), edu_stream.get()}) {
    const auto list = stream->next(10s);
    ASSERT_TRUE(list.has_value());
    ASSERT_EQ(list->devices_size(), 1);
    EXPECT_EQ(list->devices(0).health(), "Healthy") << list->devices(0).id();
  }

  const auto nvme_answer = nvme_client.allocate({{nvme_}});
  ASSERT_TRUE(nvme_answer.status.ok()) << nvme_answer.status.error_message();
  {
    const auto& container = nvme_answer.response.container_responses(0);
    ASSERT_EQ(container.devices_size(), 2);
    EXPECT_EQ(container.devices(0).host_path(), "/dev/vfio/vfio");
    EXPECT_EQ(container.devices(1).container_path(), "/dev/vfio/" + nvme_group_);
    EXPECT_EQ(container.devices(1).host_path(), "/dev/vfio/" + nvme_group_);
    EXPECT_TRUE(fs::exists(container.devices(1).host_path()));
    EXPECT_EQ(container.envs().at("PCI_RESOURCE_VFIOKIT_IO_NVME"), nvme_);
  }
  const auto edu_answer = edu_client.allocate({{edu_}});
  ASSERT_TRUE(edu_answer.status.ok()) << edu_answer.status.error_message();
  EXPECT_EQ(edu_answer.response.container_responses(0).devices(1).host_path(),
            "/dev/vfio/" + edu_group_);

  // edu taken off vfio-pci behind the plugin's back: Unhealthy on the stream, by the uevent.
  start = Clock::now();
  std::ofstream("/sys/bus/pci/drivers/vfio-pci/unbind") << edu_;
  ASSERT_EQ(driver_of(edu_), "(none)");
  const auto unhealthy = edu_stream->next(5s);
  const double unhealthy_after = seconds_since(start);
  ASSERT_TRUE(unhealthy.has_value()) << "no update within 5 s of edu's unbind\n"
                                     << read_file_if_exists(log1).value_or("");
  ASSERT_EQ(unhealthy->devices_size(), 1);
  EXPECT_EQ(unhealthy->devices(0).health(), "Unhealthy");
  EXPECT_LT(unhealthy_after, 5.0);
  std::cout << "[ timing ] edu Unhealthy on the stream " << unhealthy_after
            << " s after its unbind\n";
  EXPECT_TRUE(wait_for_text(log1, "has no driver, not vfio-pci", 2000));

  // kill -9: nothing is given back; nvme stays on vfio-pci, in the journal.
  first.kill(SIGKILL);
  EXPECT_EQ(first.wait().signal, SIGKILL);
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  EXPECT_TRUE(fs::exists("/run/vfiokit/devices/" + nvme_));

  const std::string log2 = (work_ / "second.log").string();
  start = Clock::now();
  ChildProcess second = start_plugin(log2);
  ASSERT_TRUE(kubelet.wait_for_registration(4, kStartLimit))
      << read_file_if_exists(log2).value_or("");
  std::cout << "[ timing ] second plugin registered again after " << seconds_since(start) << " s\n";
  const std::string adopted_line = "group " + nvme_group_ + " (" + nvme_ + "): adopted";
  EXPECT_TRUE(wait_for_text(log2, adopted_line, 2000)) << read_file_if_exists(log2).value_or("");
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  {
    test::PluginClient client(socket("nvme"));
    const auto stream = client.list_and_watch();
    const auto list = stream->next(10s);
    ASSERT_TRUE(list.has_value());
    ASSERT_EQ(list->devices_size(), 1);
    EXPECT_EQ(list->devices(0).id(), nvme_);
    EXPECT_EQ(list->devices(0).health(), "Healthy");
  }

  start = Clock::now();
  second.kill(SIGTERM);
  const auto status = second.wait_for(60s);
  ASSERT_TRUE(status.has_value()) << "the plugin did not stop within 60 s of SIGTERM";
  std::cout << "[ timing ] second plugin stopped " << seconds_since(start) << " s after SIGTERM\n";
  const std::string output = read_file_if_exists(log2).value_or("");
  EXPECT_EQ(status->value(), 0) << output;
  EXPECT_NE(output.find("stopped: every group is where it should be"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(socket("nvme")));
  expect_devices_home(nvme_, edu_);
  if (!e1000e.empty()) {
    EXPECT_EQ(driver_of(e1000e), e1000e_driver);
  }
}

}  // namespace
}  // namespace vfiokit::hil

// kubelet's allocation questions (k8s/allocation.h): preferred allocations by NUMA node, the
// device nodes and environment a container gets, and every request that is refused.
#include "vfiokit/k8s/allocation.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/k8s/config.h"
#include "vfiokit/k8s/inventory.h"

namespace vfiokit::k8s {
namespace {

using Ids = std::vector<std::string>;

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

// A device whose resource selected its first member, `id`; `more_members` came with the group.
GroupDevice device(const char* id, unsigned group, int numa_node,
                   std::vector<pci::Bdf> more_members = {}) {
  GroupDevice d;
  d.id = id;
  d.group = group;
  d.members = {bdf(id)};
  d.members.insert(d.members.end(), more_members.begin(), more_members.end());
  d.selected = {bdf(id)};
  d.numa_node = numa_node;
  d.health = Health::healthy;
  return d;
}

// Node 0: three devices, node 1: two, unknown node: two.
Resource numa_resource() {
  return {
      "vfiokit.io/nvme",
      {device("0000:01:00.0", 11, 0), device("0000:02:00.0", 12, 0), device("0000:03:00.0", 13, 0),
       device("0000:81:00.0", 21, 1), device("0000:82:00.0", 22, 1), device("0000:c1:00.0", 31, -1),
       device("0000:c2:00.0", 32, -1)}};
}

Ids all_ids(const Resource& resource) {
  Ids ids;
  for (const auto& d : resource.devices) ids.push_back(d.id);
  return ids;
}

struct Preference {
  const char* name;
  Ids available;
  Ids must_include;
  std::size_t size;
  Ids expected;
};

void PrintTo(const Preference& p, std::ostream* out) { *out << p.name; }

class K8sPreferredAllocation : public testing::TestWithParam<Preference> {};

TEST_P(K8sPreferredAllocation, SpansAsFewNodesAsItCan) {
  const Preference& p = GetParam();
  const Resource resource = numa_resource();
  const Ids available = p.available.empty() ? all_ids(resource) : p.available;
  EXPECT_EQ(preferred_allocation(resource, available, p.must_include, p.size), p.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, K8sPreferredAllocation,
    testing::Values(
        Preference{"one from the fullest node, lowest id", {}, {}, 1, {"0000:01:00.0"}},
        Preference{
            "three fit on node 0", {}, {}, 3, {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"}},
        Preference{"four: node 0 then the next fullest, known node first",
                   {},
                   {},
                   4,
                   {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:81:00.0"}},
        Preference{"a required device on node 1 pulls the rest there",
                   {},
                   {"0000:82:00.0"},
                   2,
                   {"0000:81:00.0", "0000:82:00.0"}},
        Preference{"required on node 1, more than node 1 holds: then the fullest node",
                   {},
                   {"0000:82:00.0"},
                   3,
                   {"0000:01:00.0", "0000:81:00.0", "0000:82:00.0"}},
        Preference{"with node 0 busy, node 1 and the unknown node tie: known node first",
                   {"0000:81:00.0", "0000:82:00.0", "0000:c1:00.0", "0000:c2:00.0"},
                   {},
                   2,
                   {"0000:81:00.0", "0000:82:00.0"}},
        Preference{"the unknown node counts as one node of its own",
                   {"0000:01:00.0", "0000:c1:00.0", "0000:c2:00.0"},
                   {},
                   2,
                   {"0000:c1:00.0", "0000:c2:00.0"}},
        Preference{"required devices only", {}, {"0000:c2:00.0"}, 1, {"0000:c2:00.0"}},
        Preference{"everything",
                   {"0000:81:00.0", "0000:01:00.0"},
                   {},
                   2,
                   {"0000:01:00.0", "0000:81:00.0"}},
        Preference{"nothing", {}, {}, 0, {}}));

struct BadRequest {
  const char* name;
  Ids available;
  Ids must_include;
  std::size_t size;
  std::string id;  // the ID the error names; empty: none
  std::string message;
};

void PrintTo(const BadRequest& r, std::ostream* out) { *out << r.name; }

class K8sPreferredAllocationRefusal : public testing::TestWithParam<BadRequest> {};

TEST_P(K8sPreferredAllocationRefusal, NamesTheIdAndTheResource) {
  const BadRequest& r = GetParam();
  try {
    preferred_allocation(numa_resource(), r.available, r.must_include, r.size);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.context_value("resource"), "vfiokit.io/nvme");
    EXPECT_EQ(e.context_value("id"), r.id) << e.what();
    EXPECT_NE(e.message().find(r.message), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, K8sPreferredAllocationRefusal,
                         testing::Values(BadRequest{"more required than asked",
                                                    {"0000:01:00.0", "0000:02:00.0"},
                                                    {"0000:01:00.0", "0000:02:00.0"},
                                                    1,
                                                    "",
                                                    "cannot choose 1 of 2"},
                                         BadRequest{"more asked than available",
                                                    {"0000:01:00.0"},
                                                    {},
                                                    2,
                                                    "",
                                                    "cannot choose 2 of 1"},
                                         BadRequest{"more asked than available, counting a "
                                                    "repeated one once",
                                                    {"0000:01:00.0", "0000:01:00.0"},
                                                    {},
                                                    2,
                                                    "",
                                                    "cannot choose 2 of 1"}));

// kubelet fails the pod's admission when GetPreferredAllocation fails, and the answer is only a
// preference: what the plugin does not know is left alone, never refused.
TEST(K8sPreferredAllocation, AnAvailableIdOfNoDeviceIsNeverPreferredNorRefused) {
  const Ids available{"0000:09:00.0", "0000:81:00.0", "0000:01:00.0", "0000:02:00.0"};
  EXPECT_EQ(preferred_allocation(numa_resource(), available, {}, 2),
            (Ids{"0000:01:00.0", "0000:02:00.0"}));
  // Asked for more than the resource's own available ones: those, and kubelet fills the rest.
  const Ids mostly_unknown{"0000:09:00.0", "0000:0a:00.0", "0000:01:00.0"};
  EXPECT_EQ(preferred_allocation(numa_resource(), mostly_unknown, {}, 2), (Ids{"0000:01:00.0"}));
}

TEST(K8sPreferredAllocation, RequiredIdsAreKeptAsGivenEvenUnknownOrUnavailable) {
  const Ids available{"0000:01:00.0", "0000:81:00.0", "0000:82:00.0"};
  EXPECT_EQ(preferred_allocation(numa_resource(), available, Ids{"0000:09:00.0"}, 2),
            (Ids{"0000:09:00.0", "0000:81:00.0"}));
  // Required but not among the available: still in the answer, and its node (1) still counts.
  const Ids without_82{"0000:01:00.0", "0000:02:00.0", "0000:81:00.0"};
  EXPECT_EQ(preferred_allocation(numa_resource(), without_82, Ids{"0000:82:00.0"}, 2),
            (Ids{"0000:81:00.0", "0000:82:00.0"}));
  EXPECT_EQ(
      preferred_allocation(numa_resource(), available, Ids{"0000:82:00.0", "0000:82:00.0"}, 2),
      (Ids{"0000:81:00.0", "0000:82:00.0"}));
}

TEST(K8sPciResourceVariable, IsKubeVirtsName) {
  EXPECT_EQ(pci_resource_variable("vfiokit.io/nvme"), "PCI_RESOURCE_VFIOKIT_IO_NVME");
  // KubeVirt's util.ResourceNameToEnvVar: upper case, '/' and '.' to '_'; '-' and '_' stay.
  EXPECT_EQ(pci_resource_variable("example.com/Edu_1-x.v2"), "PCI_RESOURCE_EXAMPLE_COM_EDU_1-X_V2");
  EXPECT_EQ(pci_resource_variable("my-domain.io/gpu"), "PCI_RESOURCE_MY-DOMAIN_IO_GPU");
}

TEST(K8sGroupMembersVariable, HasThePciResourceVariablesSuffix) {
  EXPECT_EQ(group_members_variable("vfiokit.io/nvme"), "VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME");
  EXPECT_EQ(group_members_variable("my-domain.io/a_b-c"),
            "VFIOKIT_GROUP_MEMBERS_MY-DOMAIN_IO_A_B-C");
}

TEST(K8sAllocate, GivesTheContainerThenodesAndTheAddressesInRequestOrder) {
  HostPaths paths;
  paths.dev = "/fixture/dev";
  const Resource resource{
      "vfiokit.io/gpu",
      {device("0000:01:00.0", 1, 0, {bdf("0000:01:00.1")}), device("0000:02:00.0", 7, 0)}};
  const Ids ids{"0000:02:00.0", "0000:01:00.0"};
  const ContainerAllocation allocation = allocate(paths, resource, ids);
  EXPECT_EQ(allocation.devices, (std::vector<DeviceNode>{
                                    {"/dev/vfio/vfio", "/fixture/dev/vfio/vfio", "rw"},
                                    {"/dev/vfio/7", "/fixture/dev/vfio/7", "rw"},
                                    {"/dev/vfio/1", "/fixture/dev/vfio/1", "rw"},
                                }));
  EXPECT_EQ(
      allocation.envs,
      (std::map<std::string, std::string>{
          {"PCI_RESOURCE_VFIOKIT_IO_GPU", "0000:02:00.0,0000:01:00.0"},
          {"VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_GPU", "0000:02:00.0,0000:01:00.0,0000:01:00.1"}}));
}

// The fixture's GPU shares IOMMU group 1 with its HDMI audio function (and the root port):
// KubeVirt takes one PCI_RESOURCE address per hostDevice, so the GPU's alone is there, while
// the pod gets the group's node and both functions in VFIOKIT_GROUP_MEMBERS.
TEST(K8sAllocate, AGpuSelectedByClassGivesItsOwnAddressAndTheWholeGroupsMembers) {
  const HostPaths paths = test::fixture_sysfs("gpu-audio-group");
  auto functions = read_functions(paths);
  const auto selection = select_groups(
      parse_plugin_config(R"({"resources": [{"name": "vfiokit.io/gpu", "classes": ["0300"]}]})"),
      functions);
  ASSERT_EQ(selection.at(0).groups.size(), 1u);
  const SelectedGroup& group = selection[0].groups[0];
  EXPECT_EQ(group.members, (std::vector<pci::Bdf>{bdf("0000:01:00.0"), bdf("0000:01:00.1")}));
  EXPECT_EQ(group.selected, (std::vector<pci::Bdf>{bdf("0000:01:00.0")}));

  // The group as the binder leaves it: its endpoints on vfio-pci, the root port on pcieport.
  std::vector<pci::PciDevice> present;
  for (auto& function : functions) {
    if (function.iommu_group != group.group) continue;
    if (!function.is_bridge()) function.driver = "vfio-pci";
    present.push_back(function);
  }
  const Resource resource{"vfiokit.io/gpu", {assess_group(group, present, true)}};
  ASSERT_EQ(resource.devices[0].health, Health::healthy) << resource.devices[0].reason;
  EXPECT_EQ(resource.devices[0].selected, group.selected);

  const Ids ids{"0000:01:00.0"};
  const ContainerAllocation allocation = allocate(paths, resource, ids);
  EXPECT_EQ(allocation.envs,
            (std::map<std::string, std::string>{
                {"PCI_RESOURCE_VFIOKIT_IO_GPU", "0000:01:00.0"},
                {"VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_GPU", "0000:01:00.0,0000:01:00.1"}}));
  ASSERT_EQ(allocation.devices.size(), 2u);
  EXPECT_EQ(allocation.devices[1].container_path, "/dev/vfio/1");
  EXPECT_EQ(allocation.devices[1].host_path, (paths.dev / "vfio/1").string());
}

TEST(K8sAllocate, OnTheLiveHostTheHostPathsAreTheContainerPaths) {
  const Resource resource{"vfiokit.io/nvme", {device("0000:00:02.0", 2, -1)}};
  const Ids ids{"0000:00:02.0"};
  const ContainerAllocation allocation = allocate(HostPaths{}, resource, ids);
  ASSERT_EQ(allocation.devices.size(), 2u);
  for (const auto& node : allocation.devices) {
    EXPECT_EQ(node.host_path, node.container_path);
    EXPECT_EQ(node.permissions, "rw");
  }
  EXPECT_EQ(allocation.envs.at("PCI_RESOURCE_VFIOKIT_IO_NVME"), "0000:00:02.0");
  EXPECT_EQ(allocation.envs.at("VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME"), "0000:00:02.0");
}

struct BadAllocation {
  const char* name;
  Ids ids;
  std::string id;
  std::string message;
};

void PrintTo(const BadAllocation& r, std::ostream* out) { *out << r.name; }

class K8sAllocateRefusal : public testing::TestWithParam<BadAllocation> {};

TEST_P(K8sAllocateRefusal, NamesTheIdAndTheResource) {
  const BadAllocation& r = GetParam();
  Resource resource = numa_resource();
  resource.devices[1].health = Health::unhealthy;
  resource.devices[1].reason = "0000:02:00.0 is gone from the bus";
  try {
    allocate(HostPaths{}, resource, r.ids);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.operation(), "allocate devices");
    EXPECT_EQ(e.context_value("resource"), "vfiokit.io/nvme");
    EXPECT_EQ(e.context_value("id"), r.id) << e.what();
    EXPECT_NE(e.message().find(r.message), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, K8sAllocateRefusal,
    testing::Values(BadAllocation{"not the resource's",
                                  {"0000:01:00.0", "0000:00:02.0"},
                                  "0000:00:02.0",
                                  "0000:00:02.0 is not a device of vfiokit.io/nvme"},
                    BadAllocation{"unhealthy",
                                  {"0000:02:00.0"},
                                  "0000:02:00.0",
                                  "0000:02:00.0 is unhealthy: 0000:02:00.0 is gone from the bus"},
                    BadAllocation{"repeated",
                                  {"0000:01:00.0", "0000:03:00.0", "0000:01:00.0"},
                                  "0000:01:00.0",
                                  "named twice"},
                    BadAllocation{"empty", {}, "", "no device IDs"}));

}  // namespace
}  // namespace vfiokit::k8s

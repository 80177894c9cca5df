// Device selection: lspci's -s/-d through libpci, class names, and interface names.
#include "vfiokit/pci/select.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"

namespace vfiokit::pci {
namespace {

DeviceFilter filter_of(std::string_view slot, std::string_view id) {
  DeviceFilter filter;
  if (!slot.empty()) parse_slot_filter(slot, filter);
  if (!id.empty()) parse_id_filter(id, filter);
  return filter;
}

constexpr Bdf kGpu{0x0001, 0x65, 0x00, 0};
constexpr std::uint32_t kVgaClass = 0x030000;

bool gpu_matches(const DeviceFilter& filter) {
  return matches(filter, kGpu, 0x10de, 0x2204, kVgaClass);
}

TEST(Select, SlotFiltersMatchEachFieldLikeLspci) {
  EXPECT_TRUE(filter_of("", "").selects_everything());
  EXPECT_TRUE(gpu_matches(filter_of("65:00", "")));
  EXPECT_TRUE(gpu_matches(filter_of("1:65:00.0", "")));
  EXPECT_FALSE(gpu_matches(filter_of("0:65:00.0", "")));  // another domain
  EXPECT_FALSE(gpu_matches(filter_of("65:00.1", "")));
  EXPECT_TRUE(gpu_matches(filter_of("*:*.0", "")));
  EXPECT_FALSE(gpu_matches(filter_of("01:", "")));
}

TEST(Select, IdFiltersMatchVendorDeviceClassAndProgIf) {
  EXPECT_TRUE(gpu_matches(filter_of("", "10de:")));
  EXPECT_TRUE(gpu_matches(filter_of("", "10de:2204:0300")));
  EXPECT_FALSE(gpu_matches(filter_of("", ":2205")));
  EXPECT_TRUE(gpu_matches(filter_of("", "::03xx")));
  EXPECT_FALSE(gpu_matches(filter_of("", "::0302")));
  EXPECT_TRUE(gpu_matches(filter_of("", "::0300:00")));
  EXPECT_FALSE(gpu_matches(filter_of("", "::0300:01")));
}

TEST(Select, ClassNamesAndHexBaseClasses) {
  EXPECT_EQ(parse_base_class("display"), 0x03);
  EXPECT_EQ(parse_base_class("network"), 0x02);
  EXPECT_EQ(parse_base_class("0x0c"), 0x0c);
  EXPECT_EQ(parse_base_class("12"), 0x12);
  for (const auto& c : class_names()) EXPECT_EQ(parse_base_class(c.name), c.base_class);
  EXPECT_THROW(parse_base_class("gpu"), Error);
  EXPECT_THROW(parse_base_class("0x123"), Error);
  EXPECT_THROW(parse_base_class(""), Error);
  DeviceFilter display;
  display.base_classes = {0x02, 0x03};
  EXPECT_TRUE(gpu_matches(display));
  display.base_classes = {0x02};
  EXPECT_FALSE(gpu_matches(display));
}

TEST(Select, MalformedFiltersAreUsageErrorsNamingTheText) {
  for (const auto* text : {"zz", "20", "1:2:3:4", "0:100:00"}) {
    DeviceFilter filter;
    try {
      parse_slot_filter(text, filter);
      ADD_FAILURE() << text << " parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage);
      EXPECT_NE(e.message().find(text), std::string::npos) << e.message();
    }
  }
  DeviceFilter filter;
  EXPECT_THROW(parse_id_filter("10de", filter), Error);
  EXPECT_THROW(parse_id_filter("1:2:3:4:5", filter), Error);
  EXPECT_THROW(parse_id_filter("10000:", filter), Error);
}

TEST(Select, InterfaceNamesResolveToTheirPciFunction) {
  const HostPaths sriov = test::fixture_sysfs("sriov-pf");
  EXPECT_EQ(resolve_device_name(sriov, "eth2").to_string(), "0000:03:00.1");
  EXPECT_EQ(resolve_device_name(sriov, "03:00.0").to_string(), "0000:03:00.0");
  EXPECT_EQ(network_interfaces_of(sriov, *parse_bdf("0000:03:00.0")),
            std::vector<std::string>{"eth1"});
  const HostPaths rig = test::fixture_sysfs("rig");
  EXPECT_THROW(resolve_device_name(rig, "lo"), Error);       // virtual
  EXPECT_THROW(resolve_device_name(rig, "eth9"), Error);     // absent
  EXPECT_THROW(resolve_device_name(rig, "../eth0"), Error);  // not a name
  EXPECT_THROW(resolve_device_name(rig, ""), Error);
}

}  // namespace
}  // namespace vfiokit::pci

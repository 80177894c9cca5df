// `vfiokit rom` on the rig's e1000e, whose option ROM is real: QEMU attaches efi-e1000e.rom (an
// iPXE legacy x86 image and a UEFI x64 driver). Read once through sysfs on its host driver and
// once through VFIO's ROM region on vfio-pci: the same images, checksums valid, the same file.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::hil {
namespace {

class Rom : public testing::Test {
 protected:
  void SetUp() override {
    VFIOKIT_REQUIRE_RIG();
    e1000e_ = find_pci_function(kE1000eVendor, kE1000eDevice).value_or("");
    ASSERT_FALSE(e1000e_.empty()) << "no e1000e in the rig";
    ASSERT_EQ(driver_of(e1000e_), "e1000e");
  }
  void TearDown() override {
    if (!in_rig()) return;
    EXPECT_EQ(vfiokit({"restore", "--all"}).exit_status, 0);
  }

  // The images as the document lists them, checked against what efi-e1000e.rom holds.
  static void expect_ipxe_images(const cli::Json& doc) {
    EXPECT_EQ(doc["valid"], true) << doc.dump(2);
    EXPECT_TRUE(doc["problems"].empty()) << doc.dump(2);
    const cli::Json& images = doc["images"];
    ASSERT_GE(images.size(), 2u) << doc.dump(2);
    EXPECT_EQ(images[0]["offset"], "0x0");
    EXPECT_EQ(images[0]["code_type_name"], "x86");
    EXPECT_EQ(images[0]["checksum"], "ok");
    bool efi_x64 = false;
    for (std::size_t i = 0; i < images.size(); ++i) {
      EXPECT_EQ(images[i]["vendor_id"], "0x8086");
      EXPECT_EQ(images[i]["device_id"], "0x10d3");
      EXPECT_EQ(images[i]["last"], i + 1 == images.size());
      if (images[i]["code_type_name"] == "efi") {
        EXPECT_EQ(images[i]["checksum"], "not-required");
        EXPECT_EQ(images[i]["efi"]["signature"], "0xef1");
        efi_x64 = efi_x64 || images[i]["efi"]["machine"] == "x64";
      }
    }
    EXPECT_TRUE(efi_x64) << "no UEFI x64 image: " << doc.dump(2);
  }

  std::string e1000e_;
};

TEST_F(Rom, E1000eRomThroughSysfsAndThroughVfioIsTheSameValidRom) {
  const std::string dir = "/tmp/vfiokit-rom-test";
  std::filesystem::create_directories(dir);
  const std::string via_sysfs = dir + "/e1000e-sysfs.rom";
  const std::string via_vfio = dir + "/e1000e-vfio.rom";
  std::filesystem::remove(via_sysfs);
  std::filesystem::remove(via_vfio);

  // On its host driver: sysfs rom, enabled for the read and disabled again.
  const auto host = vfiokit({"rom", e1000e_, "--output", via_sysfs, "--json"});
  ASSERT_EQ(host.exit_status, 0) << host.output;
  const cli::Json host_doc = conforming_json(host, "rom.json");
  EXPECT_EQ(host_doc["source"], "sysfs");
  expect_ipxe_images(host_doc);
  EXPECT_EQ(host_doc["output"], via_sysfs);
  try {
    read_bytes("/sys/bus/pci/devices/" + e1000e_ + "/rom", 4096);
    ADD_FAILURE() << "the rom attribute was left enabled";
  } catch (const Error& e) {
    EXPECT_EQ(e.errno_value(), EINVAL) << e.what();
  }

  // On vfio-pci: VFIO's ROM region, as long as the ROM BAR, padded with 0xff past the images.
  ASSERT_EQ(vfiokit({"bind", e1000e_}).exit_status, 0);
  const auto vfio = vfiokit({"rom", e1000e_, "--output", via_vfio, "--json"});
  ASSERT_EQ(vfio.exit_status, 0) << vfio.output;
  const cli::Json vfio_doc = conforming_json(vfio, "rom.json");
  EXPECT_EQ(vfio_doc["source"], "vfio");
  expect_ipxe_images(vfio_doc);
  EXPECT_EQ(vfio_doc["images"], host_doc["images"]);
  EXPECT_EQ(vfio_doc["size"], host_doc["size"]);
  EXPECT_GE(vfio_doc["read_size"].get<std::size_t>(), vfio_doc["size"].get<std::size_t>());

  const auto sysfs_bytes = read_bytes(via_sysfs, 16 << 20);
  EXPECT_EQ(sysfs_bytes.size(), host_doc["size"].get<std::size_t>());
  EXPECT_EQ(read_bytes(via_vfio, 16 << 20), sysfs_bytes);

  // The text report names each image and where the file went.
  const auto text = vfiokit({"rom", e1000e_});
  EXPECT_EQ(text.exit_status, 0) << text.output;
  EXPECT_NE(text.output.find("read through vfio"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("efi x64"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("valid for 8086:10d3"), std::string::npos) << text.output;
}

}  // namespace
}  // namespace vfiokit::hil

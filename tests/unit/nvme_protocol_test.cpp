#include "vfiokit/drivers/nvme_protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "vfiokit/base/error.h"

namespace vfiokit::drivers::nvme {
namespace {

TEST(NvmeProtocol, CapabilitiesOfQemusController) {
  // QEMU 7.2: MQES 0x7ff, CQR, TO 0xf (7.5 s), DSTRD 0, CSS NVM | I/O sets, MPSMIN 0, MPSMAX 4.
  const Capabilities c = parse_capabilities(0x00400060'0f0107ffull | (std::uint64_t{0x41} << 37));
  EXPECT_EQ(c.max_queue_entries, 0x800u);
  EXPECT_EQ(c.timeout_ms, 7500u);
  EXPECT_EQ(c.doorbell_stride, 4u);
  EXPECT_EQ(c.min_page_size, 4096u);
  EXPECT_TRUE(c.nvm_command_set);
  EXPECT_EQ(parse_capabilities(std::uint64_t{2} << 32).doorbell_stride, 16u);
}

TEST(NvmeProtocol, ConfigurationAndQueueAttributes) {
  EXPECT_EQ(enabled_configuration(), 0x00460001u);  // IOCQES 4, IOSQES 6, EN
  EXPECT_EQ(admin_queue_attributes(16), 0x000f000fu);
  EXPECT_EQ(admin_queue_attributes(4096), 0x0fff0fffu);
  EXPECT_THROW(admin_queue_attributes(1), Error);
  EXPECT_THROW(admin_queue_attributes(4097), Error);
}

TEST(NvmeProtocol, Doorbells) {
  EXPECT_EQ(doorbell_offset(0, false, 4), 0x1000u);
  EXPECT_EQ(doorbell_offset(0, true, 4), 0x1004u);
  EXPECT_EQ(doorbell_offset(3, true, 4), 0x101cu);
  EXPECT_EQ(doorbell_offset(1, false, 16), 0x1020u);
}

TEST(NvmeProtocol, IdentifyCommandLayout) {
  const SubmissionEntry sqe = identify_command(0x1234, kCnsController, 0x12345678'9abcd000ull);
  EXPECT_EQ(sqe[0], 0x06);  // opcode
  EXPECT_EQ(sqe[1], 0x00);  // flags: PRPs, no fused op
  EXPECT_EQ(sqe[2], 0x34);  // command id
  EXPECT_EQ(sqe[3], 0x12);
  std::uint64_t prp1 = 0;
  std::memcpy(&prp1, sqe.data() + 24, 8);
  EXPECT_EQ(prp1, 0x12345678'9abcd000ull);
  EXPECT_EQ(sqe[40], 0x01);  // CDW10.CNS
  for (std::size_t i = 44; i < 64; ++i) EXPECT_EQ(sqe[i], 0) << i;
}

TEST(NvmeProtocol, CompletionFields) {
  std::uint8_t cqe[16] = {};
  const std::uint32_t dw0 = 0xdeadbeef, dw2 = (7u << 16) | 3,
                      dw3 = (0x2u << 17) | (1u << 16) | 0x0042;
  std::memcpy(cqe, &dw0, 4);
  std::memcpy(cqe + 8, &dw2, 4);
  std::memcpy(cqe + 12, &dw3, 4);
  const Completion c = parse_completion(cqe);
  EXPECT_EQ(c.result, 0xdeadbeefu);
  EXPECT_EQ(c.sq_head, 3);
  EXPECT_EQ(c.sq_id, 7);
  EXPECT_EQ(c.command_id, 0x42);
  EXPECT_TRUE(c.phase);
  EXPECT_EQ(c.status, 0x2);  // Invalid Field in Command
  EXPECT_THROW(parse_completion(std::span<const std::uint8_t>(cqe, 15)), Error);
}

TEST(NvmeProtocol, IdentifyControllerStrings) {
  std::vector<std::uint8_t> data(4096, 0);
  data[0] = 0x36;
  data[1] = 0x1b;  // VID 1b36
  data[2] = 0xf4;
  data[3] = 0x1a;                                     // SSVID 1af4
  const std::string serial = "vfiokit-nvme-0      ";  // 20 bytes, space padded
  const std::string model = "QEMU NVMe Ctrl";
  std::memcpy(data.data() + 4, serial.data(), serial.size());
  std::memset(data.data() + 24, ' ', 40);
  std::memcpy(data.data() + 24, model.data(), model.size());
  std::memcpy(data.data() + 64, "7.2.22  ", 8);
  const ControllerIdentity id = parse_identify_controller(data);
  EXPECT_EQ(id.vendor_id, 0x1b36);
  EXPECT_EQ(id.subsystem_vendor_id, 0x1af4);
  EXPECT_EQ(id.serial, "vfiokit-nvme-0");
  EXPECT_EQ(id.model, "QEMU NVMe Ctrl");
  EXPECT_EQ(id.firmware, "7.2.22");
  data.resize(4095);
  EXPECT_THROW(parse_identify_controller(data), Error);
}

// Found by fuzz/nvme_protocol.cpp: the controller's bytes went into the strings as they were,
// escape sequences included, and from there to the terminal.
TEST(NvmeProtocol, IdentifyStringsHoldOnlyPrintableAscii) {
  std::vector<std::uint8_t> data(4096, 0);
  const std::string serial = "AB\x1b]0;owned\x07\x80\xff\x7f CD";
  std::memcpy(data.data() + 4, serial.data(), serial.size());
  std::memcpy(data.data() + 24, "model\0tail", 10);  // NUL-terminated, then garbage
  const ControllerIdentity id = parse_identify_controller(data);
  EXPECT_EQ(id.serial, "AB?]0;owned???? CD");
  EXPECT_EQ(id.model, "model?tail");
  EXPECT_EQ(id.firmware, "");
}

}  // namespace
}  // namespace vfiokit::drivers::nvme

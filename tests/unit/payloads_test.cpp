// Choosing a payload to launch: vfiokit's own by name, a user's flat binary by path, and every
// way that can be wrong found before anything is bound (usage errors, exit 2).
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/kvm/gic.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"

namespace vfiokit::payloads {
namespace {

ErrorKind kind_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return ErrorKind::failed;
}

TEST(LaunchablePayload, BuiltInPayloadsByNameAndFilesByPath) {
  const LaunchablePayload edu = load_for_launch("edu-dma");
  EXPECT_EQ(edu.name, "edu-dma");
  EXPECT_EQ(edu.image.size(), find("edu-dma")->image.size());
  test::TempDir dir;
  const auto path = dir.path() / "mine.bin";
  write_file_durable(path, std::string(4096, '\x90'));
  const LaunchablePayload mine = load_for_launch(path.string());
  EXPECT_EQ(mine.name, path.string());
  EXPECT_EQ(mine.image.size(), 4096u);
}

TEST(LaunchablePayload, MistakesAreUsageErrors) {
  EXPECT_EQ(kind_of([] { load_for_launch("irq-probe"); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([] { load_for_launch("no-such-payload"); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([] { load_for_launch("/nonexistent/payload.bin"); }), ErrorKind::usage);
  test::TempDir dir;
  write_file_durable(dir.path() / "empty.bin", "");
  EXPECT_EQ(kind_of([&] { load_for_launch((dir.path() / "empty.bin").string()); }),
            ErrorKind::usage);
}

TEST(LaunchablePayload, AnImageAboveTheLimitIsRefusedNotTruncated) {
  test::TempDir dir;
  const auto at_limit = dir.path() / "at-limit.bin";
  const auto above = dir.path() / "above.bin";
  write_file_durable(at_limit, std::string(kMaxImageSize, '\0'));
  write_file_durable(above, std::string(kMaxImageSize + 1, '\0'));
  EXPECT_EQ(load_for_launch(at_limit.string()).image.size(), kMaxImageSize);
  try {
    load_for_launch(above.string());
    FAIL() << "a 8 MiB + 1 image was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("larger than 8 MiB"), std::string::npos) << e.what();
  }
}

TEST(LaunchablePayload, TheImageMustFitTheGuestRam) {
  EXPECT_EQ(required_memory(0), std::size_t{1} << 20);
  EXPECT_EQ(required_memory(1), std::size_t{2} << 20);
  EXPECT_EQ(required_memory(kMaxImageSize), std::size_t{9} << 20);
  LaunchablePayload big{"big", std::vector<std::uint8_t>(std::size_t{6} << 20)};
  EXPECT_NO_THROW(require_fits(big, std::size_t{7} << 20));
  try {
    require_fits(big, std::size_t{4} << 20);
    FAIL() << "a 6 MiB image fit in 4 MiB of RAM";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.hint(), "give it --memory 7 or more");
  }
}

TEST(LaunchablePayload, APayloadsOwnRamUseMustFitToo) {
  const LaunchablePayload dirty = load_for_launch("dirty-pages");
  EXPECT_EQ(dirty.memory_used, 0xa10000u);
  EXPECT_NO_THROW(require_fits(dirty, std::size_t{11} << 20));
  try {
    require_fits(dirty, std::size_t{10} << 20);
    FAIL() << "dirty-pages, which writes at 10 MiB + 60 KiB, fit in 10 MiB";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.hint(), "give it --memory 11 or more");
  }
  EXPECT_EQ(load_for_launch("edu-dma").memory_used, 0u);
}

// irq-probe's parameters as the guest reads them (mailbox.h's struct): device vector n expected as
// first + n, the device ID the arm64 ITS maps, and nothing past 0xff or the 224 slots.
TEST(IrqProbe, ParametersSayWhichVectorsAndWhichDevice) {
  const GuestOptions options = irq_probe_options(65, 0x40);
  vfiokit_irq_params params{};
  ASSERT_EQ(options.parameters.size(), sizeof params);
  std::memcpy(&params, options.parameters.data(), sizeof params);
  EXPECT_EQ(params.magic, VFIOKIT_IRQ_PARAMS_MAGIC);
  EXPECT_EQ(params.count, 65u);
  EXPECT_EQ(params.vectors[0], 0x40);
  EXPECT_EQ(params.vectors[64], 0x80);
  EXPECT_EQ(params.vectors[65], 0) << "past count";
  EXPECT_EQ(params.device_id, VFIOKIT_GUEST_DEVICE_DEVFN);
  EXPECT_EQ(irq_probe_options(0xd0).parameters.size(), sizeof params);  // 0x30..0xff
  EXPECT_THROW(irq_probe_options(0xd1), Error);                         // 0x100
  EXPECT_THROW(irq_probe_options(225, 0), Error);
  EXPECT_THROW(static_cast<void>(irq_probe_message(0xd0)), Error);
}

// The message for device vector n: on x86 the LAPIC vector itself, to APIC 0; on arm64 event n of
// the guest's device, at the ITS's doorbell, with its device ID (the guest maps the LPI).
TEST(IrqProbe, TheMessageForEachDeviceVector) {
#if defined(__aarch64__)
  EXPECT_EQ(irq_probe_message(5), kvm::its_msi(VFIOKIT_GUEST_DEVICE_DEVFN, 5));
#else
  EXPECT_EQ(irq_probe_message(5), msix::encode_msi({0, 0x35}));
  EXPECT_EQ(irq_probe_message(5, 0x80), msix::encode_msi({0, 0x85}));
  EXPECT_FALSE(irq_probe_message(5).device_id);
#endif
  const msix::MsiMessage its = kvm::its_msi(0x0108, 64);
  EXPECT_EQ(its.address, kvm::kGicIts + 0x10040);  // GITS_TRANSLATER
  EXPECT_EQ(its.data, 64u);
  EXPECT_EQ(its.device_id, 0x0108u);
  EXPECT_TRUE(kvm::ram_below_gic(kvm::kGicDistributor));
  EXPECT_FALSE(kvm::ram_below_gic(kvm::kGicDistributor + 4096));
}

}  // namespace
}  // namespace vfiokit::payloads

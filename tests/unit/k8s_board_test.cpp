// The DeviceBoard between the health monitor and the ListAndWatch streams: generations move
// only on real change, waiters wake on change and on close, and never otherwise.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <thread>

#include "vfiokit/k8s/board.h"

namespace vfiokit::k8s {
namespace {

using namespace std::chrono_literals;

Resource nvme(Health health) {
  GroupDevice device;
  device.id = "0000:01:00.0";
  device.group = 7;
  device.members = {pci::Bdf{0, 1, 0, 0}};
  device.numa_node = 0;
  device.health = health;
  device.reason = health == Health::healthy ? "" : "0000:01:00.0 is on nvme, not vfio-pci";
  return Resource{"vfiokit.io/nvme", {device}};
}

TEST(DeviceBoard, AnUnknownResourceIsEmptyAtGenerationZero) {
  const DeviceBoard board;
  const BoardSnapshot snapshot = board.current("vfiokit.io/nvme");
  EXPECT_EQ(snapshot.generation, 0U);
  EXPECT_EQ(snapshot.resource.name, "vfiokit.io/nvme");
  EXPECT_TRUE(snapshot.resource.devices.empty());
}

TEST(DeviceBoard, TheGenerationMovesOnlyWhenTheResourceChanged) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy)});
  EXPECT_EQ(board.current("vfiokit.io/nvme").generation, 1U);
  board.publish({nvme(Health::healthy)});
  EXPECT_EQ(board.current("vfiokit.io/nvme").generation, 1U);
  board.publish({nvme(Health::unhealthy)});
  const BoardSnapshot snapshot = board.current("vfiokit.io/nvme");
  EXPECT_EQ(snapshot.generation, 2U);
  EXPECT_EQ(snapshot.resource, nvme(Health::unhealthy));
}

TEST(DeviceBoard, AResourceNotPublishedKeepsWhatItHad) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy), Resource{"vfiokit.io/edu", {}}});
  board.publish({Resource{"vfiokit.io/edu", nvme(Health::healthy).devices}});
  EXPECT_EQ(board.current("vfiokit.io/nvme"), (BoardSnapshot{nvme(Health::healthy), 1}));
  EXPECT_EQ(board.current("vfiokit.io/edu").generation, 2U);
}

TEST(DeviceBoard, AWaitReturnsAtOnceWhenTheGenerationAlreadyDiffers) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy)});
  const auto snapshot = board.wait_for_change("vfiokit.io/nvme", 0, 0ms);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->generation, 1U);
}

TEST(DeviceBoard, AWaitTimesOutWhenNothingChanged) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy)});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(board.wait_for_change("vfiokit.io/nvme", 1, 20ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST(DeviceBoard, APublishFromAnotherThreadWakesTheWaiter) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy)});
  auto waiter = std::async(std::launch::async,
                           [&] { return board.wait_for_change("vfiokit.io/nvme", 1, 10s); });
  // A publish of an equal resource must not wake it with nothing new.
  board.publish({nvme(Health::healthy)});
  EXPECT_EQ(waiter.wait_for(20ms), std::future_status::timeout);
  board.publish({nvme(Health::unhealthy)});
  ASSERT_EQ(waiter.wait_for(5s), std::future_status::ready);
  const auto snapshot = waiter.get();
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->generation, 2U);
  EXPECT_EQ(snapshot->resource.devices.at(0).health, Health::unhealthy);
}

TEST(DeviceBoard, CloseEndsEveryWaitNowAndLater) {
  DeviceBoard board;
  board.publish({nvme(Health::healthy)});
  std::vector<std::future<std::optional<BoardSnapshot>>> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.push_back(std::async(std::launch::async,
                                 [&] { return board.wait_for_change("vfiokit.io/nvme", 1, 10s); }));
  }
  board.close();
  for (auto& waiter : waiters) {
    ASSERT_EQ(waiter.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(waiter.get().has_value());
  }
  EXPECT_TRUE(board.closed());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(board.wait_for_change("vfiokit.io/nvme", 1, 10s).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(DeviceBoard, AReaderBesideAPublisherSeesWholeResourcesInOrderUpToTheLast) {
  DeviceBoard board;
  constexpr std::uint64_t kPublishes = 200;
  // The reader follows the generations until the last one: each snapshot must be one of the two
  // published values, and generations never go back. 0 means it saw something else.
  auto reader = std::async(std::launch::async, [&]() -> std::uint64_t {
    std::uint64_t seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (seen < kPublishes && std::chrono::steady_clock::now() < deadline) {
      const auto snapshot = board.wait_for_change("vfiokit.io/nvme", seen, 100ms);
      if (!snapshot) continue;
      if (snapshot->generation < seen) return 0;
      if (snapshot->resource != nvme(Health::healthy) &&
          snapshot->resource != nvme(Health::unhealthy)) {
        return 0;
      }
      seen = snapshot->generation;
    }
    return seen;
  });
  for (std::uint64_t i = 0; i < kPublishes; ++i) {
    board.publish({nvme(i % 2 == 0 ? Health::healthy : Health::unhealthy)});
  }
  EXPECT_EQ(board.current("vfiokit.io/nvme").generation, kPublishes);
  EXPECT_EQ(reader.get(), kPublishes);
}

}  // namespace
}  // namespace vfiokit::k8s

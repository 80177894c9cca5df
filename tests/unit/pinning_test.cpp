#include "vfiokit/vmm/pinning.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {
namespace {

using ::testing::HasSubstr;

Error error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

// The kernel as far as affinity goes: threads with masks, a cpuset that narrows what is set
// (as the kernel does), threads that exit when touched.
class FakeAffinity final : public AffinitySystem {
 public:
  std::vector<pid_t> threads_of(pid_t pid) override {
    if (pid != qemu_pid) throw Error("list threads", "gone");
    std::vector<pid_t> ids;
    for (const auto& [tid, cpus] : masks) ids.push_back(tid);
    return ids;
  }
  bool set_affinity(pid_t tid, const CpuList& cpus) override {
    sets.emplace_back(tid, cpus);
    if (exits_when_set.count(tid) != 0) {
      masks.erase(tid);
      return false;
    }
    CpuList narrowed;
    for (const unsigned cpu : cpus) {
      if (cpuset.empty() || cpuset.count(cpu) != 0) narrowed.push_back(cpu);
    }
    if (narrowed.empty()) throw Error::from_errno(EINVAL, "sched_setaffinity");
    masks[tid] = narrowed;
    return true;
  }
  std::optional<CpuList> get_affinity(pid_t tid) override {
    if (exits_before_read.count(tid) != 0) return std::nullopt;
    const auto it = masks.find(tid);
    if (it == masks.end()) return std::nullopt;
    return it->second;
  }

  pid_t qemu_pid = 100;
  std::map<pid_t, CpuList> masks = {{100, {0, 1, 2, 3, 4, 5, 6, 7}},
                                    {101, {0, 1, 2, 3, 4, 5, 6, 7}},
                                    {102, {0, 1, 2, 3, 4, 5, 6, 7}},
                                    {103, {0, 1, 2, 3, 4, 5, 6, 7}},
                                    {104, {0, 1, 2, 3, 4, 5, 6, 7}}};
  std::set<unsigned> cpuset;  // empty: every CPU allowed
  std::set<pid_t> exits_when_set;
  std::set<pid_t> exits_before_read;
  std::vector<std::pair<pid_t, CpuList>> sets;
};

// QEMU's threads: 100 main, 101 an I/O worker, 102..104 vCPUs 2, 0, 1 (query-cpus-fast order
// need not be index order).
const std::vector<VcpuThread> kVcpus = {{2, 104}, {0, 102}, {1, 103}};

TEST(Pinning, VcpuIGoesToTheIthCpuAndTheRestToTheEmulatorSet) {
  FakeAffinity kernel;
  const PinningReport report = pin_guest_threads(kernel, 100, kVcpus, {4, 5, 6}, {0, 1});
  EXPECT_TRUE(report.all_match);
  ASSERT_EQ(report.threads.size(), 5u);
  EXPECT_EQ(report.threads[0].role, "vcpu 0");
  EXPECT_EQ(report.threads[0].thread_id, 102);
  EXPECT_EQ(report.threads[0].requested, (CpuList{4}));
  EXPECT_EQ(report.threads[0].actual, (CpuList{4}));
  EXPECT_EQ(report.threads[1].role, "vcpu 1");
  EXPECT_EQ(report.threads[1].thread_id, 103);
  EXPECT_EQ(report.threads[2].role, "vcpu 2");
  EXPECT_EQ(report.threads[2].actual, (CpuList{6}));
  EXPECT_EQ(report.threads[3].role, "emulator");
  EXPECT_EQ(report.threads[3].thread_id, 100);
  EXPECT_EQ(report.threads[4].thread_id, 101);
  EXPECT_EQ(report.threads[4].actual, (CpuList{0, 1}));
  EXPECT_EQ(kernel.masks[101], (CpuList{0, 1}));
}

TEST(Pinning, WithoutAnEmulatorSetOnlyVcpusMove) {
  FakeAffinity kernel;
  const PinningReport report = pin_guest_threads(kernel, 100, kVcpus, {4, 5, 6}, {});
  EXPECT_TRUE(report.all_match);
  EXPECT_EQ(report.threads.size(), 3u);
  EXPECT_EQ(kernel.sets.size(), 3u);
  EXPECT_EQ(kernel.masks[100].size(), 8u);
}

TEST(Pinning, MismatchesAndForeignThreadsAreRefusedBeforeAnythingMoves) {
  FakeAffinity kernel;
  Error e = error_of([&] { pin_guest_threads(kernel, 100, kVcpus, {4, 5}, {}); });
  EXPECT_THAT(e.message(), HasSubstr("QEMU runs 3 vCPUs but 2 CPUs"));
  e = error_of([&] { pin_guest_threads(kernel, 100, {{0, 102}, {1, 999}}, {4, 5}, {}); });
  EXPECT_THAT(e.message(), HasSubstr("vcpu 1's thread 999 is not a thread of QEMU"));
  e = error_of([&] { pin_guest_threads(kernel, 100, {{0, 102}, {0, 103}}, {4, 5}, {}); });
  EXPECT_THAT(e.message(), HasSubstr("vCPU 0 twice"));
  EXPECT_EQ(error_of([&] {
              pin_guest_threads(kernel, 555, kVcpus, {4, 5, 6}, {});
            }).operation(),
            "list threads");
  EXPECT_TRUE(kernel.sets.empty());
}

TEST(Pinning, ACpusetThatNarrowsTheMaskShowsInTheReport) {
  FakeAffinity kernel;
  kernel.cpuset = {0, 1, 4, 5, 6};
  const PinningReport report = pin_guest_threads(kernel, 100, kVcpus, {4, 5, 6}, {0, 1, 2, 3});
  EXPECT_FALSE(report.all_match);
  EXPECT_TRUE(report.threads[0].matches());
  EXPECT_EQ(report.threads[3].requested, (CpuList{0, 1, 2, 3}));
  EXPECT_EQ(report.threads[3].actual, (CpuList{0, 1}));
  EXPECT_FALSE(report.threads[3].matches());
}

TEST(Pinning, AMaskOutsideTheCpusetIsAnError) {
  FakeAffinity kernel;
  kernel.cpuset = {0, 1};
  const Error e = error_of([&] { pin_guest_threads(kernel, 100, kVcpus, {4, 5, 6}, {}); });
  EXPECT_EQ(e.errno_value(), EINVAL);
}

TEST(Pinning, AWorkerThatExitsIsLeftOutAVcpuThatExitsIsAnError) {
  FakeAffinity kernel;
  kernel.exits_when_set = {101};
  PinningReport report = pin_guest_threads(kernel, 100, kVcpus, {4, 5, 6}, {0});
  EXPECT_TRUE(report.all_match);
  EXPECT_EQ(report.threads.size(), 4u);

  FakeAffinity late;
  late.exits_before_read = {101};
  report = pin_guest_threads(late, 100, kVcpus, {4, 5, 6}, {0});
  EXPECT_TRUE(report.all_match);
  EXPECT_EQ(report.threads.size(), 4u);

  FakeAffinity stopping;
  stopping.exits_when_set = {103};
  EXPECT_THAT(error_of([&] {
                pin_guest_threads(stopping, 100, kVcpus, {4, 5, 6}, {});
              }).message(),
              HasSubstr("vcpu 1's thread 103 exited"));

  FakeAffinity vanished;
  vanished.exits_before_read = {102};
  report = pin_guest_threads(vanished, 100, kVcpus, {4, 5, 6}, {});
  EXPECT_FALSE(report.all_match);
  EXPECT_TRUE(report.threads[0].actual.empty());
}

// The real system calls, on a thread of this test: pinned to the first CPU it may run on, it
// reports that CPU, and it runs there.
TEST(LinuxAffinityTest, PinsAThreadOfThisProcessAndReadsItBack) {
  LinuxAffinity kernel{HostPaths{}};
  const auto mine = kernel.get_affinity(static_cast<pid_t>(::gettid()));
  ASSERT_TRUE(mine && !mine->empty());
  const unsigned target = mine->front();

  std::promise<pid_t> tid_promise;
  std::promise<void> release;
  std::promise<int> cpu_seen;
  std::thread worker([&] {
    tid_promise.set_value(static_cast<pid_t>(::gettid()));
    release.get_future().wait();
    cpu_seen.set_value(::sched_getcpu());
  });
  const pid_t tid = tid_promise.get_future().get();
  EXPECT_THAT(kernel.threads_of(::getpid()), ::testing::Contains(tid));
  PinningReport report;
  try {
    report = pin_guest_threads(kernel, ::getpid(), {{0, tid}}, {target}, {});
  } catch (...) {
    release.set_value();
    worker.join();
    throw;
  }
  release.set_value();
  const int cpu = cpu_seen.get_future().get();
  worker.join();
  EXPECT_TRUE(report.all_match);
  ASSERT_EQ(report.threads.size(), 1u);
  EXPECT_EQ(report.threads[0].actual, (CpuList{target}));
  EXPECT_EQ(cpu, static_cast<int>(target));
  EXPECT_EQ(kernel.get_affinity(tid), std::nullopt);  // exited: ESRCH
  EXPECT_THAT(kernel.threads_of(::getpid()), ::testing::Not(::testing::Contains(tid)));
}

}  // namespace
}  // namespace vfiokit::vmm

// Harvesting N dirty pages of an M-page slot, the dirty ring vs the dirty bitmap, side by side.
//   kvm (where /dev/kvm runs protected-mode guests: the rig): a guest writes N pages of a
//       tracked M-page slot, then DirtyTracker::harvest() is timed, with the ring
//       (KVM_RESET_DIRTY_RINGS included) and with the bitmap (KVM_GET_DIRTY_LOG for the whole
//       slot, KVM_CLEAR_DIRTY_LOG for the runs of dirty words).
//   simulated (anywhere, or with --simulated): the same user-space work without the kernel:
//       N published ring entries harvested (kvm/dirty_ring.h) vs an M-bit bitmap decoded and
//       its clear ranges computed (kvm/dirty_bitmap.h).
// The ring's cost follows N, the bitmap's follows M. Prints medians of 5 interleaved rounds and
// bitmap/ring ratios for N = 16, 1024 and 16384 of M = 262144 (1 GiB of 4 KiB pages).
//   dirty_bench [--simulated]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/kvm/dirty_bitmap.h"
#include "vfiokit/kvm/dirty_ring.h"
#include "vfiokit/kvm/dirty_tracker.h"
#include "vfiokit/kvm/run_loop.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"

using namespace vfiokit;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t kSlotPages = 262144;
constexpr std::uint64_t kDataBase = 0x1000000;
constexpr std::uint32_t kRingEntries = 32768;  // room for the largest N without a full ring

double us_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ---- simulated: the user-space half only ----
double simulated(std::uint32_t dirty, bool ring) {
  const std::uint64_t stride = kSlotPages / dirty;
  if (ring) {
    std::vector<kvm_dirty_gfn> entries(kRingEntries);
    for (std::uint32_t i = 0; i < dirty; ++i) {
      entries[i] = {static_cast<std::uint32_t>(KVM_DIRTY_GFN_F_DIRTY), 1, i * stride};
    }
    kvm::DirtyRingHarvester harvester;
    std::vector<std::uint64_t> pages;
    const auto start = Clock::now();
    harvester.harvest(entries, [&](const kvm::DirtyEntry& e) { pages.push_back(e.offset); });
    std::sort(pages.begin(), pages.end());
    const double us = us_since(start);
    if (pages.size() != dirty) throw Error("dirty_bench", "the ring lost entries");
    return us;
  }
  std::vector<std::uint64_t> bitmap(kvm::dirty_bitmap_words(kSlotPages), 0);
  for (std::uint64_t i = 0; i < dirty; ++i) {
    const std::uint64_t page = i * stride;
    bitmap[page / 64] |= std::uint64_t{1} << (page % 64);
  }
  const auto start = Clock::now();
  const auto pages = kvm::dirty_pages(bitmap, kSlotPages);
  const auto ranges = kvm::clear_ranges(bitmap, kSlotPages);
  const double us = us_since(start);
  if (pages.size() != dirty || ranges.empty()) throw Error("dirty_bench", "the bitmap lost pages");
  return us;
}

// ---- kvm: a guest writes, the tracker harvests ----
double with_kvm(const kvm::KvmSystem& system, std::uint32_t dirty, bool ring) {
  constexpr std::size_t kCode = std::size_t{1} << 20;
  MappedMemory code(
      ::mmap(nullptr, kCode, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), kCode);
  MappedMemory data(::mmap(nullptr, kSlotPages * 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
                    kSlotPages * 4096);
  if (code.data() == MAP_FAILED || data.data() == MAP_FAILED)
    throw Error::from_last_errno("mmap guest memory");
  kvm::Vm vm = system.create_vm();
  kvm::DirtyTrackerOptions options;
  options.allow_ring = ring;
  options.ring_entries = kRingEntries;
  kvm::DirtyTracker tracker(vm, options);
  if ((tracker.mechanism() == kvm::DirtyMechanism::ring) != ring) {
    throw Error("dirty_bench", "this kernel has no dirty ring").hint("run with --simulated");
  }
  vm.add_memory(0, 0, code.bytes());
  tracker.add_memory(1, kDataBase, data.bytes());
  kvm::Vcpu vcpu = vm.create_vcpu(0);
  tracker.attach(vcpu);
  // top: mov byte [ebx], 1; add ebx, edx; loop top; out 0x10, al; hlt
  const std::uint8_t program[] = {0xc6, 0x03, 0x01, 0x01, 0xd3, 0xe2, 0xf9, 0xe6, 0x10, 0xf4};
  std::memcpy(code.bytes().data() + 0x1000, program, sizeof program);
  kvm::enter_protected_mode(vcpu, 0x1000, 0x8000);
  kvm_regs r = vcpu.regs();
  r.rbx = kDataBase;
  r.rcx = dirty;
  r.rdx = kSlotPages / dirty * 4096;
  vcpu.set_regs(r);
  kvm::RunLoop loop;
  loop.on_io(0x10, 0x10, [&](const kvm::IoExit&, std::span<std::uint8_t>) { loop.stop(); });
  loop.on_dirty_ring_full(tracker.ring_full_handler());
  loop.run(vcpu);
  const auto start = Clock::now();
  const auto pages = tracker.harvest();
  const double us = us_since(start);
  if (pages.size() != dirty) {
    throw Error("dirty_bench", "harvested " + std::to_string(pages.size()) + " pages, not " +
                                   std::to_string(dirty));
  }
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const bool force_simulated = argc > 1 && std::strcmp(argv[1], "--simulated") == 0;
    std::optional<kvm::KvmSystem> system;
    if (!force_simulated) {
      try {
        system = kvm::KvmSystem::open();
      } catch (const Error& e) {
        std::printf("no /dev/kvm (%s): simulated\n", e.what());
      }
    }
    std::printf("harvesting N dirty pages of %llu (%s; medians of 5 interleaved rounds)\n",
                static_cast<unsigned long long>(kSlotPages),
                system ? "real KVM: DirtyTracker::harvest()" : "simulated: user-space work only");
    for (const std::uint32_t dirty : {16u, 1024u, 16384u}) {
      std::vector<double> ring_us, bitmap_us;
      for (int round = 0; round < 5; ++round) {
        for (const bool ring : {round % 2 == 0, round % 2 != 0}) {
          const double us = system ? with_kvm(*system, dirty, ring) : simulated(dirty, ring);
          (ring ? ring_us : bitmap_us).push_back(us);
        }
      }
      std::printf("  N = %5u  ring %10.1f us   bitmap %10.1f us   bitmap/ring %8.2f\n", dirty,
                  median(ring_us), median(bitmap_us), median(bitmap_us) / median(ring_us));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "dirty_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

// KVM: pure parts (exit classification, diagnostics, memory slots) and, where
// this machine's /dev/kvm allows (it runs real-mode code only), VMs, vCPUs and interrupts.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/eventfd.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/kvm/dirty_tracker.h"
#include "vfiokit/kvm/run_loop.h"
#include "vfiokit/kvm/stats.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"

namespace vfiokit::kvm {
namespace {

kvm_run run_with(std::uint32_t reason) {
  kvm_run run{};
  run.exit_reason = reason;
  return run;
}

TEST(KvmExit, ClassifiesEveryKindAndNamesIt) {
  kvm_run io = run_with(KVM_EXIT_IO);
  io.io = {KVM_EXIT_IO_OUT, 4, 0x501, 1, 0x1000};
  const VcpuExit e = classify_exit(io);
  EXPECT_EQ(e.kind, ExitKind::io);
  EXPECT_EQ(e.io.port, 0x501);
  EXPECT_TRUE(e.io.out);
  EXPECT_EQ(e.io.size, 4);
  EXPECT_EQ(e.io.data_offset, 0x1000u);

  kvm_run mmio = run_with(KVM_EXIT_MMIO);
  mmio.mmio.phys_addr = 0xfe000010;
  mmio.mmio.len = 4;
  mmio.mmio.is_write = 1;
  EXPECT_EQ(classify_exit(mmio).mmio.address, 0xfe000010u);
  EXPECT_TRUE(classify_exit(mmio).mmio.write);

  kvm_run failed = run_with(KVM_EXIT_FAIL_ENTRY);
  failed.fail_entry.hardware_entry_failure_reason = 0x80000021;
  const VcpuExit fe = classify_exit(failed);
  EXPECT_EQ(fe.kind, ExitKind::fail_entry);
  EXPECT_STREQ(exit_error(fe, 0).context_value("hardware_entry_failure_reason").data(),
               "0x80000021");

  kvm_run internal = run_with(KVM_EXIT_INTERNAL_ERROR);
  internal.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  internal.internal.ndata = 2;
  internal.internal.data[0] = 0xcf;
  const VcpuExit ie = classify_exit(internal);
  EXPECT_EQ(ie.kind, ExitKind::internal_error);
  EXPECT_EQ(ie.internal_data.size(), 2u);
  const Error error = exit_error(ie, 3);
  EXPECT_EQ(error.context_value("suberror"), "emulation failure");
  EXPECT_EQ(error.context_value("vcpu"), "3");
  EXPECT_NE(std::string(error.what()).find("KVM_EXIT_INTERNAL_ERROR"), std::string::npos);

  EXPECT_EQ(classify_exit(run_with(KVM_EXIT_SHUTDOWN)).kind, ExitKind::shutdown);
  EXPECT_NE(exit_error(classify_exit(run_with(KVM_EXIT_SHUTDOWN)), 0).hint().find("triple"),
            std::string::npos);
  EXPECT_EQ(classify_exit(run_with(KVM_EXIT_HLT)).kind, ExitKind::hlt);
  EXPECT_EQ(classify_exit(run_with(KVM_EXIT_SYSTEM_EVENT)).kind, ExitKind::system_event);
  EXPECT_EQ(classify_exit(run_with(KVM_EXIT_DEBUG)).kind, ExitKind::other);
  EXPECT_EQ(exit_reason_name(KVM_EXIT_NOTIFY), "KVM_EXIT_NOTIFY");
  EXPECT_EQ(exit_reason_name(999), "exit reason 999");
  EXPECT_EQ(internal_suberror_name(KVM_INTERNAL_ERROR_DELIVERY_EV),
            "exit while delivering an event");
}

TEST(KvmDiagnostics, EachFailureGetsItsFix) {
  KvmHostFacts f;
  f.cpu_vendor = "GenuineIntel";
  f.cpu_has_virtualization = false;
  f.error = ENOENT;
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("VT-x"), std::string::npos);
  f.cpu_has_virtualization = true;
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("modprobe kvm_intel"),
            std::string::npos);
  f.cpu_vendor = "AuthenticAMD";
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("modprobe kvm_amd"),
            std::string::npos);
  f.error = EACCES;
  f.node_group = "kvm";
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("usermod -aG kvm"),
            std::string::npos);
  f.error = EPERM;
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("cgroup"), std::string::npos);
  f.seccomp_mode = 2;
  EXPECT_NE(diagnose_kvm_failure(f, "open /dev/kvm").hint().find("seccomp"), std::string::npos);
  f.error = EBUSY;
  EXPECT_NE(diagnose_kvm_failure(f, "KVM_CREATE_VM").hint().find("another hypervisor"),
            std::string::npos);
  f.error = EINVAL;
  EXPECT_NE(diagnose_kvm_failure(f, "KVM_CREATE_VM").hint().find("VM type"), std::string::npos);
  EXPECT_EQ(diagnose_kvm_failure(f, "KVM_CREATE_VM").errno_value(), EINVAL);
}

TEST(MemorySlots, OverlapsAlignmentAndReuseAreRefused) {
  MemorySlotTable slots;
  slots.add({0, 0, 0x100000, 0x7f0000000000, 0});
  slots.add({1, 0x100000, 0x1000, 0x7f0000200000, 0});                       // adjacent: fine
  EXPECT_THROW(slots.add({2, 0xff000, 0x2000, 0x7f0000300000, 0}), Error);   // overlaps slot 0
  EXPECT_THROW(slots.add({1, 0x200000, 0x1000, 0x7f0000300000, 0}), Error);  // slot 1 again
  EXPECT_THROW(slots.add({3, 0x300800, 0x1000, 0x7f0000300000, 0}), Error);  // unaligned
  EXPECT_THROW(slots.add({4, 0x400000, 0, 0x7f0000300000, 0}), Error);       // empty
  EXPECT_THROW(slots.add({5, ~std::uint64_t{0} - 0xfff, 0x2000, 0x7f0000300000, 0}), Error);
  EXPECT_EQ(slots.containing(0x100800)->slot, 1u);
  EXPECT_EQ(slots.containing(0x101000), nullptr);
  slots.remove(0);
  EXPECT_THROW(slots.remove(0), Error);
  EXPECT_NO_THROW(slots.add({2, 0xff000, 0x1000, 0x7f0000300000, 0}));
}

// ---- This machine's /dev/kvm: real-mode guests only -------------------------------------

std::optional<KvmSystem> open_kvm_or_skip_reason(std::string& reason) {
  try {
    return KvmSystem::open();
  } catch (const Error& e) {
    reason = std::string("no usable /dev/kvm here (") + e.what() + "); the rig runs these too";
    return std::nullopt;
  }
}

#define REQUIRE_KVM(system)                           \
  std::string skip_reason;                            \
  auto system = open_kvm_or_skip_reason(skip_reason); \
  if (!system) GTEST_SKIP() << skip_reason

// A real-mode guest: 1 MiB of RAM at 0, code at 0x1000, DS aimed at the local APIC.
struct RealModeGuest {
  explicit RealModeGuest(const KvmSystem& kvm, bool irqchip)
      : memory(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
               kSize),
        vm(kvm.create_vm()) {
    if (irqchip) vm.create_irqchip();
    vm.add_memory(0, 0, memory.bytes());
    vcpu.emplace(vm.create_vcpu(0));
    kvm_sregs s = vcpu->sregs();
    s.cs.base = 0;
    s.cs.selector = 0;
    s.ss.base = 0;
    s.ss.selector = 0;
    s.ds.base = 0xfee00000;  // real mode cannot address the LAPIC; a segment base can
    s.ds.selector = 0;
    vcpu->set_sregs(s);
    kvm_regs r{};
    r.rip = 0x1000;
    r.rsp = 0x8000;
    r.rflags = 2;
    vcpu->set_regs(r);
  }
  void load(std::uint32_t address, std::initializer_list<std::uint8_t> bytes) {
    std::copy(bytes.begin(), bytes.end(), memory.bytes().begin() + address);
  }
  // The IVT entry of `vector` points at `handler` (segment 0).
  void vector(std::uint8_t v, std::uint16_t handler) {
    const std::uint16_t entry[2] = {handler, 0};
    std::memcpy(memory.bytes().data() + v * 4u, entry, 4);
  }
  static constexpr std::size_t kSize = std::size_t{1} << 20;
  MappedMemory memory;
  Vm vm;
  std::optional<Vcpu> vcpu;
};

TEST(KvmHost, SystemReportsVersionCapabilitiesAndMmapSize) {
  REQUIRE_KVM(kvm);
  EXPECT_GE(kvm->vcpu_mmap_size(), sizeof(kvm_run));
  EXPECT_GE(kvm->check_extension(KVM_CAP_IRQ_ROUTING), 1024);
  EXPECT_EQ(kvm->check_extension(KVM_CAP_IRQFD), 1);
}

TEST(KvmHost, PortIoExitsReachTheirHandlers) {
  REQUIRE_KVM(kvm);
  RealModeGuest guest(*kvm, false);
  // mov al,0x42; out 0x10,al; mov ax,0x1234; out 0x11,ax; in al,0x12; out 0x13,al; hlt
  guest.load(0x1000,
             {0xb0, 0x42, 0xe6, 0x10, 0xb8, 0x34, 0x12, 0xe7, 0x11, 0xe4, 0x12, 0xe6, 0x13, 0xf4});
  RunLoop loop;
  std::vector<std::string> seen;
  loop.on_io(0x10, 0x11, [&](const IoExit& io, std::span<std::uint8_t> d) {
    seen.push_back(std::to_string(io.port) + ":" + std::to_string(io.size) + ":" +
                   std::to_string(d[0] | (d.size() > 1 ? d[1] << 8 : 0)));
  });
  loop.on_io(0x12, 0x12, [&](const IoExit& io, std::span<std::uint8_t> d) {
    EXPECT_FALSE(io.out);
    d[0] = 0x99;  // what the guest's `in` reads
  });
  loop.on_io(0x13, 0x13, [&](const IoExit&, std::span<std::uint8_t> d) {
    seen.push_back("echo:" + std::to_string(d[0]));
    loop.stop();
  });
  loop.run(*guest.vcpu);
  EXPECT_EQ(seen, (std::vector<std::string>{"16:1:66", "17:2:4660", "echo:153"}));
}

TEST(KvmHost, UnhandledPortsAndHaltsEndTheRunWithANamedError) {
  REQUIRE_KVM(kvm);
  RealModeGuest guest(*kvm, false);
  guest.load(0x1000, {0xe6, 0x77});  // out 0x77, al
  RunLoop loop;
  try {
    loop.run(*guest.vcpu);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("port 0x77 that nothing handles"), std::string::npos);
  }
  RealModeGuest halting(*kvm, false);
  halting.load(0x1000, {0xf4});  // hlt, with no irqchip to wait in
  try {
    RunLoop().run(*halting.vcpu);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KVM_EXIT_HLT"), std::string::npos);
  }
}

TEST(KvmHost, StopFromAnotherThreadEndsABlockedRun) {
  REQUIRE_KVM(kvm);
  RealModeGuest guest(*kvm, true);
  guest.load(0x1000, {0xfa, 0xf4, 0xeb, 0xfd});  // cli; hlt forever (in the kernel, irqchip)
  RunLoop loop;
  std::thread vcpu([&] { loop.run(*guest.vcpu); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  loop.stop();
  vcpu.join();
  EXPECT_TRUE(loop.stopped());
}

// An interrupt-counting guest: enables the LAPIC, reports each vector 0x30 on port 0x12, and
// halts in between. Host side: a route on one GSI, an irqfd on an eventfd.
struct InterruptGuest {
  explicit InterruptGuest(const KvmSystem& kvm) : guest(kvm, true), routes(guest.vm) {
    guest.load(0x1000, {0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00,  // LAPIC SVR = 0x1ff
                        0xb0, 0x01, 0xe6, 0x10,                                // out 0x10: ready
                        0xfb, 0xf4, 0xeb, 0xfd});                              // sti; hlt loop
    guest.load(0x2000, {0xb0, 0x30, 0xe6, 0x12,                                // out 0x12: vector
                        0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00,  // EOI
                        0xcf});                                                // iret
    guest.vector(0x30, 0x2000);
    gsi = routes.gsis().allocate(1)[0];
    routes.stage(gsi, msix::encode_msi({0, 0x30}));
    routes.commit();
    loop.on_io(0x10, 0x10, [this](const IoExit&, std::span<std::uint8_t>) { note(-1); });
    loop.on_io(0x12, 0x12, [this](const IoExit&, std::span<std::uint8_t>) { note(1); });
    thread = std::thread([this] { loop.run(*guest.vcpu); });
    EXPECT_TRUE(wait(-1, 1));
  }
  ~InterruptGuest() {
    loop.stop();
    thread.join();
  }
  void note(int what) {
    std::lock_guard lock(mutex);
    (what < 0 ? ready : delivered) += 1;
    changed.notify_all();
  }
  // Waits until `count` ready (-1) or delivered (1) notes have been seen in total.
  bool wait(int what, int count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return (what < 0 ? ready : delivered) >= count; });
  }
  int delivered_now() {
    std::lock_guard lock(mutex);
    return delivered;
  }
  RealModeGuest guest;
  msix::RouteTable routes;
  std::uint32_t gsi = 0;
  RunLoop loop;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable changed;
  int ready = 0, delivered = 0;
};

// Every vCPU gets KVM's CPUID before it runs: without it KVM's local APIC takes no timer mode,
// and a periodic timer ticked once (the built-in VMM's payloads time out their waits on it).
TEST(KvmHost, APeriodicLapicTimerKeepsTicking) {
  REQUIRE_KVM(kvm);
  RealModeGuest guest(*kvm, true);
  guest.load(0x1000, {0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00,  // SVR = 0x1ff
                      0x66, 0xc7, 0x06, 0xe0, 0x03, 0x0b, 0x00, 0x00, 0x00,  // divide by 1
                      0x66, 0xc7, 0x06, 0x20, 0x03, 0x30, 0x00, 0x02, 0x00,  // LVTT: periodic, 0x30
                      0x66, 0xc7, 0x06, 0x80, 0x03, 0x40, 0x42, 0x0f, 0x00,  // 1000000: ~1 ms
                      0xfb, 0xf4, 0xeb, 0xfd});                              // sti; hlt loop
  guest.load(0x2000, {0xb0, 0x30, 0xe6, 0x12,                                // out 0x12: a tick
                      0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00,  // EOI
                      0xcf});                                                // iret
  guest.vector(0x30, 0x2000);
  std::mutex mutex;
  std::condition_variable changed;
  int ticks = 0;
  RunLoop loop;
  loop.on_io(0x12, 0x12, [&](const IoExit&, std::span<std::uint8_t>) {
    std::lock_guard lock(mutex);
    ++ticks;
    changed.notify_all();
  });
  std::thread vcpu([&] { loop.run(*guest.vcpu); });
  {
    std::unique_lock lock(mutex);
    EXPECT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return ticks >= 5; }))
        << ticks << " ticks";
  }
  loop.stop();
  vcpu.join();
  const auto lapic = guest.vcpu->state().lapic;
  ASSERT_TRUE(lapic);
  EXPECT_EQ((lapic->timer_lvt >> 17) & 3, 1u) << "the LVT timer is not periodic";
}

TEST(KvmHost, AnIrqfdOnAnMsiRouteReachesTheGuest) {
  REQUIRE_KVM(kvm);
  InterruptGuest g(*kvm);
  EventFd eventfd = EventFd::create();
  g.guest.vm.assign_irqfd(eventfd.fd(), g.gsi);
  eventfd.signal();
  EXPECT_TRUE(g.wait(1, 1));
  eventfd.signal();
  EXPECT_TRUE(g.wait(1, 2));
  EXPECT_THROW(g.guest.vm.assign_irqfd(eventfd.fd(), g.gsi), Error);  // assigned twice
  g.guest.vm.deassign_irqfd(eventfd.fd(), g.gsi);
}

TEST(KvmHost, MaskedByDeassignTheInterruptWaitsAndArrivesOnceOnUnmask) {
  REQUIRE_KVM(kvm);
  InterruptGuest g(*kvm);
  EventFd eventfd = EventFd::create();
  g.guest.vm.assign_irqfd(eventfd.fd(), g.gsi);
  g.guest.vm.deassign_irqfd(eventfd.fd(), g.gsi);  // masked
  eventfd.signal();
  eventfd.signal();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(g.delivered_now(), 0) << "delivered while masked";
  g.guest.vm.assign_irqfd(eventfd.fd(), g.gsi);  // unmask: KVM finds the pending count
  EXPECT_TRUE(g.wait(1, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(g.delivered_now(), 1) << "two signals while masked are one interrupt on unmask";
  g.guest.vm.deassign_irqfd(eventfd.fd(), g.gsi);
  eventfd.signal();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(g.delivered_now(), 1) << "delivered after deassign";
}

TEST(KvmHost, SignalMsiInjectsWithoutARoute) {
  REQUIRE_KVM(kvm);
  InterruptGuest g(*kvm);
  g.guest.vm.signal_msi(msix::encode_msi({0, 0x30}));
  EXPECT_TRUE(g.wait(1, 1));
}

TEST(KvmHost, ManyVmsLeaveNoFdsBehind) {
  REQUIRE_KVM(kvm);
  const std::size_t before = list_dir("/proc/self/fd").size();
  for (int i = 0; i < 50; ++i) {
    RealModeGuest guest(*kvm, true);
    msix::RouteTable routes(guest.vm);
    routes.stage(routes.gsis().allocate(1)[0], msix::encode_msi({0, 0x30}));
    routes.commit();
  }
  EXPECT_EQ(list_dir("/proc/self/fd").size(), before);
}

TEST(KvmHost, BinaryStatisticsCountTheVcpusExits) {
  REQUIRE_KVM(kvm);
  RealModeGuest guest(*kvm, false);
  const auto vcpu_stats = StatsReader::open(guest.vcpu->fd());
  if (!vcpu_stats) GTEST_SKIP() << "this kernel has no KVM_GET_STATS_FD (Linux 5.14 and later)";
  EXPECT_NE(vcpu_stats->layout().id.find("vcpu"), std::string::npos) << vcpu_stats->layout().id;
  const auto before = vcpu_stats->read();
  ASSERT_TRUE(before.count("exits"));
  ASSERT_TRUE(before.count("io_exits"));
  guest.load(0x1000, {0xe6, 0x10, 0xe6, 0x10, 0xe6, 0x11});  // out 0x10 twice, then 0x11
  RunLoop loop;
  loop.on_io(0x10, 0x10, [](const IoExit&, std::span<std::uint8_t>) {});
  loop.on_io(0x11, 0x11, [&](const IoExit&, std::span<std::uint8_t>) { loop.stop(); });
  loop.run(*guest.vcpu);
  const auto after = vcpu_stats->read();
  EXPECT_GE(after.at("io_exits") - before.at("io_exits"), 3u);
  EXPECT_GE(after.at("exits"), before.at("exits") + 3);
  const auto vm_stats = StatsReader::open(guest.vm.fd());
  ASSERT_TRUE(vm_stats.has_value());
  EXPECT_EQ(vm_stats->layout().id.find("vcpu"), std::string::npos) << vm_stats->layout().id;
}

// ---- Dirty tracking (kvm/dirty_tracker.h): the ring and the bitmap on a real guest ----------

// A flat protected-mode guest whose code lives in slot 0 (not tracked: code fetches never
// count) and which writes one byte to chosen pages of slot 1, the tracked data slot at 16 MiB,
// which nothing else touches. So the pages the guest wrote are exactly the dirty set.
struct DirtyGuest {
  static constexpr std::uint64_t kDataBase = 0x1000000;
  DirtyGuest(const KvmSystem& kvm, const DirtyTrackerOptions& options, std::size_t data_pages,
             bool ring_full_handler = true)
      : code(::mmap(nullptr, kCodeSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
             kCodeSize),
        data(::mmap(nullptr, data_pages * 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
             data_pages * 4096),
        vm(kvm.create_vm()),
        tracker(vm, options),
        handle_ring_full(ring_full_handler) {
    vm.add_memory(0, 0, code.bytes());
    tracker.add_memory(1, kDataBase, data.bytes());
    vcpu.emplace(vm.create_vcpu(0));
    tracker.attach(*vcpu);
    // top: mov byte [ebx], 1; add ebx, edx; loop top; out 0x10, al; hlt
    const std::uint8_t program[] = {0xc6, 0x03, 0x01, 0x01, 0xd3, 0xe2, 0xf9, 0xe6, 0x10, 0xf4};
    std::copy(std::begin(program), std::end(program), code.bytes().begin() + 0x1000);
  }
  // The guest writes `count` (> 0) pages of the data slot: `first`, then every `stride`th.
  void write_pages(std::uint64_t first, std::uint32_t count, std::uint64_t stride) {
    enter_protected_mode(*vcpu, 0x1000, 0x8000);
    kvm_regs r = vcpu->regs();
    r.rbx = kDataBase + first * 4096;
    r.rcx = count;
    r.rdx = stride * 4096;
    vcpu->set_regs(r);
    vcpu->set_immediate_exit(false);  // the previous run's stop() left it set
    RunLoop loop;
    loop.on_io(0x10, 0x10, [&](const IoExit&, std::span<std::uint8_t>) { loop.stop(); });
    if (handle_ring_full) loop.on_dirty_ring_full(tracker.ring_full_handler());
    loop.run(*vcpu);
  }
  static std::vector<std::uint64_t> pages(std::uint64_t first, std::uint32_t count,
                                          std::uint64_t stride) {
    std::vector<std::uint64_t> out;
    for (std::uint32_t i = 0; i < count; ++i) out.push_back(kDataBase / 4096 + first + i * stride);
    return out;
  }
  static constexpr std::size_t kCodeSize = std::size_t{1} << 20;
  MappedMemory code;
  MappedMemory data;
  Vm vm;
  DirtyTracker tracker;
  bool handle_ring_full;
  std::optional<Vcpu> vcpu;
};

bool kernel_has_dirty_ring(const KvmSystem& kvm) {
  return kvm.check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0 ||
         kvm.check_extension(KVM_CAP_DIRTY_LOG_RING) > 0;
}

// Three rounds: the pages written are reported, a harvest with nothing written is empty, and
// pages written again after a harvest are reported again (the reset or clear re-protected them).
void expect_exact_harvests(DirtyGuest& g) {
  g.write_pages(0, 20, 3);
  EXPECT_EQ(g.tracker.harvest(), DirtyGuest::pages(0, 20, 3));
  EXPECT_EQ(g.tracker.harvest(), std::vector<std::uint64_t>{});
  g.write_pages(0, 10, 6);  // every other page of the first round
  g.write_pages(100, 1, 1);
  auto expected = DirtyGuest::pages(0, 10, 6);
  expected.push_back(DirtyGuest::kDataBase / 4096 + 100);
  EXPECT_EQ(g.tracker.harvest(), expected);
  EXPECT_EQ(g.tracker.counters().unattributed, 0u);
}

TEST(KvmHost, DirtyRingHarvestsExactlyThePagesTheGuestWrote) {
  REQUIRE_KVM(kvm);
  if (!kernel_has_dirty_ring(*kvm)) GTEST_SKIP() << "this kernel has no dirty ring (Linux 5.11+)";
  DirtyGuest g(*kvm, {}, 256);
  ASSERT_EQ(g.tracker.mechanism(), DirtyMechanism::ring) << g.tracker.description();
  if (kvm->check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0) {
    EXPECT_EQ(g.tracker.plan().ordering, RingOrdering::acquire_release);
  }
  EXPECT_NE(g.tracker.description().find("KVM_CAP_DIRTY_LOG_RING"), std::string::npos);
  expect_exact_harvests(g);
  EXPECT_GE(g.tracker.counters().resets, 2u);
}

TEST(KvmHost, DirtyBitmapHarvestsExactlyThePagesTheGuestWrote) {
  REQUIRE_KVM(kvm);
  DirtyTrackerOptions bitmap;
  bitmap.allow_ring = false;
  DirtyGuest g(*kvm, bitmap, 256);
  ASSERT_EQ(g.tracker.mechanism(), DirtyMechanism::bitmap);
  EXPECT_EQ(g.tracker.plan().manual_protect,
            (kvm->check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) &
             KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0)
      << g.tracker.description();
  expect_exact_harvests(g);
}

TEST(KvmHost, AFullDirtyRingIsHarvestedAndTheGuestGoesOn) {
  REQUIRE_KVM(kvm);
  if (!kernel_has_dirty_ring(*kvm)) GTEST_SKIP() << "this kernel has no dirty ring (Linux 5.11+)";
  // The smallest ring KVM takes: a page (256 entries), or with Intel's PML, whose 512 entries
  // KVM keeps in reserve, 1024. KVM exits when fewer than its reserve are left; the guest
  // writes more pages than the ring holds, so it must be harvested on the way.
  DirtyTrackerOptions small;
  std::optional<DirtyGuest> g;
  for (const std::uint32_t entries : {256u, 1024u}) {
    small.ring_entries = entries;
    try {
      g.emplace(*kvm, small, 2048);
      break;
    } catch (const Error& e) {
      if (entries == 1024) throw;
    }
  }
  const std::uint32_t count = small.ring_entries + 150;
  g->write_pages(0, count, 1);
  EXPECT_GE(g->tracker.counters().ring_full_exits, 1u);
  EXPECT_EQ(g->tracker.harvest(), DirtyGuest::pages(0, count, 1));
  // Each write was logged once, except that the write in flight at each ring-full exit is
  // logged twice: KVM made its page writable and pushed it, exits before the guest retries the
  // store, and the reset write-protects the page again, so the retried store faults anew.
  const DirtyCounters counters = g->tracker.counters();
  EXPECT_GE(counters.entries, count);
  EXPECT_LE(counters.entries, count + counters.ring_full_exits);

  // Without a handler the run ends with an Error that says what to do.
  DirtyGuest unhandled(*kvm, small, 2048, false);
  try {
    unhandled.write_pages(0, count, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KVM_EXIT_DIRTY_RING_FULL"), std::string::npos);
  }
}

TEST(KvmHost, TheDirtyRingIsRefusedOnceAVcpuExists) {
  REQUIRE_KVM(kvm);
  if (!kernel_has_dirty_ring(*kvm)) GTEST_SKIP() << "this kernel has no dirty ring (Linux 5.11+)";
  Vm vm = kvm->create_vm();
  const Vcpu vcpu = vm.create_vcpu(0);
  try {
    DirtyTracker tracker(vm);
    FAIL() << "the ring was enabled after a vCPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exist"), std::string::npos) << e.what();
  }
  DirtyTrackerOptions bitmap;
  bitmap.allow_ring = false;
  EXPECT_NO_THROW(DirtyTracker(vm, bitmap)) << "the bitmap needs no vCPU-less VM";
}

}  // namespace
}  // namespace vfiokit::kvm

// Runs inside the rig (tools/rig/run --with-qemu): how long from starting a program until a
// guest runs its first instruction and makes its first mailbox write, three ways, interleaved
// in one run and all timed from the fork() that starts them (CLOCK_MONOTONIC):
//   floor   this program again (--floor): only KVM_CREATE_VM, one page, KVM_CREATE_VCPU and
//           KVM_RUN until one OUT instruction: the least any VMM must do
//   payload `vfiokit launch BDF --payload faulty --json`: binds the group, opens VFIO, maps guest
//           RAM for DMA, builds the PCI bus, runs the payload (its times come back in the JSON)
//   qemu    `vfiokit launch BDF --qemu --json -- ...`: binds, then QEMU (-accel kvm) boots the
//           same payload image through its multiboot header; two isa-debugcon ports on FIFOs
//           stand for the mailbox's STARTED (0x505) and LOG (0x503) ports
// "First instruction" is the STARTED write (the floor's one OUT); "first mailbox write" is the
// payload's first log byte. Prints medians over N rounds and their ratios.
//   launch_bench VENDOR:DEVICE [N]
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_support.h"

using namespace vfiokit;

namespace {

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "launch_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// The floor: a bare VM, written against <linux/kvm.h> directly so nothing of vfiokit is in it.
// Real mode at address 0: mov $0x505,%dx; out %al,%dx; hlt. Prints the moment of the exit.
int run_floor() {
  const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) die("mmap");
  const unsigned char code[] = {0xba, 0x05, 0x05, 0xee, 0xf4};  // 16-bit code
  std::memcpy(page, code, sizeof code);
  kvm_userspace_memory_region region{};
  region.memory_size = 4096;
  region.userspace_addr = reinterpret_cast<std::uint64_t>(page);
  if (::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  const int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  const int run_size = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  auto* run = static_cast<kvm_run*>(::mmap(nullptr, static_cast<std::size_t>(run_size),
                                           PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0));
  if (run == MAP_FAILED) die("mmap kvm_run");
  kvm_sregs sregs{};
  if (::ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  kvm_regs regs{};
  regs.rip = 0;
  regs.rflags = 2;
  if (::ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  if (::ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
  const std::int64_t at = now_ns();
  if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x505) {
    std::fprintf(stderr, "launch_bench: the floor guest exited with reason %u\n", run->exit_reason);
    return 1;
  }
  std::printf("%lld\n", static_cast<long long>(at));
  return 0;
}

// The program's stdout comes back through a pipe; its stderr goes where ours does.
ChildProcess spawn(const std::vector<std::string>& argv) {
  ChildOptions options;
  options.output = ChildOutput::capture_stdout;
  return ChildProcess::spawn(argv, options);
}

struct Sample {
  double first_instruction_ms = 0;
  double first_mailbox_ms = 0;
};

double ms(std::int64_t from, std::int64_t to) { return static_cast<double>(to - from) / 1e6; }

Sample floor_round(const std::string& self) {
  const std::int64_t start = now_ns();
  ChildProcess child = spawn({self, "--floor"});
  const std::string out = child.read_output();
  if (!child.wait().success()) throw Error("bench", "the floor program failed");
  const double at = ms(start, std::stoll(out));
  return {at, at};  // its one OUT is both
}

Sample payload_round(const std::string& bdf) {
  const std::int64_t start = now_ns();
  ChildProcess child = spawn({"vfiokit", "launch", bdf, "--payload", "faulty", "--json"});
  const std::string out = child.read_output();
  child.wait();  // faulty fails on purpose (exit 1); its timings are what counts
  const auto json = nlohmann::json::parse(out);
  const auto& timing = json.at("timing");
  return {ms(start, timing.at("first_instruction_monotonic_ns").get<std::int64_t>()),
          ms(start, timing.at("first_mailbox_monotonic_ns").get<std::int64_t>())};
}

// A FIFO for one QEMU pipe chardev (QEMU writes PATH.out), opened for reading first.
int open_fifo(const std::string& path) {
  ::unlink((path + ".in").c_str());
  ::unlink((path + ".out").c_str());
  if (::mkfifo((path + ".in").c_str(), 0600) < 0 || ::mkfifo((path + ".out").c_str(), 0600) < 0)
    die("mkfifo");
  const int fd = ::open((path + ".out").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open fifo");
  return fd;
}

Sample qemu_round(const std::string& bdf, const std::string& payload_path) {
  const int started = open_fifo("/tmp/launch-bench-started");
  const int log = open_fifo("/tmp/launch-bench-log");
  const std::int64_t start = now_ns();
  ChildProcess child = spawn({"vfiokit",  "launch",
                              bdf,        "--qemu",
                              "--json",   "--",
                              "-M",       "q35",
                              "-accel",   "kvm",
                              "-cpu",     "host",
                              "-m",       "16M",
                              "-display", "none",
                              "-vga",     "none",
                              "-monitor", "none",
                              "-serial",  "none",
                              "-nic",     "none",
                              "-kernel",  payload_path,
                              "-chardev", "pipe,id=started,path=/tmp/launch-bench-started",
                              "-device",  "isa-debugcon,iobase=0x505,chardev=started",
                              "-chardev", "pipe,id=log,path=/tmp/launch-bench-log",
                              "-device",  "isa-debugcon,iobase=0x503,chardev=log"});
  std::optional<std::int64_t> first_instruction, first_mailbox;
  const std::int64_t deadline = start + std::int64_t{120} * 1000000000;
  while ((!first_instruction || !first_mailbox) && now_ns() < deadline) {
    pollfd fds[2] = {{started, POLLIN, 0}, {log, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    const std::int64_t at = now_ns();
    char buffer[256];
    if ((fds[0].revents & POLLIN) && ::read(started, buffer, sizeof buffer) > 0 &&
        !first_instruction) {
      first_instruction = at;
    }
    if ((fds[1].revents & POLLIN) && ::read(log, buffer, sizeof buffer) > 0 && !first_mailbox) {
      first_mailbox = at;
    }
  }
  child.kill(SIGTERM);  // passed on to QEMU; the devices are restored
  child.read_output();
  child.wait();
  ::close(started);
  ::close(log);
  if (!first_instruction || !first_mailbox)
    throw Error("bench", "QEMU's guest never wrote to the debug ports");
  return {ms(start, *first_instruction), ms(start, *first_mailbox)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--floor") return run_floor();
  if (argc < 2) {
    std::fprintf(stderr, "usage: launch_bench VENDOR:DEVICE [N]\n");
    return 2;
  }
  try {
    const std::string bdf = bench::find_function(argv[1]).to_string();
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string payload_path = "/opt/vfiokit/payloads/faulty.bin";
    if (!std::filesystem::exists(payload_path)) {
      throw Error("bench", payload_path + " is missing: run in the rig with --with-qemu");
    }
    std::vector<Sample> floor, payload, qemu;
    // Interleaved, so drift in the emulated machine's speed touches all three alike.
    for (int round = 0; round < rounds; ++round) {
      floor.push_back(floor_round(self));
      payload.push_back(payload_round(bdf));
      qemu.push_back(qemu_round(bdf, payload_path));
      std::fprintf(stderr, "round %d/%d: floor %.1f ms, payload %.1f/%.1f ms, qemu %.1f/%.1f ms\n",
                   round + 1, rounds, floor.back().first_instruction_ms,
                   payload.back().first_instruction_ms, payload.back().first_mailbox_ms,
                   qemu.back().first_instruction_ms, qemu.back().first_mailbox_ms);
    }
    auto column = [](const std::vector<Sample>& samples, double Sample::*field) {
      std::vector<double> v;
      for (const auto& s : samples) v.push_back(s.*field);
      return median(v);
    };
    const double floor_ms = column(floor, &Sample::first_instruction_ms);
    const double payload_first = column(payload, &Sample::first_instruction_ms);
    const double payload_mailbox = column(payload, &Sample::first_mailbox_ms);
    const double qemu_first = column(qemu, &Sample::first_instruction_ms);
    const double qemu_mailbox = column(qemu, &Sample::first_mailbox_ms);
    std::printf("device %s, %d rounds, medians in emulated ms (compare ratios only)\n", bdf.c_str(),
                rounds);
    std::printf("%-34s %12s %12s\n", "from fork() to", "first instr", "first mailbox");
    std::printf("%-34s %12.1f %12.1f\n", "floor (bare VM, one OUT)", floor_ms, floor_ms);
    std::printf("%-34s %12.1f %12.1f\n", "vfiokit launch --payload", payload_first,
                payload_mailbox);
    std::printf("%-34s %12.1f %12.1f\n", "vfiokit launch --qemu", qemu_first, qemu_mailbox);
    std::printf("ratio payload / floor: %.1f (first instruction)\n", payload_first / floor_ms);
    std::printf("ratio qemu / floor:    %.1f (first instruction)\n", qemu_first / floor_ms);
    std::printf("ratio qemu / payload:  %.2f (first instruction), %.2f (first mailbox write)\n",
                qemu_first / payload_first, qemu_mailbox / payload_mailbox);
  } catch (const Error& e) {
    std::fprintf(stderr, "launch_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

#include "vfiokit/kvm/run_loop.h"

#include <signal.h>

#include <mutex>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::kvm {
namespace {

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = [](int) {};  // only to interrupt KVM_RUN; no SA_RESTART
    sigemptyset(&action.sa_mask);
    ::sigaction(kVcpuKickSignal, &action, nullptr);
  });
}

}  // namespace

void RunLoop::on_io(std::uint16_t first_port, std::uint16_t last_port, IoHandler handler) {
  io_.push_back({first_port, last_port, std::move(handler)});
}

void RunLoop::on_mmio(std::uint64_t first, std::uint64_t last, MmioHandler handler) {
  mmio_.push_back({first, last, std::move(handler)});
}

void RunLoop::run(Vcpu& vcpu) {
  install_kick_handler();
  thread_ = ::pthread_self();
  have_thread_ = true;
  // A vCPU an earlier RunLoop stopped still has immediate_exit set: it would return EINTR
  // forever. Cleared before running_ is published, so a stop() from now on sets it again.
  vcpu.set_immediate_exit(false);
  running_ = &vcpu;
  struct Reset {
    RunLoop& loop;
    ~Reset() {
      loop.running_ = nullptr;
      loop.have_thread_ = false;
    }
  } reset{*this};
  while (!stop_) {
    const VcpuExit exit = vcpu.run();
    ++exits_;
    switch (exit.kind) {
      case ExitKind::interrupted:
        continue;  // the loop condition sees a stop request
      case ExitKind::io: {
        const auto it = std::find_if(io_.begin(), io_.end(), [&](const IoRange& r) {
          return exit.io.port >= r.first && exit.io.port <= r.last;
        });
        if (it == io_.end()) {
          throw Error("guest I/O", std::string(exit.io.out ? "out to" : "in from") + " port " +
                                       hex(exit.io.port) + " that nothing handles")
              .with("vcpu", std::to_string(vcpu.id()))
              .with("size", std::to_string(exit.io.size));
        }
        it->handler(exit.io, vcpu.io_data(exit.io));
        continue;
      }
      case ExitKind::mmio: {
        const auto it = std::find_if(mmio_.begin(), mmio_.end(), [&](const MmioRange& r) {
          return exit.mmio.address >= r.first && exit.mmio.address <= r.last;
        });
        if (it == mmio_.end()) {
          throw Error("guest MMIO", std::string(exit.mmio.write ? "write to " : "read from ") +
                                        hex(exit.mmio.address) + ", outside memory and devices")
              .with("vcpu", std::to_string(vcpu.id()))
              .with("length", std::to_string(exit.mmio.length));
        }
        it->handler(exit.mmio, vcpu.mmio_data().first(std::min<std::size_t>(exit.mmio.length, 8)));
        continue;
      }
      case ExitKind::dirty_ring_full:
        if (!dirty_ring_full_) throw exit_error(exit, vcpu.id());
        dirty_ring_full_(vcpu);
        continue;
      default:
        throw exit_error(exit, vcpu.id());
    }
  }
}

void RunLoop::stop() noexcept {
  stop_ = true;
  if (Vcpu* vcpu = running_.load()) vcpu->set_immediate_exit(true);
  if (have_thread_) ::pthread_kill(thread_, kVcpuKickSignal);
}

}  // namespace vfiokit::kvm

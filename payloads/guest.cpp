#include "vfiokit/payloads/guest.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/gic.h"
#include "vfiokit/payloads/mailbox.h"

namespace vfiokit::payloads {
namespace {

#if defined(__x86_64__)
constexpr bool kX86 = true;
#else
constexpr bool kX86 = false;
#endif

// The first thing a PayloadGuest makes: on a host that cannot run the image, the refusal comes
// before any KVM call can fail less clearly. An arm64 host runs arm64 images only (irq-probe's
// arm64 build), which carry VFIOKIT_ARM64_IMAGE_MAGIC; every other host, x86 ones.
MappedMemory allocate_ram(std::size_t size, std::span<const std::uint8_t> image, bool irqchip) {
#if defined(__aarch64__)
  std::uint64_t magic = 0;
  if (image.size() >= VFIOKIT_ARM64_IMAGE_MAGIC_OFFSET + sizeof magic) {
    std::memcpy(&magic, image.data() + VFIOKIT_ARM64_IMAGE_MAGIC_OFFSET, sizeof magic);
  }
  if (magic != VFIOKIT_ARM64_IMAGE_MAGIC) {
    throw Error("run a payload guest",
                "not on this architecture: this image is not an arm64 payload (vfiokit builds "
                "irq-probe for arm64; its other payloads are 32-bit x86 programs)")
        .hint("run x86 payloads on an x86_64 host");
  }
  if (!kvm::ram_below_gic(size)) {
    throw Error("run a payload guest", human_size(size) + " of guest RAM would reach the GIC at " +
                                           hex(kvm::kGicDistributor));
  }
  if (size < VFIOKIT_ARM64_RUNTIME_RAM) {
    throw Error("run a payload guest", "the arm64 runtime keeps its GIC tables up to " +
                                           hex(VFIOKIT_ARM64_RUNTIME_RAM) + ", past " +
                                           human_size(size) + " of guest RAM");
  }
  if (!irqchip) {
    throw Error("run a payload guest",
                "the arm64 runtime sets up the GIC at start, so its VM needs the irqchip");
  }
#else
  static_cast<void>(image), static_cast<void>(irqchip);
  kvm::require_x86_guests("run a payload guest");
#endif
  void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (address == MAP_FAILED) {
    throw Error::from_last_errno("allocate guest RAM").with("size", human_size(size));
  }
  return MappedMemory(address, size);
}

// x86 KVM wants the irqchip before any vCPU exists, so the VM is completed here, in the member
// initializer of the vCPU; arm64's vGIC is finished once its one vCPU exists, and before any
// route is committed, since finishing it resets the routing table.
kvm::Vcpu first_vcpu(kvm::Vm& vm, bool irqchip) {
  if (irqchip) vm.create_irqchip();
  kvm::Vcpu vcpu = vm.create_vcpu(0);
  vm.finish_irqchip();
  return vcpu;
}

// The mailbox's MMIO window (arm64 payloads) as the port writes it stands for.
kvm::IoExit mailbox_port_write(const kvm::MmioExit& mmio) {
  kvm::IoExit io;
  io.port = static_cast<std::uint16_t>(VFIOKIT_MAILBOX_FIRST +
                                       (mmio.address - VFIOKIT_MAILBOX_MMIO_BASE) / 4);
  io.size = static_cast<std::uint8_t>(mmio.length);
  io.out = mmio.write;
  io.count = 1;
  return io;
}

std::optional<kvm::DirtyTracker> dirty_tracker_for(kvm::Vm& vm, const GuestOptions& options) {
  if (!options.dirty_tracking) return std::nullopt;
  return std::optional<kvm::DirtyTracker>(std::in_place, vm, *options.dirty_tracking);
}

}  // namespace

std::optional<std::string> GuestLog::add(std::uint8_t byte) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string escaped;
  if (byte == '\\') {
    escaped = "\\\\";
  } else if ((byte >= 0x20 && byte < 0x7f) || byte == '\t' || byte == '\n') {
    escaped = static_cast<char>(byte);
  } else {
    escaped = {'\\', 'x', kDigits[byte >> 4], kDigits[byte & 0xf]};
  }
  if (escaped.size() > limit_ - std::min(limit_, kept_.size())) {
    ++dropped_;
    return std::nullopt;
  }
  kept_ += escaped;
  if (byte != '\n') return std::nullopt;
  std::string line = kept_.substr(line_start_, kept_.size() - 1 - line_start_);
  line_start_ = kept_.size();
  return line;
}

std::string GuestLog::text() const {
  if (dropped_ == 0) return kept_;
  std::string text = kept_;
  if (!text.empty() && text.back() != '\n') text += '\n';
  return text + "[vfiokit: " + std::to_string(dropped_) + " more bytes of log dropped; " +
         human_size(limit_) + " are kept]\n";
}

void MailboxQueue::push(const MailboxEvent& event) {
  const bool verdict = event.port == VFIOKIT_MAILBOX_DONE && !done_queued_;
  if (events_.size() >= limit_ && !verdict) {
    ++dropped_;
    return;
  }
  if (verdict) done_queued_ = true;
  events_.push_back(event);
}

std::optional<MailboxEvent> MailboxQueue::pop() {
  if (events_.empty()) return std::nullopt;
  const MailboxEvent event = events_.front();
  events_.pop_front();
  return event;
}

std::optional<MailboxEvent> MailboxQueue::take(std::uint16_t port) {
  const auto it = std::find_if(events_.begin(), events_.end(),
                               [port](const MailboxEvent& e) { return e.port == port; });
  if (it == events_.end()) return std::nullopt;
  const MailboxEvent event = *it;
  events_.erase(it);
  return event;
}

namespace {

std::uint8_t probe_vector(std::uint32_t n, std::uint8_t first_vector) {
  if (n > 0xffu - first_vector) {
    throw Error("irq-probe", "device vector " + std::to_string(n) + " would be guest vector " +
                                 hex(first_vector + n) + ", past 0xff");
  }
  return static_cast<std::uint8_t>(first_vector + n);
}

}  // namespace

GuestOptions irq_probe_options(std::uint32_t count, std::uint8_t first_vector) {
  vfiokit_irq_params params{};
  if (count > sizeof params.vectors) {
    throw Error("irq-probe", std::to_string(count) + " vectors; it takes at most " +
                                 std::to_string(sizeof params.vectors));
  }
  params.magic = VFIOKIT_IRQ_PARAMS_MAGIC;
  params.count = count;
  params.device_id = VFIOKIT_GUEST_DEVICE_DEVFN;
  for (std::uint32_t n = 0; n < count; ++n) params.vectors[n] = probe_vector(n, first_vector);
  GuestOptions options;
  options.parameters.resize(sizeof params);
  std::memcpy(options.parameters.data(), &params, sizeof params);
  return options;
}

msix::MsiMessage irq_probe_message(std::uint32_t n, std::uint8_t first_vector) {
  const std::uint8_t vector = probe_vector(n, first_vector);
  if constexpr (kX86) return msix::encode_msi({0, vector});
  static_cast<void>(vector);
  return kvm::its_msi(VFIOKIT_GUEST_DEVICE_DEVFN, n);
}

PayloadGuest::PayloadGuest(const kvm::KvmSystem& system, std::span<const std::uint8_t> image,
                           const GuestOptions& options)
    : memory_(allocate_ram(options.memory, image, options.irqchip)),
      vm_(system.create_vm()),
      dirty_(dirty_tracker_for(vm_, options)),
      // x86 keeps the PIC/IOAPIC pins' routes in every table; arm64's vGIC has no such pins.
      routes_(vm_, options.irqchip && kX86),
      vcpu_(first_vcpu(vm_, options.irqchip)),
      vcpu_stats_(kvm::StatsReader::open(vcpu_.fd())),
      vm_stats_(kvm::StatsReader::open(vm_.fd())) {
  if (VFIOKIT_PAYLOAD_ADDRESS + image.size() > options.memory) {
    throw Error("load payload", "a " + human_size(image.size()) + " image does not fit in " +
                                    human_size(options.memory) + " of guest RAM");
  }
  if (options.parameters.size() > 4096) throw Error("load payload", "parameters exceed one page");
  std::memcpy(memory_.bytes().data() + VFIOKIT_PAYLOAD_ADDRESS, image.data(), image.size());
  std::memcpy(memory_.bytes().data() + VFIOKIT_PARAMS_ADDRESS, options.parameters.data(),
              options.parameters.size());
  if (dirty_) {
    dirty_->add_memory(0, 0, memory_.bytes());
    dirty_->attach(vcpu_);
    loop_.on_dirty_ring_full(dirty_->ring_full_handler());
  } else {
    vm_.add_memory(0, 0, memory_.bytes());
  }
  if constexpr (kX86) {
    kvm::enter_protected_mode(vcpu_, VFIOKIT_PAYLOAD_ADDRESS, VFIOKIT_STACK_TOP);
    loop_.on_io(
        VFIOKIT_MAILBOX_FIRST, VFIOKIT_MAILBOX_LAST,
        [this](const kvm::IoExit& io, std::span<std::uint8_t> data) { on_mailbox(io, data); });
  } else {
    kvm::enter_aarch64_el1(vcpu_, VFIOKIT_PAYLOAD_ADDRESS, VFIOKIT_STACK_TOP);
    loop_.on_mmio(VFIOKIT_MAILBOX_MMIO_BASE,
                  VFIOKIT_MAILBOX_MMIO_BASE + VFIOKIT_MAILBOX_MMIO_SIZE - 1,
                  [this](const kvm::MmioExit& mmio, std::span<std::uint8_t> data) {
                    on_mailbox(mailbox_port_write(mmio), data);
                  });
  }
}

PayloadGuest::~PayloadGuest() { stop(); }

void PayloadGuest::start() {
  if (thread_.joinable()) throw Error("start guest", "already running");
  thread_ = std::thread([this] { run_vcpu(); });
}

void PayloadGuest::stop() noexcept {
  loop_.stop();
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, std::uint64_t> PayloadGuest::vcpu_statistics() const {
  if (!vcpu_stats_) return {};
  try {
    return vcpu_stats_->read();
  } catch (const Error& e) {
    log::debug("vCPU statistics: {}", e.what());
    return {};
  }
}

namespace {

std::optional<std::vector<kvm::StatSample>> samples_of(
    const std::optional<kvm::StatsReader>& reader, const char* what) {
  if (!reader) return std::nullopt;
  try {
    return reader->read_samples();
  } catch (const Error& e) {
    log::debug("{} statistics: {}", what, e.what());
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::vector<kvm::StatSample>> PayloadGuest::vm_statistic_samples() const {
  return samples_of(vm_stats_, "VM");
}

std::optional<std::vector<std::vector<kvm::StatSample>>> PayloadGuest::vcpu_statistic_samples()
    const {
  auto samples = samples_of(vcpu_stats_, "vCPU");
  if (!samples) return std::nullopt;
  return std::vector<std::vector<kvm::StatSample>>{std::move(*samples)};
}

void PayloadGuest::run_vcpu() noexcept {
  try {
    loop_.run(vcpu_);
  } catch (...) {
    std::lock_guard lock(mutex_);
    failure_ = std::current_exception();
  }
  std::lock_guard lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

void PayloadGuest::on_mailbox(const kvm::IoExit& io, std::span<std::uint8_t> data) {
  if (!io.out) {
    std::memset(data.data(), 0xff, data.size());  // nothing to read from the mailbox
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  std::uint32_t value = 0;
  std::memcpy(&value, data.data(), std::min<std::size_t>(data.size(), sizeof value));
  std::lock_guard lock(mutex_);
  if (io.port == VFIOKIT_MAILBOX_LOG) {
    for (std::uint8_t c : data) {
      if (const auto line = log_.add(c)) {
        ++log_lines_;
        log::debug("guest: {}", *line);
      }
    }
    return;
  }
  if (io.port == VFIOKIT_MAILBOX_REPEATED) {
    ++repeated_deliveries_;
    log::debug("guest: the runtime ignored a second delivery of vector {:#x} (interrupts were off)",
               value);
    return;
  }
  events_.push({io.port, value, now});
  changed_.notify_all();
}

std::uint64_t PayloadGuest::repeated_deliveries() const {
  std::lock_guard lock(mutex_);
  return repeated_deliveries_;
}

std::optional<MailboxEvent> PayloadGuest::next_event(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [this] { return !events_.empty() || finished_; });
  if (auto event = events_.pop()) return event;
  if (failure_) std::rethrow_exception(failure_);
  return std::nullopt;
}

std::optional<MailboxEvent> PayloadGuest::wait_for(std::uint16_t port,
                                                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (auto event = events_.take(port)) return event;
    if (finished_) {
      if (failure_) std::rethrow_exception(failure_);
      return std::nullopt;
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
}

std::string PayloadGuest::log() const {
  std::lock_guard lock(mutex_);
  return log_.text();
}

std::uint64_t PayloadGuest::log_lines() const {
  std::lock_guard lock(mutex_);
  return log_lines_;
}

std::uint64_t PayloadGuest::log_bytes_dropped() const {
  std::lock_guard lock(mutex_);
  return log_.dropped();
}

std::uint64_t PayloadGuest::events_dropped() const {
  std::lock_guard lock(mutex_);
  return events_.dropped();
}

}  // namespace vfiokit::payloads

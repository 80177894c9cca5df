#include "vfiokit/payloads/guest.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/payloads/mailbox.h"

namespace vfiokit::payloads {
namespace {

// The first thing a PayloadGuest makes: on a host that cannot run its x86 guest, the refusal
// comes before any KVM call can fail less clearly.
MappedMemory allocate_ram(std::size_t size) {
  kvm::require_x86_guests("run a payload guest");
  void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (address == MAP_FAILED) {
    throw Error::from_last_errno("allocate guest RAM").with("size", human_size(size));
  }
  return MappedMemory(address, size);
}

// KVM wants the irqchip before any vCPU exists, so the VM is completed here, in the member
// initializer of the vCPU.
kvm::Vcpu first_vcpu(kvm::Vm& vm, bool irqchip) {
  if (irqchip) vm.create_irqchip();
  return vm.create_vcpu(0);
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

PayloadGuest::PayloadGuest(const kvm::KvmSystem& system, std::span<const std::uint8_t> image,
                           const GuestOptions& options)
    : memory_(allocate_ram(options.memory)),
      vm_(system.create_vm()),
      dirty_(dirty_tracker_for(vm_, options)),
      routes_(vm_, options.irqchip),
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
  kvm::enter_protected_mode(vcpu_, VFIOKIT_PAYLOAD_ADDRESS, VFIOKIT_STACK_TOP);
  loop_.on_io(
      VFIOKIT_MAILBOX_FIRST, VFIOKIT_MAILBOX_LAST,
      [this](const kvm::IoExit& io, std::span<std::uint8_t> data) { on_mailbox(io, data); });
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
  events_.push({io.port, value, now});
  changed_.notify_all();
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

#include "vfiokit/vmm/hang_report.h"

#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

std::optional<std::uint64_t> delta(const std::optional<std::uint64_t>& before,
                                   const std::optional<std::uint64_t>& after) {
  if (!before || !after || *after < *before) return std::nullopt;
  return *after - *before;
}

std::string count_text(std::uint64_t count, std::string_view one, std::string_view many) {
  return std::to_string(count) + " " + std::string(count == 1 ? one : many);
}

}  // namespace

std::string_view to_string(HangCause cause) noexcept {
  switch (cause) {
    case HangCause::running:
      return "running";
    case HangCause::halted_for_good:
      return "halted-for-good";
    case HangCause::device_silent:
      return "device-silent";
    case HangCause::not_injected:
      return "not-injected";
    case HangCause::lost_wakeup:
      return "lost-wakeup";
    case HangCause::unknown:
      return "unknown";
  }
  return "unknown";
}

HangReport diagnose_hang(const InterruptCounts& before, const InterruptCounts& after,
                         const kvm::VcpuState& vcpu) {
  HangReport report;
  report.vcpu = vcpu;
  std::uint64_t raised = 0;
  for (const auto& [name, count] : after.host) {
    const auto it = before.host.find(name);
    const std::uint64_t earlier = it == before.host.end() ? 0 : it->second;
    if (count > earlier) {
      report.host_raised[name] = count - earlier;
      raised += count - earlier;
    }
  }
  report.injected = delta(before.injections, after.injections);
  report.woke = delta(before.halt_wakeups, after.halt_wakeups);
  if (!vcpu.known) {
    report.cause = HangCause::unknown;
  } else if (!vcpu.halted) {
    report.cause = HangCause::running;
  } else if (!vcpu.interrupts_enabled) {
    report.cause = HangCause::halted_for_good;
  } else if (vcpu.lapic && vcpu.lapic->deliverable()) {
    report.cause = HangCause::lost_wakeup;
  } else if (raised == 0) {
    report.cause = HangCause::device_silent;
  } else if (!report.injected) {
    report.cause = HangCause::unknown;
  } else if (*report.injected == 0) {
    report.cause = HangCause::not_injected;
  } else {
    report.cause = HangCause::unknown;
  }
  return report;
}

std::string HangReport::describe() const {
  std::string text;
  if (!vcpu.known) {
    text = "the vCPU's state is unknown";
  } else if (vcpu.halted) {
    text = "the vCPU halted at " + hex(vcpu.rip) + " with interrupts " +
           (vcpu.interrupts_enabled ? "enabled" : "disabled");
  } else {
    text = "the vCPU was running at " + hex(vcpu.rip);
  }
  std::uint64_t raised = 0;
  std::vector<std::string> handlers;
  for (const auto& [name, count] : host_raised) {
    raised += count;
    handlers.push_back(name + " " + std::to_string(count));
  }
  text += "; while it waited the device raised " + count_text(raised, "interrupt", "interrupts") +
          " on the host" + (handlers.empty() ? "" : " (" + join(handlers, ", ") + ")");
  if (injected) text += ", KVM injected " + std::to_string(*injected);
  if (woke) text += " and the vCPU woke " + count_text(*woke, "time", "times");
  if (vcpu.lapic) {
    auto vectors = [](const std::vector<std::uint8_t>& set) {
      std::vector<std::string> names;
      for (std::uint8_t v : set) names.push_back(hex(v));
      return names.empty() ? std::string("none") : join(names, " ");
    };
    text += "; its local APIC holds pending " + vectors(vcpu.lapic->pending) + ", in service " +
            vectors(vcpu.lapic->in_service) + ", priority " + hex(vcpu.lapic->processor_priority) +
            ", its timer " + vcpu.lapic->timer_text();
  }
  switch (cause) {
    case HangCause::running:
      text += ": the payload is busy, not waiting";
      break;
    case HangCause::halted_for_good:
      text += ": nothing can wake it (a payload bug)";
      break;
    case HangCause::device_silent:
      text += ": the device never signalled";
      break;
    case HangCause::not_injected:
      text += ": KVM did not deliver the device's interrupt (check its route and irqfd)";
      break;
    case HangCause::lost_wakeup:
      text += ": vector " + hex(*vcpu.lapic->deliverable()) +
              " could be taken, yet the halted vCPU was not woken: the wake-up was lost in the "
              "host's KVM";
      break;
    case HangCause::unknown:
      break;
  }
  return text;
}

}  // namespace vfiokit::vmm

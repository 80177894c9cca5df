#include "tools/vfiokit/binding_session.h"

#include <unistd.h>

#include <ostream>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "bind/execute.h"
#include "bind/lock.h"

namespace vfiokit::cli {

Error refusal_error(const bind::Plan& plan) {
  Error e("bind", "refused by a safety check; nothing was changed");
  e.kind(ErrorKind::refused);
  std::vector<std::string> flags;
  for (const auto& r : plan.refusals) {
    e.with(r.bdf.to_string() + " " + r.check, r.reason);
    if (!r.force_flag.empty()) flags.push_back(r.force_flag);
  }
  if (!flags.empty()) {
    std::string text = "if you are sure, override with";
    for (const auto& f : flags) text += ' ' + f;
    e.hint(text);
  }
  return e;
}

BindingSession::BindingSession(const HostPaths& paths, const pci::Bdf& bdf,
                               const bind::ForceFlags& force, std::chrono::milliseconds wait,
                               std::ostream* log)
    : paths_(paths), wait_(wait), log_(log) {
  const auto run_dir = paths_.run / "vfiokit";
  bind::StateLock lock(run_dir, wait_);
  bind::Journal journal(run_dir);
  const std::vector<pci::Bdf> requested{bdf};
  const auto view = bind::gather_host_view(paths_, requested, journal, ::getpid());
  const auto plan = bind::plan_bind(view, requested, force);
  if (plan.refused()) throw refusal_error(plan);
  bind::ExecuteOptions options;
  options.pid = ::getpid();
  bind::LiveSysfsOps ops;
  const auto result = bind::execute_bind(paths_, plan, ops, journal, options);
  for (const auto& device : plan.devices) {
    if (device.action == bind::PlannedAction::stay) continue;
    endpoints_.push_back(device.bdf);
    if (device.action == bind::PlannedAction::move) moved_.push_back(device.bdf);
  }
  if (log_) {
    for (const auto& outcome : result.devices)
      *log_ << "  " << outcome.bdf.to_string() << "  " << outcome.detail << '\n';
    *log_ << std::flush;  // a guest may run for long: say now what moved
  }
}

BindingSession::~BindingSession() {
  if (restored_) return;
  try {
    restore();
  } catch (const Error& e) {
    spdlog::error("{} ({})", e.what(), e.hint());
  }
}

void BindingSession::restore() {
  restored_ = true;
  if (moved_.empty()) return;
  try {
    give_back();
  } catch (Error& e) {
    if (e.hint().empty()) e.hint("run `vfiokit restore --all` to finish giving the devices back");
    throw;
  }
}

void BindingSession::give_back() {
  const auto run_dir = paths_.run / "vfiokit";
  bind::StateLock lock(run_dir, wait_);
  bind::Journal journal(run_dir);
  const auto view = bind::gather_host_view(paths_, moved_, journal, ::getpid());
  const auto plan = bind::plan_restore(view, moved_, {});
  if (plan.refused()) throw refusal_error(plan);
  bind::ExecuteOptions options;
  options.pid = ::getpid();
  bind::LiveSysfsOps ops;
  const auto result = bind::execute_homecoming(paths_, plan, ops, journal, options);
  if (log_) {
    for (const auto& outcome : result.devices)
      *log_ << "  " << outcome.bdf.to_string() << "  " << outcome.detail << '\n';
    *log_ << std::flush;  // a guest may run for long: say now what moved
  }
}

}  // namespace vfiokit::cli

#include "vfiokit/bind/binding_session.h"

#include <unistd.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/bind/lock.h"

namespace vfiokit::bind {

BindingSession::BindingSession(const HostPaths& paths, const pci::Bdf& bdf, SessionOptions options)
    : paths_(paths), options_(std::move(options)) {
  const auto run_dir = paths_.run / "vfiokit";
  const StateLock lock(run_dir, LockOptions{options_.lock_wait, "/proc", options_.interrupted});
  Journal journal(run_dir);
  const std::vector<pci::Bdf> requested{bdf};
  const HostView view = gather_host_view(paths_, requested, journal, ::getpid());
  const Plan plan = plan_bind(view, requested, options_.force);
  if (plan.refused()) throw refusal_error(plan, "bind");
  ExecuteOptions execute;
  execute.pid = ::getpid();
  execute.interrupted = options_.interrupted;
  SysfsOps& ops = options_.ops ? *options_.ops : live_ops_;
  const ExecuteResult result = execute_bind(paths_, plan, ops, journal, execute);
  endpoints_ = plan.endpoints();
  for (const auto* device : plan.moves()) moved_.push_back(device->bdf);
  report(result);
}

BindingSession::~BindingSession() {
  if (restored_) return;
  try {
    restore();
  } catch (const Error& e) {
    log::error("{} ({})", e.what(), e.hint());
  }
}

void BindingSession::restore() {
  if (std::exchange(restored_, true) || moved_.empty()) return;
  try {
    give_back();
  } catch (Error& e) {
    if (e.hint().empty()) e.hint("run `vfiokit restore --all` to finish giving the devices back");
    throw;
  }
}

void BindingSession::give_back() {
  const auto run_dir = paths_.run / "vfiokit";
  const StateLock lock(run_dir, LockOptions{options_.lock_wait, "/proc", {}});
  Journal journal(run_dir);
  const HostView view = gather_host_view(paths_, moved_, journal, ::getpid());
  const Plan plan = plan_restore(view, moved_, {});
  if (plan.refused()) throw refusal_error(plan, "restore");
  ExecuteOptions execute;
  execute.pid = ::getpid();
  SysfsOps& ops = options_.ops ? *options_.ops : live_ops_;
  report(execute_homecoming(paths_, plan, ops, journal, execute));
}

void BindingSession::report(const ExecuteResult& result) const {
  if (!options_.on_outcome) return;
  for (const auto& outcome : result.devices) options_.on_outcome(outcome);
}

}  // namespace vfiokit::bind

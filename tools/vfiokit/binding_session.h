// Devices put on vfio-pci for the length of one run (launch), and given back afterwards: the
// same checks, journal, lock and rollback as `vfiokit bind`, with the restore guaranteed.
#pragma once

#include <chrono>
#include <iosfwd>
#include <vector>

#include "base/error.h"
#include "base/host_paths.h"
#include "bind/plan.h"

namespace vfiokit::cli {

class BindingSession {
 public:
  // Plans and binds the group closure of `bdf`. Throws a refused Error (exit 3) naming each
  // refusal, or the bind's Error (exit 1, already rolled back). Progress goes to `log` if set.
  BindingSession(const HostPaths& paths, const pci::Bdf& bdf, const bind::ForceFlags& force,
                 std::chrono::milliseconds wait, std::ostream* log);
  // Restores, reporting but not throwing on failure (the journal keeps what did not make it).
  ~BindingSession();
  BindingSession(const BindingSession&) = delete;
  BindingSession& operator=(const BindingSession&) = delete;

  // Every endpoint of the group now on a VFIO driver, bound by this session or before it.
  [[nodiscard]] const std::vector<pci::Bdf>& endpoints() const noexcept { return endpoints_; }
  [[nodiscard]] const std::vector<pci::Bdf>& moved() const noexcept { return moved_; }
  // Gives back what this session bound; throws the homecoming's Error.
  void restore();

 private:
  void give_back();

  HostPaths paths_;
  std::chrono::milliseconds wait_;
  std::ostream* log_;
  std::vector<pci::Bdf> moved_;
  std::vector<pci::Bdf> endpoints_;
  bool restored_ = false;
};

// A refused plan as one Error with exit status 3, each refusal in its context.
Error refusal_error(const bind::Plan& plan);

}  // namespace vfiokit::cli

// What bind, unbind, restore, persist and launch share on the command line: the --force-REASON
// and --wait options (declared once, with one help text each), and the plan as text and as
// JSON (one shape everywhere).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <string_view>
#include <vector>

#include "tools/vfiokit/json.h"
#include "vfiokit/bind/execute.h"
#include "vfiokit/bind/plan.h"

namespace vfiokit::cli {

// One --force-REASON flag per check in `checks` (each must have a force flag).
void add_force_options(CLI::App* sub, bind::ForceFlags& force,
                       std::initializer_list<bind::Check> checks);

// --wait SECONDS, for another vfiokit process to finish (default 30; 0 fails at once). Anything
// but a number of seconds from 0 to a day is a usage error, before anything moves.
inline constexpr double kMaxWaitSeconds = 86400;
void add_wait_option(CLI::App* sub, std::chrono::milliseconds& wait);

// A plan as bind, unbind, restore, persist and launch all show it, in JSON and in text.
// {"devices": [{"bdf", "iommu_group", "requested", "action", "driver", "target_driver",
// "note"}], "refused": [{"bdf", "check", "reason", "force_flag"}], "forced": [...]}
Json plan_json(const bind::Plan& plan);
// On `out`: the title, one aligned line per device (driver -> target, why) and a warning per
// override, when the plan has devices. On `err`: "refused; nothing was changed:", each refusal
// and the flag that overrides it, when it was refused.
void print_plan_report(std::ostream& out, std::ostream& err, const bind::Plan& plan,
                       std::string_view title);
// The refusals alone (persist shows no device lines).
void print_refusals(std::ostream& out, const bind::Plan& plan);

Json outcomes_json(const std::vector<bind::DeviceOutcome>& outcomes);
void print_outcome(std::ostream& out, const bind::DeviceOutcome& outcome);

}  // namespace vfiokit::cli

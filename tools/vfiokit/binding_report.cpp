#include "tools/vfiokit/binding_report.h"

#include "tools/vfiokit/options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ostream>

namespace vfiokit::cli {
namespace {

// One help text per override, whichever command offers it.
std::string force_help(bind::Check check) {
  switch (check) {
    case bind::Check::boot_vga:
      return "Go on although it is the boot VGA device (the host console runs on it)";
    case bind::Check::display:
      return "Go on although the host still uses its display (processes holding its DRM nodes, "
             "a framebuffer console, a firmware framebuffer in its BAR)";
    case bind::Check::net:
      return "Go on although its network interfaces are up, routed or enslaved";
    case bind::Check::block:
      return "Go on although its disks are mounted, held, swapped on or open";
    case bind::Check::group_in_use:
      return "Go on although another process has the group or one of its devices open through "
             "VFIO";
    case bind::Check::sriov:
      return "Go on although it is an SR-IOV physical function with virtual functions enabled "
             "(they are destroyed)";
    case bind::Check::iommu:
    case bind::Check::bridge:
    case bind::Check::group_viable:
    case bind::Check::journal:
      break;
  }
  return {};
}

std::string_view action_word(bind::PlannedAction action) {
  switch (action) {
    case bind::PlannedAction::move:
      return "move";
    case bind::PlannedAction::already:
      return "already";
    case bind::PlannedAction::stay:
      return "stay";
  }
  return "?";
}

Json refusals_json(const std::vector<bind::Refusal>& refusals) {
  Json out = Json::array();
  for (const auto& r : refusals) {
    const std::string_view flag = r.force_flag();
    out.push_back({{"bdf", r.bdf.to_string()},
                   {"check", bind::to_string(r.check)},
                   {"reason", r.reason},
                   {"force_flag", flag.empty() ? Json(nullptr) : Json(flag)}});
  }
  return out;
}

}  // namespace

void add_force_options(CLI::App* sub, bind::ForceFlags& force,
                       std::initializer_list<bind::Check> checks) {
  for (const bind::Check check : checks) {
    bool* flag = force.flag(check);
    if (flag == nullptr) continue;  // nothing overrides it
    sub->add_flag(std::string(bind::force_flag(check)), *flag, force_help(check))
        ->group("Overriding safety checks");
  }
}

void add_wait_option(CLI::App* sub, std::chrono::milliseconds& wait) {
  add_seconds_option(sub, "--wait", wait, 0, kMaxWaitSeconds,
                     "How long to wait for another vfiokit process to finish (0: fail at once)");
}

Json plan_json(const bind::Plan& plan) {
  Json devices = Json::array();
  for (const auto& d : plan.devices) {
    devices.push_back({{"bdf", d.bdf.to_string()},
                       {"iommu_group", Json(d.group)},
                       {"requested", d.requested},
                       {"action", action_word(d.action)},
                       {"driver", Json(d.current_driver)},
                       {"target_driver", Json(d.target_driver)},
                       {"note", d.note}});
  }
  return {{"devices", devices},
          {"refused", refusals_json(plan.refusals)},
          {"forced", refusals_json(plan.forced)}};
}

namespace {

void print_plan(std::ostream& out, const bind::Plan& plan, std::string_view title) {
  out << title << '\n';
  std::size_t width = 0;
  std::vector<std::string> moves;
  for (const auto& d : plan.devices) {
    std::string move = d.current_driver.value_or("(none)");
    if (d.action == bind::PlannedAction::move) {
      move += " -> " + d.target_driver.value_or("(default driver)");
    }
    width = std::max(width, move.size());
    moves.push_back(std::move(move));
  }
  for (std::size_t i = 0; i < plan.devices.size(); ++i) {
    const auto& d = plan.devices[i];
    out << "  " << d.bdf.to_string() << "  " << moves[i]
        << std::string(width - moves[i].size() + 2, ' ') << d.note << '\n';
  }
  for (const auto& r : plan.forced) {
    out << "  warning: " << r.bdf.to_string() << ' ' << bind::to_string(r.check) << ": " << r.reason
        << " (overridden by " << r.force_flag() << ")\n";
  }
}

}  // namespace

void print_refusals(std::ostream& out, const bind::Plan& plan) {
  out << "vfiokit: refused; nothing was changed:\n";
  for (const auto& r : plan.refusals) {
    out << "  " << r.bdf.to_string() << ' ' << bind::to_string(r.check) << ": " << r.reason << '\n';
    if (!r.force_flag().empty()) out << "    override with " << r.force_flag() << '\n';
  }
}

void print_plan_report(std::ostream& out, std::ostream& err, const bind::Plan& plan,
                       std::string_view title) {
  if (!plan.devices.empty()) print_plan(out, plan, title);
  if (plan.refused()) print_refusals(err, plan);
}

Json outcomes_json(const std::vector<bind::DeviceOutcome>& outcomes) {
  Json list = Json::array();
  for (const auto& o : outcomes) {
    list.push_back({{"bdf", o.bdf.to_string()}, {"ok", o.ok}, {"detail", o.detail}});
  }
  return list;
}

void print_outcome(std::ostream& out, const bind::DeviceOutcome& outcome) {
  out << "  " << outcome.bdf.to_string() << "  " << outcome.detail << '\n';
}

}  // namespace vfiokit::cli

#include "vfiokit/bind/journal.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kMagic = "vfiokit-journal 1";
constexpr std::string_view kDevicesFolder = "devices";
// An entry is under 300 bytes; anything much longer is not one.
constexpr std::size_t kMaxEntryBytes = 4096;

Error journal_error(std::string message) { return Error("parse journal", std::move(message)); }

std::string optional_text(const std::optional<std::string>& value) {
  return value ? *value : std::string("-");
}

std::optional<std::string> optional_driver(const std::string& key, const std::string& value) {
  if (value == "-") return std::nullopt;
  if (!is_driver_name(value)) throw journal_error(key + " '" + value + "' is not a driver name");
  return value;
}

}  // namespace

bool is_driver_name(std::string_view value) {
  return !value.empty() && value.size() <= 255 &&
         std::all_of(value.begin(), value.end(),
                     [](char c) { return c > ' ' && c < 0x7f && c != '/'; });
}

std::string_view to_string(JournalState state) noexcept {
  return state == JournalState::bound ? "bound" : "binding";
}

std::string format_journal_entry(const JournalEntry& entry) {
  std::string text(kMagic);
  text += "\nbdf " + entry.bdf.to_string();
  text += "\ngroup " + std::to_string(entry.group);
  text += "\noriginal-driver " + optional_text(entry.original_driver);
  text += "\noriginal-override " + optional_text(entry.original_override);
  text += "\ntarget-driver " + entry.target_driver;
  text += "\nstate " + std::string(to_string(entry.state));
  text += "\npid " + std::to_string(entry.pid);
  text += '\n';
  return text;
}

JournalEntry parse_journal_entry(std::string_view text) {
  std::map<std::string, std::string> values;
  bool first = true;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (std::exchange(first, false)) {
      if (line != kMagic)
        throw journal_error("not a vfiokit journal (first line '" +
                            std::string(line.substr(0, 40)) + "')");
      continue;
    }
    if (line.empty()) continue;
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size()) {
      throw journal_error("malformed line '" + std::string(line.substr(0, 80)) + "'");
    }
    std::string key(line.substr(0, space));
    if (!values.emplace(key, std::string(line.substr(space + 1))).second) {
      throw journal_error("key '" + key + "' appears twice");
    }
  }
  if (first) throw journal_error("empty journal entry");
  static const std::vector<std::string> kKeys = {
      "bdf", "group", "original-driver", "original-override", "target-driver", "state", "pid"};
  for (const auto& [key, value] : values) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      throw journal_error("unknown key '" + key + "'");
    }
  }
  for (const auto& key : kKeys) {
    if (!values.count(key)) throw journal_error("key '" + key + "' is missing");
  }

  JournalEntry entry;
  const auto bdf = pci::parse_bdf(values["bdf"]);
  if (!bdf) throw journal_error("bdf '" + values["bdf"] + "' is not a PCI address");
  entry.bdf = *bdf;
  const auto group = parse_uint(values["group"]);
  if (!group || *group > 0xffffffffu)
    throw journal_error("group '" + values["group"] + "' is not a number");
  entry.group = static_cast<unsigned>(*group);
  entry.original_driver = optional_driver("original-driver", values["original-driver"]);
  entry.original_override = optional_driver("original-override", values["original-override"]);
  if (!is_driver_name(values["target-driver"])) {
    throw journal_error("target-driver '" + values["target-driver"] + "' is not a driver name");
  }
  entry.target_driver = values["target-driver"];
  if (values["state"] == "binding") {
    entry.state = JournalState::binding;
  } else if (values["state"] == "bound") {
    entry.state = JournalState::bound;
  } else {
    throw journal_error("state '" + values["state"] + "' is neither binding nor bound");
  }
  const auto pid = parse_uint(values["pid"]);
  if (!pid || *pid > 0x7fffffff)
    throw journal_error("pid '" + values["pid"] + "' is not a process id");
  entry.pid = static_cast<int>(*pid);
  return entry;
}

Journal::Journal(fs::path run_dir) : run_dir_(std::move(run_dir)) {}

fs::path Journal::entry_path(const pci::Bdf& bdf) const {
  return run_dir_ / kDevicesFolder / bdf.to_string();
}

std::optional<StateDir> Journal::open_folder() const {
  auto run_dir = StateDir::open(run_dir_);
  if (!run_dir) return std::nullopt;
  return run_dir->open_subdir(kDevicesFolder);
}

void Journal::record(const JournalEntry& entry) {
  // World-readable like the sysfs state it mirrors, so `check` and `show` work unprivileged;
  // writable by root alone, so nobody else can plant an entry or a link in it.
  const StateDir folder = StateDir::create(run_dir_, 0755).create_subdir(kDevicesFolder, 0755);
  folder.write_file_durable(entry.bdf.to_string(), format_journal_entry(entry), 0644);
}

std::optional<JournalEntry> Journal::find(const pci::Bdf& bdf) const {
  const auto folder = open_folder();
  if (!folder) return std::nullopt;
  const auto text = folder->read_file(bdf.to_string(), kMaxEntryBytes);
  if (!text) return std::nullopt;
  const std::string path = entry_path(bdf).string();
  const std::string fix = "vfiokit cannot tell which driver " + bdf.to_string() +
                          " came from: check it by hand (`vfiokit show " + bdf.to_string() +
                          "`; bind it to its driver if it has none), then delete " + path;
  JournalEntry entry;
  try {
    entry = parse_journal_entry(*text);
  } catch (Error& e) {
    e.with("path", path).hint(fix);
    throw;
  }
  // A copied or renamed file would send another device's driver to this one.
  if (entry.bdf != bdf) {
    throw journal_error("it is named for " + bdf.to_string() + " but names " +
                        entry.bdf.to_string() + " inside")
        .with("path", path)
        .hint(fix);
  }
  return entry;
}

JournalScan Journal::scan() const {
  JournalScan scan;
  const auto folder = open_folder();
  if (!folder) return scan;
  for (const auto& name : folder->list()) {
    // What an interrupted write left; the entry itself is whole (it is renamed into place).
    if (name.ends_with(".tmp")) continue;
    const fs::path path = run_dir_ / kDevicesFolder / name;
    const auto bdf = pci::parse_bdf(name);
    if (!bdf) {
      scan.problems.push_back({path, std::nullopt,
                               "not a journal entry: its name is not a PCI address",
                               "delete it if vfiokit did not put it there"});
      continue;
    }
    try {
      if (auto entry = find(*bdf)) scan.entries.push_back(std::move(*entry));
    } catch (const Error& e) {
      const bool damaged = e.operation() == "parse journal";
      scan.problems.push_back({path, bdf, (damaged ? "damaged: " : "") + e.message(), e.hint()});
    }
  }
  return scan;
}

std::vector<JournalEntry> Journal::entries() const {
  JournalScan all = scan();
  if (!all.problems.empty()) {
    const JournalProblem& first = all.problems.front();
    throw Error("read journal", first.problem).with("path", first.path.string()).hint(first.fix);
  }
  return std::move(all.entries);
}

void Journal::remove(const pci::Bdf& bdf) {
  if (const auto folder = open_folder()) folder->remove(bdf.to_string());
}

}  // namespace vfiokit::bind

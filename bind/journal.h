// The binding journal: before vfiokit writes anything to sysfs, it records every device's
// original driver and driver_override durably under /run/vfiokit/devices/, one file per device.
// `unbind` and `restore` read it back; after a crash or kill -9 mid-bind it is how every
// device finds its way home. /run is a tmpfs, so the journal ends with the boot, as the
// bindings themselves do.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "pci/bdf.h"

namespace vfiokit::bind {

enum class JournalState {
  binding,  // writes may be under way; the device may be anywhere between its two drivers
  bound,    // the bind finished; the device is on the target driver
};

struct JournalEntry {
  pci::Bdf bdf;
  unsigned group = 0;
  std::optional<std::string> original_driver;    // nullopt: it had none
  std::optional<std::string> original_override;  // nullopt: driver_override was unset
  std::string target_driver = "vfio-pci";
  JournalState state = JournalState::binding;
  int pid = 0;  // the vfiokit process that wrote it

  bool operator==(const JournalEntry&) const = default;
};

// "vfiokit-journal 1" then "key value" lines; "-" stands for an unset value.
std::string format_journal_entry(const JournalEntry& entry);
// Throws Error (operation "parse journal") on anything else: unknown version or key, missing
// or repeated keys, values that are not driver names, a malformed BDF.
JournalEntry parse_journal_entry(std::string_view text);

std::string_view to_string(JournalState state) noexcept;

// The folders and entries are vfiokit's own state (base/fs.h StateDir): a folder or entry that
// is a symlink, or that someone other than root (or this user) owns or may write, is refused.
class Journal {
 public:
  // `run_dir` is normally /run/vfiokit; entries live in run_dir/devices/.
  explicit Journal(std::filesystem::path run_dir);

  void record(const JournalEntry& entry);  // durable: fsync + rename + fsync of the folder
  std::optional<JournalEntry> find(const pci::Bdf& bdf) const;
  std::vector<JournalEntry> entries() const;  // every readable entry; unreadable ones throw
  void remove(const pci::Bdf& bdf);
  [[nodiscard]] std::filesystem::path entry_path(const pci::Bdf& bdf) const;

 private:
  std::optional<StateDir> open_folder() const;  // nullopt while there is none
  std::filesystem::path run_dir_;
};

}  // namespace vfiokit::bind

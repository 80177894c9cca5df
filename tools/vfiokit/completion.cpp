#include "tools/vfiokit/completion.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "tools/vfiokit/manual.h"
#include "vfiokit/base/error.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/bind/persist.h"
#include "vfiokit/payloads/payloads.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::cli {
namespace {

// selftest's stages (drivers/selftest.cpp), for --stage.
constexpr std::string_view kStages = "config bar dma irq-eventfd irq-kvm";

std::string payload_names() {
  std::string names;
  for (const payloads::Payload& payload : payloads::all()) {
    names += (names.empty() ? "" : " ") + std::string(payload.name);
  }
  return names;
}

// Every spelling of the options a subcommand takes, space-separated, with --help.
std::string option_words(const CLI::App& app) {
  std::string words = "--help";
  for (const CLI::Option* option : visible_options(app)) {
    if (option->get_positional()) continue;
    for (const auto& name : option->get_snames()) words += " -" + name;
    for (const auto& name : option->get_lnames()) words += " --" + name;
  }
  return words;
}

// The long names of the options that take a value, for every subcommand.
std::set<std::string> value_options(const CLI::App& app) {
  std::set<std::string> names;
  auto add = [&names](const CLI::App& from) {
    for (const CLI::Option* option : visible_options(from)) {
      if (option->get_positional() || option->get_expected_max() == 0) continue;
      for (const auto& name : option->get_lnames()) names.insert("--" + name);
    }
  };
  add(app);
  for (const CLI::App* sub : visible_subcommands(app)) add(*sub);
  return names;
}

// Single-quoted for the shell.
std::string shell_quoted(std::string_view text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "name:description" for zsh's _describe, with the colons in the name escaped.
std::string described(std::string_view name, std::string_view description) {
  std::string out;
  for (const char c : name) {
    if (c == ':') out += '\\';
    out += c;
  }
  return shell_quoted(out + ":" + std::string(description));
}

std::vector<std::string> sorted_unique(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

}  // namespace

std::string argument_kind(const CLI::App& sub) {
  if (sub.get_name() == "restore") return "journalled";
  for (const CLI::Option* option : visible_options(sub)) {
    if (option->get_positional() && option->get_name() == "BDF") return "devices";
  }
  return "";
}

std::vector<std::string> complete_bdfs(const HostPaths& paths, std::string_view kind) {
  std::vector<std::string> bdfs;
  try {
    if (kind == "devices") {
      std::error_code ec;
      for (const auto& entry :
           std::filesystem::directory_iterator(paths.sys / "bus/pci/devices", ec)) {
        if (pci::parse_bdf(entry.path().filename().string())) {
          bdfs.push_back(entry.path().filename().string());
        }
      }
    } else if (kind == "journalled") {
      const bind::JournalScan scan = bind::Journal(paths.run / "vfiokit").scan();
      for (const auto& entry : scan.entries) bdfs.push_back(entry.bdf.to_string());
      // A damaged entry can still be named; restore then says what is wrong with it.
      for (const auto& problem : scan.problems) {
        if (problem.bdf) bdfs.push_back(problem.bdf->to_string());
      }
    } else if (kind == "persisted") {
      for (const auto& entry : bind::PersistStore(paths.etc).entries()) {
        bdfs.push_back(entry.bdf.to_string());
      }
    } else {
      throw Error("complete", "unknown kind '" + std::string(kind) + "'")
          .kind(ErrorKind::usage)
          .hint("one of devices, journalled, persisted");
    }
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::usage) throw;
    return {};
  }
  return sorted_unique(std::move(bdfs));
}

std::string bash_completion(const CLI::App& app) {
  std::string values;
  for (const std::string& name : value_options(app)) {
    std::string action = "return 0";  // a value vfiokit cannot guess: a number, a serial
    if (name == "--payload") {
      action = "COMPREPLY=($(compgen -W " + shell_quoted(payload_names()) + " -f -- \"$cur\"))";
    } else if (name == "--stage") {
      action = "COMPREPLY=($(compgen -W " + shell_quoted(kStages) + " -- \"$cur\"))";
    } else if (name == "--owner" || name == "--run-as") {
      action = "COMPREPLY=($(compgen -u -- \"$cur\"))";
    } else if (name == "--qemu-binary") {
      action = "COMPREPLY=($(compgen -c -- \"$cur\"))";
    }
    values +=
        "        " + name + ") " + action + (action == "return 0" ? "" : "; return 0") + " ;;\n";
  }
  std::string subcommands;
  std::string cases;
  for (const CLI::App* sub : visible_subcommands(app)) {
    subcommands += (subcommands.empty() ? "" : " ") + sub->get_name();
    std::string kind = argument_kind(*sub);
    cases += "        " + sub->get_name() + ") options=" + shell_quoted(option_words(*sub)) +
             "; kind=" + kind;
    if (sub->get_name() == "persist") cases += "; [[ -n $remove ]] && kind=persisted";
    cases += " ;;\n";
  }
  return R"sh(# bash completion for vfiokit. Generated by `vfiokit __manual --bash` from the CLI's model
# (tools/vfiokit/completion.cpp); the BDFs come from `vfiokit __complete`.

_vfiokit() {
    # The word being completed, whole: bash splits 0000:01:00.0 at its colons.
    local cur=${COMP_LINE:0:COMP_POINT}
    cur=${cur##*[[:space:]]}
    local prev=${COMP_WORDS[COMP_CWORD-1]}
    [[ ${COMP_WORDS[COMP_CWORD]} == ":" || $prev == ":" ]] && prev=
    local program=${COMP_WORDS[0]} sub= remove= options= kind= i word
    local -a root=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            --host-root) root=(--host-root "${COMP_WORDS[i+1]}"); i=$((i + 1)) ;;
            --remove) remove=1 ;;
            --) [[ -n $sub ]] && return 0 ;;  # what follows is QEMU's
            -*|:) ;;
            *) [[ -z $sub ]] && sub=$word ;;
        esac
    done
    case $prev in
        --host-root) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
)sh" + values +
         R"sh(    esac
    case $sub in
        "") options=)sh" +
         shell_quoted(option_words(app)) + R"sh( ;;
)sh" + cases +
         R"sh(        *) return 0 ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -z $sub ]]; then
        COMPREPLY=($(compgen -W )sh" +
         shell_quoted(subcommands) + R"sh( -- "$cur"))
    elif [[ -n $kind ]]; then
        COMPREPLY=($(compgen -W "$("$program" "${root[@]}" __complete "$kind" 2>/dev/null)" -- "$cur"))
    fi
    # bash replaces only what follows the last colon.
    if [[ $cur == *:* ]]; then
        local colon_prefix=${cur%"${cur##*:}"}
        COMPREPLY=("${COMPREPLY[@]#"$colon_prefix"}")
    fi
    return 0
}
complete -F _vfiokit vfiokit
)sh";
}

std::string zsh_completion(const CLI::App& app) {
  std::string values;
  for (const std::string& name : value_options(app)) {
    std::string action = "return 0";
    if (name == "--payload") {
      action = "compadd -- " + payload_names() + "; _files";
    } else if (name == "--stage") {
      action = "compadd -- " + std::string(kStages);
    } else if (name == "--owner" || name == "--run-as") {
      action = "_users";
    } else if (name == "--qemu-binary") {
      action = "_command_names -e";
    }
    values += "    " + name + ") " + action + (action == "return 0" ? "" : "; return") + " ;;\n";
  }
  std::string subcommands;
  std::string cases;
  for (const CLI::App* sub : visible_subcommands(app)) {
    subcommands += "    " + described(sub->get_name(), sub->get_description()) + "\n";
    cases += "    " + sub->get_name() + ") options=(" + option_words(*sub) +
             "); kind=" + argument_kind(*sub);
    if (sub->get_name() == "persist") cases += "; [[ -n $remove ]] && kind=persisted";
    cases += " ;;\n";
  }
  return R"sh(#compdef vfiokit
# zsh completion for vfiokit. Generated by `vfiokit __manual --zsh` from the CLI's model
# (tools/vfiokit/completion.cpp); the BDFs come from `vfiokit __complete`.

_vfiokit() {
  local sub= remove= kind= i
  local -a root options subcommands
  subcommands=(
)sh" + subcommands +
         R"sh(  )
  for ((i = 2; i < CURRENT; i++)); do
    case ${words[i]} in
      --host-root) root=(--host-root ${words[i+1]}); (( i++ )) ;;
      --remove) remove=1 ;;
      --) [[ -n $sub ]] && return 1 ;;  # what follows is QEMU's
      -*) ;;
      *) [[ -z $sub ]] && sub=${words[i]} ;;
    esac
  done
  case ${words[CURRENT-1]} in
    --host-root) _directories; return ;;
)sh" + values +
         R"sh(  esac
  case $sub in
    '') options=()sh" +
         option_words(app) + R"sh() ;;
)sh" + cases +
         R"sh(    *) return 1 ;;
  esac
  if [[ $PREFIX == -* ]]; then
    compadd -- $options
  elif [[ -z $sub ]]; then
    _describe -t commands 'vfiokit subcommand' subcommands
  elif [[ -n $kind ]]; then
    compadd -- ${(f)"$(${words[1]} $root __complete $kind 2>/dev/null)"}
  fi
}

_vfiokit "$@"
)sh";
}

}  // namespace vfiokit::cli

#!/usr/bin/env bash
# Tests tools/rig/run itself: CMD's exit status and arguments come through intact, --env
# reaches CMD, and a hung or panicking guest ends with a clear error and status 124 or 125.
#   tests/rig/runner_test.sh BUILD_DIR
set -uo pipefail
build_dir=${1:?usage: runner_test.sh BUILD_DIR}
run="$(cd "$(dirname "$0")/../.." && pwd)/tools/rig/run --build-dir $build_dir --devices edu --modules ''"
failures=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then
    echo "ok: $1"
  else
    echo "FAILED: $1"
    printf '  expected: %q\n  actual:   %q\n' "$2" "$3"
    failures=$((failures + 1))
  fi
}

# 1. Arguments with spaces, quotes, newlines and glob characters; --env; the exit status; and
# --kernel 6.1 boots Debian 12's stock kernel (the other cases boot the default, 6.12).
multi=$'two\nlines'
out=$($run --kernel 6.1 --env "GREETING=it's a \"test\"" -- sh -c 'printf "[%s]" "$@"; printf "\n%s\n" "$GREETING"; uname -r; exit 7' \
  argv0 'a b' "it's" "$multi" '$HOME' '*' '')
status=$?
check "exit status of CMD" 7 "$status"
check "arguments arrive intact" "[a b][it's][$multi][\$HOME][*][]"$'\n'"it's a \"test\"" "${out%$'\n'*}"
kernel=${out##*$'\n'}
[[ $kernel =~ ^6\.1\.0-[0-9]+-amd64$ ]] && kernel=6.1.0-N-amd64
check "--kernel 6.1 boots Debian 12's 6.1 kernel" 6.1.0-N-amd64 "$kernel"

# 2. A hang ends at --timeout with 124 and a message that says so.
start=$SECONDS
err=$($run --timeout 25 -- sleep 600 2>&1 >/dev/null)
status=$?
check "a hung command ends with 124" 124 "$status"
check "the timeout is reported" 1 "$(grep -c 'timed out after 25 s' <<<"$err")"
(( SECONDS - start < 45 )) || { echo "FAILED: the timeout took $((SECONDS - start)) s"; failures=$((failures + 1)); }

# 3. A kernel panic ends with 125 and says the guest stopped before CMD finished.
err=$($run -- sh -c 'echo c > /proc/sysrq-trigger; sleep 60' 2>&1 >/dev/null)
status=$?
check "a kernel panic ends with 125" 125 "$status"
check "the panic is reported" 1 "$(grep -c 'guest stopped before the command finished' <<<"$err")"

# 4. Usage errors come back as 2 without booting.
$run --devices floppy -- true >/dev/null 2>&1
check "an unknown device is a usage error" 2 "$?"
$run --kernel 5.10 -- true >/dev/null 2>&1
check "an unknown kernel generation is a usage error" 2 "$?"

[[ $failures -eq 0 ]] && echo "runner_test: all passed" || { echo "runner_test: $failures failed"; exit 1; }

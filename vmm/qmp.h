// A minimal QMP client (QEMU Machine Protocol, docs/interop/qmp-spec in QEMU): JSON objects, one
// per line, over the unix socket that `-qmp unix:PATH,server=on,wait=off` makes. `launch --qemu
// --pin` uses it to find the vCPU threads of a QEMU started with -S, pin them, and `cont`.
//
// The exchange: QEMU greets ({"QMP": {"version": ..., "capabilities": [...]}}), the client
// leaves capability negotiation with {"execute": "qmp_capabilities"}, then each command
// {"execute": NAME, "arguments": {...}, "id": N} is answered by {"return": ..., "id": N} or
// {"error": {"class": ..., "desc": ...}, "id": N}. Asynchronous {"event": ...} messages may come
// at any time, between or before replies; they are kept (events()) and skipped.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vfiokit/base/unique_fd.h"
#include "vfiokit/vmm/pinning.h"

namespace vfiokit::vmm {

class QmpClient {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects to `socket`, retrying while it does not exist or refuses (QEMU makes it a moment
  // after it starts) until `deadline`, or until `still_starting` (when given) says QEMU has
  // exited; then reads the greeting and sends qmp_capabilities, whose answer may also take until
  // `deadline` (QEMU answers in-band commands only once guest RAM is allocated and mapped). Throws
  // Error (operation "qmp connect") naming the socket.
  static QmpClient connect(const std::filesystem::path& socket, Clock::time_point deadline,
                           const std::function<bool()>& still_starting = {});
  // The same over a socket that is already connected (a socketpair in tests).
  static QmpClient over(UniqueFd socket, Clock::time_point deadline);

  // Runs one command and returns its "return" value. Throws Error (operation "qmp", context
  // command) for QEMU's "error" reply (the message is its desc, context its class), for a reply
  // that is not JSON or not an object, for a socket that closes, and when no reply comes within
  // reply_timeout (set_reply_timeout).
  nlohmann::json execute(std::string_view command,
                         const nlohmann::json& arguments = nlohmann::json::object());

  // query-cpus-fast: every vCPU's index and host thread id, ordered by index.
  std::vector<VcpuThread> query_cpus_fast();

  [[nodiscard]] const nlohmann::json& greeting() const noexcept { return greeting_; }
  // The events seen so far, oldest first (at most kMaxEvents: the oldest are dropped).
  [[nodiscard]] const std::vector<nlohmann::json>& events() const noexcept { return events_; }
  void set_reply_timeout(std::chrono::milliseconds timeout) noexcept { reply_timeout_ = timeout; }

  static constexpr std::size_t kMaxEvents = 256;
  // A line longer than this is a broken peer, not a reply to wait for.
  static constexpr std::size_t kMaxMessageBytes = std::size_t{16} << 20;

 private:
  explicit QmpClient(UniqueFd socket) : socket_(std::move(socket)) {}
  void handshake(Clock::time_point deadline);
  nlohmann::json execute_until(std::string_view command, const nlohmann::json& arguments,
                               Clock::time_point deadline);
  // The next message that is not an event.
  nlohmann::json read_reply(std::string_view command, Clock::time_point deadline);
  nlohmann::json read_message(std::string_view command, Clock::time_point deadline);
  void send(std::string_view command, const std::string& text);

  UniqueFd socket_;
  std::string buffer_;  // bytes received past the last complete line
  nlohmann::json greeting_;
  std::vector<nlohmann::json> events_;
  std::uint64_t next_id_ = 1;
  std::chrono::milliseconds reply_timeout_{10000};
};

}  // namespace vfiokit::vmm

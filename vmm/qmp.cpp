#include "vfiokit/vmm/qmp.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {
namespace {

using Json = nlohmann::json;

constexpr auto kConnectRetry = std::chrono::milliseconds(10);

int remaining_ms(QmpClient::Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - QmpClient::Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT32_MAX));
}

Error qmp_error(std::string_view command, const std::string& why) {
  return Error("qmp", why).with("command", std::string(command));
}

// A short, printable excerpt of what the peer sent, for messages.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kMax = 120;
  std::string out;
  for (const char c : text.substr(0, kMax)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > kMax) out += "...";
  return out;
}

}  // namespace

QmpClient QmpClient::connect(const std::filesystem::path& socket, Clock::time_point deadline,
                             const std::function<bool()>& still_starting) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string path = socket.string();
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    throw Error("qmp connect", "a unix socket path must be 1 to " +
                                   std::to_string(sizeof address.sun_path - 1) + " bytes")
        .with("socket", path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw Error::from_last_errno("qmp connect").with("socket", path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      QmpClient client(std::move(fd));
      client.handshake(deadline);
      return client;
    }
    const int err = errno;
    // Not there yet, or there but not listening yet (or a stale file QEMU will replace).
    const bool not_yet = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
    if (!not_yet) throw Error::from_errno(err, "qmp connect").with("socket", path);
    if (still_starting && !still_starting()) {
      throw Error::from_errno(err, "qmp connect", "QEMU exited before its QMP socket answered")
          .with("socket", path);
    }
    if (Clock::now() >= deadline) {
      throw Error::from_errno(err, "qmp connect", "QEMU's QMP socket did not answer in time")
          .with("socket", path)
          .hint("check that QEMU was started with -qmp unix:" + path + ",server=on,wait=off");
    }
    std::this_thread::sleep_for(kConnectRetry);
  }
}

QmpClient QmpClient::over(UniqueFd socket, Clock::time_point deadline) {
  QmpClient client(std::move(socket));
  client.handshake(deadline);
  return client;
}

void QmpClient::handshake(Clock::time_point deadline) {
  Json greeting = read_message("greeting", deadline);
  if (!greeting.is_object() || !greeting.contains("QMP")) {
    throw qmp_error("greeting", "the peer did not greet as QMP does: " + excerpt(greeting.dump()));
  }
  greeting_ = std::move(greeting);
  // In-band: QEMU answers once its main loop runs, after it has preallocated and DMA-mapped all
  // guest RAM, which takes long for a large guest. So the caller's deadline, not reply_timeout_.
  execute_until("qmp_capabilities", Json::object(), deadline);
}

void QmpClient::send(std::string_view command, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    // MSG_NOSIGNAL: a QEMU that has gone is an Error here, never a SIGPIPE.
    const ssize_t n = ::send(socket_.get(), text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error::from_errno(err, "qmp", "sending the command failed")
          .with("command", std::string(command));
    }
    done += static_cast<std::size_t>(n);
  }
}

Json QmpClient::read_message(std::string_view command, Clock::time_point deadline) {
  while (true) {
    const std::size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      Json message = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (message.is_discarded() || !message.is_object()) {
        throw qmp_error(command, "QEMU sent something that is not a JSON object: " + excerpt(line));
      }
      return message;
    }
    if (buffer_.size() > kMaxMessageBytes) {
      throw qmp_error(command, "a message longer than " + std::to_string(kMaxMessageBytes) +
                                   " bytes without an end of line");
    }
    pollfd poll_fd{socket_.get(), POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, remaining_ms(deadline));
    if (ready < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error::from_errno(err, "qmp").with("command", std::string(command));
    }
    if (ready == 0) {
      throw Error::from_errno(ETIMEDOUT, "qmp", "QEMU did not answer in time")
          .with("command", std::string(command));
    }
    char chunk[4096];
    const ssize_t n = ::recv(socket_.get(), chunk, sizeof chunk, 0);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN) continue;
      throw Error::from_errno(err, "qmp").with("command", std::string(command));
    }
    if (n == 0) {
      throw qmp_error(command, buffer_.empty()
                                   ? "QEMU closed its QMP socket"
                                   : "QEMU closed its QMP socket in the middle of a message: " +
                                         excerpt(buffer_));
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

Json QmpClient::read_reply(std::string_view command, Clock::time_point deadline) {
  while (true) {
    Json message = read_message(command, deadline);
    if (!message.contains("event")) return message;
    if (events_.size() == kMaxEvents) events_.erase(events_.begin());
    events_.push_back(std::move(message));
  }
}

Json QmpClient::execute(std::string_view command, const Json& arguments) {
  return execute_until(command, arguments, Clock::now() + reply_timeout_);
}

Json QmpClient::execute_until(std::string_view command, const Json& arguments,
                              Clock::time_point deadline) {
  const std::uint64_t id = next_id_++;
  Json request = {{"execute", std::string(command)}, {"id", id}};
  if (!arguments.is_null() && !(arguments.is_object() && arguments.empty())) {
    request["arguments"] = arguments;
  }
  send(command, request.dump() + "\n");
  Json reply = read_reply(command, deadline);
  if (const auto it = reply.find("id"); it == reply.end() || *it != id) {
    throw qmp_error(command, "a reply that does not answer this command: " + excerpt(reply.dump()));
  }
  if (const auto error = reply.find("error"); error != reply.end()) {
    const std::string desc =
        error->is_object() && error->contains("desc") && (*error)["desc"].is_string()
            ? (*error)["desc"].get<std::string>()
            : error->dump();
    Error e = qmp_error(command, "QEMU refused " + std::string(command) + ": " + desc);
    if (error->is_object() && error->contains("class") && (*error)["class"].is_string()) {
      e.with("class", (*error)["class"].get<std::string>());
    }
    throw e;
  }
  const auto value = reply.find("return");
  if (value == reply.end()) {
    throw qmp_error(command, "a reply with neither return nor error: " + excerpt(reply.dump()));
  }
  return *value;
}

std::vector<VcpuThread> QmpClient::query_cpus_fast() {
  const Json cpus = execute("query-cpus-fast");
  if (!cpus.is_array()) {
    throw qmp_error("query-cpus-fast", "the reply is not a list: " + excerpt(cpus.dump()));
  }
  std::vector<VcpuThread> threads;
  for (const Json& cpu : cpus) {
    const bool well_formed = cpu.is_object() && cpu.contains("cpu-index") &&
                             cpu["cpu-index"].is_number_unsigned() && cpu.contains("thread-id") &&
                             cpu["thread-id"].is_number_integer() &&
                             cpu["thread-id"].get<std::int64_t>() > 0 &&
                             cpu["thread-id"].get<std::int64_t>() <= INT32_MAX &&
                             cpu["cpu-index"].get<std::uint64_t>() <= UINT32_MAX;
    if (!well_formed) {
      throw qmp_error("query-cpus-fast",
                      "a vCPU without a cpu-index or thread-id: " + excerpt(cpu.dump()));
    }
    threads.push_back({cpu["cpu-index"].get<unsigned>(), cpu["thread-id"].get<pid_t>()});
  }
  std::sort(threads.begin(), threads.end(),
            [](const VcpuThread& a, const VcpuThread& b) { return a.cpu_index < b.cpu_index; });
  return threads;
}

}  // namespace vfiokit::vmm

#include "vfiokit/vmm/qmp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <functional>
#include <thread>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"

namespace vfiokit::vmm {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr std::string_view kGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, )"
    R"("capabilities": ["oob"]}})";

Error error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

// What the fake QEMU sends for a request: raw text, sent as is (several lines, partial lines).
// `close` closes the socket after sending it.
struct Answer {
  std::string text;
  bool close = false;
};
using Handler = std::function<Answer(const Json& request)>;

std::string reply(const Json& request, const Json& value) {
  return Json{{"return", value}, {"id", request["id"]}}.dump() + "\r\n";
}

// A QEMU on the other end of a socket: greets, then answers each line through `handler`
// (qmp_capabilities is answered by itself).
class FakeQemu {
 public:
  FakeQemu(UniqueFd socket, Handler handler, std::string greeting = std::string(kGreeting) + "\r\n")
      : socket_(std::move(socket)),
        thread_([this, handler = std::move(handler), greeting = std::move(greeting)] {
          serve(handler, greeting);
        }) {}
  ~FakeQemu() {
    ::shutdown(socket_.get(), SHUT_RDWR);
    thread_.join();
  }
  FakeQemu(const FakeQemu&) = delete;
  FakeQemu& operator=(const FakeQemu&) = delete;

  [[nodiscard]] std::vector<Json> requests() const { return requests_; }

 private:
  void send_all(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::send(socket_.get(), text.data(), text.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void serve(const Handler& handler, const std::string& greeting) {
    send_all(greeting);
    std::string buffer;
    char chunk[1024];
    while (true) {
      const ssize_t n = ::recv(socket_.get(), chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buffer.append(chunk, static_cast<std::size_t>(n));
      std::size_t newline;
      while ((newline = buffer.find('\n')) != std::string::npos) {
        const Json request = Json::parse(buffer.substr(0, newline));
        buffer.erase(0, newline + 1);
        requests_.push_back(request);
        const Answer answer = request["execute"] == "qmp_capabilities"
                                  ? Answer{reply(request, Json::object())}
                                  : handler(request);
        send_all(answer.text);
        if (answer.close) {
          ::shutdown(socket_.get(), SHUT_RDWR);
          return;
        }
      }
    }
  }

  UniqueFd socket_;
  std::vector<Json> requests_;
  std::thread thread_;  // last: it uses the members above, and is joined before they go
};

std::pair<UniqueFd, UniqueFd> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error("socketpair");
  }
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

auto soon() { return QmpClient::Clock::now() + 5s; }

const Json kCpus = Json::parse(R"([
  {"cpu-index": 1, "qom-path": "/machine/unattached/device[2]", "thread-id": 4242,
   "props": {"core-id": 0, "thread-id": 0, "socket-id": 1}, "target": "x86_64"},
  {"cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "thread-id": 4241,
   "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "target": "x86_64"}])");

TEST(Qmp, NegotiatesAndFindsTheVcpuThreadsSkippingEvents) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json& request) {
    // An event before the reply, and one after it in the same write.
    return Answer{R"({"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}})"
                  "\r\n" +
                  reply(request, kCpus) +
                  R"({"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 3}})"
                  "\r\n"};
  });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  EXPECT_EQ(client.greeting()["QMP"]["version"]["qemu"]["major"], 7);
  EXPECT_EQ(client.query_cpus_fast(), (std::vector<VcpuThread>{{0, 4241}, {1, 4242}}));
  ASSERT_EQ(client.events().size(), 1u);
  EXPECT_EQ(client.events()[0]["event"], "RESUME");
  // The STOP event that came after the reply is taken before the next one.
  EXPECT_EQ(client.execute("cont"), kCpus);
  EXPECT_EQ(client.events().size(), 3u);
  const auto requests = qemu.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0], (Json{{"execute", "qmp_capabilities"}, {"id", 1}}));
  EXPECT_EQ(requests[1], (Json{{"execute", "query-cpus-fast"}, {"id", 2}}));
  EXPECT_EQ(requests[2]["execute"], "cont");
}

TEST(Qmp, ArgumentsAreSentAndTheReturnValueComesBack) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json& request) {
    return Answer{reply(request, Json{{"echo", request["arguments"]["value"]}})};
  });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  EXPECT_EQ(client.execute("x-echo", Json{{"value", 7}}), (Json{{"echo", 7}}));
}

TEST(Qmp, AnErrorReplyNamesTheCommandAndQemusDescription) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json& request) {
    return Answer{
        Json{{"error",
              {{"class", "CommandNotFound"}, {"desc", "The command nope has not been found"}}},
             {"id", request["id"]}}
            .dump() +
        "\r\n"};
  });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  const Error e = error_of([&] { client.execute("nope"); });
  EXPECT_EQ(e.operation(), "qmp");
  EXPECT_EQ(e.context_value("command"), "nope");
  EXPECT_EQ(e.context_value("class"), "CommandNotFound");
  EXPECT_THAT(e.message(), HasSubstr("QEMU refused nope: The command nope has not been found"));
}

TEST(Qmp, ASocketThatClosesMidReplyIsAnError) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json&) {
    return Answer{R"({"return": [{"cpu-index": 0, "thread-)", true};
  });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  const Error e = error_of([&] { client.query_cpus_fast(); });
  EXPECT_THAT(e.message(), HasSubstr("closed its QMP socket in the middle of a message"));
  EXPECT_EQ(e.context_value("command"), "query-cpus-fast");
  // And nothing more can be asked of it.
  EXPECT_THAT(error_of([&] { client.execute("cont"); }).operation(), "qmp");
}

TEST(Qmp, JunkAMismatchedIdAndBadCpuEntriesAreErrors) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json& request) {
    const std::string command = request["execute"];
    if (command == "junk") return Answer{"this is not json\r\n"};
    if (command == "other-id")
      return Answer{R"({"return": {}, "id": 999})"
                    "\r\n"};
    if (command == "neither") return Answer{Json{{"id", request["id"]}}.dump() + "\r\n"};
    return Answer{reply(request, Json::parse(R"([{"cpu-index": 0}])"))};
  });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  EXPECT_THAT(error_of([&] { client.execute("junk"); }).message(),
              HasSubstr("not a JSON object: this is not json"));
  EXPECT_THAT(error_of([&] { client.execute("other-id"); }).message(),
              HasSubstr("does not answer this command"));
  EXPECT_THAT(error_of([&] { client.execute("neither"); }).message(),
              HasSubstr("neither return nor error"));
  EXPECT_THAT(error_of([&] { client.query_cpus_fast(); }).message(),
              HasSubstr("without a cpu-index or thread-id"));
}

TEST(Qmp, NoReplyInTimeIsAnError) {
  auto [client_end, qemu_end] = socket_pair();
  FakeQemu qemu(std::move(qemu_end), [](const Json&) { return Answer{""}; });
  QmpClient client = QmpClient::over(std::move(client_end), soon());
  client.set_reply_timeout(100ms);
  const Error e = error_of([&] { client.execute("query-status"); });
  EXPECT_EQ(e.errno_value(), ETIMEDOUT);
  EXPECT_THAT(e.message(), HasSubstr("did not answer in time"));
}

TEST(Qmp, APeerThatIsNotQmpIsRefused) {
  auto ends = socket_pair();
  FakeQemu qemu(
      std::move(ends.second), [](const Json&) { return Answer{""}; }, "{\"hello\": 1}\r\n");
  EXPECT_THAT(error_of([&] { QmpClient::over(std::move(ends.first), soon()); }).message(),
              HasSubstr("did not greet as QMP does"));
}

// A unix socket that appears a moment after the client starts trying, as QEMU's does.
TEST(Qmp, ConnectWaitsForTheSocketToAppear) {
  const test::TempDir dir;
  const std::filesystem::path path = dir.path() / "qmp.sock";
  std::unique_ptr<FakeQemu> qemu;
  std::thread server([&] {
    std::this_thread::sleep_for(150ms);
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address),
              0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.valid());
    qemu = std::make_unique<FakeQemu>(std::move(accepted), [](const Json& request) {
      return Answer{reply(request, Json{{"status", "prelaunch"}, {"running", false}})};
    });
  });
  QmpClient client = QmpClient::connect(path, soon());
  server.join();
  EXPECT_EQ(client.execute("query-status")["status"], "prelaunch");
}

TEST(Qmp, ConnectGivesUpAtTheDeadlineOrWhenQemuExits) {
  const test::TempDir dir;
  const std::filesystem::path path = dir.path() / "never.sock";
  const auto start = QmpClient::Clock::now();
  Error e = error_of([&] { QmpClient::connect(path, start + 200ms); });
  EXPECT_GE(QmpClient::Clock::now() - start, 200ms);
  EXPECT_EQ(e.operation(), "qmp connect");
  EXPECT_EQ(e.context_value("socket"), path.string());
  EXPECT_THAT(e.message(), HasSubstr("did not answer in time"));

  int polls = 0;
  e = error_of([&] {
    QmpClient::connect(path, QmpClient::Clock::now() + 60s, [&] { return ++polls < 3; });
  });
  EXPECT_EQ(polls, 3);
  EXPECT_THAT(e.message(), HasSubstr("QEMU exited"));
  EXPECT_THAT(error_of([] {
                QmpClient::connect(std::string(200, 'x'), QmpClient::Clock::now());
              }).message(),
              HasSubstr("unix socket path"));
}

}  // namespace
}  // namespace vfiokit::vmm

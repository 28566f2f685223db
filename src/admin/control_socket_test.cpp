#include "admin/control_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace bridgehead::admin {
namespace {

namespace fs = std::filesystem;

class ControlSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-ctl-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    path_ = dir_ / "control.sock";
  }
  void TearDown() override {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    fs::remove_all(dir_);
  }
  void run() {
    thread_ = std::thread([this] { io_.run(); });
  }
  fs::path dir_, path_;
  net::asio::io_context io_;
  net::asio::executor_work_guard<net::asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
};

TEST_F(ControlSocketTest, AnswersRequestsWithMode0600) {
  ControlServer server(io_, path_, 0600);
  server.handle("status", [](const nlohmann::json&) -> Expected<nlohmann::json> {
    return nlohmann::json{{"processes", nlohmann::json::array()}};
  });
  server.handle("boom", [](const nlohmann::json&) -> Expected<nlohmann::json> {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "no such thing", "try another"));
  });
  ASSERT_TRUE(server.start());
  run();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto r = control_request(path_, {{"command", "status"}});
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_TRUE((*r)["processes"].is_array());

  auto bad = control_request(path_, {{"command", "boom"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "no such thing");
  EXPECT_EQ(bad.error().remedy, "try another");
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);  // the daemon's code, not "unavailable"
  EXPECT_FALSE(bad.error().transient());

  auto unknown = control_request(path_, {{"command", "nope"}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown control command"), std::string::npos);
}

TEST_F(ControlSocketTest, AsyncHandlersAnswerAfterTheirWorkAndKeepErrorCodes) {
  ControlServer server(io_, path_, 0600);
  std::string seen;
  server.handle_async("unlock", [&](nlohmann::json request) -> net::awaitable<Expected<nlohmann::json>> {
    seen = request.value("password", std::string());
    // Stands for work awaited elsewhere: the reply must wait for it.
    net::asio::steady_timer t(io_, std::chrono::milliseconds(50));
    co_await t.async_wait(net::use_nothrow);
    if (seen != "right") {
      co_return fail(Error::transient_error(ErrorCode::kWrongPassword, "wrong password", "type it again"));
    }
    co_return nlohmann::json{{"unlocked", true}};
  });
  ASSERT_TRUE(server.start());
  run();
  auto wrong = control_request(path_, {{"command", "unlock"}, {"password", "nope"}});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kWrongPassword);
  EXPECT_TRUE(wrong.error().transient());
  EXPECT_EQ(wrong.error().remedy, "type it again");
  auto right = control_request(path_, {{"command", "unlock"}, {"password", "right"}});
  ASSERT_TRUE(right) << right.error().describe();
  EXPECT_TRUE((*right)["unlocked"].get<bool>());
}

TEST_F(ControlSocketTest, ClientReportsADaemonThatIsNotRunning) {
  auto r = control_request(path_, {{"command", "status"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("not running"), std::string::npos);
  EXPECT_NE(r.error().remedy.find("bridgehead run"), std::string::npos);
  EXPECT_TRUE(r.error().not_running);
}

TEST_F(ControlSocketTest, ARefusalTheDaemonAnsweredIsNotTakenForOneThatIsNotRunning) {
  ControlServer server(io_, path_, 0600);
  // Its code and even its words are those of a daemon that is not running: only the type tells.
  server.handle("status", [](const nlohmann::json&) -> Expected<nlohmann::json> {
    return fail(Error::transient_error(ErrorCode::kUnavailable, "the queue is not running yet", "wait a moment"));
  });
  ASSERT_TRUE(server.start());
  run();
  auto r = control_request(path_, {{"command", "status"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(r.error().transient());
  EXPECT_FALSE(r.error().not_running);
}

TEST_F(ControlSocketTest, ReplacesAStaleSocketButNotALiveOne) {
  {
    ControlServer first(io_, path_, 0600);
    ASSERT_TRUE(first.start());
    ControlServer second(io_, path_, 0600);
    auto r = second.start();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("already listening"), std::string::npos);
  }
  // A socket file left by a crashed daemon: nobody listens, so a new daemon takes it over.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::exists(path_));
  ControlServer third(io_, path_, 0600);
  EXPECT_TRUE(third.start());
}

}  // namespace
}  // namespace bridgehead::admin

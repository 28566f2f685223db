#include "admin/process_registry.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace bridgehead::admin {
namespace {

TEST(ProcessRegistry, ProcessesReportStateActivityErrorAndCounters) {
  ProcessRegistry reg;
  auto p = reg.add("ingress:exchange");
  EXPECT_EQ(p->state(), ProcessState::kStarting);
  p->set_state(ProcessState::kRunning, "listening on 127.0.0.1:2525, 0 sessions");
  p->add("messages_accepted", 3);
  p->report_error(ProcessState::kDegraded,
                  Error::permanent(ErrorCode::kDiskFull, "cannot write spool", "free disk space"));
  auto j = reg.to_json();
  ASSERT_EQ(j["processes"].size(), 1u);
  const auto& s = j["processes"][0];
  EXPECT_EQ(s["name"], "ingress:exchange");
  EXPECT_EQ(s["state"], "degraded");
  EXPECT_EQ(s["counters"]["messages_accepted"], 3);
  EXPECT_EQ(s["counters"]["errors"], 1);
  EXPECT_EQ(s["last_error"]["message"], "cannot write spool");
  EXPECT_EQ(s["last_error"]["remedy"], "free disk space");

  p->recover("listening on 127.0.0.1:2525, 1 session");
  EXPECT_EQ(p->state(), ProcessState::kRunning);
  // The record of the last error stays visible after recovery.
  EXPECT_TRUE(reg.to_json()["processes"][0].contains("last_error"));
}

TEST(ProcessRegistry, SinceChangesOnlyWithTheState) {
  Process p("x");
  p.set_state(ProcessState::kRunning, "a");
  auto since = p.snapshot().since;
  p.set_state(ProcessState::kRunning, "b");
  EXPECT_EQ(p.snapshot().since, since);
  EXPECT_EQ(p.snapshot().activity, "b");
}

TEST(ProcessRegistry, DuplicateNamesAreABrokenInvariant) {
  ProcessRegistry reg;
  reg.add("dirsync");
  EXPECT_THROW(reg.add("dirsync"), std::logic_error);
}

TEST(ProcessRegistry, TableShowsErrorAndRemedy) {
  ProcessRegistry reg;
  auto p = reg.add("deliver:notes");
  p->report_error(ProcessState::kError, Error::permanent(ErrorCode::kUnavailable, "connection refused", "start the server"));
  auto table = format_status_table(reg.to_json());
  EXPECT_NE(table.find("deliver:notes"), std::string::npos);
  EXPECT_NE(table.find("error"), std::string::npos);
  EXPECT_NE(table.find("connection refused"), std::string::npos);
  EXPECT_NE(table.find("remedy: start the server"), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::admin

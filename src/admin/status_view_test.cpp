#include "admin/status_view.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace bridgehead::admin {
namespace {

TEST(StatusView, JsonKeepsCountersAndGaugesApart) {
  status::ProcessRegistry reg;
  auto p = reg.add("spool");
  p->set_state(status::ProcessState::kRunning, "");
  p->set_counter("commits", 7);
  p->set_gauge("queued", 2);
  p->set_detail("recovery", "recovered 2 messages");
  const auto j = status_json(reg);
  ASSERT_EQ(j["processes"].size(), 1u);
  const auto& s = j["processes"][0];
  EXPECT_EQ(s["name"], "spool");
  EXPECT_EQ(s["state"], "running");
  EXPECT_EQ(s["counters"], nlohmann::json({{"commits", 7}}));
  EXPECT_EQ(s["gauges"], nlohmann::json({{"queued", 2}}));
  EXPECT_EQ(s["details"]["recovery"], "recovered 2 messages");
  EXPECT_FALSE(s.contains("last_error"));
}

TEST(StatusView, TableShowsErrorRemedyAndMetrics) {
  status::ProcessRegistry reg;
  auto p = reg.add("deliver:notes");
  p->report_error(status::ProcessState::kError,
                  Error::permanent(ErrorCode::kUnavailable, "connection refused", "start the server"));
  p->set_gauge("queued_recipients", 4);
  p->add("delivered", 9);
  const auto table = format_status_table(status_json(reg));
  EXPECT_NE(table.find("deliver:notes"), std::string::npos);
  EXPECT_NE(table.find("error"), std::string::npos);
  EXPECT_NE(table.find("connection refused"), std::string::npos);
  EXPECT_NE(table.find("remedy: start the server"), std::string::npos);
  EXPECT_NE(table.find("now: queued_recipients=4"), std::string::npos) << table;
  EXPECT_NE(table.find("delivered=9 errors=1"), std::string::npos) << table;
}

}  // namespace
}  // namespace bridgehead::admin

#include "status/process.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace bridgehead::status {
namespace {

TEST(Process, ReportsStateActivityErrorAndMetrics) {
  ProcessRegistry reg;
  auto p = reg.add("ingress:exchange");
  EXPECT_EQ(p->state(), ProcessState::kStarting);
  p->set_state(ProcessState::kRunning, "listening on 127.0.0.1:2525, 0 sessions");
  p->add("messages_accepted", 3);
  p->add("messages_accepted");
  p->set_gauge("sessions", 2);
  p->set_gauge("sessions", 1);  // a level: replaced, not added
  p->report_error(ProcessState::kDegraded,
                  Error::permanent(ErrorCode::kDiskFull, "cannot write spool", "free disk space"));
  const auto all = reg.snapshot();
  ASSERT_EQ(all.size(), 1u);
  const auto& s = all[0];
  EXPECT_EQ(s.name, "ingress:exchange");
  EXPECT_EQ(s.state, ProcessState::kDegraded);
  EXPECT_EQ(s.value("messages_accepted"), 4u);
  EXPECT_EQ(s.metrics.at("messages_accepted").kind, MetricKind::kCounter);
  EXPECT_EQ(s.value("sessions"), 1u);
  EXPECT_EQ(s.metrics.at("sessions").kind, MetricKind::kGauge);
  EXPECT_EQ(s.value("errors"), 1u);
  EXPECT_EQ(s.metrics.at("errors").kind, MetricKind::kCounter);
  EXPECT_EQ(s.value("never_set"), 0u);
  ASSERT_TRUE(s.last_error);
  EXPECT_EQ(s.last_error->message, "cannot write spool");
  EXPECT_EQ(s.last_error->remedy, "free disk space");

  p->recover("listening on 127.0.0.1:2525, 1 session");
  EXPECT_EQ(p->state(), ProcessState::kRunning);
  // The record of the last error stays visible after recovery.
  EXPECT_TRUE(p->snapshot().last_error);
}

TEST(Process, APublishedTotalIsACounterAndAMetricKeepsItsKind) {
  Process p("spool");
  p.set_counter("commits", 10);
  p.set_counter("commits", 12);
  EXPECT_EQ(p.snapshot().value("commits"), 12u);
  EXPECT_EQ(p.snapshot().metrics.at("commits").kind, MetricKind::kCounter);
  p.set_gauge("queued", 5);
  EXPECT_THROW(p.set_gauge("commits", 1), std::logic_error);
  EXPECT_THROW(p.add("queued"), std::logic_error);
  EXPECT_EQ(p.snapshot().value("queued"), 5u);
}

TEST(Process, SinceChangesOnlyWithTheState) {
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

}  // namespace
}  // namespace bridgehead::status

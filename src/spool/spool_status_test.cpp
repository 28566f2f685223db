#include "spool/spool_status.hpp"

#include <future>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::spool {
namespace {

using test_support::TempDir;

TEST(SpoolStatus, RecoveryWithNotesIsDegradedWithTheFirstNote) {
  status::Process clean("spool");
  publish_recovery(RecoveryReport{}, clean);
  EXPECT_EQ(clean.state(), status::ProcessState::kRunning);
  EXPECT_FALSE(clean.snapshot().last_error);

  status::Process noted("spool");
  RecoveryReport report;
  report.notes = {"segment 3: damaged frame at 4096", "segment 4: another"};
  publish_recovery(report, noted);
  const auto s = noted.snapshot();
  EXPECT_EQ(s.state, status::ProcessState::kDegraded);
  ASSERT_TRUE(s.last_error);
  EXPECT_EQ(s.last_error->message, "segment 3: damaged frame at 4096");
  EXPECT_EQ(s.details.at("recovery"), report.summary());
}

TEST(SpoolStatus, GaugesCountersAndActivityFollowTheSpool) {
  TempDir dir;
  auto opened = Spool::open({.dir = dir.path()});
  ASSERT_TRUE(opened) << opened.error().describe();
  Spool& sp = **opened;
  status::Process p("spool");
  publish_recovery(sp.recovery_report(), p);
  publish_status(sp, p);
  EXPECT_EQ(p.snapshot().value("queued"), 0u);
  EXPECT_NE(p.snapshot().activity.find("0 messages queued"), std::string::npos) << p.snapshot().activity;

  const MessageId id = sp.begin_message();
  std::promise<Expected<void>> done;
  Envelope env;
  env.mail_from = "a@example.com";
  Recipient rcpt;
  rcpt.address = "b@example.com";
  env.recipients.push_back(rcpt);
  sp.commit(id, "Subject: x\r\n\r\nbody\r\n", env, [&done](Expected<void> r) { done.set_value(std::move(r)); });
  ASSERT_TRUE(done.get_future().get());
  publish_status(sp, p);
  const auto s = p.snapshot();
  EXPECT_EQ(s.value("queued"), 1u);
  EXPECT_EQ(s.value("commits"), 1u);
  EXPECT_EQ(s.metrics.at("queued").kind, status::MetricKind::kGauge);
  EXPECT_EQ(s.metrics.at("commits").kind, status::MetricKind::kCounter);
  EXPECT_NE(s.activity.find("1 message queued in 1 segment"), std::string::npos) << s.activity;
  EXPECT_EQ(s.state, status::ProcessState::kRunning);
}

}  // namespace
}  // namespace bridgehead::spool

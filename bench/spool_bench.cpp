// spool_bench: group-commit throughput of the spool. N threads each commit 4 KiB messages
// in a loop for a few seconds; prints commits/s and commits per fdatasync batch.
// Usage: spool_bench [threads=20] [seconds=3] [dir=/tmp/spool_bench.XXXXXX]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "spool/spool.hpp"

int main(int argc, char** argv) {
  using namespace bridgehead;
  const int threads = argc > 1 ? std::atoi(argv[1]) : 20;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 3;
  std::string dir = argc > 3 ? argv[3] : std::string("/tmp/spool_bench.XXXXXX");
  if (argc <= 3 && ::mkdtemp(dir.data()) == nullptr) return 1;
  auto opened = spool::Spool::open(spool::SpoolOptions{dir});
  if (!opened) {
    std::fprintf(stderr, "%s\n", opened.error().describe().c_str());
    return 1;
  }
  auto& s = **opened;
  const std::string content(4096, 'x');
  Envelope env;
  env.mail_from = "bench@a.example";
  env.recipients.push_back(Recipient{"rcpt@b.example", kNotifyNone, ""});
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> pool;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (!stop.load()) {
        const auto id = s.begin_message();
        std::promise<void> appended, committed;
        s.append(id, content, [&](Expected<void> r) {
          if (!r) ++failed;
          appended.set_value();
        });
        appended.get_future().wait();
        s.commit(id, env, [&](Expected<void> r) {
          if (!r) ++failed;
          committed.set_value();
        });
        committed.get_future().wait();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto st = s.stats();
  std::printf("threads=%d seconds=%.2f commits=%llu commits/s=%.0f syncs=%llu commits/sync=%.1f MB/s=%.1f failed=%llu\n",
              threads, secs, static_cast<unsigned long long>(st.commits), static_cast<double>(st.commits) / secs,
              static_cast<unsigned long long>(st.syncs), st.batching_factor(),
              static_cast<double>(st.bytes_written) / secs / 1e6, static_cast<unsigned long long>(failed.load()));
  opened->reset();
  if (argc <= 3) std::filesystem::remove_all(dir);
  return 0;
}

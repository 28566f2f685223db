// dirsync_state_bench: the directory synchronization state at the size of a large site. Times
// commit() of one batch of 1,000 ObjectRecords of ten attributes each (synchronous=FULL: each
// commit ends in an fsync of the WAL), then fills the state to N records (default 100,000) and
// times objects() loading them all, as every run does at its start.
// Usage: dirsync_state_bench [records=100000] [dir=/tmp/dirsync_state_bench.XXXXXX]
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "directory/sync/state_store.hpp"

namespace {

using namespace bridgehead::directory;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// CPU time of the process, beside the wall clock: a shared machine stretches the latter.
double cpu_ms() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

// Ten attributes of the size a contact has: classes, names, addresses, a binary GUID.
sync::ObjectRecord record(std::size_t i) {
  sync::ObjectRecord r;
  r.direction = "notes->exchange";
  r.key = fmt::format("{:032X}", i * 2654435761u);
  r.source_dn = fmt::format("cn=Person {},ou=Sales,o=Acme", i);
  r.target_dn = fmt::format("cn=Person {},ou=Notes Contacts,dc=acme,dc=example", i);
  r.written.set("objectClass", {"top", "person", "organizationalPerson", "contact"});
  r.written.add("cn", fmt::format("Person {}", i));
  r.written.add("displayName", fmt::format("Person {} (Notes)", i));
  r.written.add("givenName", "Person");
  r.written.add("sn", std::to_string(i));
  r.written.add("mail", fmt::format("person{}@acme.example", i));
  r.written.add("targetAddress", fmt::format("SMTP:person{}@notes.acme.example", i));
  r.written.set("proxyAddresses",
                {fmt::format("SMTP:person{}@acme.example", i), fmt::format("NOTES:Person {}/Sales/Acme@Acme", i)});
  r.written.add("mailNickname", fmt::format("person{}", i));
  r.written.add("importedFrom", "bridgehead:acme:" + r.key);
  r.written.add("objectGUID", std::string("\x00\xd1\xb7\xc6\xa5\x3f\x2e\x4d\x1c\x9b\x8a\x01\x23\x45\x67\xff", 16));
  r.hash = std::string(64, 'a');
  return r;
}

sync::Batch batch(std::size_t first, std::size_t n) {
  sync::Batch b;
  for (std::size_t i = first; i < first + n; ++i) b.put_objects.push_back(record(i));
  b.cookies = {{"notes", std::to_string(first + n)}};
  return b;
}

int report(const bridgehead::Error& e) {
  std::fprintf(stderr, "dirsync_state_bench: %s\n", e.describe().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t total = argc > 1 ? std::stoul(argv[1]) : 100000;
  std::string dir = argc > 2 ? argv[2] : "/tmp/dirsync_state_bench.XXXXXX";
  const bool made = argc <= 2;
  if (made && ::mkdtemp(dir.data()) == nullptr) return 1;
  const std::filesystem::path file = std::filesystem::path(dir) / "dirsync.sqlite";
  std::filesystem::remove(file);
  int rc = 0;
  {
    auto store = sync::StateStore::open(file);
    if (!store) return report(store.error());

    // Batches of 1,000 until `total`: each one's commit timed, prepared outside the clock.
    std::vector<double> commits;
    for (std::size_t first = 0; first < total; first += 1000) {
      const sync::Batch b = batch(first, std::min<std::size_t>(1000, total - first));
      const auto start = Clock::now();
      if (auto ok = store->commit(b); !ok) return report(ok.error());
      commits.push_back(ms_since(start));
    }
    std::vector<double> sorted = commits;
    std::sort(sorted.begin(), sorted.end());
    fmt::print(
        "commit of one batch of 1,000 records (10 attributes): first {:.1f} ms, median {:.1f} ms, max {:.1f} ms "
        "over {} batches\n",
        commits.front(), sorted[sorted.size() / 2], sorted.back(), commits.size());

    for (int round = 0; round < 3; ++round) {
      const auto start = Clock::now();
      const double cpu = cpu_ms();
      auto all = store->objects("notes->exchange");
      if (!all) return report(all.error());
      fmt::print("objects() of {} records: {:.0f} ms ({:.0f} ms CPU)\n", all->size(), ms_since(start), cpu_ms() - cpu);
      if (all->size() != total) rc = 1;
    }
    fmt::print("file: {} MiB\n", std::filesystem::file_size(file) / (1024 * 1024));
  }
  // As a new process finds it: the file closed (checkpointed) and opened again.
  {
    auto store = sync::StateStore::open(file);
    if (!store) return report(store.error());
    const auto start = Clock::now();
    const double cpu = cpu_ms();
    auto all = store->objects("notes->exchange");
    if (!all) return report(all.error());
    fmt::print("objects() of {} records after a reopen: {:.0f} ms ({:.0f} ms CPU)\n", all->size(), ms_since(start),
               cpu_ms() - cpu);
  }
  if (made) std::filesystem::remove_all(dir);
  return rc;
}

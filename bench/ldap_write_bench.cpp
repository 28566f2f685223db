// ldap_write_bench: adds the entries of an LDIF file to a directory with directory/ldap's
// Writer over one connection, N requests in flight, optionally in RFC 5805 transactions of K
// operations, and prints one JSON line: entries, seconds (the writes only, not reading the
// file), entries/s, how many failed and the first failure. bench/dirsync_bench.py runs it
// against slapd beside `ldapadd` of the same file.
// Usage: ldap_write_bench URI BIND_DN PASSWORD LDIF_FILE IN_FLIGHT [TRANSACTION_SIZE=0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "directory/ldap/writer.hpp"
#include "directory/ldif.hpp"

namespace {

using namespace bridgehead;
using namespace bridgehead::directory;

int usage() {
  std::fprintf(stderr, "usage: ldap_write_bench URI BIND_DN PASSWORD LDIF_FILE IN_FLIGHT [TRANSACTION_SIZE=0]\n");
  return 2;
}

int fail_with(const std::string& what) {
  nlohmann::json j;
  j["error"] = what;
  std::printf("%s\n", j.dump().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6 || argc > 7) return usage();
  const int in_flight = std::atoi(argv[5]);
  const long transaction_size = argc == 7 ? std::atol(argv[6]) : 0;
  if (in_flight < 1 || transaction_size < 0) return usage();

  auto doc = read_ldif_file(argv[4]);
  if (!doc) return fail_with(doc.error().describe());
  if (!doc->problems.empty()) return fail_with(doc->problems.front().describe());
  std::vector<ldap::WriteOperation> ops;
  ops.reserve(doc->entries.size());
  for (Entry& e : doc->entries) ops.emplace_back(ldap::AddRequest{std::move(e)});

  ldap::Options options;
  options.uri = argv[1];
  options.bind = ldap::SimpleBind{argv[2], identity::SecretString(argv[3])};
  options.timeouts.operation = std::chrono::seconds(300);  // a commit of thousands with fsync
  auto connection = ldap::Connection::open(std::move(options));
  if (!connection) return fail_with(connection.error().describe());
  ldap::Writer writer(*connection);
  ldap::WriteOptions write;
  write.in_flight = in_flight;
  write.transaction_size = static_cast<std::size_t>(transaction_size);

  const auto start = std::chrono::steady_clock::now();
  auto out = writer.write(ops, write);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!out) return fail_with(out.error().describe());

  nlohmann::json j;
  j["entries"] = ops.size();
  j["in_flight"] = in_flight;
  j["transaction_size"] = transaction_size;
  j["seconds"] = seconds;
  j["rate"] = seconds > 0 ? static_cast<double>(out->succeeded()) / seconds : 0.0;
  j["succeeded"] = out->succeeded();
  j["failed"] = out->failed();
  j["transactions_committed"] = out->transactions_committed;
  j["transactions_rejected"] = out->transactions_rejected;
  j["replayed"] = out->replayed;
  for (const auto& r : out->results) {
    if (!r) {
      j["first_error"] = r.error().describe();
      break;
    }
  }
  if (!out->transaction_problems.empty()) j["first_transaction_problem"] = out->transaction_problems[0].describe();
  std::printf("%s\n", j.dump().c_str());
  return out->failed() == 0 ? 0 : 3;
}

// addressbook_bench: the address book at the size of a large site. Generates N recipients
// (default 200,000) of four forms each, half Domino, half Exchange, and prints: build time,
// the book's memory per recipient (glibc's allocator statistics, mallinfo2: octets in use
// after the build minus before, with the input freed; and the book's own count of its
// capacities), lookups per second of hits (random forms, random case) and of misses, and the
// time to save (durably, with its fsyncs) and to load the file.
// Usage: addressbook_bench [recipients=200000] [dir=/tmp/addressbook_bench.XXXXXX]
#include <malloc.h>
#include <stdlib.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "directory/addressbook/address_book.hpp"
#include "directory/addressbook/address_book_file.hpp"

namespace {

using namespace bridgehead;
using directory::FormKind;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::size_t heap_in_use() {
  const auto m = ::mallinfo2();
  return m.uordblks + m.hblkhd;  // small chunks in use + chunks mapped on their own
}

std::vector<directory::Recipient> generate(std::size_t n) {
  std::vector<directory::Recipient> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    directory::Recipient r;
    const bool notes = i % 2 == 1;
    r.id = fmt::format("{:08x}-0000-4000-8000-{:012x}", i * 2654435761u % 0xffffffffu, i);
    r.system = notes ? "notes" : "exchange";
    r.display_name = fmt::format("First{} Last{}", i, i);
    r.forms.push_back({FormKind::kSmtp, fmt::format("first{}.last{}@acme.example", i, i)});
    r.forms.push_back({FormKind::kSmtp, fmt::format("fl{}@acme.example", i)});
    if (notes) {
      r.forms.push_back({FormKind::kNotesCanonical, fmt::format("CN=First{} Last{}/OU=Sales/O=Acme", i, i)});
    } else {
      r.forms.push_back({FormKind::kX500, fmt::format("/o=Acme/ou=Exchange/cn=Recipients/cn=fl{}", i)});
    }
    r.forms.push_back({FormKind::kNickname, fmt::format("fl{}", i)});
    r.routing_address = r.forms.front().value;
    out.push_back(std::move(r));
  }
  return out;
}

// CPU seconds of this thread: the machine is shared, and wall time would count the other
// engineers' builds too.
double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

template <typename Find>
double lookups_per_second(const std::vector<std::string>& queries, Find find, std::size_t& found) {
  const double start = thread_cpu_seconds();
  found = 0;
  for (const auto& q : queries) found += find(q) ? 1 : 0;
  return static_cast<double>(queries.size()) / (thread_cpu_seconds() - start);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  std::string dir = argc > 2 ? argv[2] : std::string("/tmp/addressbook_bench.XXXXXX");
  if (argc <= 2 && ::mkdtemp(dir.data()) == nullptr) return 1;
  const std::filesystem::path file = std::filesystem::path(dir) / directory::kAddressBookFileName;

  const std::size_t heap_before = heap_in_use();
  std::shared_ptr<const directory::AddressBook> book;
  double add_ms = 0, build_ms = 0;
  std::size_t forms_in = 0, collisions = 0;
  {
    auto input = generate(n);
    for (const auto& r : input) forms_in += r.forms.size();
    directory::AddressBookBuilder builder;
    auto start = Clock::now();
    for (auto& r : input) {
      if (auto added = builder.add(std::move(r)); !added) {
        std::fprintf(stderr, "%s\n", added.error().describe().c_str());
        return 1;
      }
    }
    add_ms = ms_since(start);
    start = Clock::now();
    auto built = std::move(builder).build();
    build_ms = ms_since(start);
    if (!built) {
      std::fprintf(stderr, "%s\n", built.error().describe().c_str());
      return 1;
    }
    book = built->book;
    collisions = built->collisions.size();
  }
  ::malloc_trim(0);
  const std::size_t heap_book = heap_in_use() - heap_before;
  fmt::print("recipients={} forms={} (of {}) collisions={}\n", book->size(), book->form_count(), forms_in, collisions);
  fmt::print("build: {:.0f} ms (add, with validation: {:.0f} ms; build: {:.0f} ms)\n", add_ms + build_ms, add_ms,
             build_ms);
  fmt::print(
      "memory: {:.1f} bytes/recipient by mallinfo2 (heap in use after minus before, input freed: {:.1f} MiB); "
      "{:.1f} bytes/recipient by the book's own count of its capacities ({} of them the strings)\n",
      static_cast<double>(heap_book) / static_cast<double>(n), static_cast<double>(heap_book) / (1 << 20),
      static_cast<double>(book->memory_bytes()) / static_cast<double>(n), book->storage().arena.size());

  // Queries made beforehand: random forms in random ASCII case, and addresses nobody has.
  std::mt19937_64 rng(42);
  const std::size_t q = 2'000'000;
  std::vector<std::string> hits, misses;
  hits.reserve(q);
  misses.reserve(q);
  for (std::size_t i = 0; i < q; ++i) {
    const auto r = rng() % book->size();
    const auto forms = book->forms(r);
    std::string s(forms[rng() % forms.size()].value);
    for (char& c : s) {
      if (c >= 'a' && c <= 'z' && rng() % 4 == 0) c = static_cast<char>(c - 'a' + 'A');
    }
    hits.push_back(std::move(s));
    misses.push_back(fmt::format("nobody{}.last{}@acme.example", rng() % n, i));
  }
  std::size_t found = 0;
  const auto find = [&book](const std::string& s) { return book->find(s).has_value(); };
  lookups_per_second(hits, find, found);  // a first pass, so that neither figure pays for the first touch
  const double hit_rate = lookups_per_second(hits, find, found);
  const std::size_t hits_found = found;
  const double miss_rate = lookups_per_second(misses, find, found);
  fmt::print(
      "lookups (per CPU second of the thread): {:.2f} M/s hits ({} of {} found), {:.2f} M/s misses ({} found), one "
      "thread\n",
      hit_rate / 1e6, hits_found, q, miss_rate / 1e6, found);
  if (hits_found != q || found != 0) {
    std::fprintf(stderr, "addressbook_bench: lookups gave wrong answers\n");
    return 1;
  }

  auto start = Clock::now();
  if (auto saved = directory::save_address_book(*book, file); !saved) {
    std::fprintf(stderr, "%s\n", saved.error().describe().c_str());
    return 1;
  }
  const double save_ms = ms_since(start);
  start = Clock::now();
  auto loaded = directory::load_address_book(file);
  const double load_ms = ms_since(start);
  if (!loaded || (*loaded)->size() != book->size()) {
    std::fprintf(stderr, "addressbook_bench: the saved book did not load back: %s\n",
                 loaded ? "wrong size" : loaded.error().describe().c_str());
    return 1;
  }
  fmt::print(
      "file: {:.1f} MiB, {:.1f} bytes/recipient; save (durable, fsync): {:.0f} ms; load (read, checksum, "
      "checks, index): {:.0f} ms\n",
      static_cast<double>(std::filesystem::file_size(file)) / (1 << 20),
      static_cast<double>(std::filesystem::file_size(file)) / static_cast<double>(n), save_ms, load_ms);
  if (argc <= 2) std::filesystem::remove_all(dir);
  return 0;
}

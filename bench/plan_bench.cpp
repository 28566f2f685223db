// plan_bench: the dirsync planner at the size of a large site. Generates N mapped Domino
// persons (default 100,000; each with cn, targetAddress, three proxy addresses, display name,
// mail nickname), and prints the time make_plan takes for the initial full sync (N adds), for
// a full run in which nothing changed (against a target view of everything written, as a full
// run reads it), and for one in which 1% changed. The planner is pure: no directory involved.
// Usage: plan_bench [objects=100000]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include "directory/sync/plan.hpp"

namespace {

using namespace bridgehead::directory;
using namespace bridgehead::directory::sync;
using Clock = std::chrono::steady_clock;

// CPU time of the process, so that a busy machine does not lengthen the figures.
struct Timer {
  Clock::time_point wall = Clock::now();
  std::clock_t cpu = std::clock();
  double cpu_ms() const { return 1000.0 * static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC; }
  double wall_ms() const { return std::chrono::duration<double, std::milli>(Clock::now() - wall).count(); }
};

std::vector<Desired> generate(std::size_t n, unsigned revision) {
  std::vector<Desired> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = std::to_string(i);
    Desired d;
    d.key = "UNID" + std::string(12 - std::min<std::size_t>(12, id.size()), '0') + id;
    d.source_dn = "cn=Person " + id + ",ou=Staff,o=Acme";
    d.attributes.set("cn", {"Person " + id});
    d.attributes.set("targetAddress", {"SMTP:person." + id + "@notes.acme.example"});
    d.attributes.set("proxyAddresses", {"SMTP:person." + id + "@notes.acme.example", "smtp:p" + id + "@acme.example",
                                        "NOTES:Person " + id + "/Staff/Acme@Acme"});
    const bool changed = revision > 0 && i % 100 == 0;
    d.attributes.set("displayName", {(changed ? "Changed " : "Person ") + id});
    d.attributes.set("mailNickname", {"p" + id});
    out.push_back(std::move(d));
  }
  return out;
}

PlanSettings settings() {
  PlanSettings s;
  s.direction = "notes->exchange";
  s.shape.container = "ou=Notes Contacts,dc=acme,dc=example";
  s.shape.object_classes = {"top", "person", "organizationalPerson", "contact"};
  s.shape.stamp_prefix = "bridgehead:bench:";
  s.shape.required = {"cn", "targetAddress"};
  s.limits.max_deletes = SIZE_MAX;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const PlanSettings s = settings();
  std::unordered_map<std::string, ObjectRecord> state;
  MemoryTargetView empty;

  PlanInput first;
  first.full = true;
  first.desired = generate(n, 0);
  first.state = &state;
  first.target = &empty;
  Timer t;
  const Plan initial = make_plan(s, first);
  std::printf("initial full sync: %zu adds planned in %.0f ms CPU (%.1f us per object), %.0f ms wall\n",
              initial.counts.adds, t.cpu_ms(), t.cpu_ms() * 1000 / static_cast<double>(n), t.wall_ms());

  MemoryTargetView target;
  for (const Operation& op : initial.operations) {
    state.emplace(op.key, op.after);
    TargetObject o;
    o.dn = op.dn;
    o.attributes = op.entry;
    target.add(std::move(o));
  }
  PlanInput again = first;
  again.target = &target;
  t = Timer();
  const Plan unchanged = make_plan(s, again);
  std::printf(
      "full run, nothing changed: %zu unchanged, %zu operations in %.0f ms CPU (%.1f us per object), %.0f ms wall\n",
      unchanged.counts.unchanged, unchanged.operations.size(), t.cpu_ms(), t.cpu_ms() * 1000 / static_cast<double>(n),
      t.wall_ms());

  PlanInput some = again;
  some.desired = generate(n, 1);
  t = Timer();
  const Plan changed = make_plan(s, some);
  std::printf("full run, 1%% changed: %zu updates in %.0f ms CPU, %.0f ms wall\n", changed.counts.updates, t.cpu_ms(),
              t.wall_ms());
  return unchanged.operations.empty() && changed.counts.updates == (n + 99) / 100 ? 0 : 1;
}

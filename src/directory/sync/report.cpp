#include "directory/sync/report.hpp"

#include <fmt/format.h>

namespace bridgehead::directory::sync {
namespace {

nlohmann::json counts_json(const RunCounts& c) {
  return {{"read", c.read},
          {"adds", c.adds},
          {"updates", c.updates},
          {"renames", c.renames},
          {"deletes", c.deletes},
          {"hides", c.hides},
          {"adoptions", c.adoptions},
          {"unchanged", c.unchanged},
          {"conflicts", c.conflicts},
          {"out_of_scope", c.out_of_scope},
          {"errors", c.errors},
          {"held", c.held},
          {"switched_off", c.switched_off}};
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

Error bad_request(std::string message) {
  return Error::permanent(ErrorCode::kInvalidArgument, std::move(message),
                          "use bridgehead dirsync run | preview | apply PREVIEW | approve RUN | status");
}

Expected<std::int64_t> positive(const nlohmann::json& request, const char* key) {
  const auto it = request.find(key);
  if (it == request.end() || !it->is_number_integer() || it->get<std::int64_t>() < 1) {
    return tl::unexpected(bad_request(fmt::format("the request needs \"{}\": a number from 1", key)));
  }
  return it->get<std::int64_t>();
}

nlohmann::json answer(const Expected<RunRecord>& r) {
  nlohmann::json j = to_json(*r);
  j["summary"] = summary(*r);
  return j;
}

}  // namespace

nlohmann::json to_json(const RunRecord& run) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : run.problems) {
    problems.push_back(
        {{"direction", p.direction}, {"key", p.key}, {"dn", p.dn}, {"kind", p.kind}, {"message", p.message}});
  }
  nlohmann::json j = {{"id", run.id},
                      {"kind", to_string(run.kind)},
                      {"status", to_string(run.status)},
                      {"directions", run.directions},
                      {"started_ms", run.started_ms},
                      {"finished_ms", run.finished_ms},
                      {"counts", counts_json(run.counts)},
                      {"error", run.error},
                      {"problem_count", run.problem_count},
                      {"problems", std::move(problems)}};
  if (run.preview_id != 0) j["preview"] = run.preview_id;
  return j;
}

std::string summary(const RunRecord& run) {
  const auto& c = run.counts;
  std::string s = fmt::format("run {} ({}) {}: {}, {}, {}, {}, {}, {}, {}", run.id, to_string(run.kind),
                              to_string(run.status), plural(c.adds, "add", "adds"),
                              plural(c.updates, "update", "updates"), plural(c.renames, "rename", "renames"),
                              plural(c.deletes, "delete", "deletes"), plural(c.conflicts, "conflict", "conflicts"),
                              fmt::format("{} out of scope", c.out_of_scope), plural(c.errors, "error", "errors"));
  if (c.hides > 0) s += fmt::format(", {} hidden", c.hides);
  if (c.adoptions > 0) s += fmt::format(", {}", plural(c.adoptions, "adoption", "adoptions"));
  if (c.held > 0) s += fmt::format(", {} held", plural(c.held, "deletion", "deletions"));
  if (c.switched_off > 0) s += fmt::format(", {} switched off", c.switched_off);
  if (run.preview_id != 0) s += fmt::format(" (preview {})", run.preview_id);
  return s;
}

Expected<nlohmann::json> handle_request(Engine& engine, const nlohmann::json& request) {
  const std::string action = request.is_object() ? request.value("action", "") : "";
  const bool full = request.is_object() && request.value("full", false);
  if (action == "run" || action == "preview") {
    RunOptions o;
    o.kind = action == "preview" ? RunKind::kPreview : (full ? RunKind::kFull : RunKind::kIncremental);
    o.full = full;
    auto r = engine.run(o);
    if (!r) return tl::unexpected(r.error());
    auto j = answer(r);
    if (r->kind == RunKind::kPreview) {
      auto ops = engine.state().preview(r->preview_id);
      if (!ops) return tl::unexpected(ops.error());
      nlohmann::json list = nlohmann::json::array();
      for (const auto& op : *ops) list.push_back(op.describe());
      j["operations"] = std::move(list);
    }
    return j;
  }
  if (action == "apply" || action == "approve") {
    auto n = positive(request, action == "apply" ? "preview" : "run");
    if (!n) return tl::unexpected(n.error());
    auto r = action == "apply" ? engine.apply_preview(*n) : engine.approve(*n);
    if (!r) return tl::unexpected(r.error());
    return answer(std::move(r));
  }
  if (action == "status") {
    auto runs = engine.state().last_runs(10);
    if (!runs) return tl::unexpected(runs.error());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : *runs) {
      auto j = to_json(r);
      j["summary"] = summary(r);
      list.push_back(std::move(j));
    }
    nlohmann::json sources = nlohmann::json::object();
    for (const auto& d : engine.settings().directories) {
      auto n = engine.state().source_count(d.system);
      if (!n) return tl::unexpected(n.error());
      sources[d.system] = *n;
    }
    return nlohmann::json{{"runs", std::move(list)}, {"sources", std::move(sources)}};
  }
  return tl::unexpected(bad_request(fmt::format("unknown dirsync action '{}'", action)));
}

}  // namespace bridgehead::directory::sync

// directory/sync/report: runs as JSON, and the requests `bridgehead dirsync` makes, answered
// the same way by the daemon (through its control socket) and by the CLI itself when no daemon
// runs: {"action": "run", "full": bool} | {"action": "preview", "full": bool} |
// {"action": "apply", "preview": N} | {"action": "approve", "run": N} | {"action": "status"}.
#pragma once

#include <nlohmann/json.hpp>

#include "core/expected.hpp"
#include "directory/sync/engine.hpp"
#include "directory/sync/state_store.hpp"

namespace bridgehead::directory::sync {

nlohmann::json to_json(const RunRecord& run);
/// One line: "run 12 (incremental) ok: 3 adds, 1 update, 0 renames, 0 deletes, 0 conflicts,
/// 2 out of scope, 0 errors".
std::string summary(const RunRecord& run);

/// Answers one request (see above). A request that is not one fails with kInvalidArgument.
Expected<nlohmann::json> handle_request(Engine& engine, const nlohmann::json& request);

}  // namespace bridgehead::directory::sync

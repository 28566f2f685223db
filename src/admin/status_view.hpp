// admin/status_view: the registry's processes as the control socket sends them (JSON) and
// as `bridgehead status` prints them (a table). The model itself is status/.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "status/process.hpp"

namespace bridgehead::admin {

/// {"processes":[{name,state,activity,since,last_error?,counters,gauges,details}...]}:
/// counters and gauges apart, so a reader never takes a rate of a level.
nlohmann::json status_json(const std::vector<status::ProcessStatus>& processes);
nlohmann::json status_json(const status::ProcessRegistry& registry);

/// The table `bridgehead status` prints, from the JSON of status_json().
std::string format_status_table(const nlohmann::json& status);

}  // namespace bridgehead::admin

#include "events/message_event.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include "core/duration.hpp"

namespace bridgehead::events {

std::string_view to_string(EventKind k) {
  switch (k) {
    case EventKind::kReceived:
      return "received";
    case EventKind::kRefused:
      return "refused";
    case EventKind::kQueued:
      return "queued";
    case EventKind::kDeferred:
      return "deferred";
    case EventKind::kDelivered:
      return "delivered";
    case EventKind::kFailed:
      return "failed";
    case EventKind::kNoticeSent:
      return "notice_sent";
    case EventKind::kQuarantined:
      return "quarantined";
  }
  return "unknown";
}

std::string to_json_line(const MessageEvent& e) {
  nlohmann::json j = {{"at_ms", e.at_ms}, {"event", to_string(e.kind)}, {"queue_id", e.queue_id}};
  const auto put = [&j](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  put("system", e.system);
  // The null sender is a value, not an absence: a bounce's sender shows as "".
  if (e.kind == EventKind::kReceived || e.kind == EventKind::kRefused || e.kind == EventKind::kQueued) {
    j["sender"] = e.sender;
  } else {
    put("sender", e.sender);
  }
  put("recipient", e.recipient);
  put("client", e.client);
  put("next_hop", e.next_hop);
  put("reply", e.reply);
  put("detail", e.detail);
  if (e.expired) j["expired"] = true;
  if (e.kind == EventKind::kReceived) j["size"] = e.size;
  // What came from outside (a reply, an address) may be invalid UTF-8: replaced, never thrown.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace bridgehead::events

// events: what happens to a message, as typed events each stage publishes — received or
// refused (smtp/server), queued, deferred, delivered, failed, notice sent, quarantined
// (queue/). Log lines, process counters and the message tracking log are subscribers;
// metrics and a console can subscribe the same way without the stages knowing of them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bridgehead::events {

enum class EventKind {
  kReceived,     ///< the 250 after the end of the data: the spool has it
  kRefused,      ///< the end of the data answered 4xx/5xx: nothing was kept
  kQueued,       ///< in the queue for its destinations (a notice we made included)
  kDeferred,     ///< one recipient: not now, retried
  kDelivered,    ///< one recipient: delivered or relayed
  kFailed,       ///< one recipient: refused for good, unroutable, or expired
  kNoticeSent,   ///< a delivery status notification about this message was queued
  kQuarantined,  ///< set aside: the connector itself could not process it
};
std::string_view to_string(EventKind k);

struct MessageEvent {
  EventKind kind = EventKind::kReceived;
  std::int64_t at_ms = 0;  ///< unix milliseconds
  std::string queue_id;    ///< "00000000000000a1"; a refused message's would-be id
  std::string system;      ///< the ingress system (received, refused) or the destination
  std::string sender;      ///< reverse-path; empty is the null sender
  std::string recipient;   ///< per-recipient events; empty for the message's own
  std::string client;      ///< received, refused: who sent it ("[127.0.0.1]:40312")
  std::string next_hop;    ///< "127.0.0.1:2526", "Maildir below /srv/mail"
  std::string reply;       ///< our answer (received, refused) or the next hop's / our reason
  std::string detail;      ///< notice sent: the notice's queue id; quarantined: why
  bool expired = false;    ///< failed: the queue lifetime ran out (not the next hop's answer)
  std::uint64_t size = 0;  ///< received: octets of content as the client sent it (our trace header not counted)
};

/// Hands each event to every subscriber, in the order they subscribed, synchronously on
/// the publishing thread. A subscriber must not block (no I/O, no waiting for a lock held
/// across I/O): one that writes somewhere hands the event to a thread of its own, as
/// TrackingLog does. Subscribe before events are published; publishing from several
/// threads at once is safe once subscriptions are done.
class EventBus {
 public:
  using Subscriber = std::function<void(const MessageEvent&)>;
  void subscribe(Subscriber s) { subscribers_.push_back(std::move(s)); }
  void publish(const MessageEvent& e) const {
    for (const auto& s : subscribers_) s(e);
  }

 private:
  std::vector<Subscriber> subscribers_;
};

/// One event as one line of JSON (no newline): {"at":…,"event":"delivered",…}. Empty fields
/// are left out.
std::string to_json_line(const MessageEvent& e);

}  // namespace bridgehead::events

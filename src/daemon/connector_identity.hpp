// The daemon's wiring of the connector ID: opens it at start with the first configured
// password source, shows it as the process "identity", and while it is locked or unusable
// holds the deliveries and the STARTTLS listeners that need it (state error, with cause and
// remedy; mail is still accepted and waits in the queue). `bridgehead unlock` arrives here
// through the control socket; once the ID opens, listeners get their certificate and the
// held deliveries drain, without a restart. Part of the composition root: no logic of its own
// beyond deciding who needs the ID.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "core/expected.hpp"
#include "identity/keeper.hpp"
#include "identity/password.hpp"
#include "net/asio.hpp"
#include "queue/queue_manager.hpp"
#include "smtp/server/listener.hpp"
#include "status/process.hpp"

namespace bridgehead::daemon {

class ConnectorIdentity {
 public:
  /// `pool` runs the key derivation of unlocks (about a second of CPU), off the I/O thread.
  ConnectorIdentity(net::asio::io_context& io, net::asio::thread_pool& pool, const config::Config& cfg,
                    status::ProcessRegistry& registry);

  /// Whether an ID is configured at all; without one, nothing below does anything.
  bool configured() const { return keeper_ != nullptr; }

  /// A listener whose STARTTLS certificate is the ID's (its system has no tls_cert_file);
  /// `client_ca_file` non-empty: it also requires client certificates signed by those.
  void add_listener(smtp::Listener& listener, std::shared_ptr<status::Process> process, std::string client_ca_file);
  /// A delivery destination that presents the ID as its TLS client certificate.
  void add_destination(std::string name);
  /// The hook for smtp::client::ClientOptions::configure_tls: installs the current ID, if any.
  std::function<void(net::asio::ssl::context&)> client_tls_hook() const;

  /// Opens the ID at start-up, before any listener is bound and, when started as root,
  /// before the drop: without a password when it has none, otherwise from the first
  /// configured source (which may prompt on the terminal). Never fails: a locked or unusable
  /// ID is a state, shown with its remedy once start() applies it.
  void open_at_start();
  /// Applies the outcome of open_at_start() to every process added above.
  void start(queue::QueueManager& queue);
  /// The control socket's "unlock": {"password": "..."} (optional) opens the ID again from
  /// its file; the result names the ID and its validity.
  net::awaitable<Expected<nlohmann::json>> unlock(nlohmann::json request);
  /// The open ID, or null while it is locked or unusable (any thread): what directory
  /// synchronization binds with over SASL EXTERNAL.
  std::shared_ptr<const identity::ConnectorId> current() const { return keeper_ ? keeper_->current() : nullptr; }
  /// Once a second: notices a certificate that ran out while running.
  void tick();

 private:
  struct Ingress {
    smtp::Listener* listener;
    std::shared_ptr<status::Process> process;
    std::string client_ca_file;
  };
  void apply();
  std::optional<Error> problem() const;

  net::asio::io_context& io_;
  net::asio::thread_pool& pool_;
  const config::Config& cfg_;
  std::unique_ptr<identity::IdKeeper> keeper_;
  std::shared_ptr<status::Process> process_;
  std::vector<Ingress> ingress_;
  std::vector<std::string> destinations_;
  queue::QueueManager* queue_ = nullptr;
  std::string source_;                 // where the start-up password came from, for status and remedies
  std::optional<Error> source_error_;  // the start-up password source failed (e.g. a bad file mode)
};

}  // namespace bridgehead::daemon

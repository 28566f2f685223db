#include "daemon/connector_identity.hpp"

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/blocking.hpp"
#include "net/endpoint.hpp"

namespace bridgehead::daemon {

namespace asio = net::asio;
using identity::IdStatus;
using identity::SecretString;

ConnectorIdentity::ConnectorIdentity(asio::io_context& io, asio::thread_pool& pool, const config::Config& cfg,
                                     status::ProcessRegistry& registry)
    : io_(io), pool_(pool), cfg_(cfg) {
  if (cfg.identity.id_file.empty()) return;
  keeper_ = std::make_unique<identity::IdKeeper>(cfg.identity.id_file);
  process_ = registry.add("identity");
  process_->set_detail("file", cfg.identity.id_file.string());
}

void ConnectorIdentity::add_listener(smtp::Listener& listener, std::shared_ptr<status::Process> process,
                                     std::string client_ca_file) {
  if (!configured()) return;
  ingress_.push_back({&listener, std::move(process), std::move(client_ca_file)});
}

void ConnectorIdentity::add_destination(std::string name) {
  if (configured()) destinations_.push_back(std::move(name));
}

std::function<void(asio::ssl::context&)> ConnectorIdentity::client_tls_hook() const {
  return [this](asio::ssl::context& ctx) {
    const auto id = keeper_->current();
    if (!id) return;
    if (auto used = id->use_in(ctx.native_handle()); !used) {
      spdlog::error("cannot present the connector ID as TLS client certificate: {}", used.error().describe());
    }
  };
}

void ConnectorIdentity::open_at_start() {
  if (!configured()) return;
  const auto& file = cfg_.identity.id_file;
  auto env = identity::Environment::process();
  env.prompt = [file](std::string_view prompt) {
    fmt::print(stderr,
               "bridgehead: the connector ID {} is password-protected. Type its password, or press Ctrl-D to start "
               "with the ID locked and give it later with `bridgehead unlock`.\n",
               file.string());
    return identity::prompt_on_terminal(prompt);
  };
  const auto started = identity::open_at_start(*keeper_, cfg_.identity.id_password_file, env,
                                               fmt::format("Password for the connector ID {}: ", file.string()));
  const auto& source = started.source;
  if (source.source == identity::PasswordSource::kEnvironment) {
    // Children (none today) would inherit it, and /proc/PID/environ shows the bytes where
    // they lie until they are overwritten: unsetenv() alone would leave them.
    identity::wipe_environment_variable(std::string(identity::kPasswordEnvVar));
    spdlog::warn("the connector ID password comes from the environment variable {}; any process of the same user "
                 "can read it there: prefer id_password_file or a systemd credential",
                 identity::kPasswordEnvVar);
  }
  source_ = !started.password_needed     ? "none needed"
            : source.description.empty() ? std::string(identity::to_string(source.source))
                                         : source.description;
  source_error_ = started.source_error;
  process_->set_detail("password_source", source_);
}

void ConnectorIdentity::start(queue::QueueManager& queue) {
  queue_ = &queue;
  if (configured()) apply();
}

std::optional<Error> ConnectorIdentity::problem() const {
  if (keeper_->status() == IdStatus::kOpen) return std::nullopt;
  if (source_error_ && keeper_->status() != IdStatus::kUnusable) return source_error_;
  return keeper_->problem();
}

void ConnectorIdentity::apply() {
  const auto id = keeper_->current();
  const auto why = problem();
  if (!id || why) {
    const Error e = why.value_or(Error::transient_error(ErrorCode::kUnavailable, "the connector ID is not open"));
    const std::string waiting = source_error_ && keeper_->status() == IdStatus::kRejected
                                    ? "waiting for the connector ID password (the one from " + source_ + " was wrong)"
                                    : keeper_->waiting_activity();
    spdlog::error("{}", e.describe());
    process_->report_error(status::ProcessState::kError, e);
    process_->set_activity(waiting);
    process_->set_detail("status", std::string(identity::to_string(keeper_->status())));
    for (auto& in : ingress_) {
      in.listener->set_tls(nullptr);
      in.process->report_error(status::ProcessState::kError, e);
      in.process->set_activity(fmt::format("accepting mail without STARTTLS: {}", waiting));
    }
    for (const auto& d : destinations_) queue_->hold(d, e, waiting);
    return;
  }
  const auto info = id->info();
  const std::string until = identity::format_time(info.not_after);
  process_->set_detail("status", "open");
  process_->set_detail("name", info.name);
  process_->set_detail("not_after", until);
  process_->set_detail("fingerprint_sha256", info.fingerprint_sha256);
  const std::string activity = fmt::format("connector ID {} open, certificate valid until {}", info.name, until);
  if (keeper_->expires_soon()) {
    process_->report_error(status::ProcessState::kDegraded,
                           Error::transient_error(ErrorCode::kCertificate,
                                                  fmt::format("the connector ID's certificate expires on {}", until),
                                                  fmt::format("re-certify it now with `bridgehead id certify {} "
                                                              "--certifier CERT.id`, then run `bridgehead unlock`",
                                                              cfg_.identity.id_file.string())));
    process_->set_activity(activity);
  } else {
    process_->set_state(status::ProcessState::kRunning, activity);
  }
  spdlog::info("{}", activity);
  for (auto& in : ingress_) {
    auto ctx = net::make_server_tls_context();
    Expected<void> ready = id->use_in(ctx->native_handle());
    if (ready && !in.client_ca_file.empty()) ready = net::require_client_certificates(*ctx, in.client_ca_file);
    if (!ready) {
      // Mail still flows, without STARTTLS; the status says why.
      in.listener->set_tls(nullptr);
      in.process->report_error(status::ProcessState::kError, ready.error());
      continue;
    }
    in.process->set_state(status::ProcessState::kRunning, "");
    in.listener->set_tls(std::move(ctx));
  }
  for (const auto& d : destinations_) queue_->resume(d);
}

net::awaitable<Expected<nlohmann::json>> ConnectorIdentity::unlock(nlohmann::json request) {
  if (!configured()) {
    co_return fail(Error::permanent(ErrorCode::kInvalidArgument, "this connector has no connector ID to unlock",
                                    "set id_file in [identity] of the configuration and restart the daemon"));
  }
  std::optional<SecretString> password;
  if (auto it = request.find("password"); it != request.end() && it->is_string()) {
    auto& text = it->get_ref<std::string&>();
    password.emplace(text);
    explicit_bzero(text.data(), text.size());
  }
  // The key derivation takes about a second: on the pool, never on the I/O thread.
  auto open = [this, &password] { return keeper_->open(password ? &*password : nullptr); };
  auto opened = co_await net::run_blocking(pool_.get_executor(), std::move(open));
  if (opened) {
    source_error_.reset();
    source_ = "bridgehead unlock";
    process_->set_detail("password_source", source_);
  }
  apply();
  if (!opened) {
    spdlog::warn("bridgehead unlock: {}", opened.error().describe());
    co_return fail(opened.error());
  }
  const auto info = (*opened)->info();
  spdlog::info("connector ID {} unlocked with `bridgehead unlock`", info.name);
  if (const auto why = keeper_->read_from_copy()) {
    spdlog::warn("{}; opened the copy read at start instead. A re-certified file is only taken without a restart "
                 "when the daemon's user can read it (chgrp that user's group, chmod 0640)",
                 *why);
  }
  co_return nlohmann::json{{"name", info.name},
                           {"subject", info.subject},
                           {"not_after", identity::format_time(info.not_after)},
                           {"file", cfg_.identity.id_file.string()}};
}

void ConnectorIdentity::tick() {
  if (configured() && keeper_->check_expiry()) apply();
}

}  // namespace bridgehead::daemon

#include "net/endpoint.hpp"

#include <fmt/format.h>

namespace bridgehead::net {

Expected<tcp::endpoint> make_endpoint(const std::string& host, std::uint16_t port) {
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    return fail(Error::permanent(ErrorCode::kConfig,
                                 fmt::format("listen address \"{}\" is not an IP address", host),
                                 "use a literal address such as 127.0.0.1 or ::1"));
  }
  return tcp::endpoint(addr, port);
}

std::string to_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::shared_ptr<asio::ssl::context> make_server_tls_context() {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  return ctx;
}

Expected<void> require_client_certificates(asio::ssl::context& ctx, const std::string& ca_file) {
  error_code ec;
  ctx.load_verify_file(ca_file, ec);
  if (ec) {
    return fail(Error::permanent(ErrorCode::kConfig,
                                 fmt::format("cannot load the client certifiers {}: {}", ca_file, ec.message()),
                                 "point tls_client_ca_file at a PEM file of the certifiers' certificates"));
  }
  ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
  // Session resumption would skip the certificate check for a resumed session; a context
  // id is required by OpenSSL once peers are verified.
  static constexpr unsigned char kSessionContext[] = "bridgehead-ingress";
  SSL_CTX_set_session_id_context(ctx.native_handle(), kSessionContext, sizeof kSessionContext - 1);
  return {};
}

Expected<std::shared_ptr<asio::ssl::context>> make_server_tls(const std::string& cert_file,
                                                               const std::string& key_file) {
  auto ctx = make_server_tls_context();
  error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return fail(Error::permanent(ErrorCode::kConfig,
                                 fmt::format("cannot use TLS certificate {}: {}", cert_file, ec.message()),
                                 "point tls_cert_file at a PEM certificate chain"));
  }
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return fail(Error::permanent(ErrorCode::kConfig,
                                 fmt::format("cannot use TLS key {}: {}", key_file, ec.message()),
                                 "point tls_key_file at the PEM private key of the certificate"));
  }
  return ctx;
}

}  // namespace bridgehead::net

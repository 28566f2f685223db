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

Expected<std::shared_ptr<asio::ssl::context>> make_server_tls(const std::string& cert_file,
                                                               const std::string& key_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
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

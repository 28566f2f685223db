// Turning configured endpoints into Asio endpoints, and TLS server contexts from PEM files.
#pragma once

#include <memory>
#include <string>

#include "core/expected.hpp"
#include "net/asio.hpp"

namespace bridgehead::net {

/// A literal IPv4/IPv6 address and a port; fails (kConfig) on a name or a bad address.
Expected<tcp::endpoint> make_endpoint(const std::string& host, std::uint16_t port);
/// "127.0.0.1:2525" or "[::1]:2525".
std::string to_string(const tcp::endpoint& ep);

/// A TLS server context (TLS 1.2+) without certificate, for a caller that installs its own
/// (the connector ID).
std::shared_ptr<asio::ssl::context> make_server_tls_context();

/// Makes `ctx` ask every client for a certificate and fail the handshake without one that
/// verifies against the PEM certificates in `ca_file`; the error names the file.
Expected<void> require_client_certificates(asio::ssl::context& ctx, const std::string& ca_file);

/// A TLS server context (TLS 1.2+) from a PEM certificate chain and key; the error names
/// the file that could not be used.
Expected<std::shared_ptr<asio::ssl::context>> make_server_tls(const std::string& cert_file,
                                                               const std::string& key_file);

}  // namespace bridgehead::net

// The STARTTLS policy of an outbound connection, apart from the connection itself so that
// the settings that choose it need not include Asio.
#pragma once

namespace bridgehead::smtp::client {

enum class TlsPolicy {
  kNone,           ///< never STARTTLS
  kOpportunistic,  ///< STARTTLS when offered, no certificate check; plaintext otherwise
  kRequired,       ///< STARTTLS must be offered; the certificate must verify (ca_file) and name the peer
};

}  // namespace bridgehead::smtp::client

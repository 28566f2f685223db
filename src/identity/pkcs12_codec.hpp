// Internal to identity: PKCS#12 bytes to keys and certificates and back. Reads what
// OpenSSL 3 and the usual tools write (PBES2/PBKDF2 with any cipher OpenSSL has, PKCS#12
// PBE with 3DES; no RC2/RC4, no scrypt, no public-key integrity mode); writes one layout.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/expected.hpp"
#include "identity/id_file.hpp"
#include "identity/ossl.hpp"

namespace bridgehead::identity::pkcs12 {

struct Decoded {
  bool password_protected = false;  ///< opening it needs a password other than the empty one
  bool integrity_checked = false;   ///< a MAC was present and verified
  bool skipped_encrypted = false;   ///< probe mode left encrypted parts unread
  std::vector<ossl::Cert> certs;    ///< in file order
  std::vector<ossl::Pkey> keys;
};

/// Decodes `der`. With `password` null it only probes: it never asks, and leaves the parts
/// that need a password unread (skipped_encrypted). Errors as ConnectorId::load describes.
Expected<Decoded> decode(std::span<const unsigned char> der, const std::string& what, const PasswordProvider* password,
                         const LoadOptions& limits);

/// Encodes key, certificate and chain as ConnectorId::to_pkcs12 describes.
Expected<std::string> encode(EVP_PKEY* key, X509* cert, const std::vector<X509*>& chain,
                             const std::string& friendly_name, const SecretString* password,
                             const SaveOptions& options);

}  // namespace bridgehead::identity::pkcs12

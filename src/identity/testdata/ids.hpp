// Helpers the identity tests share: quick save options and IDs made in memory.
#pragma once

#include <gtest/gtest.h>

#include "identity/id_file.hpp"

namespace bridgehead::identity::testing {

/// Few KDF rounds keep the tests quick; one test checks the real default.
inline SaveOptions fast() {
  SaveOptions o;
  o.kdf_iterations = 1000;
  return o;
}

inline NotesName name(std::string_view s) {
  auto n = parse_notes_name(s);
  EXPECT_TRUE(n) << n.error().describe();
  return *n;
}

/// A new ID (a certifier with `ca`), self-certified or signed by `certifier`.
inline ConnectorId make(std::string_view n, const ConnectorId* certifier = nullptr, bool ca = false,
                        CertificateOptions cert = {}) {
  CreateOptions o;
  o.certifier = ca;
  o.certificate = std::move(cert);
  auto id = ConnectorId::create(name(n), o, certifier);
  EXPECT_TRUE(id) << id.error().describe();
  return std::move(*id);
}

}  // namespace bridgehead::identity::testing

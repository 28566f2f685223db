// The connector ID loader on arbitrary bytes, with the fixed password "fuzz": it either
// refuses them with a clear, classified error, or returns a key with its matching
// certificate that survives being written and read back. The KDF limit is low so a
// mutated iteration count cannot stall the run.
#include <openssl/x509.h>

#include <cstdint>
#include <span>
#include <string>

#include "fuzz_check.hpp"
#include "identity/id_file.hpp"

namespace identity = bridgehead::identity;
using bridgehead::ErrorCode;

namespace {

bool load_error(ErrorCode c) {
  return c == ErrorCode::kParse || c == ErrorCode::kCorrupt || c == ErrorCode::kWrongPassword || c == ErrorCode::kLimit;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const unsigned char> in(data, size);
  identity::LoadOptions limits;
  limits.max_kdf_iterations = 4096;
  int asked = 0;
  const identity::PasswordProvider password =
      [&asked](const std::string&) -> bridgehead::Expected<identity::SecretString> {
    ++asked;
    return identity::SecretString("fuzz");
  };

  auto overview = identity::inspect_memory(in, "input", limits);
  if (!overview) {
    FUZZ_CHECK(load_error(overview.error().code));
    FUZZ_CHECK(!overview.error().message.empty());
    FUZZ_CHECK(overview.error().code != ErrorCode::kWrongPassword);  // a probe never has a password
  }

  auto id = identity::ConnectorId::load_from_memory(in, password, "input", limits);
  FUZZ_CHECK(asked <= 1);  // asked at most once, never in a loop
  if (!id) {
    FUZZ_CHECK(load_error(id.error().code));
    FUZZ_CHECK(!id.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(id->key() != nullptr && id->certificate() != nullptr);
  FUZZ_CHECK(X509_check_private_key(id->certificate(), id->key()) == 1);
  if (overview) FUZZ_CHECK(overview->password_protected == (asked == 1));
  const auto info = id->info();
  FUZZ_CHECK(info.fingerprint_sha256.size() == 32 * 3 - 1);
  (void)identity::verify(*id);

  // What loads can be written and read back as the same ID.
  identity::SaveOptions quick;
  quick.kdf_iterations = 1;
  auto der = id->to_pkcs12(nullptr, quick);
  if (!der) return 0;  // e.g. a key type PKCS#8 cannot encode again: refused, not crashed
  auto again = identity::ConnectorId::load_from_memory(
      std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(der->data()), der->size()), nullptr,
      "re-encoded", limits);
  FUZZ_CHECK(again);
  FUZZ_CHECK(again->info().fingerprint_sha256 == info.fingerprint_sha256);
  return 0;
}

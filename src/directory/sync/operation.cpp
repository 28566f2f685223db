#include "directory/sync/operation.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>

#include "core/text.hpp"

namespace bridgehead::directory::sync {

namespace {

constexpr std::array<std::pair<OpKind, std::string_view>, 6> kKindNames{{
    {OpKind::kAdd, "add"},
    {OpKind::kModify, "modify"},
    {OpKind::kRename, "rename"},
    {OpKind::kDelete, "delete"},
    {OpKind::kHide, "hide"},
    {OpKind::kAdopt, "adopt"},
}};

}  // namespace

std::string_view to_string(ldap::ModifyOp op) {
  switch (op) {
    case ldap::ModifyOp::kAdd:
      return "add";
    case ldap::ModifyOp::kDelete:
      return "delete";
    case ldap::ModifyOp::kReplace:
      return "replace";
  }
  return "?";
}

std::optional<ldap::ModifyOp> modify_op_from_string(std::string_view text) {
  for (auto op : {ldap::ModifyOp::kAdd, ldap::ModifyOp::kDelete, ldap::ModifyOp::kReplace}) {
    if (to_string(op) == text) return op;
  }
  return std::nullopt;
}

std::string_view to_string(OpKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<OpKind> op_kind_from_string(std::string_view text) {
  for (const auto& [k, name] : kKindNames) {
    if (name == text) return k;
  }
  return std::nullopt;
}

std::string written_hash(const Entry& attributes) {
  std::vector<std::pair<std::string, const std::vector<std::string>*>> sorted;
  sorted.reserve(attributes.attributes().size());
  for (const Attribute& a : attributes.attributes()) sorted.emplace_back(to_lower(a.name), &a.values);
  std::sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) { return x.first < y.first; });

  // Fetched once: OpenSSL 3 would otherwise look the algorithm up at every init, and a full
  // run hashes every object. An EVP_MD may be used by several threads at once.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (sha256 == nullptr || !ctx || EVP_DigestInit_ex(ctx.get(), sha256, nullptr) != 1) {
    throw std::runtime_error("written_hash: OpenSSL cannot set up SHA-256");
  }
  // Every name and value is preceded by its length (8 octets, big-endian), so no two
  // different entries feed the digest the same octets.
  const auto feed = [&](std::string_view octets) {
    std::array<unsigned char, 8> length{};
    auto n = static_cast<std::uint64_t>(octets.size());
    for (std::size_t i = length.size(); i-- > 0; n >>= 8) length[i] = static_cast<unsigned char>(n & 0xFF);
    EVP_DigestUpdate(ctx.get(), length.data(), length.size());
    EVP_DigestUpdate(ctx.get(), octets.data(), octets.size());
  };
  for (const auto& [name, values] : sorted) {
    feed(name);
    feed(std::to_string(values->size()));
    for (const std::string& v : *values) feed(v);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1) {
    throw std::runtime_error("written_hash: OpenSSL cannot finish SHA-256");
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += kDigits[md[i] >> 4];
    hex += kDigits[md[i] & 0x0F];
  }
  return hex;
}

std::string Operation::describe() const {
  std::string out(to_string(kind));
  out += ' ';
  out += escape_control(dn);
  if (kind == OpKind::kRename) {
    out += " to ";
    out += escape_control(new_rdn);
  }
  if (!changes.empty()) {
    out += " (";
    for (std::size_t i = 0; i < changes.size(); ++i) {
      if (i > 0) out += ", ";
      out += to_string(changes[i].op);
      out += ' ';
      out += escape_control(changes[i].attribute);
    }
    out += ')';
  }
  return out;
}

}  // namespace bridgehead::directory::sync

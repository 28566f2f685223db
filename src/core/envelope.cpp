#include "core/envelope.hpp"

#include <nlohmann/json.hpp>

namespace bridgehead {

namespace {
constexpr int kEnvelopeVersion = 1;
}

std::string serialize(const Envelope& e) {
  nlohmann::json rcpts = nlohmann::json::array();
  for (const auto& r : e.recipients) {
    rcpts.push_back({{"a", r.address}, {"n", r.notify}, {"o", r.orcpt}});
  }
  nlohmann::json j = {{"v", kEnvelopeVersion},      {"from", e.mail_from},
                      {"rcpt", std::move(rcpts)},   {"body", static_cast<int>(e.body)},
                      {"utf8", e.smtputf8},         {"ret", static_cast<int>(e.ret)},
                      {"envid", e.envid},           {"size", e.declared_size},
                      {"helo", e.helo},             {"client", e.client_address},
                      {"system", e.ingress_system}, {"tls", e.tls},
                      {"at", e.received_at}};
  // Optional keys: absent in envelopes written before they existed.
  if (!e.route_system.empty()) j["route"] = e.route_system;
  // Invalid UTF-8 (an 8-bit HELO, say) must not make the spool refuse a message.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Expected<Envelope> deserialize_envelope(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto corrupt = [](std::string why) {
    return fail(Error::permanent(ErrorCode::kCorrupt, "envelope record: " + std::move(why)));
  };
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  try {
    if (j.at("v").get<int>() != kEnvelopeVersion) return corrupt("unknown version");
    Envelope e;
    e.mail_from = j.at("from").get<std::string>();
    for (const auto& r : j.at("rcpt")) {
      e.recipients.push_back(Recipient{r.at("a").get<std::string>(), r.at("n").get<std::uint8_t>(),
                                       r.at("o").get<std::string>()});
    }
    e.body = static_cast<BodyType>(j.at("body").get<int>());
    e.smtputf8 = j.at("utf8").get<bool>();
    e.ret = static_cast<DsnRet>(j.at("ret").get<int>());
    e.envid = j.at("envid").get<std::string>();
    e.declared_size = j.at("size").get<std::uint64_t>();
    e.helo = j.at("helo").get<std::string>();
    e.client_address = j.at("client").get<std::string>();
    e.ingress_system = j.at("system").get<std::string>();
    e.tls = j.at("tls").get<bool>();
    e.received_at = j.at("at").get<std::int64_t>();
    if (auto it = j.find("route"); it != j.end()) e.route_system = it->get<std::string>();
    return e;
  } catch (const nlohmann::json::exception& ex) {
    return corrupt(ex.what());
  }
}

}  // namespace bridgehead

#include "queue/quarantine.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "core/durable_file.hpp"
#include "core/read_file.hpp"

namespace bridgehead::queue {

namespace fs = std::filesystem;

namespace {

constexpr int kRecordVersion = 1;

Error not_found(std::string_view id) {
  return Error::permanent(ErrorCode::kNotFound, fmt::format("message {} is not in quarantine", id),
                          "see the quarantined messages and their ids with `bridgehead quarantine list`");
}

Expected<std::string> read_file(const fs::path& p, std::string_view id) {
  return read_whole_file(p, fmt::format("{} of quarantined message {}", p.string(), id), not_found(id));
}

}  // namespace

nlohmann::json QuarantineRecord::to_json() const {
  nlohmann::json rcpts = nlohmann::json::array();
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    rcpts.push_back({{"address", envelope.recipients[i].address},
                     {"status", spool::status_word(i < status.size() ? status[i] : spool::RecipientStatus::kPending)}});
  }
  // The envelope as the spool keeps it (serialize()), so a release gets back every DSN
  // parameter exactly; the other keys are for people and scripts.
  return {{"v", kRecordVersion},        {"id", id},
          {"reason", reason},           {"quarantined_at", quarantined_at},
          {"from", envelope.mail_from}, {"recipients", std::move(rcpts)},
          {"size", size},               {"envelope", serialize(envelope)}};
}

Expected<QuarantineRecord> QuarantineRecord::from_json(const nlohmann::json& j) {
  auto corrupt = [&](std::string why) {
    return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("quarantine record {}: {}", j.value("id", "?"), why),
                                 "the .eml beside it is the message; send it again by hand"));
  };
  try {
    if (j.at("v").get<int>() != kRecordVersion) return corrupt("unknown version");
    QuarantineRecord r;
    r.id = j.at("id").get<std::string>();
    r.reason = j.at("reason").get<std::string>();
    r.quarantined_at = j.at("quarantined_at").get<std::int64_t>();
    r.size = j.at("size").get<std::uint64_t>();
    auto env = deserialize_envelope(j.at("envelope").get<std::string>());
    if (!env) return corrupt(env.error().message);
    r.envelope = std::move(*env);
    const auto& rcpts = j.at("recipients");
    if (rcpts.size() != r.envelope.recipients.size()) return corrupt("recipients do not match the envelope");
    for (const auto& x : rcpts) {
      const auto word = x.at("status").get<std::string>();
      spool::RecipientStatus s = spool::RecipientStatus::kPending;
      if (word == "deferred") s = spool::RecipientStatus::kDeferred;
      else if (word == "delivered") s = spool::RecipientStatus::kDelivered;
      else if (word == "failed") s = spool::RecipientStatus::kFailed;
      else if (word != "pending") return corrupt("unknown recipient status " + word);
      r.status.push_back(s);
    }
    return r;
  } catch (const nlohmann::json::exception& ex) {
    return corrupt(ex.what());
  }
}

Expected<void> QuarantineStore::check_id(std::string_view id) const {
  // Only our own ids: anything else could name a path outside the directory.
  if (!spool::parse_id(id)) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("\"{}\" is not a message id (16 hex digits)", id),
                                 "copy the id from `bridgehead quarantine list`"));
  }
  return {};
}

Expected<void> QuarantineStore::put(const QuarantineRecord& record, std::string_view content) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return fail(Error::from_errno(ec.value(), fmt::format("cannot create the quarantine directory {}", dir_.string())));
  // A new directory's own entry must be durable too, or a crash could take it and
  // everything in it after the message has left the spool.
  if (auto r = durable::sync_directory(dir_.has_parent_path() ? dir_.parent_path() : fs::path(".")); !r) return r;
  const std::string note = fmt::format("message {}\nreason: {}\nquarantined at: {}\nenvelope: {}\n", record.id,
                                       record.reason, record.quarantined_at, serialize(record.envelope));
  if (auto r = durable::write_file_durably(eml_path(record.id), content); !r) return r;
  if (auto r = durable::write_file_durably(note_path(record.id), note); !r) return r;
  return update(record);
}

Expected<void> QuarantineStore::update(const QuarantineRecord& record) {
  return durable::write_file_durably(record_path(record.id),
                                     record.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

Expected<std::vector<QuarantineRecord>> QuarantineStore::list() const {
  std::vector<QuarantineRecord> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const auto name = entry.path().filename().string();
    if (!name.ends_with(".json") || name.starts_with(".")) continue;
    auto r = get(name.substr(0, name.size() - 5));
    if (r) out.push_back(std::move(*r));
  }
  if (ec) return fail(Error::from_errno(ec.value(), fmt::format("cannot list the quarantine directory {}", dir_.string())));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.quarantined_at != b.quarantined_at ? a.quarantined_at < b.quarantined_at : a.id < b.id;
  });
  return out;
}

std::size_t QuarantineStore::count() const {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const auto name = entry.path().filename().string();
    if (name.ends_with(".json") && !name.starts_with(".")) ++n;
  }
  return n;
}

Expected<QuarantineRecord> QuarantineStore::get(std::string_view id) const {
  if (auto ok = check_id(id); !ok) return fail(ok.error());
  auto text = read_file(record_path(id), id);
  if (!text) return fail(text.error());
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    return fail(Error::permanent(ErrorCode::kCorrupt, fmt::format("quarantine record {} is not JSON", record_path(id).string()),
                                 fmt::format("the message itself is {}; send it again by hand", eml_path(id).string())));
  }
  return QuarantineRecord::from_json(j);
}

Expected<std::string> QuarantineStore::content(std::string_view id) const {
  if (auto ok = check_id(id); !ok) return fail(ok.error());
  return read_file(eml_path(id), id);
}

Expected<void> QuarantineStore::remove(std::string_view id) {
  if (auto ok = check_id(id); !ok) return ok;
  for (const auto& p : {record_path(id), eml_path(id), note_path(id)}) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      return fail(Error::from_errno(errno, fmt::format("cannot remove {} of quarantined message {}", p.string(), id),
                                    "remove it by hand"));
    }
  }
  // Removed for good only once the directory says so: otherwise a crash could bring a
  // released message back into quarantine, to be released (and delivered) twice.
  return durable::sync_directory(dir_);
}

}  // namespace bridgehead::queue

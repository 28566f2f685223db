#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "identity/id_file.hpp"
#include "identity/password.hpp"

namespace bridgehead::cli {
namespace {

namespace identity = bridgehead::identity;
using identity::SecretString;

/// The password of an existing ID: from `file` when given, else asked on the terminal.
/// Remembers whether getting it failed and the password it gave (to save the file again).
class PasswordInput {
 public:
  PasswordInput(std::string file, std::string option) : file_(std::move(file)), option_(std::move(option)) {}

  bool failed = false;
  std::optional<SecretString> used;

  identity::PasswordProvider provider() {
    return [this](const std::string& what) -> Expected<SecretString> {
      auto pw = get(what);
      if (!pw) {
        failed = true;
        return pw;
      }
      used = pw->clone();
      return pw;
    };
  }

 private:
  Expected<SecretString> get(const std::string& what) const { return existing_password(file_, option_, what); }

  std::string file_;
  std::string option_;  // "--password-file", for messages
};

/// The password for a file being written: none, from a file, or asked twice on the terminal.
Expected<std::optional<SecretString>> new_password(const std::string& file, bool none, const std::string& option,
                                                   const std::string& for_what) {
  if (none) return std::optional<SecretString>();
  if (!file.empty()) {
    auto pw = identity::read_password_file(file, option);
    if (!pw) return fail(pw.error());
    return std::optional<SecretString>(std::move(*pw));
  }
  if (!identity::terminal_available()) {
    return fail(Error::permanent(
        ErrorCode::kUnavailable, fmt::format("no password for {} and no terminal to ask for one", for_what),
        fmt::format("give {} FILE, a file holding the password with mode 0600, or --no-password for an ID without one",
                    option)));
  }
  auto first = identity::prompt_on_terminal(fmt::format("New password for {}: ", for_what));
  if (!first) return fail(first.error());
  if (first->empty()) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "the password is empty",
                                 "type a password, or use --no-password for an ID without one"));
  }
  auto second = identity::prompt_on_terminal("Repeat the new password: ");
  if (!second) return fail(second.error());
  if (!first->equals(*second)) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, "the two passwords differ", "run the command again"));
  }
  return std::optional<SecretString>(std::move(*first));
}

std::string issuers_text(const identity::IdInfo& info) {
  if (info.issuers.empty()) return "none (certified by itself)";
  return fmt::format("{}", fmt::join(info.issuers, " > "));
}

nlohmann::json info_json(const identity::IdInfo& info) {
  return {{"name", info.name},
          {"subject", info.subject},
          {"issuers", info.issuers},
          {"certifier", info.is_ca},
          {"not_before", identity::format_time(info.not_before)},
          {"not_after", identity::format_time(info.not_after)},
          {"key_type", info.key_type},
          {"fingerprint_sha256", info.fingerprint_sha256},
          {"dns_names", info.dns_names}};
}

void print_info(const identity::IdInfo& info) {
  fmt::print("  name:        {}\n", info.name);
  fmt::print("  subject:     {}\n", info.subject);
  fmt::print("  kind:        {}\n", info.is_ca ? "certifier (CA)" : "ID");
  fmt::print("  certifiers:  {}\n", issuers_text(info));
  fmt::print("  valid:       {} to {}\n", identity::format_time(info.not_before),
             identity::format_time(info.not_after));
  fmt::print("  key:         {}\n", info.key_type);
  fmt::print("  fingerprint: SHA-256 {}\n", info.fingerprint_sha256);
  if (!info.dns_names.empty()) fmt::print("  dns names:   {}\n", fmt::join(info.dns_names, ", "));
}

struct CreateArgs {
  std::string name, out, certifier, certifier_password_file, password_file, key = "ec-p256";
  int validity = 0;
  bool no_password = false, ca = false;
  std::vector<std::string> dns;
};

int run_create(const CreateArgs& a) {
  auto name = identity::parse_notes_name(a.name);
  if (!name) return report_id_error(name.error());
  auto key = identity::parse_key_type(a.key);
  if (!key) return report_id_error(key.error());
  std::error_code ec;
  if (std::filesystem::exists(a.out, ec)) {
    return report_id_error(Error::permanent(ErrorCode::kInvalidArgument, fmt::format("{} already exists", a.out),
                                   "choose another --out, or remove the file first"));
  }
  std::optional<identity::ConnectorId> certifier;
  if (!a.certifier.empty()) {
    PasswordInput pw(a.certifier_password_file, "--certifier-password-file");
    auto loaded = identity::ConnectorId::load(a.certifier, pw.provider());
    if (!loaded) return report_id_error(loaded.error(), pw.failed);
    certifier = std::move(*loaded);
  }
  auto password = new_password(a.password_file, a.no_password, "--password-file", a.out);
  if (!password) return report_id_error(password.error(), true);
  identity::CreateOptions opts;
  opts.key = *key;
  opts.certifier = a.ca;
  opts.certificate.validity_days =
      a.validity > 0 ? a.validity : (a.ca ? identity::kDefaultCertifierValidityDays : identity::kDefaultValidityDays);
  opts.certificate.dns_names = a.dns;
  auto id = identity::ConnectorId::create(*name, opts, certifier ? &*certifier : nullptr);
  if (!id) return report_id_error(id.error());
  identity::SaveOptions save;
  save.overwrite = false;
  if (auto ok = id->save(a.out, *password ? &**password : nullptr, save); !ok) return report_id_error(ok.error());
  fmt::print("created {} ({}):\n", a.out, *password ? "password-protected" : "no password");
  print_info(id->info());
  return kOk;
}

struct ShowArgs {
  std::string file, password_file;
  bool json = false;
};

int run_show(const ShowArgs& a) {
  auto overview = identity::inspect(a.file);
  if (!overview) return report_id_error(overview.error());
  if (!overview->password_protected && !overview->info) {
    return report_id_error(Error::permanent(ErrorCode::kCorrupt, fmt::format("connector ID {} holds no certificate", a.file)));
  }
  std::optional<identity::IdInfo> info = overview->info;
  bool checked = !overview->password_protected;
  if (overview->password_protected && (!a.password_file.empty() || (!info && identity::terminal_available()))) {
    PasswordInput pw(a.password_file, "--password-file");
    auto id = identity::ConnectorId::load(a.file, pw.provider());
    if (!id) return report_id_error(id.error(), pw.failed);
    info = id->info();
    checked = true;
  }
  if (a.json) {
    nlohmann::json j = {{"file", a.file}, {"password_protected", overview->password_protected}};
    if (info) j.update(info_json(*info));
    j["integrity_checked"] = info.has_value() && checked;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}:\n", a.file);
    fmt::print("  password:    {}\n", overview->password_protected ? "protected" : "none");
    if (info) print_info(*info);
    if (info && !checked) fmt::print("  (read without the password, so the file's integrity is not checked)\n");
  }
  if (!info) {
    fmt::print(stderr,
               "bridgehead: the certificates in {} are encrypted as well; give --password-file FILE or run on a "
               "terminal to see them\n",
               a.file);
    return kNoPassword;
  }
  return kOk;
}

struct PasswdArgs {
  std::string file, password_file, new_password_file;
  bool no_password = false;
};

int run_passwd(const PasswdArgs& a) {
  PasswordInput old(a.password_file, "--password-file");
  auto id = identity::ConnectorId::load(a.file, old.provider());
  if (!id) return report_id_error(id.error(), old.failed);
  auto password = new_password(a.new_password_file, a.no_password, "--new-password-file", a.file);
  if (!password) return report_id_error(password.error(), true);
  if (auto ok = id->save(a.file, *password ? &**password : nullptr); !ok) return report_id_error(ok.error());
  const bool had = old.used.has_value();
  const bool has = password->has_value();
  fmt::print(
      "{}: {}\n", a.file,
      has ? (had ? "password changed" : "password set") : (had ? "password removed" : "still without a password"));
  return kOk;
}

struct CertifyArgs {
  std::string file, password_file, certifier, certifier_password_file;
  int validity = 0;
  std::vector<std::string> dns;
};

int run_certify(const CertifyArgs& a) {
  PasswordInput pw(a.password_file, "--password-file");
  auto subject = identity::ConnectorId::load(a.file, pw.provider());
  if (!subject) return report_id_error(subject.error(), pw.failed);
  std::error_code ec;
  std::optional<identity::ConnectorId> certifier;
  if (std::filesystem::equivalent(a.file, a.certifier, ec)) {
    certifier = subject->share();  // a certifier renewing itself
  } else {
    PasswordInput cpw(a.certifier_password_file, "--certifier-password-file");
    auto loaded = identity::ConnectorId::load(a.certifier, cpw.provider());
    if (!loaded) return report_id_error(loaded.error(), cpw.failed);
    certifier = std::move(*loaded);
  }
  identity::CertificateOptions opts;
  opts.validity_days = a.validity > 0 ? a.validity
                                      : (subject->is_certifier() ? identity::kDefaultCertifierValidityDays
                                                                 : identity::kDefaultValidityDays);
  opts.dns_names = a.dns;
  auto renewed = identity::certify(*subject, *certifier, opts);
  if (!renewed) return report_id_error(renewed.error());
  if (auto ok = renewed->save(a.file, pw.used ? &*pw.used : nullptr); !ok) return report_id_error(ok.error());
  fmt::print("re-certified {}:\n", a.file);
  print_info(renewed->info());
  return kOk;
}

struct VerifyArgs {
  std::string file, password_file;
};

int run_verify(const VerifyArgs& a) {
  PasswordInput pw(a.password_file, "--password-file");
  auto id = identity::ConnectorId::load(a.file, pw.provider());
  if (!id) return report_id_error(id.error(), pw.failed);
  if (auto ok = identity::verify(*id); !ok) return report_id_error(ok.error());
  const auto info = id->info();
  fmt::print("{}: OK: {}, certifiers: {}, valid until {}\n", a.file, info.name, issuers_text(info),
             identity::format_time(info.not_after));
  return kOk;
}

}  // namespace

void add_id(CLI::App& app, int& exit_code) {
  auto* id = app.add_subcommand("id",
                                "Create and manage the connector ID (a PKCS#12 file: key, certificate, "
                                "certifier chain)");
  id->require_subcommand(1);
  id->footer(id_exit_codes_help());  // subcommands added below inherit it

  {
    auto a = std::make_shared<CreateArgs>();
    auto* cmd = id->add_subcommand("create", "Create an ID (or with --ca a certifier) and write it to --out");
    cmd->add_option("NAME", a->name, "Notes name: 'Exchange Connector/Sales/Acme', or '/Acme' for a certifier")
        ->required();
    cmd->add_option("--out", a->out, "file to write (must not exist yet)")->required();
    cmd->add_option("--certifier", a->certifier, "certifier ID to sign with (default: self-signed)");
    cmd->add_option("--certifier-password-file", a->certifier_password_file, "file with the certifier's password");
    cmd->add_option("--validity", a->validity, "days the certificate is valid (default 730, 3650 with --ca)")
        ->check(CLI::Range(1, identity::kMaxValidityDays));
    cmd->add_option("--key", a->key, "key type: ec-p256 (default) or rsa-3072");
    auto* pw = cmd->add_option("--password-file", a->password_file, "file with the new ID's password (mode 0600)");
    auto* none = cmd->add_flag("--no-password", a->no_password, "write the ID without a password");
    pw->excludes(none);
    cmd->add_flag("--ca", a->ca, "create a certifier (a CA); NAME has no common name, e.g. '/Sales/Acme'");
    cmd->add_option("--dns", a->dns, "DNS name for the certificate (repeatable), for STARTTLS clients that check it");
    cmd->callback([a, &exit_code] { exit_code = run_create(*a); });
  }
  {
    auto a = std::make_shared<ShowArgs>();
    auto* cmd = id->add_subcommand("show",
                                   "Show name, certifiers, validity, key type, fingerprint and whether the "
                                   "ID is password-protected (told without the password)");
    cmd->add_option("FILE", a->file, "the ID file")->required();
    cmd->add_option("--password-file", a->password_file, "file with the ID's password, to check the file's integrity");
    cmd->add_flag("--json", a->json, "print JSON");
    cmd->callback([a, &exit_code] { exit_code = run_show(*a); });
  }
  {
    auto a = std::make_shared<PasswdArgs>();
    auto* cmd = id->add_subcommand("passwd", "Set, change or remove the ID's password");
    cmd->add_option("FILE", a->file, "the ID file")->required();
    cmd->add_option("--password-file", a->password_file, "file with the current password");
    auto* pw = cmd->add_option("--new-password-file", a->new_password_file, "file with the new password (mode 0600)");
    auto* none = cmd->add_flag("--no-password", a->no_password, "remove the password");
    pw->excludes(none);
    cmd->callback([a, &exit_code] { exit_code = run_passwd(*a); });
  }
  {
    auto a = std::make_shared<CertifyArgs>();
    auto* cmd = id->add_subcommand("certify",
                                   "Re-certify: a new certificate for the same key, signed by --certifier "
                                   "(to extend validity or move under another certifier of that name)");
    cmd->add_option("FILE", a->file, "the ID file (rewritten with the same password)")->required();
    cmd->add_option("--certifier", a->certifier, "certifier ID (the ID itself for a certifier renewing itself)")
        ->required();
    cmd->add_option("--password-file", a->password_file, "file with the ID's password");
    cmd->add_option("--certifier-password-file", a->certifier_password_file, "file with the certifier's password");
    cmd->add_option("--validity", a->validity, "days the new certificate is valid (default 730, 3650 for a certifier)")
        ->check(CLI::Range(1, identity::kMaxValidityDays));
    cmd->add_option("--dns", a->dns, "DNS names for the new certificate (default: keep the current ones)");
    cmd->callback([a, &exit_code] { exit_code = run_certify(*a); });
  }
  {
    auto a = std::make_shared<VerifyArgs>();
    auto* cmd = id->add_subcommand("verify",
                                   "Check the password, that key and certificate match, and the chain up to "
                                   "the ID's certifier (validity included); the exit code says what failed");
    cmd->add_option("FILE", a->file, "the ID file")->required();
    cmd->add_option("--password-file", a->password_file, "file with the ID's password");
    cmd->callback([a, &exit_code] { exit_code = run_verify(*a); });
  }
}

}  // namespace bridgehead::cli

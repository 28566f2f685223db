#include "daemon/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace bridgehead::daemon {

namespace fs = std::filesystem;

namespace {

bool is_under(const fs::path& p, const fs::path& root) {
  auto r = root.lexically_normal();
  auto q = p.lexically_normal();
  auto [ri, qi] = std::mismatch(r.begin(), r.end(), q.begin(), q.end());
  // A trailing separator gives root an empty last element.
  return ri == r.end() || (std::next(ri) == r.end() && ri->empty());
}

std::string owner_remedy(const ServiceAccount& a, const fs::path& p) {
  return fmt::format("chown -R {}:{} {}", a.user, a.group, p.string());
}

// errno of access(path, mode) as `account` (0: allowed). A child takes on the account, so
// the kernel answers with every rule it has (groups, ACLs, parents to search); the parent
// keeps root.
int access_as(const fs::path& path, int mode, const ServiceAccount* account) {
  if (account == nullptr) return ::access(path.c_str(), mode) == 0 ? 0 : errno;
  const pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    // Only async-signal-safe calls in the child of a possibly threaded process.
    const gid_t g = account->gid;
    if (::setgroups(1, &g) != 0 || ::setresgid(g, g, g) != 0 || ::setresuid(account->uid, account->uid, account->uid) != 0) {
      ::_exit(EPERM);
    }
    ::_exit(::access(path.c_str(), mode) == 0 ? 0 : (errno & 0xff));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : EPERM;
}

std::string who(const ServiceAccount* account) {
  return account != nullptr ? fmt::format("the daemon's user {}", account->user) : std::string("the daemon");
}

Expected<void> chown_one(const fs::path& p, const ServiceAccount& a) {
  struct stat st{};
  if (::lstat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};  // removed since it was listed: nothing to hand over
    return fail(Error::from_errno(errno, fmt::format("give {} to the daemon's user {}", p.string(), a.user)));
  }
  if (st.st_uid == a.uid && st.st_gid == a.gid) return {};
  if (::lchown(p.c_str(), a.uid, a.gid) != 0) {
    if (errno == ENOENT) return {};
    return fail(Error::from_errno(errno, fmt::format("give {} to the daemon's user {}", p.string(), a.user)));
  }
  return {};
}

Expected<void> chown_tree(const fs::path& root, const ServiceAccount& a) {
  if (auto r = chown_one(root, a); !r) return r;
  std::error_code ec;
  // The iterator does not follow symbolic links: a link planted below the state directory
  // cannot make root chown a file elsewhere (lchown changes the link itself).
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (auto r = chown_one(it->path(), a); !r) return r;
  }
  if (ec) return fail(Error::from_errno(ec.value(), fmt::format("walk {} to give it to {}", root.string(), a.user)));
  return {};
}

}  // namespace

Expected<std::optional<ServiceAccount>> service_account(const config::Config& cfg) {
  if (::geteuid() != 0) return std::optional<ServiceAccount>{};
  if (cfg.user.empty()) {
    return fail(Error::permanent(
        ErrorCode::kConfig,
        fmt::format("{}: started as root without [connector] user; Bridgehead does not parse SMTP, TLS and MIME "
                    "as root",
                    cfg.file.string()),
        "set user = \"bridgehead\" in [connector] (scripts/install-deps creates that system user: useradd --system "
        "--no-create-home --shell /usr/sbin/nologin bridgehead), or start it as an unprivileged user"));
  }
  errno = 0;
  const passwd* pw = ::getpwnam(cfg.user.c_str());
  if (pw == nullptr) {
    return fail(Error::permanent(
        ErrorCode::kNotFound, fmt::format("{}: [connector] user \"{}\" does not exist", cfg.file.string(), cfg.user),
        fmt::format("create it with `useradd --system --no-create-home --shell /usr/sbin/nologin {}`, or name an "
                    "existing user",
                    cfg.user)));
  }
  ServiceAccount a;
  a.user = cfg.user;
  a.uid = pw->pw_uid;
  a.gid = pw->pw_gid;
  if (!cfg.group.empty()) {
    const group* gr = ::getgrnam(cfg.group.c_str());
    if (gr == nullptr) {
      return fail(Error::permanent(
          ErrorCode::kNotFound, fmt::format("{}: [connector] group \"{}\" does not exist", cfg.file.string(), cfg.group),
          fmt::format("create it with `groupadd --system {}`, or name an existing group", cfg.group)));
    }
    a.gid = gr->gr_gid;
  }
  if (const group* gr = ::getgrgid(a.gid); gr != nullptr) {
    a.group = gr->gr_name;
  } else {
    a.group = std::to_string(a.gid);
  }
  if (a.uid == 0 || a.gid == 0) {
    return fail(Error::permanent(
        ErrorCode::kConfig,
        fmt::format("{}: [connector] user {} / group {} is root, so dropping privileges would not drop anything",
                    cfg.file.string(), a.user, a.group),
        "set user (and group) to an unprivileged account such as bridgehead"));
  }
  return std::optional<ServiceAccount>(std::move(a));
}

std::vector<WritableDir> writable_dirs(const config::Config& cfg) {
  std::vector<WritableDir> dirs;
  auto add = [&](const fs::path& p, std::string setting) {
    if (p.empty()) return;
    dirs.push_back({p, std::move(setting), is_under(p, cfg.state_dir)});
  };
  add(cfg.state_dir, "connector.state_dir");
  add(cfg.spool_dir, "spool.dir");
  add(cfg.queue.quarantine_dir, "queue.quarantine_dir");
  for (const auto& s : cfg.systems) {
    if (s.delivery.method == config::DeliveryMethod::kMaildir) {
      add(s.delivery.path, fmt::format("system[{}].delivery.path", s.name));
    }
  }
  return dirs;
}

Expected<void> check_writable(const WritableDir& dir, const ServiceAccount* account) {
  const int err = access_as(dir.path, W_OK | X_OK, account);
  if (err == 0) return {};
  if (err == ENOENT) {
    return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("{} {} does not exist", dir.setting, dir.path.string()),
                                 "create it, or let the daemon create it at start"));
  }
  const std::string remedy =
      account != nullptr
          ? fmt::format("make it writable by {}: `{}` (and every directory above it searchable: chmod o+x), or "
                        "set {} to a directory of that user",
                        account->user, owner_remedy(*account, dir.path), dir.setting)
          : fmt::format("make it writable by the user the daemon runs as, or set {} to another directory", dir.setting);
  return fail(Error::permanent(ErrorCode::kPermission,
                               fmt::format("{} cannot create files in {} {}: {}", who(account), dir.setting,
                                           dir.path.string(), std::strerror(err)),
                               remedy));
}

Expected<void> check_readable(const fs::path& file, const std::string& what, const ServiceAccount* account) {
  const int err = access_as(file, R_OK, account);
  if (err == 0) return {};
  return fail(Error::permanent(
      ErrorCode::kPermission,
      fmt::format("{} cannot read {} {}: {}", who(account), what, file.string(), std::strerror(err)),
      account != nullptr ? fmt::format("chgrp {} {} && chmod g+r {} (and every directory above it searchable)",
                                       account->group, file.string(), file.string())
                         : std::string("make it readable by the user the daemon runs as")));
}

Expected<void> prepare_dirs(const config::Config& cfg, const ServiceAccount& account) {
  for (const auto& dir : writable_dirs(cfg)) {
    // Create what is missing, level by level, so the levels we made are handed over too and a
    // Maildir root below a root-owned directory still works.
    std::vector<fs::path> missing;
    std::error_code ec;
    for (fs::path p = dir.path; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      missing.push_back(p);
      if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0750) != 0 && errno != EEXIST) {
        return fail(Error::from_errno(errno, fmt::format("create {} {}", dir.setting, it->string())));
      }
      if (auto r = chown_one(*it, account); !r) return r;
    }
    const bool ours = dir.under_state_dir || dir.setting == "spool.dir" || dir.setting == "queue.quarantine_dir";
    if (dir.setting == "connector.state_dir") {
      if (auto r = chown_one(dir.path, account); !r) return r;
      continue;
    }
    if (ours && !dir.under_state_dir) {
      // A spool or quarantine of its own elsewhere is handed over as a whole (hand_over_state);
      // only one that is already the account's, so a mistyped path never chowns a shared tree.
      struct stat st{};
      if (::stat(dir.path.c_str(), &st) == 0 && st.st_uid != account.uid) {
        return fail(Error::permanent(
            ErrorCode::kPermission,
            fmt::format("{} {} belongs to uid {}, not to the daemon's user {}", dir.setting, dir.path.string(),
                        st.st_uid, account.user),
            fmt::format("give it to that user: `{}`, or leave {} unset (inside state_dir)",
                        owner_remedy(account, dir.path), dir.setting)));
      }
    }
    if (!dir.under_state_dir && missing.empty() && !ours) {
      if (auto r = check_writable(dir, &account); !r) return r;
    }
  }
  return {};
}

Expected<void> hand_over_state(const config::Config& cfg, const ServiceAccount& account) {
  for (const auto& dir : writable_dirs(cfg)) {
    const bool ours = dir.setting == "connector.state_dir" || dir.setting == "spool.dir" ||
                      dir.setting == "queue.quarantine_dir";
    if (!ours || (dir.under_state_dir && dir.setting != "connector.state_dir")) continue;
    if (auto r = chown_tree(dir.path, account); !r) return r;
  }
  return {};
}

Expected<void> drop_privileges(const ServiceAccount& account) {
  auto step_failed = [&](const char* step) {
    return fail(Error::permanent(ErrorCode::kPermission,
                                 fmt::format("cannot drop root to user {} (uid {}) and group {} (gid {}): {} failed: {}",
                                             account.user, account.uid, account.group, account.gid, step,
                                             std::strerror(errno)),
                                 "start the daemon as root (or as that user); not starting"));
  };
  // Groups first: once the uid is not 0 there is no permission to change them any more.
  // glibc applies each of these to every thread of the process.
  const gid_t g = account.gid;
  if (::setgroups(1, &g) != 0) return step_failed("setgroups");
  if (::setresgid(g, g, g) != 0) return step_failed("setresgid");
  if (::setresuid(account.uid, account.uid, account.uid) != 0) return step_failed("setresuid");

  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  gid_t groups[8];
  const int ngroups = ::getgroups(8, groups);
  const bool ids_ok = ::getresuid(&ru, &eu, &su) == 0 && ::getresgid(&rg, &eg, &sg) == 0 && ru == account.uid &&
                      eu == account.uid && su == account.uid && rg == g && eg == g && sg == g;
  const bool groups_ok = ngroups == 0 || (ngroups == 1 && groups[0] == g);
  // Irreversible: none of these may succeed now.
  const bool back = ::setuid(0) == 0 || ::seteuid(0) == 0 || ::setgid(0) == 0 || ::setegid(0) == 0;
  if (!ids_ok || !groups_ok || back) {
    errno = EPERM;
    return step_failed(back ? "the check that root cannot be regained" : "the check of the new ids");
  }
  // Changing ids made the process non-dumpable, so the sanitizers' leak check cannot stop
  // the world. Made dumpable again only in sanitizer builds: a core dump of a production
  // daemon could hold the opened ID's private key.
#if defined(__SANITIZE_ADDRESS__)
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
  return {};
}

}  // namespace bridgehead::daemon

// Privilege separation of a daemon started as root: which account it becomes
// (`[connector] user`/`group`), the directories that account must own or be able to write,
// and the irreversible drop itself. The daemon binds its listeners and reads its connector
// ID and password file as root, hands its state over, then drops before the event loop reads
// a byte from any client. `bridgehead check` asks the same questions without dropping.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/expected.hpp"

namespace bridgehead::daemon {

/// The account a daemon started as root runs as.
struct ServiceAccount {
  std::string user;
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The account to drop to: nullopt when the process is not root (it runs as it is).
/// Fails (kConfig) when started as root without `[connector] user`, or with root as the
/// user; kNotFound when the user or group does not exist, with the command that creates it.
Expected<std::optional<ServiceAccount>> service_account(const config::Config& cfg);

/// A directory the daemon writes, and the setting that names it.
struct WritableDir {
  std::filesystem::path path;
  std::string setting;  ///< "spool.dir", "system[notes].delivery.path"
  bool under_state_dir = false;
};
/// Every directory the running daemon creates files in: the state directory, the spool, the
/// quarantine, the Maildir roots.
std::vector<WritableDir> writable_dirs(const config::Config& cfg);

/// Whether `account` can create files in `dir` (write and search permission, every parent
/// searchable), told by a child process that takes on the account and asks access(2); with
/// no account, the calling process asks. Fails (kPermission) naming the directory, the
/// setting, the account and the chown/chmod that fixes it; kNotFound when it does not exist.
Expected<void> check_writable(const WritableDir& dir, const ServiceAccount* account);
/// The same for reading a file (`what` names it: "identity.id_file").
Expected<void> check_readable(const std::filesystem::path& file, const std::string& what,
                              const ServiceAccount* account);

/// As root, before the spool opens: creates the directories the daemon writes that do not
/// exist yet; those it created, and the state directory, become the account's. A configured
/// directory outside the state directory that exists is left as it is and must be writable
/// by the account (else the error of check_writable()).
Expected<void> prepare_dirs(const config::Config& cfg, const ServiceAccount& account);

/// Just before the drop: the state directory and everything below it (what the spool and
/// the control socket created as root meanwhile) become the account's. Symbolic links are
/// not followed.
Expected<void> hand_over_state(const config::Config& cfg, const ServiceAccount& account);

/// Gives up root for good: supplementary groups (none but the group), gid, uid, real, effective
/// and saved; then checks that root cannot be regained. Fails (kPermission) saying which step
/// failed; the daemon must then not go on.
Expected<void> drop_privileges(const ServiceAccount& account);

}  // namespace bridgehead::daemon

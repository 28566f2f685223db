// The exit codes of `bridgehead`, listed once for the commands, their --help texts and the
// tests (tests/support/bridgehead.py reads this file, so keep one `inline constexpr int kName
// = N;` per line). Scripts rely on the numbers: a code is never renumbered or reused.
#pragma once

namespace bridgehead::cli {

/// Done; for `run`, stopped by SIGTERM or SIGINT.
inline constexpr int kOk = 0;
/// Failed, and the message says why: a config with problems (`check`, `run`), a daemon that
/// could not start, a bad NAME or option value, an output file that exists.
inline constexpr int kFailure = 1;
/// The running daemon refused or failed the request, or the config that names its control
/// socket cannot be read.
inline constexpr int kRequestFailed = 2;
/// No daemon answers on the control socket.
inline constexpr int kNotRunning = 3;
/// A password was given and did not open the connector ID.
inline constexpr int kWrongPassword = 4;
/// A certificate is expired, not yet valid, or its chain is broken.
inline constexpr int kCertificate = 5;
/// The ID file is missing, unreadable, not PKCS#12, or damaged.
inline constexpr int kIdUnreadable = 6;
/// A password was needed and none could be had (no password file option and no terminal,
/// or the password file is unusable).
inline constexpr int kNoPassword = 7;
/// `unlock` after too many wrong passwords in a row: the daemon takes the next try after a
/// pause it names.
inline constexpr int kTooManyWrongPasswords = 8;
/// Command-line usage errors are CLI11's (CLI::ExitCodes), from this code up.
inline constexpr int kFirstUsageError = 100;

}  // namespace bridgehead::cli

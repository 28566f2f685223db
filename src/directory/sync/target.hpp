// directory/sync/target: writing one system's directory: over LDAP, or into an LDIF change
// file (RFC 2849) an administrator imports. A write that fails because an earlier run did it
// already (a crash between the write and the state commit) is recognized by the ownership
// stamp and completed, so a rerun neither fails nor repeats the change.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/sync/operation.hpp"
#include "directory/sync/plan.hpp"
#include "directory/sync/sync_settings.hpp"

namespace bridgehead::directory::sync {

class Target {
 public:
  virtual ~Target() = default;
  /// The objects the plan asks about, read once when first asked (a run whose objects are
  /// all unchanged never reads the target).
  virtual std::unique_ptr<TargetView> view(const TargetShape& shape) = 0;
  /// Applies `ops` in order: one result each.
  virtual std::vector<Expected<void>> apply(const std::vector<Operation>& ops) = 0;
  /// Ends the run's writes: the LDIF target writes its file (when anything changed).
  virtual Expected<void> finish() = 0;
  /// A problem the view had reading the target (it then shows nothing), for the report.
  virtual std::optional<Error> view_problem() const = 0;
};

/// The target for `settings` (an LDIF change file when ldif_output is set).
Expected<std::unique_ptr<Target>> open_target(const DirectorySettings& settings, const IdSource& id);

}  // namespace bridgehead::directory::sync

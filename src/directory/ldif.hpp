// directory/ldif: RFC 2849 LDIF, the file form of directory entries (a content record per
// entry, what slapcat and ldifde dump) and of changes to them (add, delete, modify, modrdn,
// what ldapmodify applies). The reader streams: it reads an istream in 64 KiB chunks and holds
// one record at a time, and a bad record is reported as a problem with its line and column
// while reading goes on with the next. The writer is deterministic. It owns no directory
// semantics beyond the syntax (no schema); file:// values are the only I/O, and only on request.
#pragma once

#include <cstddef>
#include <deque>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"

namespace bridgehead::directory {

/// What one modify section does to its attribute (RFC 2849 mod-spec, RFC 4525 increment).
enum class ModOp { kAdd, kDelete, kReplace, kIncrement };

/// One section of a modify record: "replace: mail" and its values up to the "-".
struct Modification {
  ModOp op = ModOp::kReplace;
  std::string attribute;            ///< attribute description with options: "cn;lang-de"
  std::vector<std::string> values;  ///< add: at least one; increment: exactly one; else any
  bool operator==(const Modification&) const = default;
};

/// An LDAP control on a change record ("control: 1.2.840.113556.1.4.805 true").
struct Control {
  std::string oid;
  bool critical = false;
  std::optional<std::string> value;
  bool operator==(const Control&) const = default;
};

enum class ChangeType { kAdd, kDelete, kModify, kModDn };

/// A change record. Which members matter depends on `type`.
struct Change {
  ChangeType type = ChangeType::kAdd;
  std::string dn;                           ///< the entry changed, as written
  std::vector<Control> controls;            ///< in file order
  Entry entry;                              ///< kAdd: the new entry (its dn() is `dn`)
  std::vector<Modification> modifications;  ///< kModify: in file order, at least one
  std::string new_rdn;                      ///< kModDn: "cn=New Name"
  bool delete_old_rdn = true;               ///< kModDn: whether the old RDN's values go
  std::optional<std::string> new_superior;  ///< kModDn: the new parent, when it moves
  bool operator==(const Change&) const = default;
};

/// A record the reader could not use, or a line it had to ignore.
struct LdifProblem {
  std::size_t line = 0;    ///< 1-based physical line of the input
  std::size_t column = 0;  ///< 1-based, in octets
  std::string message;     ///< what is wrong and what to write instead
  std::string dn;          ///< the record's DN when it got that far, else empty
  std::string source;      ///< LdifReaderOptions::source_name ("people.ldif"), may be empty
  /// "SOURCE:LINE:COLUMN: message", or "line LINE, column COLUMN: message" without a source.
  std::string describe() const;
};

struct LdifReaderOptions {
  /// Names the input in every LdifProblem ("people.ldif"); read_ldif_file uses the path.
  std::string source_name;
  /// Where "attr:< URL" values may be read from: file:///path and file://localhost/path
  /// must lie inside it (after symbolic links are resolved), file:relative/path resolves
  /// against it. Empty: every URL value is refused. Other schemes are always refused.
  std::filesystem::path url_base_directory;
  /// The largest file a URL value may name.
  std::size_t max_url_file_size = 1 << 20;
  /// The largest record (its unfolded text, octets); a bigger one is skipped as a problem.
  std::size_t max_record_size = 64u << 20;
};

/// What one read step yields: a content record, a change record, or the problem that made
/// the reader skip a record or a line.
using LdifItem = std::variant<Entry, Change, LdifProblem>;

/// Reads LDIF records from a stream one at a time. A file holds content records or change
/// records (RFC 2849); the first record decides, and a record of the other kind is a problem.
class LdifReader {
 public:
  explicit LdifReader(std::istream& in, LdifReaderOptions options = {});
  LdifReader(const LdifReader&) = delete;
  LdifReader& operator=(const LdifReader&) = delete;

  /// The next record or problem; nullopt at the end of the input. A stream that fails while
  /// reading ends the input with a problem saying so.
  std::optional<LdifItem> next();
  /// The 1-based line where the record (or problem) last returned starts.
  std::size_t record_line() const { return record_line_; }
  /// The most octets of input held at once (chunk buffer and current record): what
  /// streaming costs in memory, for tests and benchmarks.
  std::size_t peak_buffered() const { return peak_buffered_; }

 private:
  struct RecordText;  // the logical lines of one record (ldif.cpp)
  bool read_record(RecordText& record);
  bool read_physical_line(std::string& line, bool& too_long);

  std::istream& in_;
  LdifReaderOptions options_;
  std::string chunk_;
  std::size_t chunk_pos_ = 0;
  std::size_t line_number_ = 0;
  std::size_t record_line_ = 0;
  std::size_t peak_buffered_ = 0;
  bool first_record_ = true;
  std::optional<bool> changes_;  // whether the input holds change records, once the first record said
  std::deque<LdifItem> pending_;
  bool failure_reported_ = false;
};

/// Everything an input holds, read whole (for small files and tests).
struct LdifDocument {
  std::vector<Entry> entries;
  std::vector<Change> changes;
  std::vector<LdifProblem> problems;
};

/// Reads all of `text`, in place (the text is not copied).
LdifDocument read_ldif(std::string_view text, const LdifReaderOptions& options = {});
/// Reads all of the file `path` (streaming). Fails only when the file cannot be opened
/// (kNotFound or the errno error, naming it); bad records are problems in the document.
Expected<LdifDocument> read_ldif_file(const std::filesystem::path& path, LdifReaderOptions options = {});

struct LdifWriterOptions {
  /// "version: 1" and an empty line before the first record (as ldapsearch writes it). Off for
  /// input to slapadd, which reads no version line.
  bool write_version = true;
  std::size_t line_width = 76;  ///< fold lines longer than this (at least 2)
};

/// Writes LDIF records to a stream: values that are not SAFE-STRING in base64, lines folded at
/// line_width, records separated by an empty line, attributes and values in the order given.
class LdifWriter {
 public:
  explicit LdifWriter(std::ostream& out, LdifWriterOptions options = {});

  /// A content record. Fails (kInvalidArgument) on a DN that does not parse, an attribute
  /// name that is not an attribute description, or an entry without attributes; writes
  /// nothing then. Fails with kIo when the stream fails.
  Expected<void> write(const Entry& entry);
  /// A change record; fails as above, and on a change its type does not allow (a modify
  /// without modifications, an add section without values, an increment of several values).
  Expected<void> write(const Change& change);

 private:
  Expected<void> emit(const std::string& record);
  std::ostream& out_;
  LdifWriterOptions options_;
  bool first_ = true;
};

/// The records as one LDIF text (content records then change records; see LdifWriter).
Expected<std::string> to_ldif(const std::vector<Entry>& entries, const std::vector<Change>& changes = {},
                              LdifWriterOptions options = {});

/// Whether `value` may be written after "attr: " as it is (RFC 2849 SAFE-STRING): ASCII
/// without NUL, CR and LF, not starting with a space, ':' or '<', not ending with a space.
bool is_safe_string(std::string_view value);

/// Whether `name` is an RFC 2849 AttributeDescription: a name ("cn") or an OID ("2.5.4.3"),
/// then options of letters, digits and '-' after ';' ("cn;lang-de").
bool is_attribute_description(std::string_view name);

/// `octets` in base64 (RFC 4648, padded, one line).
std::string ldif_base64_encode(std::string_view octets);
/// The octets of `text` (RFC 4648 base64, padded, no spaces); nullopt when it is not base64.
/// `bad_at`, when given, is set to the offset of the first octet that is wrong.
std::optional<std::string> ldif_base64_decode(std::string_view text, std::size_t* bad_at = nullptr);

}  // namespace bridgehead::directory

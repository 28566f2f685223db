#include "directory/addressbook/address_book.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"

namespace bridgehead::directory {
namespace {

// ASCII upper case to lower case in all eight octets of a word at once: an octet gets 0x20
// added when it lies in 'A'..'Z' (the sums set bit 7 of an octet >= 'A' and of one > 'Z';
// octets >= 0x80, UTF-8, are left alone). Every form is hashed at build and every RCPT
// at lookup, so this runs over every octet of both.
std::uint64_t fold_word(std::uint64_t w) {
  constexpr std::uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
  constexpr std::uint64_t kHigh = 0x8080808080808080ull;
  const std::uint64_t low7 = w & kLow7;
  const std::uint64_t at_least_a = low7 + 0x3f3f3f3f3f3f3f3full;
  const std::uint64_t above_z = low7 + 0x2525252525252525ull;
  return w | ((at_least_a & ~above_z & ~w & kHigh) >> 2);
}

std::uint32_t fold_hash(std::string_view s) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  for (std::size_t i = 0; i < s.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, std::min<std::size_t>(8, s.size() - i));
    h = std::rotl(h ^ (fold_word(w) * 0xff51afd7ed558ccdull), 27) * 0xc4ceb9fe1a85ec53ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h >> 32);
}

AddressBook::StrRef append(std::string& arena, std::string_view s) {
  AddressBook::StrRef r{static_cast<std::uint32_t>(arena.size()), static_cast<std::uint32_t>(s.size())};
  arena.append(s);
  return r;
}

Error corrupt(std::string what) { return Error::permanent(ErrorCode::kCorrupt, std::move(what)); }

bool inside(AddressBook::StrRef r, std::size_t arena_size) {
  return static_cast<std::uint64_t>(r.offset) + r.length <= arena_size;
}

// Which of the recipient's strings lies outside the arena, or null.
const char* outside_string(const AddressBook::RecipientRecord& r, std::size_t arena_size) {
  if (!inside(r.id, arena_size)) return "id";
  if (!inside(r.system, arena_size)) return "system";
  if (!inside(r.display_name, arena_size)) return "display name";
  if (!inside(r.routing_address, arena_size)) return "routing address";
  return nullptr;
}

bool is_contact(RecipientKind k) { return k == RecipientKind::kContact; }

}  // namespace

std::string Collision::describe() const {
  return fmt::format("form '{}': kept for {} ({}), not {} ({}): {}", escape_control(form), winner_id, winner_system,
                     loser_id, loser_system, rule);
}

std::chrono::system_clock::time_point AddressBook::built_at() const {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(s_.built_at_ms));
}

void AddressBook::reserve_index(std::size_t forms) {
  // At most half full: a miss (the usual RCPT of an unknown user) probes about 2.5 slots.
  const std::size_t slots = std::bit_ceil(std::max<std::size_t>(16, 2 * forms));
  slots_.assign(slots, kEmptySlot);
  mask_ = slots - 1;
}

std::size_t AddressBook::probe(std::string_view value, std::uint32_t hash) const {
  for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const std::uint32_t s = slots_[i];
    if (s == kEmptySlot) return i;
    const FormRecord& f = s_.forms[s];
    if (f.hash == hash && f.length == value.size() && iequals(text({f.offset, f.length}), value)) return i;
  }
}

std::optional<AddressBook::Lookup> AddressBook::find(std::string_view form) const {
  if (slots_.empty()) return std::nullopt;
  const std::uint32_t s = slots_[probe(form, fold_hash(form))];
  if (s == kEmptySlot) return std::nullopt;
  const FormRecord& f = s_.forms[s];
  return Lookup{recipient(f.recipient), FormView{f.kind, text({f.offset, f.length})}};
}

AddressBook::RecipientView AddressBook::recipient(std::size_t i) const {
  const RecipientRecord& r = s_.recipients[i];
  RecipientView v;
  v.index = static_cast<std::uint32_t>(i);
  v.id = text(r.id);
  v.system = text(r.system);
  v.display_name = text(r.display_name);
  v.routing_address = text(r.routing_address);
  v.kind = r.kind;
  v.hidden = r.hidden;
  return v;
}

std::vector<AddressBook::FormView> AddressBook::forms(std::size_t i) const {
  const RecipientRecord& r = s_.recipients[i];
  std::vector<FormView> out;
  out.reserve(r.form_count);
  for (std::size_t f = r.first_form; f < r.first_form + r.form_count; ++f) {
    out.push_back({s_.forms[f].kind, text({s_.forms[f].offset, s_.forms[f].length})});
  }
  return out;
}

Recipient AddressBook::to_recipient(std::size_t i) const {
  const RecipientView v = recipient(i);
  Recipient r;
  r.id = std::string(v.id);
  r.system = std::string(v.system);
  r.kind = v.kind;
  r.display_name = std::string(v.display_name);
  r.routing_address = std::string(v.routing_address);
  r.hidden = v.hidden;
  for (const auto& f : forms(i)) r.forms.push_back({f.kind, std::string(f.value)});
  return r;
}

std::size_t AddressBook::memory_bytes() const {
  return s_.arena.capacity() + s_.recipients.capacity() * sizeof(RecipientRecord) +
         s_.forms.capacity() * sizeof(FormRecord) + slots_.capacity() * sizeof(std::uint32_t);
}

Expected<std::shared_ptr<const AddressBook>> AddressBook::assemble(Storage storage) {
  auto book = std::make_shared<AddressBook>();
  book->s_ = std::move(storage);
  const Storage& s = book->s_;
  if (s.arena.size() > std::numeric_limits<std::uint32_t>::max() ||
      s.forms.size() >= std::numeric_limits<std::uint32_t>::max()) {
    return fail(corrupt("it is larger than an address book can be (4 GiB of strings, 4 billion forms)"));
  }
  std::uint64_t next_form = 0;
  for (std::size_t i = 0; i < s.recipients.size(); ++i) {
    const RecipientRecord& r = s.recipients[i];
    if (const char* what = outside_string(r, s.arena.size())) {
      return fail(
          corrupt(fmt::format("recipient {}: its {} lies outside the {} octets of strings", i, what, s.arena.size())));
    }
    if (r.id.length == 0 || r.system.length == 0) {
      return fail(corrupt(fmt::format("recipient {}: its {} is empty", i, r.id.length == 0 ? "id" : "system")));
    }
    if (static_cast<unsigned>(r.kind) > static_cast<unsigned>(RecipientKind::kMailInDatabase)) {
      return fail(corrupt(fmt::format("recipient {}: unknown kind {}", i, static_cast<unsigned>(r.kind))));
    }
    if (r.first_form != next_form || r.form_count == 0 || next_form + r.form_count > s.forms.size()) {
      return fail(corrupt(fmt::format(
          "recipient {}: forms {}..{} do not follow the previous recipient's (next is {} "
          "of {}, at least one each)",
          i, r.first_form, static_cast<std::uint64_t>(r.first_form) + r.form_count, next_form, s.forms.size())));
    }
    next_form += r.form_count;
  }
  if (next_form != s.forms.size()) {
    return fail(corrupt(fmt::format("{} forms belong to no recipient", s.forms.size() - next_form)));
  }
  book->reserve_index(s.forms.size());
  std::uint32_t owner = 0;
  for (std::uint32_t i = 0; i < s.forms.size(); ++i) {
    FormRecord& f = book->s_.forms[i];
    while (i >= s.recipients[owner].first_form + s.recipients[owner].form_count) ++owner;
    if (!inside({f.offset, f.length}, s.arena.size()) || f.length == 0) {
      return fail(corrupt(fmt::format("form {} of recipient {}: empty, or outside the {} octets of strings", i, owner,
                                      s.arena.size())));
    }
    if (static_cast<unsigned>(f.kind) > static_cast<unsigned>(FormKind::kNickname)) {
      return fail(
          corrupt(fmt::format("form {} of recipient {}: unknown kind {}", i, owner, static_cast<unsigned>(f.kind))));
    }
    f.recipient = owner;
    const auto value = book->text({f.offset, f.length});
    f.hash = fold_hash(value);
    const std::size_t slot = book->probe(value, f.hash);
    if (book->slots_[slot] != kEmptySlot) {
      return fail(corrupt(fmt::format("form '{}' of recipient {} is also recipient {}'s", escape_control(value), owner,
                                      s.forms[book->slots_[slot]].recipient)));
    }
    book->slots_[slot] = i;
  }
  return std::shared_ptr<const AddressBook>(std::move(book));
}

Expected<void> AddressBookBuilder::add(Recipient r) {
  drop_repeated_forms(r);
  if (auto ok = validate_recipient(r); !ok) return ok;
  recipients_.push_back(std::move(r));
  return {};
}

Expected<BuildResult> AddressBookBuilder::build(std::chrono::system_clock::time_point built_at) && {
  using StrRef = AddressBook::StrRef;
  using FormRecord = AddressBook::FormRecord;
  using RecipientRecord = AddressBook::RecipientRecord;
  constexpr auto kEmptySlot = AddressBook::kEmptySlot;
  std::uint64_t octets = 0, form_total = 0;
  for (const auto& r : recipients_) {
    octets += r.id.size() + r.system.size() + r.display_name.size() + r.routing_address.size();
    for (const auto& f : r.forms) octets += f.value.size();
    form_total += r.forms.size();
  }
  if (octets > std::numeric_limits<std::uint32_t>::max() || form_total >= std::numeric_limits<std::uint32_t>::max()) {
    return fail(Error::permanent(ErrorCode::kLimit,
                                 fmt::format("{} recipients with {} octets of names are more than one address book "
                                             "holds (4 GiB)",
                                             recipients_.size(), octets)));
  }
  // Precedence order: whoever comes first keeps a form claimed twice (see the class comment).
  std::vector<std::uint32_t> order(recipients_.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [this](std::uint32_t a, std::uint32_t b) {
    const Recipient& x = recipients_[a];
    const Recipient& y = recipients_[b];
    if (is_contact(x.kind) != is_contact(y.kind)) return !is_contact(x.kind);
    if (x.system != y.system) return x.system < y.system;
    return x.id < y.id;
  });

  BuildResult out;
  auto book = std::make_shared<AddressBook>();
  AddressBook::Storage& s = book->s_;
  s.built_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(built_at.time_since_epoch()).count();
  s.arena.reserve(octets);
  s.forms.reserve(form_total);
  s.recipients.reserve(recipients_.size());
  book->reserve_index(form_total);
  std::unordered_map<std::string, StrRef> systems;     // a handful: each name is stored once
  std::unordered_map<std::string, std::uint32_t> ids;  // "system\nid" -> position in `order`
  for (std::uint32_t pos = 0; pos < order.size(); ++pos) {
    const Recipient& r = recipients_[order[pos]];
    if (auto [it, fresh] = ids.try_emplace(r.system + '\n' + r.id, pos); !fresh) {
      out.collisions.push_back({r.id, r.id, r.system, r.id, r.system,
                                "the same id twice in one system: the first is kept, the other left out"});
      continue;
    }
    const auto index = static_cast<std::uint32_t>(s.recipients.size());
    const auto first = static_cast<std::uint32_t>(s.forms.size());
    for (const Form& f : r.forms) {
      const std::uint32_t hash = fold_hash(f.value);
      const std::size_t slot = book->probe(f.value, hash);
      if (const std::uint32_t taken = book->slots_[slot]; taken != kEmptySlot) {
        const FormRecord& theirs = s.forms[taken];
        const RecipientRecord& winner = s.recipients[theirs.recipient];
        out.collisions.push_back({std::string(book->text({theirs.offset, theirs.length})),
                                  std::string(book->text(winner.id)), std::string(book->text(winner.system)), r.id,
                                  r.system,
                                  is_contact(r.kind) && !is_contact(winner.kind)
                                      ? fmt::format("a {} comes before a contact", to_string(winner.kind))
                                      : std::string("the lower (system, id) comes first")});
        continue;
      }
      FormRecord record;
      const StrRef value = append(s.arena, f.value);
      record.offset = value.offset;
      record.length = static_cast<std::uint16_t>(value.length);
      record.kind = f.kind;
      record.recipient = index;
      record.hash = hash;
      s.forms.push_back(record);
      book->slots_[slot] = static_cast<std::uint32_t>(s.forms.size() - 1);
    }
    if (s.forms.size() == first) continue;  // every form went to others: nothing finds it
    RecipientRecord rec;
    rec.first_form = first;
    rec.form_count = static_cast<std::uint16_t>(s.forms.size() - first);
    rec.kind = r.kind;
    rec.hidden = r.hidden;
    rec.id = append(s.arena, r.id);
    auto sys = systems.find(r.system);
    if (sys == systems.end()) sys = systems.emplace(r.system, append(s.arena, r.system)).first;
    rec.system = sys->second;
    rec.display_name = append(s.arena, r.display_name);
    // The routing address is usually one of the forms (the primary SMTP address): shared.
    const auto same = std::find_if(s.forms.begin() + first, s.forms.end(), [&](const FormRecord& f) {
      return book->text({f.offset, f.length}) == r.routing_address;
    });
    rec.routing_address =
        same != s.forms.end() ? StrRef{same->offset, same->length} : append(s.arena, r.routing_address);
    s.recipients.push_back(rec);
  }
  s.arena.shrink_to_fit();
  s.forms.shrink_to_fit();
  s.recipients.shrink_to_fit();
  out.book = std::move(book);
  recipients_.clear();
  return out;
}

}  // namespace bridgehead::directory

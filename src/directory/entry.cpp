#include "directory/entry.hpp"

#include <algorithm>

#include "core/text.hpp"

namespace bridgehead::directory {

// A linear scan: an entry has a few dozen attributes at most, where a map would cost more
// in allocations than it saves in comparisons.
Attribute* Entry::find_attribute(std::string_view name) {
  for (Attribute& a : attributes_) {
    if (iequals(a.name, name)) return &a;
  }
  return nullptr;
}

const std::vector<std::string>* Entry::find(std::string_view name) const {
  for (const Attribute& a : attributes_) {
    if (iequals(a.name, name)) return &a.values;
  }
  return nullptr;
}

std::string_view Entry::first(std::string_view name) const {
  const auto* values = find(name);
  return values == nullptr || values->empty() ? std::string_view() : std::string_view(values->front());
}

void Entry::add(std::string_view name, std::string value) {
  if (Attribute* a = find_attribute(name)) {
    a->values.push_back(std::move(value));
    return;
  }
  attributes_.push_back(Attribute{std::string(name), {std::move(value)}});
}

void Entry::set(std::string_view name, std::vector<std::string> values) {
  if (values.empty()) {
    remove(name);
    return;
  }
  if (Attribute* a = find_attribute(name)) {
    a->values = std::move(values);
    return;
  }
  attributes_.push_back(Attribute{std::string(name), std::move(values)});
}

bool Entry::remove(std::string_view name) {
  const auto it =
      std::find_if(attributes_.begin(), attributes_.end(), [&](const Attribute& a) { return iequals(a.name, name); });
  if (it == attributes_.end()) return false;
  attributes_.erase(it);
  return true;
}

bool Entry::operator==(const Entry& other) const {
  if (dn_ != other.dn_ || attributes_.size() != other.attributes_.size()) return false;
  for (std::size_t i = 0; i < attributes_.size(); ++i) {
    if (!iequals(attributes_[i].name, other.attributes_[i].name) ||
        attributes_[i].values != other.attributes_[i].values) {
      return false;
    }
  }
  return true;
}

}  // namespace bridgehead::directory

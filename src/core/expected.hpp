// The one alias of tl::expected used at every component boundary. Components return
// Expected<T>; exceptions are kept for start-up failures and broken invariants.
#pragma once

#include <tl/expected.hpp>

#include "core/error.hpp"

namespace bridgehead {

template <typename T>
using Expected = tl::expected<T, Error>;

/// Shorthand for returning an error from a function that returns Expected<T>.
inline tl::unexpected<Error> fail(Error e) { return tl::unexpected<Error>(std::move(e)); }

}  // namespace bridgehead

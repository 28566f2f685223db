// Asio vocabulary for the whole project: the one completion token (errors as values, no
// exceptions from I/O) and awaitable. Coroutines are started with net/spawn.hpp.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/ssl.hpp>

namespace bridgehead::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
template <typename T = void>
using awaitable = asio::awaitable<T>;

/// The project's completion token: `auto [ec, n] = co_await op(..., use_nothrow);`
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace bridgehead::net

#include "net/spawn.hpp"

#include <spdlog/spdlog.h>

namespace bridgehead::net {

void spawn_logged(const asio::any_io_executor& ex, awaitable<void> coro, std::string what) {
  spawn(ex, std::move(coro), [what = std::move(what)](std::exception_ptr ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("{}: stopped by an unexpected exception: {}", what, e.what());
    } catch (...) {
      spdlog::error("{}: stopped by an unexpected exception", what);
    }
  });
}

}  // namespace bridgehead::net

// The [smtp] settings of every listener, with their defaults: the config table fills this
// struct and the listener reads it (listener_options), so a limit's default is written
// here and in its table row only, and config_test holds the two to agreement.
#pragma once

#include <cstdint>

#include "smtp/protocol/data_decoder.hpp"

namespace bridgehead::smtp {

struct ServerSettings {
  std::uint64_t max_message_size = 50ull << 20;
  unsigned max_recipients = 1000;
  unsigned max_line_length = 1000;
  unsigned max_received_headers = 50;
  unsigned max_sessions = 500;
  unsigned max_sessions_per_client = 50;
  unsigned max_junk_commands = 100;
  unsigned max_errors = 20;
  unsigned command_timeout_seconds = 300;  ///< RFC 5321 4.5.3.2.7
  unsigned data_timeout_seconds = 300;
  BareLinefeedPolicy bare_linefeed = BareLinefeedPolicy::kReject;
};

}  // namespace bridgehead::smtp

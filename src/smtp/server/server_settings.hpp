// The [smtp] settings of every listener. The config table fills this struct and the
// listener reads it (listener_options); the defaults are those of the part that enforces
// each limit (the protocol's session and decoder, or the listener's own below), so each is
// written once, and the table reads them from here for the defaults file and the reference.
#pragma once

#include <cstdint>

#include "cleanup/cleanup.hpp"
#include "smtp/protocol/data_decoder.hpp"
#include "smtp/protocol/session.hpp"

namespace bridgehead::smtp {

struct ServerSettings {
  // Enforced by the protocol's session and content decoder.
  std::uint64_t max_message_size = SessionOptions{}.max_message_size;
  unsigned max_recipients = SessionOptions{}.max_recipients;
  unsigned max_line_length = static_cast<unsigned>(ContentLimits{}.max_line_length);
  unsigned max_junk_commands = SessionOptions{}.max_junk_commands;
  unsigned max_errors = SessionOptions{}.max_errors;
  BareLinefeedPolicy bare_linefeed = ContentLimits{}.bare_linefeed;
  // Enforced by cleanup's loop check.
  unsigned max_received_headers = cleanup::Options{}.max_received_headers;
  // The listener's own.
  unsigned max_sessions = 500;
  unsigned max_sessions_per_client = 50;
  unsigned command_timeout_seconds = 300;  ///< RFC 5321 4.5.3.2.7
  unsigned data_timeout_seconds = 300;
};

}  // namespace bridgehead::smtp

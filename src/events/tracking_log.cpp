#include "events/tracking_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace bridgehead::events {

TrackingLog::TrackingLog(TrackingLogOptions options, std::shared_ptr<status::Process> process)
    : options_(std::move(options)), process_(std::move(process)) {}

TrackingLog::~TrackingLog() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  done_cv_.notify_all();
  if (fd_ >= 0) ::close(fd_);
}

bool TrackingLog::open_file() {
  fd_ = ::open(options_.file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return false;
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return true;
}

Expected<void> TrackingLog::start() {
  if (!open_file()) {
    const int e = errno;
    Error err = Error::transient_error(
        ErrorCode::kIo,
        fmt::format("cannot open the message tracking log {}: {}", options_.file.string(), std::strerror(e)),
        "mail still flows, untracked; make the directory writable by the connector's user, or set tracking.file");
    if (process_) process_->report_error(status::ProcessState::kDegraded, err);
    return fail(err);
  }
  if (process_) process_->set_state(status::ProcessState::kRunning, "writing " + options_.file.string());
  {
    std::lock_guard lock(mu_);
    started_ = true;
  }
  thread_ = std::thread([this] { loop(); });
  return {};
}

void TrackingLog::add(const MessageEvent& e) {
  {
    std::lock_guard lock(mu_);
    if (!started_ || pending_.size() >= options_.max_pending) {
      if (process_) process_->add("dropped");
      return;
    }
    pending_.push_back(e);
    ++queued_;
    // Only the first event of a batch wakes the writer (it then lingers for the rest), and
    // a full batch: not one wake-up per event.
    if (pending_.size() != 1 && pending_.size() != options_.batch) return;
  }
  cv_.notify_one();
}

void TrackingLog::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = queued_;
  flush_wanted_ = target;
  cv_.notify_one();
  done_cv_.wait(lock, [&] { return written_ >= target || !thread_.joinable(); });
}

bool TrackingLog::write_lines(const std::string& text) {
  if (size_ >= options_.max_bytes) {
    // Moved aside whole: a reader following the file sees it end and the new one begin.
    const auto old = options_.file.string() + ".1";
    ::close(fd_);
    fd_ = -1;
    if (::rename(options_.file.c_str(), old.c_str()) != 0 || !open_file()) return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += text.size();
  return true;
}

void TrackingLog::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || !pending_.empty(); });
    if (pending_.empty() && quit_) return;
    cv_.wait_for(lock, options_.linger,
                 [&] { return quit_ || pending_.size() >= options_.batch || flush_wanted_ > written_; });
    std::deque<MessageEvent> batch;
    batch.swap(pending_);
    lock.unlock();
    std::string text;
    for (const auto& ev : batch) {
      text += to_json_line(ev);
      text += '\n';
    }
    // A file that could not be reopened after a rotation is tried again with each batch.
    const bool ok = (fd_ >= 0 || open_file()) && write_lines(text);
    const int e = errno;
    if (!ok) {
      if (process_) process_->add("dropped", batch.size());
      if (!failing_ && process_) {
        process_->report_error(status::ProcessState::kDegraded,
                               Error::transient_error(ErrorCode::kIo,
                                                      fmt::format("cannot write the message tracking log {}: {}",
                                                                  options_.file.string(), std::strerror(e)),
                                                      "mail still flows, untracked; free space on its disk or check "
                                                      "the file's permissions"));
      }
      failing_ = true;
    } else {
      if (process_) process_->add("events", batch.size());
      if (failing_ && process_) process_->recover("writing " + options_.file.string());
      failing_ = false;
    }
    lock.lock();
    written_ += batch.size();
    done_cv_.notify_all();
  }
}

}  // namespace bridgehead::events

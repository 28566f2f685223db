// directory/ldap/libldap_support: the small libldap plumbing of writes that connection.cpp and
// writer.cpp share: the LDAPMod array of a request, a timeout in words, SIGPIPE held off while
// libldap writes (ldap_message.hpp has the rest: timeval, MessageGuard). Internal to directory/ldap: it includes
// ldap.h, which the public headers keep out, and no other component includes it.
#pragma once

#include <lber.h>
#include <ldap.h>
#include <signal.h>
#include <sys/time.h>

#include <chrono>
#include <string>
#include <vector>

#include "directory/ldap/connection.hpp"
#include "directory/ldap/ldap_message.hpp"  // to_timeval, MessageGuard

namespace bridgehead::directory::ldap::detail {

/// "30.0 s": a timeout in words.
inline std::string seconds_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count() / 1000) + "." + std::to_string((ms.count() % 1000) / 100) + " s";
}

/// LDAP_MOD_ADD, LDAP_MOD_DELETE or LDAP_MOD_REPLACE.
inline int mod_op(ModifyOp op) {
  return op == ModifyOp::kAdd ? LDAP_MOD_ADD : op == ModifyOp::kDelete ? LDAP_MOD_DELETE : LDAP_MOD_REPLACE;
}

/// The LDAPMod array of one request, pointing into strings the caller keeps alive until the
/// request is sent (libldap encodes it in the call that sends it).
class ModList {
 public:
  void add(int op, const std::string& attribute, const std::vector<std::string>& values) {
    auto& bvs = values_.emplace_back();
    for (const std::string& v : values) {
      berval bv{};
      bv.bv_len = static_cast<ber_len_t>(v.size());
      bv.bv_val = const_cast<char*>(v.data());
      bvs.push_back(bv);
    }
    mods_.emplace_back();
    LDAPMod& m = mods_.back();
    m.mod_op = op | LDAP_MOD_BVALUES;
    m.mod_type = const_cast<char*>(attribute.c_str());
  }
  LDAPMod** finish() {
    // Pointers are taken only now: the vectors no longer grow.
    value_ptrs_.reserve(mods_.size());
    for (std::size_t i = 0; i < mods_.size(); ++i) {
      auto& ptrs = value_ptrs_.emplace_back();
      for (berval& bv : values_[i]) ptrs.push_back(&bv);
      ptrs.push_back(nullptr);
      mods_[i].mod_bvalues = values_[i].empty() ? nullptr : ptrs.data();
    }
    for (LDAPMod& m : mods_) mod_ptrs_.push_back(&m);
    mod_ptrs_.push_back(nullptr);
    return mod_ptrs_.data();
  }

 private:
  std::vector<LDAPMod> mods_;
  std::vector<std::vector<berval>> values_;
  std::vector<std::vector<berval*>> value_ptrs_;
  std::vector<LDAPMod*> mod_ptrs_;
};

/// libldap writes with send() without MSG_NOSIGNAL: a write to a connection the server closed
/// raises SIGPIPE, which kills a process that has not ignored it (a CLI command). While one
/// lives, SIGPIPE is blocked in this thread, and one that arrived is taken off the
/// thread's pending set before it is unblocked: the broken connection is reported as an error.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
  }
  ~SigpipeBlocked() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      timespec none{};
      while (sigtimedwait(&pipe, nullptr, &none) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace bridgehead::directory::ldap::detail

// Helpers for tests that need root-only kernel features (AF_XDP, veth,
// capabilities): running a piece of a test in a forked child, external
// commands, a private network namespace with a veth pair, and dropping a
// capability. Used by the provider suite (providers/umem_test.cpp) and the
// xsk device test (e2e/xsk_device_test.cpp).
//
// Calling context: run_in_child and PPTEST_EXPECT_CHILD run in the test
// process (a gtest TEST body); everything else changes process-wide state
// (network namespace, capabilities, environment) and is meant for the
// forked child only, i.e. from inside the function given to run_in_child.
//
// Child protocol: the child's function returns "" for a pass, "SKIP: why"
// to skip, anything else as the failure message.
#pragma once

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

extern char** environ;

namespace pptest::netns {

// How a piece of a test run by run_in_child ended, with the child's message
// (the failure, or the skip reason without its "SKIP: " prefix).
struct ChildOutcome {
  enum Kind { pass, skip, fail } kind;
  std::string message;
};

// Test process. Runs fn in a forked child, for what must not touch the test
// process: dropping capabilities, lowering rlimits, a private network
// namespace. fn returns "" (pass), "SKIP: reason" (skip) or a failure
// message; an exception is a failure too. The child's message comes back
// through a pipe and its exit code (0, 77, 1) says which; the child is
// killed after timeout_s seconds and that is a failure.
inline ChildOutcome run_in_child(const std::function<std::string()>& fn, int timeout_s) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {ChildOutcome::fail, "pipe2 failed"};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {ChildOutcome::fail, std::string("fork: ") + std::strerror(errno)};
  }
  if (pid == 0) {
    close(fds[0]);
    std::string r;
    try {
      r = fn();
    } catch (const std::exception& e) {
      r = std::string("exception: ") + e.what();
    } catch (...) {
      r = "unknown exception";
    }
    const char* s = r.data();
    std::size_t left = r.size();
    while (left) {
      const ssize_t w = write(fds[1], s, left);
      if (w <= 0) break;
      s += w;
      left -= static_cast<std::size_t>(w);
    }
    _exit(r.empty() ? 0 : r.rfind("SKIP: ", 0) == 0 ? 77 : 1);
  }
  close(fds[1]);
  std::string msg;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int pr = poll(&pfd, 1, static_cast<int>(left));
    if (pr <= 0) continue;  // EINTR or nothing yet: the deadline decides
    char buf[512];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is exiting
    msg.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return {ChildOutcome::fail, "child timed out after " + std::to_string(timeout_s) + " s"};
  if (!WIFEXITED(status))
    return {ChildOutcome::fail, "child died with signal " + std::to_string(WTERMSIG(status)) +
                                    (msg.empty() ? "" : ": " + msg)};
  switch (WEXITSTATUS(status)) {
    case 0:
      return {ChildOutcome::pass, msg};
    case 77:
      return {ChildOutcome::skip, msg.substr(6)};
    default:
      return {ChildOutcome::fail, msg};
  }
}

// Child only. Runs a command (argv[0] looked up in PATH) with stdout and
// stderr to /dev/null and waits for it: its exit code, or -1 if it could
// not be started or died of a signal.
inline int run_cmd(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Child only. Writes value to path (a /proc/sys knob); errors are ignored.
inline void write_file(const char* path, const char* value) {
  std::ofstream f(path);
  f << value;
}

// Child only. Moves the calling process into a new, private network
// namespace and creates a veth pair ppx0 <-> ppx1 there, both up, with IPv6
// off (no autoconfiguration chatter on the links). Nothing leaves the
// namespace; it and the veths vanish with the child. Returns "" or, where
// the machine lacks something (unshare refused, no `ip`, no veth driver),
// "SKIP: reason"; a failure message if the links do not come up.
inline std::string enter_private_veth_pair() {
  if (unshare(CLONE_NEWNET) != 0)
    return std::string("SKIP: unshare(CLONE_NEWNET): ") + std::strerror(errno);
  if (run_cmd({"ip", "-V"}) != 0) return "SKIP: iproute2 `ip` is not installed";
  write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
  if (run_cmd({"ip", "link", "add", "ppx0", "type", "veth", "peer", "name", "ppx1"}) != 0)
    return "SKIP: cannot create a veth pair (no veth driver?)";
  if (run_cmd({"ip", "link", "set", "ppx0", "up"}) != 0 ||
      run_cmd({"ip", "link", "set", "ppx1", "up"}) != 0)
    return "cannot bring the veth pair up";
  return "";
}

// Child only. Removes cap (a CAP_* number) from the calling process's
// effective set with a raw capset (no libcap needed); false if refused.
inline bool drop_effective_cap(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  data[cap / 32].effective &= ~(1u << (cap % 32));
  return syscall(SYS_capset, &hdr, data) == 0;
}

}  // namespace pptest::netns

// In a TEST body: a run_in_child outcome as the test's result (skip with
// the child's reason, or expect a pass and show the child's message).
#define PPTEST_EXPECT_CHILD(outcome)                                                  \
  do {                                                                                \
    const ::pptest::netns::ChildOutcome o_ = (outcome);                               \
    if (o_.kind == ::pptest::netns::ChildOutcome::skip) GTEST_SKIP() << o_.message;   \
    EXPECT_EQ(o_.kind, ::pptest::netns::ChildOutcome::pass) << o_.message;            \
  } while (0)

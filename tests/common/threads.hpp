// Threads the unit and provider suites run steps on: a pool's returns stay
// pending in a thread's batch slots until it flushes or exits, so tests need
// threads that exit on cue (on_other_thread) or stay alive between steps
// (Worker).
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace pptest::common {

// Runs f on a new thread and waits for it (the join orders everything).
// The thread exits afterwards, which hands over its pending returns. What f
// throws is rethrown here, so it fails the test instead of terminating.
template <class F>
void on_other_thread(F&& f) {
  std::exception_ptr thrown;
  std::thread t([&] {
    try {
      f();
    } catch (...) {
      thrown = std::current_exception();
    }
  });
  t.join();
  if (thrown) std::rethrow_exception(thrown);
}

// A thread that stays alive between jobs, so the pages it put stay pending
// in its batch slots until it flushes, exits or the owner steals them.
// run() executes a job on it and waits for it to finish (a mutex handoff
// orders the job after everything before run() and before everything after).
class Worker {
 public:
  Worker() : t_([this] { loop(); }) {}
  ~Worker() { exit(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run(std::function<void()> f) {
    std::unique_lock lk(mu_);
    job_ = std::move(f);
    busy_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !busy_; });
  }
  // Ends the thread (running its exit-time flush) and joins it.
  void exit() {
    if (!t_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    t_.join();
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return busy_ || quit_; });
      if (busy_) {
        std::function<void()> f = std::move(job_);
        lk.unlock();
        f();
        lk.lock();
        busy_ = false;
        cv_.notify_all();
      } else {
        return;
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool busy_ = false, quit_ = false;
  std::thread t_;  // last: starts after the fields it uses
};

}  // namespace pptest::common

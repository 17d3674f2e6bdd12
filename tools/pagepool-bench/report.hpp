// pagepool-bench: summaries, the machine description, and the outputs
// (markdown, CSV, gnuplot chart, target ratios).
#pragma once

#include <string>
#include <vector>

#include "common.hpp"

namespace ppb {

// All repetitions of every case for every requested allocator.
struct Results {
  std::vector<CaseSpec> cases;
  std::vector<Allocator> allocs;                      // present or absent
  std::vector<std::vector<std::vector<Outcome>>> v;   // [case][alloc] -> reps
  std::string command;
  std::string load_start;  // /proc/loadavg before the first case
  unsigned reps = 0;
  std::uint64_t ops = 0;
  bool prefetch = true;
  bool tag_colour = false;  // --tag-colour
  // The "mapping" scenario (mapping.hpp): run or not, why it was skipped
  // (io_uring unavailable), and [method] -> reps.
  bool mapping = false;
  std::string mapping_skip;
  std::vector<std::vector<Outcome>> mapping_v;
};

struct Summary {
  Outcome::Status st = Outcome::na;
  int n = 0;                          // ok repetitions
  double min = 0, med = 0, max = 0;   // ns
  double mmin = 0, mmed = 0, mmax = 0;  // Mops/s
  std::string note;
};
Summary summarize(const std::vector<Outcome>& reps);

struct Machine {
  std::string cpu, kernel, date, commit, thp, compiler, load;
  std::string damon;  // DAMON monitors running and their actions ("" if none)
  bool balloon_reporting = false;  // the guest reports free memory to its host
  unsigned cores = 0;   // CPUs this process may run on (cpu_count())
  unsigned online = 0;  // CPUs online on the machine
  std::string unpinned;  // why benchmark threads were not pinned ("" if every pin held)
  double tsc_ghz = 0, mem_gib = 0;
};
Machine describe_machine();

struct Target {
  std::string name;
  std::string value;   // formatted ratio, or "n/a"
  std::string goal;
  std::string result;  // PASS, MISS, n/a, or "ablation"/"info"
};
std::vector<Target> targets(const Results& r);

std::string markdown(const Results& r, const Machine& m, const std::vector<Target>& t,
                     const std::string& chart_note);
std::string csv_summary(const Results& r);
std::string csv_raw(const Results& r);
// Writes chart.dat and chart.gp into dir and runs gnuplot; returns "" on
// success, else why there is no chart.
std::string write_chart(const Results& r, const std::string& dir);

}  // namespace ppb

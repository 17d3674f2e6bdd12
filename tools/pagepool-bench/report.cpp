// pagepool-bench: summaries and outputs.
#include "report.hpp"

#include "mapping.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ppb {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// 3 significant digits, at most 2 decimals: 3.12, 31.2, 312, 31234.
std::string num(double x) {
  char b[32];
  if (x < 10) std::snprintf(b, sizeof b, "%.2f", x);
  else if (x < 100) std::snprintf(b, sizeof b, "%.1f", x);
  else std::snprintf(b, sizeof b, "%.0f", x);
  return b;
}

std::string run_cmd(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string read_first(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (key.empty() || line.rfind(key, 0) == 0) {
      if (key.empty()) return line;
      auto c = line.find(':');
      std::string v = c == std::string::npos ? line : line.substr(c + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return {};
}

// "0.52 0.31 0.20 1/123 456" -> "0.52 0.31 0.20"
std::string load3(const std::string& loadavg) {
  std::istringstream in(loadavg);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string what(const CaseSpec& c) {
  switch (c.s) {
    case Scen::S1: return "same thread: get, return at once";
    case Scen::S2: return "batch: get 64, then return 64";
    case Scen::S2b: return "bulk API: get 32, return 32";
    case Scen::S3: return "cross thread: A gets, B returns (wall per buffer)";
    case Scen::S4: return "1024 in flight, oldest returned (FIFO)";
    case Scen::S5:
      return "owner + " + std::to_string(c.param) + " returner" + (c.param > 1 ? "s" : "") +
             ": return cost per page" + (c.param + 1 > cpu_count() ? " (oversubscribed)" : "");
    case Scen::S6: return c.label().substr(3) + " in flight, FIFO";
  }
  return {};
}

int find_case(const Results& r, const std::string& label) {
  for (std::size_t i = 0; i < r.cases.size(); ++i)
    if (r.cases[i].label() == label) return static_cast<int>(i);
  return -1;
}
int find_alloc(const Results& r, const std::string& name) {
  for (std::size_t i = 0; i < r.allocs.size(); ++i)
    if (r.allocs[i].name == name) return static_cast<int>(i);
  return -1;
}

// Median ns (mops = false) or Mops/s of one cell; NaN if not measured.
double med(const Results& r, const std::string& label, const std::string& alloc, bool mops = false) {
  const int c = find_case(r, label), a = find_alloc(r, alloc);
  if (c < 0 || a < 0) return NAN;
  const Summary s = summarize(r.v[c][a]);
  if (s.st != Outcome::ok) return NAN;
  return mops ? s.mmed : s.med;
}

// Median ns of one mapping method; NaN if not measured.
double mapping_med(const Results& r, int m) {
  if (!r.mapping || m >= static_cast<int>(r.mapping_v.size())) return NAN;
  const Summary s = summarize(r.mapping_v[m]);
  return s.st == Outcome::ok ? s.med : NAN;
}

std::string summary_cell(const Summary& s) {
  if (s.st == Outcome::na) return "n/a";
  if (s.st == Outcome::fail) return "fail";
  return num(s.med) + " [" + num(s.min) + "–" + num(s.max) + "]";
}

std::string cell(const Results& r, std::size_t c, std::size_t a, bool mops) {
  if (!r.allocs[a].present) return "absent";
  const Summary s = summarize(r.v[c][a]);
  if (s.st == Outcome::na) return "n/a";
  if (s.st == Outcome::fail) return "fail";
  if (mops) return num(s.mmed) + " [" + num(s.mmin) + "–" + num(s.mmax) + "]";
  return num(s.med) + " [" + num(s.min) + "–" + num(s.max) + "]";
}

// S3/S5: the line round trip measured before each run, and which runs
// had the two CPUs far apart (a probe above 3x the lowest).
std::string placement_note(const Results& r) {
  struct Far {
    std::string what;
    double ns, rt;
  };
  std::vector<double> rts;
  std::vector<Far> far;
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a)
      for (const Outcome& x : r.v[c][a])
        if (x.line_rt > 0) rts.push_back(x.line_rt);
  if (rts.empty()) return "";
  std::sort(rts.begin(), rts.end());
  const double lo = rts.front();
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a)
      for (std::size_t k = 0; k < r.v[c][a].size(); ++k) {
        const Outcome& x = r.v[c][a][k];
        if (x.line_rt > 3 * lo && x.st == Outcome::ok)
          far.push_back({r.cases[c].label() + " " + r.allocs[a].name + " rep " + std::to_string(k + 1), x.ns, x.line_rt});
      }
  std::ostringstream o;
  o << "\nThe owner's CPU and the first returner's: a cache line's round trip between them, measured just "
       "before each S3/S5 run (untimed, TSC cycles): median "
    << num(rts[rts.size() / 2]) << " [" << num(lo) << "–" << num(rts.back()) << "] over "
    << rts.size() << " runs. ";
  if (far.empty()) {
    o << "No probe was above 3x the lowest.\n";
    return o.str();
  }
  o << far.size() << " run" << (far.size() == 1 ? " had its" : "s had their")
    << " probe above 3x the lowest: the host had put the two vCPUs far apart, and every line the threads share "
       "then takes that long (ns per buffer, probe):";
  constexpr std::size_t kList = 16;
  for (std::size_t i = 0; i < far.size() && i < kList; ++i)
    o << (i ? "; " : " ") << far[i].what << " " << num(far[i].ns) << " (" << num(far[i].rt) << ")";
  if (far.size() > kList) o << "; and " << far.size() - kList << " more (raw.csv)";
  o << ".\n";
  return o.str();
}

}  // namespace

Summary summarize(const std::vector<Outcome>& reps) {
  Summary s;
  std::vector<double> ns, mops;
  for (const Outcome& o : reps) {
    if (o.st == Outcome::ok) {
      ns.push_back(o.ns);
      mops.push_back(o.mops);
    } else if (o.st == Outcome::fail && s.note.empty()) {
      s.note = o.note;
      s.st = Outcome::fail;
    } else if (o.st == Outcome::na && s.note.empty()) {
      s.note = o.note;
    }
    if (o.st == Outcome::ok && !o.note.empty() && s.note.empty()) s.note = o.note;
  }
  if (ns.empty()) return s;
  s.st = Outcome::ok;
  s.n = static_cast<int>(ns.size());
  s.min = *std::min_element(ns.begin(), ns.end());
  s.max = *std::max_element(ns.begin(), ns.end());
  s.med = median(ns);
  s.mmin = *std::min_element(mops.begin(), mops.end());
  s.mmax = *std::max_element(mops.begin(), mops.end());
  s.mmed = median(mops);
  return s;
}

// Kernel DAMON monitors that are on, with their scheme actions. A pageout
// scheme works on the machine's memory while a case runs; a suspect (not
// proven) for the S6 outliers seen on the development VM.
std::string describe_damon() {
  namespace fs = std::filesystem;
  std::string out;
  std::error_code ec;
  const fs::path root = "/sys/kernel/mm/damon/admin/kdamonds";
  for (const auto& k : fs::directory_iterator(root, ec)) {
    if (!k.is_directory(ec) || read_first((k.path() / "state").string(), "") != "on") continue;
    std::string acts;
    for (const auto& c : fs::directory_iterator(k.path() / "contexts", ec)) {
      for (const auto& sc : fs::directory_iterator(c.path() / "schemes", ec)) {
        const std::string a = read_first((sc.path() / "action").string(), "");
        if (!a.empty()) acts += (acts.empty() ? "" : ", ") + a;
      }
    }
    out += (out.empty() ? "" : "; ") + std::string("kdamond ") + k.path().filename().string() + " on" +
           (acts.empty() ? "" : " (" + acts + ")");
  }
  return out;
}

// virtio-balloon free page reporting (feature bit 5, VIRTIO_BALLOON_F_REPORTING):
// the guest tells the host about large free blocks, which the host takes
// back; memory freed by one case and faulted in by the next can then be
// backed differently by the host.
bool balloon_reporting() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/sys/bus/virtio/drivers/virtio_balloon", ec)) {
    const std::string f = read_first((d.path() / "features").string(), "");
    if (f.size() > 5 && f[5] == '1') return true;
  }
  return false;
}

Machine describe_machine() {
  Machine m;
  m.cpu = read_first("/proc/cpuinfo", "model name");
  m.cores = cpu_count();
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  m.online = online > 0 ? static_cast<unsigned>(online) : m.cores;
  int pin_err = 0;
  if (const unsigned n = pin_failures(&pin_err))
    m.unpinned = "threads were not pinned: pthread_setaffinity_np refused " + std::to_string(n) +
                 " request" + (n == 1 ? "" : "s") + " (last: " + std::strerror(pin_err) + ", errno " +
                 std::to_string(pin_err) + "); those S3/S5 threads ran wherever the scheduler put them, "
                 "as in an oversubscribed case";
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m.tsc_ghz = tsc_ghz();
  const std::string kb = read_first("/proc/meminfo", "MemTotal");
  m.mem_gib = std::atof(kb.c_str()) / (1024.0 * 1024.0);
  m.thp = read_first("/sys/kernel/mm/transparent_hugepage/enabled", "");
  m.damon = describe_damon();
  m.balloon_reporting = balloon_reporting();
  m.load = read_first("/proc/loadavg", "");
  char d[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(d, sizeof d, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  m.date = d;
#ifdef PPB_SOURCE_DIR
  const std::string git = std::string("git -C '") + PPB_SOURCE_DIR + "' ";
  m.commit = run_cmd(git + "rev-parse --short=12 HEAD 2>/dev/null");
  if (!m.commit.empty() && !run_cmd(git + "status --porcelain --untracked-files=no 2>/dev/null").empty())
    m.commit += " (with local changes)";
#endif
  if (m.commit.empty()) m.commit = "unknown";
  m.compiler = std::string("g++ ") + __VERSION__;
#ifdef PPB_BUILD_TYPE
  m.compiler += std::string(", ") + PPB_BUILD_TYPE;
#endif
  return m;
}

std::vector<Target> targets(const Results& r) {
  std::vector<Target> t;
  auto ratio = [&](std::string name, double a, double b, bool le, double goal, std::string goal_s,
                   std::string kind = "") {
    Target x{std::move(name), "n/a", std::move(goal_s), "n/a"};
    if (!std::isnan(a) && !std::isnan(b) && b > 0) {
      const double v = a / b;
      x.value = num(v);
      x.result = !kind.empty() ? kind : ((le ? v <= goal : v >= goal) ? "PASS" : "MISS");
    }
    t.push_back(std::move(x));
  };
  const std::string pp = "pagepool", lr = "pagepool-lockedring";
  ratio("S1 ns: pagepool / dpdk", med(r, "S1", pp), med(r, "S1", "dpdk"), true, 0.5, "<= 0.5");
  ratio("S1 ns: mmap / pagepool (x faster)", med(r, "S1", "mmap"), med(r, "S1", pp), false, 1000,
        ">= 1000");
  ratio("S2b ns: pagepool / dpdk bulk", med(r, "S2b", pp), med(r, "S2b", "dpdk"), true, 0.7, "<= 0.7");
  // The floor on page-aligned buffers: with the tag on every buffer's first
  // line, 32 page-aligned buffers share one L1 set, which DPDK's 4160-byte
  // objects avoid; an allocator doing nothing pays that too.
  ratio("S2b ns: stack (floor) / dpdk bulk", med(r, "S2b", "stack"), med(r, "S2b", "dpdk"), true, 0.7, "-",
        "reference");
  ratio("S2b ns: pagepool / stack (floor)", med(r, "S2b", pp), med(r, "S2b", "stack"), true, 1.0, "-",
        "reference");
  // Like for like: DPDK's mempool statistics are compiled out in Debian's build.
  const std::string pn = "pagepool-nostats";
  ratio("S1 ns: pagepool-nostats / dpdk", med(r, "S1", pn), med(r, "S1", "dpdk"), true, 0.5, "<= 0.5");
  ratio("S2b ns: pagepool-nostats / dpdk bulk", med(r, "S2b", pn), med(r, "S2b", "dpdk"), true, 0.7,
        "<= 0.7");
  ratio("S3 Mops/s: pagepool / dpdk", med(r, "S3", pp, true), med(r, "S3", "dpdk", true), false, 1.0,
        ">= 1.0");
  for (const char* n : {"2", "4"}) {
    const std::string rn = std::string("S5 r") + n;
    ratio("S5 return ns: pagepool " + std::string(n) + " returners / 1", med(r, rn, pp),
          med(r, "S5 r1", pp), true, 2.0, "<= 2");
  }
  for (const char* n : {"2", "4"}) {
    const std::string rn = std::string("S5 r") + n;
    ratio("S5 return ns: lockedring " + std::string(n) + " returners / 1", med(r, rn, lr),
          med(r, "S5 r1", lr), true, 2.0, "(<= 2 for pagepool)", "ablation");
  }
  for (const char* n : {"1", "2", "4"}) {
    const std::string rn = std::string("S5 r") + n;
    ratio("S5 r" + std::string(n) + " return ns: lockedring / pagepool", med(r, rn, lr), med(r, rn, pp),
          false, 1.0, "-", "ablation");
  }
  ratio("S3 Mops/s: pagepool / lockedring", med(r, "S3", pp, true), med(r, "S3", lr, true), false, 1.0,
        "-", "ablation");
  ratio("S6 ns: pagepool 1M / 1K in flight", med(r, "S6 1M", pp), med(r, "S6 1K", pp), true, 1.5,
        "<= 1.5");
  // The floor (the `stack` reference): the same working-set walk with an
  // allocator that does nothing. Its own growth bounds what any allocator
  // can show; pagepool's ratio to it is what pagepool adds at each size.
  ratio("S6 ns: stack (floor) 1M / 1K in flight", med(r, "S6 1M", "stack"), med(r, "S6 1K", "stack"), true,
        1.5, "-", "reference");
  for (const char* n : {"1K", "1M"}) {
    const std::string rn = std::string("S6 ") + n;
    ratio(rn + " ns: pagepool / stack (floor)", med(r, rn, pp), med(r, rn, "stack"), true, 1.0, "-",
          "reference");
  }
  if (r.mapping)
    ratio("mapping ns: register+unregister / uring pool recycle (x cheaper)", mapping_med(r, 1),
          mapping_med(r, 0), false, 50, ">= 50");
  return t;
}

std::string markdown(const Results& r, const Machine& m, const std::vector<Target>& t,
                     const std::string& chart_note) {
  std::ostringstream o;
  o << "# pagepool-bench\n\n";
  o << "- machine: " << m.cpu << ", " << m.cores << (m.cores == 1 ? " CPU" : " CPUs")
    << (m.online != m.cores ? " allowed (of " + std::to_string(m.online) + " online)" : "") << ", "
    << num(m.mem_gib) << " GiB, " << m.kernel
    << ", THP " << m.thp << (m.damon.empty() ? "" : ", DAMON " + m.damon)
    << (m.balloon_reporting ? ", virtio-balloon free page reporting on" : "") << "\n";
  char g[32];
  std::snprintf(g, sizeof g, "%.3f", m.tsc_ghz);
  o << "- TSC " << g << " GHz (ns = TSC cycles / GHz); " << m.date << "\n";
  o << "- pagepool commit " << m.commit << "; " << m.compiler << "\n";
  o << "- load average (1, 5, 15 min) at start: " << load3(r.load_start) << "; at end: " << load3(m.load)
    << " (other work on the machine shows here and widens the spread)\n";
  o << "- command: `" << r.command << "`\n";
  o << "- " << r.reps << " repetitions (S6 256K and 1M: at most 3), allocators interleaved within each; "
    << r.ops << " buffers per case (mmap: / 64" << (r.mapping ? "; mapping's register and mmap: / 256" : "") << "; cut to about 0.2 s per timed run, at least 1/32 of them: "
    << "see raw.csv); each buffer's "
    << (r.tag_colour ? "tag line (64 x (address / 4096 mod 16) bytes in, --tag-colour)" : "first cache line")
    << " is written when got and checked before it is returned"
    << (r.prefetch ? "; S4/S6 prefetch the tag line 16 steps ahead" : "")
    << "\n\n";

  if (!r.cases.empty()) {
  o << "## ns per buffer: median [min–max]\n\n";
  o << "Lower is better. S3: wall time per buffer through the two-thread pipeline. "
       "S5: a returner's return call per page (its tag check and waiting excluded).\n\n";
  o << "| case | what |";
  for (const Allocator& a : r.allocs) o << " " << a.name << " |";
  o << "\n|---|---|";
  for (std::size_t i = 0; i < r.allocs.size(); ++i) o << "---|";
  o << "\n";
  for (std::size_t c = 0; c < r.cases.size(); ++c) {
    o << "| " << r.cases[c].label() << " | " << what(r.cases[c]) << " |";
    for (std::size_t a = 0; a < r.allocs.size(); ++a) o << " " << cell(r, c, a, false) << " |";
    o << "\n";
  }
  }

  if (r.mapping) {
    o << "\n## mapping: ns per buffer, median [min–max]\n\n";
    o << "Making a buffer device-visible (an io_uring fixed buffer): recycled through a kDmaMap pool "
         "that keeps it registered, registered and unregistered per buffer, or a fresh mmap per buffer. "
         "Every buffer's tag is written and checked.\n\n";
    if (!r.mapping_skip.empty()) o << "Skipped: " << r.mapping_skip << "\n\n";
    o << "| method | what | ns per buffer |\n|---|---|---|\n";
    for (int m = 0; m < kMappingMethods; ++m) {
      const Summary s = m < static_cast<int>(r.mapping_v.size()) ? summarize(r.mapping_v[m]) : Summary{};
      o << "| " << mapping_name(m) << " | " << mapping_what(m) << " | " << summary_cell(s)
        << (s.st != Outcome::ok && !s.note.empty() ? " (" + s.note + ")" : "") << " |\n";
    }
  }

  bool any_tp = false;
  for (const CaseSpec& c : r.cases) any_tp |= c.s == Scen::S3 || c.s == Scen::S5;
  if (any_tp) {
    o << "\n## throughput, Mops/s: median [min–max]\n\n";
    o << "Higher is better. S3: buffers through the pipeline; S5: the owner's allocation rate.\n\n";
    o << "| case |";
    for (const Allocator& a : r.allocs) o << " " << a.name << " |";
    o << "\n|---|";
    for (std::size_t i = 0; i < r.allocs.size(); ++i) o << "---|";
    o << "\n";
    for (std::size_t c = 0; c < r.cases.size(); ++c) {
      if (r.cases[c].s != Scen::S3 && r.cases[c].s != Scen::S5) continue;
      o << "| " << r.cases[c].label() << " |";
      for (std::size_t a = 0; a < r.allocs.size(); ++a) o << " " << cell(r, c, a, true) << " |";
      o << "\n";
    }
    o << placement_note(r);
  }

  o << "\n## targets (ratios of medians)\n\n| ratio | value | goal | result |\n|---|---|---|---|\n";
  for (const Target& x : t) o << "| " << x.name << " | " << x.value << " | " << x.goal << " | " << x.result << " |\n";

  o << "\n## allocators\n\n";
  if (r.allocs.empty()) o << "- none (no allocator scenario selected)\n";
  for (const Allocator& a : r.allocs)
    o << "- **" << a.name << "**: " << (a.present ? "" : "absent — ") << a.detail << "\n";

  std::vector<std::string> notes;
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a) {
      if (!r.allocs[a].present) continue;
      const Summary s = summarize(r.v[c][a]);
      if (s.st == Outcome::fail)
        notes.push_back(r.cases[c].label() + ", " + r.allocs[a].name + ": failed: " + s.note);
    }
  if (r.mapping)
    for (int m = 0; m < static_cast<int>(r.mapping_v.size()); ++m) {
      const Summary s = summarize(r.mapping_v[m]);
      if (s.st == Outcome::fail) notes.push_back(std::string("mapping, ") + mapping_name(m) + ": failed: " + s.note);
    }
  if (!m.unpinned.empty()) notes.push_back(m.unpinned);
  if (!chart_note.empty()) notes.push_back(chart_note);
  if (!notes.empty()) {
    o << "\n## notes\n\n";
    for (const std::string& n : notes) o << "- " << n << "\n";
  }
  return o.str();
}

std::string csv_summary(const Results& r) {
  std::ostringstream o;
  o << "case,scenario,param,allocator,status,reps,ns_min,ns_median,ns_max,mops_min,mops_median,mops_max,note\n";
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a) {
      const CaseSpec& cs = r.cases[c];
      o << cs.label() << "," << scen_name(cs.s) << "," << cs.param << "," << r.allocs[a].name << ",";
      if (!r.allocs[a].present) {
        o << "absent,0,,,,,,,\"" << r.allocs[a].detail << "\"\n";
        continue;
      }
      const Summary s = summarize(r.v[c][a]);
      o << (s.st == Outcome::ok ? "ok" : s.st == Outcome::na ? "n/a" : "fail") << "," << s.n << ",";
      if (s.st == Outcome::ok)
        o << s.min << "," << s.med << "," << s.max << "," << s.mmin << "," << s.mmed << "," << s.mmax;
      else
        o << ",,,,,";
      o << ",\"" << s.note << "\"\n";
    }
  for (int m = 0; r.mapping && m < static_cast<int>(r.mapping_v.size()); ++m) {
    const Summary s = summarize(r.mapping_v[m]);
    o << "mapping,mapping,0," << mapping_name(m) << ","
      << (s.st == Outcome::ok ? "ok" : s.st == Outcome::na ? "n/a" : "fail") << "," << s.n << ",";
    if (s.st == Outcome::ok)
      o << s.min << "," << s.med << "," << s.max << "," << s.mmin << "," << s.mmed << "," << s.mmax;
    else
      o << ",,,,,";
    o << ",\"" << s.note << "\"\n";
  }
  return o.str();
}

std::string csv_raw(const Results& r) {
  std::ostringstream o;
  o << "case,allocator,rep,status,ns,mops,ops,line_rt_cycles,note\n";
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a)
      for (std::size_t k = 0; k < r.v[c][a].size(); ++k) {
        const Outcome& x = r.v[c][a][k];
        o << r.cases[c].label() << "," << r.allocs[a].name << "," << k + 1 << ","
          << (x.st == Outcome::ok ? "ok" : x.st == Outcome::na ? "n/a" : "fail") << "," << x.ns << ","
          << x.mops << "," << x.ops << "," << x.line_rt << ",\"" << x.note << "\"\n";
      }
  for (int m = 0; r.mapping && m < static_cast<int>(r.mapping_v.size()); ++m)
    for (std::size_t k = 0; k < r.mapping_v[m].size(); ++k) {
      const Outcome& x = r.mapping_v[m][k];
      o << "mapping," << mapping_name(m) << "," << k + 1 << ","
        << (x.st == Outcome::ok ? "ok" : x.st == Outcome::na ? "n/a" : "fail") << "," << x.ns << ","
        << x.mops << "," << x.ops << ",0,\"" << x.note << "\"\n";
    }
  return o.str();
}

std::string write_chart(const Results& r, const std::string& dir) {
  if (r.cases.empty()) return "chart: no allocator scenario selected (the mapping table has no chart)";
  {
    std::ofstream d(dir + "/chart.dat");
    d << "case";
    for (const Allocator& a : r.allocs)
      if (a.present) d << "\t" << a.name;
    d << "\n";
    for (std::size_t c = 0; c < r.cases.size(); ++c) {
      d << "\"" << r.cases[c].label() << "\"";
      for (std::size_t a = 0; a < r.allocs.size(); ++a) {
        if (!r.allocs[a].present) continue;
        const Summary s = summarize(r.v[c][a]);
        d << "\t";
        if (s.st == Outcome::ok) d << s.med;
        else d << "NaN";
      }
      d << "\n";
    }
  }
  std::size_t ncol = 0;
  double lo = 1;  // the log axis starts at the power of 10 below the smallest bar
  for (const Allocator& a : r.allocs) ncol += a.present;
  for (std::size_t c = 0; c < r.cases.size(); ++c)
    for (std::size_t a = 0; a < r.allocs.size(); ++a) {
      const Summary s = summarize(r.v[c][a]);
      if (s.st == Outcome::ok && s.med > 0) lo = std::min(lo, std::pow(10.0, std::floor(std::log10(s.med))));
    }
  {
    std::ofstream g(dir + "/chart.gp");
    g << "# pagepool-bench chart: gnuplot chart.gp (in this folder)\n"
         "set terminal pngcairo size 1600,800 font ',11'\n"
         "set output 'chart.png'\n"
         "set title 'pagepool-bench: ns per buffer, median of repetitions (log scale, lower is better)'\n"
         "set datafile separator '\\t'\n"
         "set datafile missing 'NaN'\n"
         "set style data histogram\n"
         "set style histogram cluster gap 1\n"
         "set style fill solid 0.85 border -1\n"
         "set boxwidth 0.9\n"
         "set logscale y\n"
         "set yrange ["
      << lo << ":*]\n"
         "set ylabel 'ns per buffer'\n"
         "set grid ytics mytics\n"
         "set key outside right top vertical\n"
         "set xtics rotate by -30 nomirror\n"
         "plot for [i=2:"
      << ncol + 1 << "] 'chart.dat' using i:xtic(1) title columnheader(i)\n";
  }
  if (run_cmd("command -v gnuplot").empty()) return "chart: gnuplot not found (package gnuplot-nox); chart.gp written";
  const std::string out = run_cmd("cd '" + dir + "' && gnuplot chart.gp 2>&1");
  std::ifstream png(dir + "/chart.png");
  if (!png) return "chart: gnuplot failed: " + out;
  return "";
}

}  // namespace ppb

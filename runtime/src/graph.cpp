#include "kettle/graph.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "kettle/event_loop.hpp"
#include "symbols.hpp"

namespace kettle {

namespace detail {
namespace {

// Deeper chains of awaiting futures than this are cut (the recursion would not fit the stack).
constexpr int kMaxAwaitedByDepth = 256;

std::string hex(std::uintptr_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

const void* frame_of(CoroPromiseBase& p) noexcept {
  return std::coroutine_handle<CoroPromiseBase>::from_promise(p).address();
}

// Resolves addresses once per listing: thousands of tasks share a few dozen co_await sites.
class Resolver {
 public:
  const CodeLocation& at(const void* pc, bool return_address) {
    auto [it, fresh] = locations_.try_emplace(pc);
    if (fresh) it->second = locate(pc, return_address);
    return it->second;
  }
  const std::string& function_of(const void* frame) {
    void* resume;
    std::memcpy(&resume, frame, sizeof resume);
    auto [it, fresh] = functions_.try_emplace(resume);
    if (fresh) it->second = coroutine_function(frame);
    return it->second;
  }
  // The start of a coroutine that has not run yet (its resume function's first line).
  CodeLocation start_of(const void* frame) {
    void* resume;
    std::memcpy(&resume, frame, sizeof resume);
    CodeLocation w = at(resume, false);
    w.function = function_of(frame);
    return w;
  }

 private:
  std::unordered_map<const void*, CodeLocation> locations_;
  std::unordered_map<const void*, std::string> functions_;
};

FrameCallGraphEntry make_entry(FrameCallGraphEntry::Kind kind, const CodeLocation& w,
                               std::string function) {
  FrameCallGraphEntry e;
  e.kind = kind;
  e.file = w.file;
  e.line = w.line;
  e.function = std::move(function);
  return e;
}

// A task's frames, innermost first: the awaitable it sits in, then each Coro up to the root.
// For the running task, the innermost frame is reported at `here` (the caller).
std::vector<FrameCallGraphEntry> task_stack(TaskBase& t, Resolver& r, const void* here) {
  bool running = &t == running_task();  // not suspended: it waits in nothing
  std::vector<FrameCallGraphEntry> out;
  if (t.done()) return out;
  std::vector<CoroPromiseBase*> chain;
  for (CoroPromiseBase* p = &t.root_promise(); p; p = p->child())
    chain.push_back(p);
  for (std::size_t i = chain.size(); i-- > 0;) {
    CoroPromiseBase& p = *chain[i];
    const void* frame = frame_of(p);
    bool innermost = i + 1 == chain.size();
    if (innermost && here) {
      out.push_back(make_entry(FrameCallGraphEntry::Kind::coroutine, r.at(here, false),
                               r.function_of(frame)));
      continue;
    }
    if (!p.awaited()) {  // not started: where the coroutine begins
      CodeLocation w = r.start_of(frame);
      out.push_back(make_entry(FrameCallGraphEntry::Kind::coroutine, w, w.function));
      continue;
    }
    const CodeLocation& w = r.at(p.pc_, false);
    if (innermost && !running && p.awaited() != &kAwaitedCoro)
      out.push_back(
          make_entry(FrameCallGraphEntry::Kind::awaitable, w, awaited_name(*p.awaited())));
    out.push_back(make_entry(FrameCallGraphEntry::Kind::coroutine, w, r.function_of(frame)));
  }
  return out;
}

void apply_depth_and_limit(std::vector<FrameCallGraphEntry>& st, int skip,
                           const std::optional<int>& limit) {
  if (skip > 0) st.erase(st.begin(), st.begin() + std::min<std::size_t>(skip, st.size()));
  if (!limit) return;
  std::size_t n = static_cast<std::size_t>(*limit < 0 ? -static_cast<long long>(*limit) : *limit);
  if (st.size() <= n) return;
  // asyncio.graph: a positive limit keeps the entries closest to where the task was
  // invoked (the outermost), a negative one the topmost (innermost) ones.
  if (*limit > 0)
    st.erase(st.begin(), st.end() - static_cast<std::ptrdiff_t>(n));
  else
    st.resize(n);
}

// Who awaits f (tasks, gathers, shields), each once, in the order they started waiting.
std::vector<FutureCore*> awaiters_of(const FutureCore& f) {
  std::vector<FutureCore*> out;
  f.for_each_waiter([&](Waiter& w) {
    if (w.awaiter && std::find(out.begin(), out.end(), w.awaiter) == out.end())
      out.push_back(w.awaiter);
  });
  return out;
}

FutureCallGraph build(FutureCore& f, Resolver& r, const std::optional<int>& limit,
                      std::vector<FutureCore*>& path) {
  FutureCallGraph g;
  g.id = reinterpret_cast<std::uintptr_t>(&f);
  if (auto* t = dynamic_cast<TaskBase*>(&f)) {
    t->add_ref();
    g.task = TaskRef(t);
    g.name = t->get_name();
    g.call_stack = task_stack(*t, r, nullptr);
    apply_depth_and_limit(g.call_stack, 0, limit);
  }
  if (path.size() >= kMaxAwaitedByDepth) return g;
  path.push_back(&f);
  for (FutureCore* a : awaiters_of(f))
    if (std::find(path.begin(), path.end(), a) == path.end())  // an await cycle: stop
      g.awaited_by.push_back(build(*a, r, limit, path));
  path.pop_back();
  return g;
}

std::string frame_line(const FrameCallGraphEntry& e) {
  std::string fn = e.function.empty() ? std::string("?") : short_function(e.function) + "()";
  std::string s = "  |   File '" + (e.file.empty() ? std::string("?") : e.file) + "', line " +
                  std::to_string(e.line) + ", in ";
  if (e.kind == FrameCallGraphEntry::Kind::coroutine) s += "async ";
  return s + fn;
}

void render(const FutureCallGraph& g, std::string& out, int level) {
  std::string indent(static_cast<std::size_t>(level) * 4, ' ');
  auto line = [&](const std::string& s) { out += indent + s + "\n"; };
  if (g.task)
    line("* Task(name='" + g.name + "', id=" + hex(g.id) + ")");
  else
    line("* Future(id=" + hex(g.id) + ")");
  if (!g.call_stack.empty()) {
    line("  + Call stack:");
    for (const FrameCallGraphEntry& e : g.call_stack)
      line(frame_line(e));
  }
  if (!g.awaited_by.empty()) {
    line("  + Awaited by:");
    for (const FutureCallGraph& a : g.awaited_by)
      render(a, out, level + 1);
  }
}

FutureCallGraph capture(TaskBase& t, int depth, const std::optional<int>& limit, const void* here) {
  Resolver r;
  std::vector<FutureCore*> path;
  if (&t != running_task()) return build(t, r, limit, path);
  FutureCallGraph g;
  g.id = reinterpret_cast<std::uintptr_t>(&t);
  t.add_ref();
  g.task = TaskRef(&t);
  g.name = t.get_name();
  g.call_stack = task_stack(t, r, here);
  apply_depth_and_limit(g.call_stack, depth - 1, limit);
  path.push_back(&t);
  for (FutureCore* a : awaiters_of(t))
    g.awaited_by.push_back(build(*a, r, limit, path));
  return g;
}

TaskBase& task_of(const TaskRef& task) {
  if (!task.state())
    throw ValueError(
        "capture_call_graph(): the TaskRef is empty (default-constructed or moved from)");
  return *task.state();
}

// --- the listings of every task (python -m asyncio ps / pstree) -------------------------

struct TaskInfo {
  TaskBase* task;
  std::string name;
  std::vector<FrameCallGraphEntry> stack;  // innermost first
  std::vector<TaskBase*> awaiters;         // tasks awaiting it (through gathers and shields)
};

std::string frame_label(const FrameCallGraphEntry& e) {
  return (e.function.empty() ? std::string("?") : short_function(e.function)) + " " +
         short_location(CodeLocation{e.file, e.line, {}});
}

std::string stack_chain(const std::vector<FrameCallGraphEntry>& st) {
  std::string s;
  for (const FrameCallGraphEntry& e : st) {
    if (!s.empty()) s += " -> ";
    s += e.function.empty() ? std::string("?") : short_function(e.function);
  }
  return s;
}

// The tasks behind f's awaiters: a gather or a shield is looked through to who awaits it.
void awaiting_tasks(const FutureCore& f, std::vector<TaskBase*>& out,
                    std::vector<const FutureCore*>& seen) {
  for (FutureCore* a : awaiters_of(f)) {
    if (std::find(seen.begin(), seen.end(), a) != seen.end()) continue;
    seen.push_back(a);
    if (auto* t = dynamic_cast<TaskBase*>(a)) {
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    } else {
      awaiting_tasks(*a, out, seen);
    }
  }
}

std::vector<TaskInfo> collect(LoopCore& loop) {
  Resolver r;
  std::vector<TaskBase*> tasks;
  for (TaskBase* t = loop.tasks_head; t; t = t->next_task_)
    tasks.push_back(t);
  std::reverse(tasks.begin(), tasks.end());  // oldest first
  std::vector<TaskInfo> out;
  out.reserve(tasks.size());
  for (TaskBase* t : tasks) {
    TaskInfo info{t, t->get_name(), task_stack(*t, r, nullptr), {}};
    std::vector<const FutureCore*> seen;
    awaiting_tasks(*t, info.awaiters, seen);
    out.push_back(std::move(info));
  }
  return out;
}

std::string table(const std::vector<TaskInfo>& infos) {
  std::unordered_map<const TaskBase*, const TaskInfo*> by_task;
  for (const TaskInfo& i : infos)
    by_task[i.task] = &i;
  auto pad = [](std::string s, std::size_t w) {
    if (s.size() < w) s.resize(w, ' ');
    return s;
  };
  std::string tid = std::to_string(::gettid());
  std::string out = pad("tid", 10) + " " + pad("task id", 20) + " " + pad("task name", 20) + " " +
                    pad("coroutine stack", 50) + " " + pad("awaiter chain", 50) + " " +
                    pad("awaiter name", 15) + " " + "awaiter id\n";
  out += std::string(180, '-') + "\n";
  auto row = [&](const TaskInfo& i, const std::string& chain, const std::string& aname,
                 const std::string& aid) {
    std::string r = pad(tid, 10) + " " + pad(hex(reinterpret_cast<std::uintptr_t>(i.task)), 20) +
                    " " + pad(i.name, 20) + " " + pad(stack_chain(i.stack), 50) + " " +
                    pad(chain, 50) + " " + pad(aname, 15) + " " + aid;
    while (!r.empty() && r.back() == ' ')
      r.pop_back();
    out += r + "\n";
  };
  for (const TaskInfo& i : infos) {
    if (i.awaiters.empty()) {
      row(i, "", "", "0x0");
      continue;
    }
    for (TaskBase* a : i.awaiters) {
      auto it = by_task.find(a);
      std::string chain = it != by_task.end() ? stack_chain(it->second->stack) : "";
      std::string aname = it != by_task.end() ? it->second->name : "Unknown";
      row(i, chain, aname, hex(reinterpret_cast<std::uintptr_t>(a)));
    }
  }
  return out;
}

std::string tree(const std::vector<TaskInfo>& infos) {
  std::unordered_map<const TaskBase*, std::size_t> index;
  for (std::size_t i = 0; i < infos.size(); ++i)
    index[infos[i].task] = i;
  // children[i]: the tasks that task i awaits, in creation order.
  std::vector<std::vector<std::size_t>> children(infos.size());
  std::vector<bool> awaited(infos.size(), false);
  for (std::size_t i = 0; i < infos.size(); ++i)
    for (TaskBase* a : infos[i].awaiters)
      if (auto it = index.find(a); it != index.end()) {
        children[it->second].push_back(i);
        awaited[i] = true;
      }

  // Await cycles first (as asyncio's pstree, which then refuses to draw a tree).
  std::vector<std::vector<std::size_t>> cycles;
  std::vector<int> color(infos.size(), 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::size_t> path;
  for (std::size_t start = 0; start < infos.size(); ++start) {
    if (color[start]) continue;
    // An iterative depth-first search: (node, next child to visit).
    std::vector<std::pair<std::size_t, std::size_t>> stack{{start, 0}};
    color[start] = 1;
    path.assign(1, start);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < children[node].size()) {
        std::size_t c = children[node][next++];
        if (color[c] == 1) {
          auto from = std::find(path.begin(), path.end(), c);
          std::vector<std::size_t> cycle(from, path.end());
          cycle.push_back(c);
          cycles.push_back(std::move(cycle));
        } else if (color[c] == 0) {
          color[c] = 1;
          path.push_back(c);
          stack.emplace_back(c, 0);
        }
      } else {
        color[node] = 2;
        path.pop_back();
        stack.pop_back();
      }
    }
  }
  if (!cycles.empty()) {
    std::string out = "ERROR: await-graph contains cycles - cannot print a tree!\n\n";
    for (const auto& c : cycles) {
      out += "cycle: ";
      for (std::size_t k = 0; k < c.size(); ++k)
        out += (k ? " \u2192 " : "") + infos[c[k]].name;
      out += "\n";
    }
    return out;
  }

  // Each task: its frames from the outermost down, and the tasks it awaits under the last.
  std::string out;
  struct Item {
    std::size_t task;
    std::string prefix;
    bool last;
  };
  std::vector<Item> todo;
  for (std::size_t i = infos.size(); i-- > 0;)
    if (!awaited[i]) todo.push_back({i, "", true});
  std::reverse(todo.begin(), todo.end());
  // Roots are drawn one after the other; a stack keeps the walk iterative.
  std::vector<Item> stack(todo.rbegin(), todo.rend());
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    const TaskInfo& info = infos[it.task];
    out += it.prefix + (it.last ? "\u2514\u2500\u2500 " : "\u251c\u2500\u2500 ") + "(T) " +
           info.name + "\n";
    std::string prefix = it.prefix + (it.last ? "    " : "\u2502   ");
    const auto& kids = children[it.task];
    // A frame has one child: the next frame down, or (the innermost) the tasks it awaits.
    for (std::size_t k = info.stack.size(); k-- > 0;) {
      out += prefix + "\u2514\u2500\u2500  " + frame_label(info.stack[k]) + "\n";
      prefix += "    ";
    }
    for (std::size_t k = kids.size(); k-- > 0;)
      stack.push_back({kids[k], prefix, k + 1 == kids.size()});
  }
  return out;
}

}  // namespace

std::string format_tasks_of(LoopCore& loop, TaskListing how) {
  std::vector<TaskInfo> infos = collect(loop);
  return how == TaskListing::table ? table(infos) : tree(infos);
}

}  // namespace detail

namespace detail {

std::optional<FutureCallGraph> capture_current(int depth, std::optional<int> limit,
                                               const void* here) {
  TaskBase* t = running_task();
  if (!t) return std::nullopt;
  return capture(*t, depth, limit, here);
}

FutureCallGraph capture_task(const TaskRef& task, int depth, std::optional<int> limit,
                             const void* here) {
  return capture(task_of(task), depth, limit, here);
}

}  // namespace detail

std::string format_call_graph(const FutureCallGraph& graph) {
  std::string out;
  detail::render(graph, out, 0);
  if (!out.empty()) out.pop_back();  // as Python's '\n'.join
  return out;
}

std::string format_tasks(TaskListing how) {
  return detail::format_tasks_of(detail::running_loop_core(), how);
}

void print_tasks(TaskListing how, std::ostream& out) {
  out << format_tasks(how);
  out.flush();
}

std::string format_tasks(EventLoop& loop, TaskListing how) {
  if (loop.is_running() && detail::tls_loop != &loop.core())
    throw RuntimeError(
        "format_tasks()/dump_tasks(): the loop runs on another thread; call it there "
        "(loop.call_soon_threadsafe)");
  return detail::format_tasks_of(loop.core(), how);
}

}  // namespace kettle

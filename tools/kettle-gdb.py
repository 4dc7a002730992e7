"""GDB commands for kettle programs, for a stopped process or a core file.

    (gdb) source tools/kettle-gdb.py
    (gdb) kettle tasks

lists every pending task of every event loop of the program: its name and id, its
coroutine frames (innermost first) with file and line, the awaitable it sits in, and the
tasks or futures awaiting it: the data behind kettle::print_call_graph, read from memory
(folly ships `co_bt` for the same reason). It needs the program's debug information (-g)
for kettle's types, and binutils' addr2line for file and line.
"""

import re
import subprocess

import gdb


def _read_text_bias(objfile):
    """Runtime address of objfile's .text minus its address in the file (PIE, shared)."""
    files = gdb.execute("info files", to_string=True)
    runtime = None
    for line in files.splitlines():
        m = re.match(r"\s*(0x[0-9a-f]+) - 0x[0-9a-f]+ is \.text(?: in (.*))?$", line)
        if m and (m.group(2) or gdb.current_progspace().filename) == objfile:
            runtime = int(m.group(1), 16)
            break
    if runtime is None:
        return 0
    out = subprocess.run(["readelf", "-SW", objfile], capture_output=True, text=True).stdout
    m = re.search(r"\]\s+\.text\s+\S+\s+([0-9a-f]+)", out)
    return runtime - int(m.group(1), 16) if m else 0


class Resolver:
    """Program addresses to (function, file, line) through addr2line -i: the outermost of
    the inlined levels is the coroutine, at the line of its co_await."""

    def __init__(self):
        self.bias = {}
        self.cache = {}

    def locate(self, pc):
        if pc in self.cache:
            return self.cache[pc]
        objfile = gdb.solib_name(pc) or gdb.current_progspace().filename
        if objfile not in self.bias:
            self.bias[objfile] = _read_text_bias(objfile)
        addr = "%#x" % (pc - self.bias[objfile])
        out = subprocess.run(["addr2line", "-i", "-f", "-C", "-e", objfile, addr],
                             capture_output=True, text=True).stdout.splitlines()
        where = ("?", "?", 0)
        if len(out) >= 2:
            function, fileline = out[-2], out[-1]
            file, _, line = fileline.rpartition(":")
            line = re.sub(r"\D.*", "", line)
            where = (function, file or "?", int(line) if line else 0)
        self.cache[pc] = where
        return where


def _string(value):
    """A std::string's text, from its fields (no call into the program: works on cores)."""
    return value["_M_dataplus"]["_M_p"].string(length=int(value["_M_string_length"]))


def _unique_ptr_get(value):
    """The pointer a std::unique_ptr with an empty deleter holds (its only word)."""
    target = value.type.strip_typedefs().template_argument(0).pointer()
    return value.address.cast(target.pointer()).dereference()


def _task_name(task):
    extras = _unique_ptr_get(task["extras_"])
    if int(extras) and bool(extras["has_name"]):
        return _string(extras["name"])
    return "Task-%d" % int(task["id_"])


def _waiters(future):
    """The futures or tasks awaiting `future`, from its waiters' `awaiter` fields."""
    tail = future["tail_"]
    out = []
    if not int(tail):
        return out
    w = tail["next"]
    while True:
        a = int(w["awaiter"])
        if a and a not in out:
            out.append(a)
        if int(w) == int(tail):
            return out
        w = w["next"]


class KettleCommand(gdb.Command):
    """kettle: commands for kettle programs (kettle tasks)."""

    def __init__(self):
        super().__init__("kettle", gdb.COMMAND_USER, prefix=True)


class KettleTasks(gdb.Command):
    """kettle tasks: every pending task of every loop, its frames, and who awaits it."""

    def __init__(self):
        super().__init__("kettle tasks", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        resolver = Resolver()
        promise_t = gdb.lookup_type("kettle::detail::CoroPromiseBase").pointer()
        task_t = gdb.lookup_type("kettle::detail::TaskBase").pointer()
        coro_marker = int(gdb.parse_and_eval("&kettle::detail::kAwaitedCoro"))
        selected = gdb.selected_thread()
        loops = []
        for thread in gdb.selected_inferior().threads():
            thread.switch()
            try:
                loop = gdb.parse_and_eval("kettle::detail::tls_loop")
            except gdb.error:
                continue
            if int(loop) and int(loop) not in [int(l) for l, _ in loops]:
                loops.append((loop, thread.num))
        if selected:
            selected.switch()
        if not loops:
            print("kettle: no running event loop in this program")
            return
        for loop, thread_num in loops:
            print("Event loop %#x (thread %d)" % (int(loop), thread_num))
            names = {}
            tasks = []
            t = loop["tasks_head"]
            while int(t):
                tasks.append(t)
                names[int(t)] = _task_name(t)
                t = t["next_task_"]
            for task in reversed(tasks):  # oldest first
                print("* Task(name=%r, id=%#x)" % (names[int(task)], int(task)))
                self._frames(task, resolver, promise_t, coro_marker)
                awaiters = _waiters(task.cast(task_t))
                if awaiters:
                    print("  + Awaited by:")
                    for a in awaiters:
                        if a in names:
                            print("    * Task(name=%r, id=%#x)" % (names[a], a))
                        else:
                            print("    * Future(id=%#x)" % a)

    @staticmethod
    def _frames(task, resolver, promise_t, coro_marker):
        promise = task.cast(promise_t)  # a task's state lies at the start of its root promise
        chain = []
        while int(promise):
            chain.append(promise)
            awaiting = int(promise["awaiting_"])
            promise = gdb.Value(awaiting - 1).cast(promise_t) if awaiting & 1 else gdb.Value(0).cast(promise_t)
        if not chain:
            return
        print("  + Call stack:")
        for i, p in enumerate(reversed(chain)):
            awaiting = int(p["awaiting_"])
            if not awaiting:
                print("  |   (not started)")
                continue
            function, file, line = resolver.locate(int(p["pc_"]))
            if i == 0 and not awaiting & 1 and awaiting != coro_marker:
                info = gdb.Value(awaiting).cast(
                    gdb.lookup_type("kettle::detail::AwaitedInfo").pointer()).dereference()
                name = info["name"].string() if int(info["name"]) else "?"
                print("  |   File %r, line %d, in %s" % (file, line, name))
            print("  |   File %r, line %d, in async %s" % (file, line, function))


KettleCommand()
KettleTasks()

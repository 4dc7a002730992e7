// kettle::task_group / TaskGroup. Names follow CPython's test_taskgroups.py.
// (test_taskgroup_20, 20a and 21a are about BaseException vs Exception, a distinction
// C++ does not have; the task-context and repr tests have no C++ counterpart.)
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Task;
using kettle::TaskGroup;

namespace {

struct ZeroDivisionError : std::runtime_error {
  ZeroDivisionError() : std::runtime_error("division by zero") {}
};
struct MyExc : std::runtime_error {
  MyExc() : std::runtime_error("MyExc") {}
};

// The type names of the exceptions in a group, as get_error_types() in CPython's tests.
std::set<std::string> error_types(const kettle::ExceptionGroup& g) {
  std::set<std::string> out;
  for (const auto& e : g.exceptions()) {
    std::string d = kettle::describe(e);
    std::string name = d.substr(0, d.find(": "));
    auto pos = name.rfind("::");
    out.insert(pos == std::string::npos ? name : name.substr(pos + 2));
  }
  return out;
}

const kettle::ExceptionGroup& nested_group(const kettle::ExceptionGroup& g, std::size_t i) {
  try {
    std::rethrow_exception(g.exceptions().at(i));
  } catch (const kettle::ExceptionGroup& inner) {
    static thread_local std::vector<kettle::ExceptionGroup> keep;
    keep.push_back(inner);
    return keep.back();
  }
  throw std::logic_error("not a group");
}

template <class F>
void run_test(F body) {
  kettle::run(body());
}

Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await kettle::sleep(d);
  co_return v;
}

Coro<> zero_div_after(std::chrono::milliseconds d) {
  co_await kettle::sleep(d);
  throw ZeroDivisionError();
}

#define EXPECT_GROUP(expr, types)                                     \
  do {                                                                \
    bool thrown_ = false;                                             \
    try {                                                             \
      expr;                                                           \
    } catch (const kettle::ExceptionGroup& g_) {                      \
      thrown_ = true;                                                 \
      EXPECT_EQ(error_types(g_), (std::set<std::string> types));      \
    }                                                                 \
    EXPECT_TRUE(thrown_) << #expr " did not raise an ExceptionGroup"; \
  } while (0)

}  // namespace

TEST(TaskGroups, test_taskgroup_01) {
  run_test([]() -> Coro<> {
    Task<int> t1, t2;
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(100ms, 42));
      t2 = g.create_task(value_after(200ms, 11));
      co_return;
    });
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
  });
}

TEST(TaskGroups, test_taskgroup_02) {
  run_test([]() -> Coro<> {
    Task<int> t1, t2;
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(100ms, 42));
      co_await kettle::sleep(150ms);
      t2 = g.create_task(value_after(200ms, 11));
    });
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
  });
}

TEST(TaskGroups, test_taskgroup_03) {
  run_test([]() -> Coro<> {
    Task<int> t1, t2;
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      t1 = g.create_task(value_after(1s, 42));
      co_await kettle::sleep(150ms);
      t1.cancel();  // cancelling a child explicitly: the group carries on
      t2 = g.create_task(value_after(200ms, 11));
    });
    EXPECT_TRUE(t1.cancelled());
    EXPECT_EQ(t2.result(), 11);
  });
}

TEST(TaskGroups, test_taskgroup_04) {
  int num = 0;
  bool t2_cancel = false;
  Task<> t2;
  auto foo2 = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(1s);
    } catch (const kettle::CancelledError&) {
      t2_cancel = true;
      throw;
    }
    num += 1;
  };
  auto runner = [&]() -> Coro<> {
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      g.create_task(zero_div_after(100ms));
      t2 = g.create_task(foo2());
      co_return;
    });
    num += 10;
  };
  run_test([&]() -> Coro<> {
    EXPECT_GROUP(co_await kettle::create_task(runner()), {"ZeroDivisionError"});
  });
  EXPECT_EQ(num, 0);
  EXPECT_TRUE(t2_cancel);
  EXPECT_TRUE(t2.cancelled());
}

TEST(TaskGroups, test_cancel_children_on_child_error) {
  int num = 0;
  bool t2_cancel = false, runner_cancel = false;
  auto foo2 = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(5s);
    } catch (const kettle::CancelledError&) {
      t2_cancel = true;
      throw;
    }
    num += 1;
  };
  auto body = [&](TaskGroup& g) -> Coro<> {
    g.create_task(zero_div_after(100ms));
    g.create_task(zero_div_after(100ms));
    g.create_task(zero_div_after(100ms));
    g.create_task(foo2());
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      runner_cancel = true;
      throw;
    }
  };
  auto runner = [&]() -> Coro<> {
    co_await kettle::task_group(body);
    num += 10;
  };
  run_test([&]() -> Coro<> {
    EXPECT_GROUP(co_await kettle::create_task(runner()), {"ZeroDivisionError"});
  });
  EXPECT_EQ(num, 0);
  EXPECT_TRUE(t2_cancel);
  EXPECT_TRUE(runner_cancel);
}

TEST(TaskGroups, test_cancellation) {
  int num = 0;
  auto foo = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(5s);
    } catch (const kettle::CancelledError&) {
      num += 1;
      throw;
    }
  };
  auto runner = [&]() -> Coro<> {
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      for (int i = 0; i < 5; ++i)
        g.create_task(foo());
      co_return;
    });
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    bool cancelled = false;
    try {
      co_await r;
    } catch (const kettle::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
  });
  EXPECT_EQ(num, 5);
}

TEST(TaskGroups, test_taskgroup_07) {
  int num = 0;
  auto foo = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(5s);
    } catch (const kettle::CancelledError&) {
      num += 1;
      throw;
    }
  };
  auto body = [&](TaskGroup& g) -> Coro<> {
    for (int i = 0; i < 5; ++i)
      g.create_task(foo());
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      num += 10;
      throw;
    }
  };
  auto runner = [&]() -> Coro<> { co_await kettle::task_group(body); };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    EXPECT_THROW(co_await r, kettle::CancelledError);
  });
  EXPECT_EQ(num, 15);
}

namespace {
Coro<> sleep_then_crash(std::chrono::milliseconds d) {
  try {
    co_await kettle::sleep(d);
  } catch (...) {
  }
  throw ZeroDivisionError();  // "finally: 1 / 0"
}
}  // namespace

TEST(TaskGroups, test_taskgroup_08) {
  auto body = [](TaskGroup& g) -> Coro<> {
    for (int i = 0; i < 5; ++i)
      g.create_task(sleep_then_crash(10s));
    co_await kettle::sleep(10s);
  };
  auto runner = [&]() -> Coro<> { co_await kettle::task_group(body); };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    EXPECT_GROUP(co_await r, {"ZeroDivisionError"});
  });
}

TEST(TaskGroups, test_taskgroup_09) {
  Task<int> t1, t2;
  auto body = [&](TaskGroup& g) -> Coro<> {
    t1 = g.create_task(value_after(1s, 42));
    t2 = g.create_task(value_after(2s, 11));
    co_await kettle::sleep(100ms);
    throw ZeroDivisionError();
  };
  run_test(
      [&]() -> Coro<> { EXPECT_GROUP(co_await kettle::task_group(body), {"ZeroDivisionError"}); });
  EXPECT_TRUE(t1.cancelled());
  EXPECT_TRUE(t2.cancelled());
}

TEST(TaskGroups, test_taskgroup_10) {
  Task<int> t1, t2;
  auto body = [&](TaskGroup& g) -> Coro<> {
    t1 = g.create_task(value_after(1s, 42));
    t2 = g.create_task(value_after(2s, 11));
    throw ZeroDivisionError();
    co_return;
  };
  run_test(
      [&]() -> Coro<> { EXPECT_GROUP(co_await kettle::task_group(body), {"ZeroDivisionError"}); });
  EXPECT_TRUE(t1.cancelled());
  EXPECT_TRUE(t2.cancelled());
}

TEST(TaskGroups, test_taskgroup_11) {
  auto inner = [](TaskGroup& g2) -> Coro<> {
    for (int i = 0; i < 5; ++i)
      g2.create_task(sleep_then_crash(10s));
    co_await kettle::sleep(10s);
  };
  auto outer = [&](TaskGroup&) -> Coro<> { co_await kettle::task_group(inner); };
  auto runner = [&]() -> Coro<> { co_await kettle::task_group(outer); };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    bool raised = false;
    try {
      co_await r;
    } catch (const kettle::ExceptionGroup& g) {
      raised = true;
      EXPECT_EQ(error_types(g), (std::set<std::string>{"ExceptionGroup"}));
      EXPECT_EQ(error_types(nested_group(g, 0)), (std::set<std::string>{"ZeroDivisionError"}));
    }
    EXPECT_TRUE(raised);
  });
}

TEST(TaskGroups, test_taskgroup_12) {
  auto inner = [](TaskGroup& g2) -> Coro<> {
    for (int i = 0; i < 5; ++i)
      g2.create_task(sleep_then_crash(10s));
    co_await kettle::sleep(10s);
  };
  auto outer = [&](TaskGroup& g1) -> Coro<> {
    g1.create_task(value_after(10s, 0));
    co_await kettle::task_group(inner);
  };
  auto runner = [&]() -> Coro<> { co_await kettle::task_group(outer); };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    r.cancel();
    bool raised = false;
    try {
      co_await r;
    } catch (const kettle::ExceptionGroup& g) {
      raised = true;
      EXPECT_EQ(error_types(g), (std::set<std::string>{"ExceptionGroup"}));
      EXPECT_EQ(error_types(nested_group(g, 0)), (std::set<std::string>{"ZeroDivisionError"}));
    }
    EXPECT_TRUE(raised);
  });
}

namespace {
Coro<> crash_after(std::chrono::milliseconds t) {
  co_await kettle::sleep(t);
  throw kettle::ValueError("crash after " + std::to_string(t.count()) + " ms");
}
}  // namespace

TEST(TaskGroups, test_taskgroup_13) {
  auto inner = [](TaskGroup& g2) -> Coro<> {
    g2.create_task(crash_after(10s));
    co_return;
  };
  auto outer = [&](TaskGroup& g1) -> Coro<> {
    g1.create_task(crash_after(100ms));
    co_await kettle::task_group(inner);
  };
  run_test([&]() -> Coro<> {
    EXPECT_GROUP(co_await kettle::create_task(kettle::task_group(outer)), {"ValueError"});
  });
}

TEST(TaskGroups, test_taskgroup_14) {
  auto inner = [](TaskGroup& g2) -> Coro<> {
    g2.create_task(crash_after(100ms));
    co_return;
  };
  auto outer = [&](TaskGroup& g1) -> Coro<> {
    g1.create_task(crash_after(10s));
    co_await kettle::task_group(inner);
  };
  run_test([&]() -> Coro<> {
    bool raised = false;
    try {
      co_await kettle::create_task(kettle::task_group(outer));
    } catch (const kettle::ExceptionGroup& g) {
      raised = true;
      EXPECT_EQ(error_types(g), (std::set<std::string>{"ExceptionGroup"}));
      EXPECT_EQ(error_types(nested_group(g, 0)), (std::set<std::string>{"ValueError"}));
    }
    EXPECT_TRUE(raised);
  });
}

TEST(TaskGroups, test_taskgroup_15) {
  auto body = [](TaskGroup& g1) -> Coro<> {
    g1.create_task(zero_div_after(300ms));
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
    }
    co_await kettle::sleep(500ms);  // "except CancelledError: await sleep(0.5); raise"
    throw kettle::CancelledError();
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(kettle::task_group(body));
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    EXPECT_GROUP(co_await r, {"ZeroDivisionError"});
  });
}

TEST(TaskGroups, test_taskgroup_16) {
  auto body = [](TaskGroup& g1) -> Coro<> {
    g1.create_task(zero_div_after(300ms));
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
    }
    co_await kettle::sleep(500ms);
    throw kettle::CancelledError();
  };
  auto runner = [&]() -> Coro<> {
    Task<> t = kettle::create_task(kettle::task_group(body));
    co_await t;
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(runner());
    co_await kettle::sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    EXPECT_GROUP(co_await r, {"ZeroDivisionError"});
  });
}

TEST(TaskGroups, test_taskgroup_17) {
  int num = 0;
  auto body = [&](TaskGroup&) -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      num += 10;
      throw;
    }
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(kettle::task_group(body));
    co_await kettle::sleep(100ms);
    r.cancel();
    EXPECT_THROW(co_await r, kettle::CancelledError);
  });
  EXPECT_EQ(num, 10);
}

TEST(TaskGroups, test_taskgroup_18) {
  int num = 0;
  auto body = [&](TaskGroup&) -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      num += 10;
    }
    throw MyExc();  // not a good idea, but it must be supported
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(kettle::task_group(body));
    co_await kettle::sleep(100ms);
    r.cancel();
    EXPECT_GROUP(co_await r, {"MyExc"});
  });
  EXPECT_EQ(num, 10);
}

TEST(TaskGroups, test_taskgroup_19) {
  auto nested = []() -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (...) {
    }
    throw MyExc();
  };
  auto body = [&](TaskGroup& g) -> Coro<> {
    g.create_task(zero_div_after(100ms));
    co_await nested();
  };
  run_test([&]() -> Coro<> {
    EXPECT_GROUP(co_await kettle::create_task(kettle::task_group(body)),
                 ({"MyExc", "ZeroDivisionError"}));
  });
}

TEST(TaskGroups, test_taskgroup_22) {
  auto body = [](TaskGroup& g) -> Coro<> {
    g.create_task(value_after(1s, 42));
    g.create_task(value_after(2s, 11));
    co_return;
  };
  run_test([&]() -> Coro<> {
    Task<> r = kettle::create_task(kettle::task_group(body));
    co_await kettle::sleep(50ms);
    r.cancel();
    EXPECT_THROW(co_await r, kettle::CancelledError);
  });
}

TEST(TaskGroups, test_taskgroup_23) {
  auto do_job = [](std::chrono::milliseconds d) -> Coro<> { co_await kettle::sleep(d); };
  run_test([&]() -> Coro<> {
    std::vector<Task<>> jobs;
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      for (int count = 0; count < 10; ++count) {
        co_await kettle::sleep(100ms);
        jobs.push_back(g.create_task(do_job(300ms)));
      }
      co_await kettle::sleep(1350ms);
      for (auto& j : jobs)
        EXPECT_TRUE(j.done());
    });
  });
}

TEST(TaskGroups, test_taskgroup_24) {
  auto coro1 = [](std::chrono::milliseconds d) -> Coro<> { co_await kettle::sleep(d); };
  auto root = [&](TaskGroup g) -> Coro<> {
    co_await kettle::sleep(100ms);
    g.create_task(coro1(100ms));
    g.create_task(coro1(200ms));
  };
  run_test([&]() -> Coro<> {
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      g.create_task(root(g));
      co_return;
    });
  });
}

TEST(TaskGroups, test_taskgroup_25) {
  int nhydras = 0;
  struct H {
    static Coro<> hydra(TaskGroup g, int* n) {
      ++*n;
      co_await kettle::sleep(10ms);
      g.create_task(hydra(g, n));
      g.create_task(hydra(g, n));
    }
  };
  auto hercules = [&]() -> Coro<> {
    while (nhydras < 10)
      co_await kettle::sleep(15ms);
    throw ZeroDivisionError();
  };
  auto body = [&](TaskGroup& g) -> Coro<> {
    g.create_task(H::hydra(g, &nhydras));
    g.create_task(hercules());
    co_return;
  };
  run_test(
      [&]() -> Coro<> { EXPECT_GROUP(co_await kettle::task_group(body), {"ZeroDivisionError"}); });
  EXPECT_GE(nhydras, 10);
}

TEST(TaskGroups, test_taskgroup_task_name) {
  run_test([]() -> Coro<> {
    co_await kettle::task_group([](TaskGroup& g) -> Coro<> {
      Task<int> t = g.create_task(value_after(0ms, 1), "yolo");
      EXPECT_EQ(t.get_name(), "yolo");
      co_return;
    });
  });
}

TEST(TaskGroups, test_taskgroup_no_create_task_after_failure) {
  auto coro2 = [](TaskGroup g) -> Coro<> {
    try {
      co_await kettle::sleep(1s);
    } catch (const kettle::CancelledError&) {
      EXPECT_THROW(g.create_task(zero_div_after(1ms)), kettle::RuntimeError);
      throw;
    }
  };
  auto body = [&](TaskGroup& g) -> Coro<> {
    g.create_task(zero_div_after(1ms));
    g.create_task(coro2(g));
    co_return;
  };
  run_test(
      [&]() -> Coro<> { EXPECT_GROUP(co_await kettle::task_group(body), {"ZeroDivisionError"}); });
}

TEST(TaskGroups, test_taskgroup_finished) {
  run_test([]() -> Coro<> {
    TaskGroup escaped(nullptr);
    co_await kettle::task_group([&](TaskGroup& g) -> Coro<> {
      escaped = g;
      co_return;
    });
    try {
      escaped.create_task(value_after(0ms, 1));
      ADD_FAILURE() << "create_task on a finished group";
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("is finished"), std::string::npos);
    }
  });
}

TEST(TaskGroups, test_taskgroup_without_parent_task) {
  auto body = [](TaskGroup&) -> Coro<> { co_return; };
  // Outside a task there is no parent: awaiting it is impossible, and driving it on a
  // loop makes a task for it, so the guard is the not-in-a-task check of new_group().
  EXPECT_THROW(kettle::detail::new_group(), kettle::RuntimeError);
  (void)body;
}

TEST(TaskGroups, test_cancelling_level_preserved) {
  auto raise_after = []() -> Coro<> {
    co_await kettle::sleep(0);
    throw std::runtime_error("RuntimeError");
  };
  run_test([&]() -> Coro<> {
    try {
      co_await kettle::task_group([&](TaskGroup& tg) -> Coro<> {
        tg.create_task(raise_after());
        co_return;
      });
    } catch (const kettle::ExceptionGroup&) {
    }
    EXPECT_EQ(kettle::current_task().cancelling(), 0u);
  });
}

TEST(TaskGroups, test_nested_groups_both_cancelled) {
  auto raise_runtime = []() -> Coro<> {
    co_await kettle::sleep(0);
    throw std::runtime_error("RuntimeError");
  };
  auto raise_value = []() -> Coro<> {
    co_await kettle::sleep(0);
    throw kettle::ValueError("ValueError");
  };
  run_test([&]() -> Coro<> {
    bool value_error = false;
    try {
      co_await kettle::task_group([&](TaskGroup& outer_tg) -> Coro<> {
        bool runtime_error = false;
        try {
          co_await kettle::task_group([&](TaskGroup& inner_tg) -> Coro<> {
            inner_tg.create_task(raise_runtime());
            outer_tg.create_task(raise_value());
            co_return;
          });
        } catch (const kettle::ExceptionGroup& g) {
          runtime_error = error_types(g).count("runtime_error") > 0;
        }
        EXPECT_TRUE(runtime_error);
        EXPECT_EQ(kettle::current_task().cancelling(), 1u);
      });
    } catch (const kettle::ExceptionGroup& g) {
      value_error = error_types(g).count("ValueError") > 0;
    }
    EXPECT_TRUE(value_error);
    EXPECT_EQ(kettle::current_task().cancelling(), 0u);
  });
}

TEST(TaskGroups, test_error_and_cancel) {
  kettle::Future<> event;
  auto raise_error = [&]() -> Coro<> {
    event.set_result();
    co_await kettle::sleep(0);
    throw std::runtime_error("RuntimeError");
  };
  auto inner = [&]() -> Coro<> {
    try {
      co_await kettle::task_group([&](TaskGroup& tg) -> Coro<> {
        tg.create_task(raise_error());
        co_await kettle::sleep(1s);
        ADD_FAILURE() << "Sleep in group should have been cancelled";
      });
    } catch (const kettle::ExceptionGroup&) {
      EXPECT_EQ(kettle::current_task().cancelling(), 1u);
    }
    EXPECT_EQ(kettle::current_task().cancelling(), 1u);
    co_await kettle::sleep(1s);
    ADD_FAILURE() << "Sleep after group should have been cancelled";
  };
  run_test([&]() -> Coro<> {
    Task<> t = kettle::create_task(inner());
    co_await event;
    EXPECT_EQ(t.cancelling(), 0u);
    t.cancel();
    EXPECT_EQ(t.cancelling(), 1u);
    EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_TRUE(t.cancelled());
  });
}

TEST(TaskGroups, test_body_value_is_returned) {
  run_test([]() -> Coro<> {
    int r = co_await kettle::task_group(
        [](TaskGroup& g, int x) -> Coro<int> {
          Task<int> t = g.create_task(value_after(1ms, x));
          co_return co_await t + 1;
        },
        41);
    EXPECT_EQ(r, 42);
  });
}

// Internal: every duration and deadline a user hands to kettle goes through here.
//
// Durations saturate: anything longer than kNeverNs (100 years) means "never", whatever its
// representation (seconds as double, std::chrono of any rep, hours::max(), 1e20), and
// nothing overflows. NaN is a ValueError. Nothing else in kettle converts user durations.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ratio>
#include <type_traits>

namespace kettle::detail {

// 100 years: far enough to mean "never", small enough that now + it fits in an int64.
inline constexpr std::int64_t kNeverNs = std::int64_t(100) * 365 * 24 * 3600 * 1'000'000'000;

[[noreturn]] void throw_nan_duration(const char* what);

// d in nanoseconds, rounded up (a sleep never ends early) and clamped to ±kNeverNs.
// `what` names the caller in the ValueError raised for NaN.
template <class Rep, class Period>
std::int64_t duration_ns(std::chrono::duration<Rep, Period> d, const char* what) {
  using namespace std::chrono;
  if constexpr (std::is_floating_point_v<Rep>) {
    if (std::isnan(d.count())) throw_nan_duration(what);
  }
  // Compare in double seconds first: the exact conversion below could overflow.
  double s = duration<double>(d).count();
  if (s >= double(kNeverNs) * 1e-9) return kNeverNs;
  if (s <= -double(kNeverNs) * 1e-9) return -kNeverNs;
  using ToNs = std::ratio_divide<Period, std::nano>;
  if constexpr (std::is_integral_v<Rep> && ToNs::den != 1) {
    // A period like 1/3 s: duration_cast multiplies by 1e9 before it divides, which can
    // overflow an int64 for a duration under 100 years. Exact enough in long double.
    long double ns = static_cast<long double>(d.count()) * ToNs::num / ToNs::den;
    return static_cast<std::int64_t>(std::ceil(ns));
  } else {
    return ceil<nanoseconds>(d).count();
  }
}

inline std::int64_t seconds_ns(double seconds, const char* what) {
  return duration_ns(std::chrono::duration<double>(seconds), what);
}

// A deadline on the steady clock (in its nanoseconds since its epoch), saturated the same
// way: a time point more than kNeverNs away from its epoch is "never" (or "long ago").
template <class Clock, class Dur>
std::int64_t time_point_ns(std::chrono::time_point<Clock, Dur> t, const char* what) {
  return duration_ns(t.time_since_epoch(), what);
}

}  // namespace kettle::detail
